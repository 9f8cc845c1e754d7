import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

interface HistoryEvent {
  action: string;
  path: string;
  position: string;
  time: string;
}

describe('point-in-time reads (asOf)', () => {
  let t: UnitApp;
  let history: HistoryEvent[];
  const positionAfter = (index: number) => history[index]!.position;

  beforeEach(async () => {
    t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/app.jar', payload: 'one' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/notes.txt', payload: 'notes' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/org/app/app.jar?properties=qa=pending' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/app.jar', payload: 'second' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/org/app/app.jar?properties=qa=passed' });
    // The delete lands a few milliseconds later, so that an instant lies between it and the rest.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/org/app' });
    history = (await t.app.inject({ method: 'GET', url: '/artifactory/api/history/libs/org/app?deep=1' })).json().events as HistoryEvent[];
    // 0 created, 1 deploy one, 2 deploy notes, 3 qa=pending, 4 deploy second, 5 qa=passed, 6 folder deleted
    expect(history.map((event) => event.action)).toEqual(['repository-created', 'deployed', 'deployed', 'properties-set', 'deployed', 'properties-set', 'folder-deleted']);
  });
  afterEach(async () => {
    await t.app.close();
  });

  const get = (url: string) => t.app.inject({ method: 'GET', url });

  it('file info, properties and download show the file as it was at a position', async () => {
    const first = await get(`/artifactory/api/storage/libs/org/app/app.jar?asOf=${positionAfter(3)}`);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toMatchObject({ path: '/org/app/app.jar', size: '3' });
    const properties = await get(`/artifactory/api/storage/libs/org/app/app.jar?properties&asOf=${positionAfter(3)}`);
    expect(properties.json().properties).toEqual({ qa: ['pending'] });
    const download = await get(`/artifactory/libs/org/app/app.jar?asOf=${positionAfter(3)}`);
    expect(download.statusCode).toBe(200);
    expect(download.body).toBe('one');

    const later = await get(`/artifactory/libs/org/app/app.jar?asOf=${positionAfter(5)}`);
    expect(later.body).toBe('second');
    expect((await get(`/artifactory/api/storage/libs/org/app/app.jar?properties&asOf=${positionAfter(5)}`)).json().properties).toEqual({ qa: ['passed'] });
    // Today the folder is deleted; before it was, it had both files.
    expect((await get('/artifactory/api/storage/libs/org/app/app.jar')).statusCode).toBe(404);
    expect((await get(`/artifactory/libs/org/app/app.jar?asOf=${positionAfter(6)}`)).statusCode).toBe(404);
  });

  it('folder info and file lists show the folder as it was, by position or by time', async () => {
    const folder = await get(`/artifactory/api/storage/libs/org/app?asOf=${positionAfter(2)}`);
    expect(folder.json().children).toEqual([
      { uri: '/app.jar', folder: false },
      { uri: '/notes.txt', folder: false },
    ]);
    const list = await get(`/artifactory/api/storage/libs/org?list&deep=1&asOf=${positionAfter(1)}`);
    expect(list.json().files.map((file: { uri: string }) => file.uri)).toEqual(['/app/app.jar']);
    const beforeDelete = new Date(new Date(history[6]!.time).getTime() - 1).toISOString();
    const byTime = await get(`/artifactory/api/storage/libs/org?list&deep=1&asOf=${encodeURIComponent(beforeDelete)}`);
    expect(byTime.statusCode).toBe(200);
    expect(byTime.json().files.map((file: { uri: string }) => file.uri)).toEqual(['/app/app.jar', '/app/notes.txt']);
    expect((await get(`/artifactory/api/storage/libs/org?asOf=${positionAfter(6)}`)).statusCode).toBe(404);
  });

  it('refuses a malformed asOf and answers 404 before the repository existed', async () => {
    const bad = await get('/artifactory/api/storage/libs/org?asOf=yesterday');
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ errors: [{ status: 400 }] });
    expect((await get('/artifactory/libs/org/app/app.jar?asOf=not-a-time')).statusCode).toBe(400);
    const before = await get('/artifactory/api/storage/libs/org?asOf=2001-01-01T00:00:00Z');
    expect(before.statusCode).toBe(404);
  });
});
