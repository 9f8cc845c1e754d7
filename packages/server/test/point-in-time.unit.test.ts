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

describe('point-in-time reads (asOf) through a virtual repository', () => {
  let t: UnitApp;
  const inject = (method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, payload?: string | Record<string, unknown>) =>
    t.app.inject({ method, url, ...(payload === undefined ? {} : { payload }), ...(typeof payload === 'string' ? { headers: { 'content-type': 'text/plain' } } : {}) });
  const get = (url: string) => inject('GET', url);
  /** The position of the last event of the stream `repo` holds now (its history's last entry). */
  const lastPosition = async (repo: string) => {
    const events = (await get(`/artifactory/api/history/${repo}?deep=1&limit=10000`)).json().events as HistoryEvent[];
    return events.at(-1)!.position;
  };
  let membersOnlyA: string;
  let bFirst: string;
  let timeBFirst: string;
  let beforeVirtual: string;

  beforeEach(async () => {
    t = await buildUnitApp();
    for (const key of ['libs-a', 'libs-b']) expect((await inject('PUT', `/artifactory/api/repositories/${key}`, { rclass: 'local' })).statusCode).toBe(200);
    expect((await inject('PUT', '/artifactory/libs-a/org/app.jar', 'from a')).statusCode).toBe(201);
    expect((await inject('PUT', '/artifactory/api/storage/libs-a/org/app.jar?properties=built-by=a')).statusCode).toBe(204);
    expect((await inject('PUT', '/artifactory/libs-b/org/app.jar', 'from b')).statusCode).toBe(201);
    expect((await inject('PUT', '/artifactory/libs-b/org/only-b.txt', 'only b')).statusCode).toBe(201);
    beforeVirtual = await lastPosition('libs-b');
    // At first the virtual reaches libs-a alone.
    expect((await inject('PUT', '/artifactory/api/repositories/all', { rclass: 'virtual', repositories: ['libs-a'] })).statusCode).toBe(200);
    membersOnlyA = await lastPosition('all');
    await new Promise((resolve) => setTimeout(resolve, 5));
    // Then libs-b is put first.
    expect((await inject('POST', '/artifactory/api/repositories/all', { repositories: ['libs-b', 'libs-a'] })).statusCode).toBe(200);
    bFirst = await lastPosition('all');
    const changed = (await get('/artifactory/api/history/all?limit=10000')).json().events as HistoryEvent[];
    timeBFirst = changed.at(-1)!.time;
    await new Promise((resolve) => setTimeout(resolve, 5));
    // Today libs-a is gone from the virtual and its file deleted; the virtual has libs-b only.
    expect((await inject('POST', '/artifactory/api/repositories/all', { repositories: ['libs-b'] })).statusCode).toBe(200);
    expect((await inject('DELETE', '/artifactory/libs-a/org/app.jar')).statusCode).toBe(204);
  });
  afterEach(async () => {
    await t.app.close();
  });

  it('downloads through the members the virtual had, in the order it had them', async () => {
    // Who changed the virtual's members, and when, is in its history.
    const changes = (await get('/artifactory/api/history/all/org/app.jar')).json().events as (HistoryEvent & { data: { patch?: unknown } })[];
    expect(changes.map((event) => event.action)).toEqual(['repository-created', 'repository-changed', 'repository-changed']);
    expect(changes[1]!.data.patch).toEqual({ repositories: ['libs-b', 'libs-a'] });
    expect((await get('/artifactory/all/org/app.jar')).body).toBe('from b');
    const then = await get(`/artifactory/all/org/app.jar?asOf=${membersOnlyA}`);
    expect(then.statusCode).toBe(200);
    expect(then.body).toBe('from a');
    expect((await get(`/artifactory/all/org/only-b.txt?asOf=${membersOnlyA}`)).statusCode).toBe(404);
    expect((await get(`/artifactory/all/org/app.jar?asOf=${bFirst}`)).body).toBe('from b');
    // By time: the instant the virtual was changed to put libs-b first.
    expect((await get(`/artifactory/all/org/app.jar?asOf=${encodeURIComponent(timeBFirst)}`)).body).toBe('from b');
    const beforeChange = new Date(new Date(timeBFirst).getTime() - 1).toISOString();
    expect((await get(`/artifactory/all/org/app.jar?asOf=${encodeURIComponent(beforeChange)}`)).body).toBe('from a');
  });

  it('answers file info, properties, folder info and lists as the virtual resolved then', async () => {
    const info = await get(`/artifactory/api/storage/all/org/app.jar?asOf=${membersOnlyA}`);
    expect(info.statusCode).toBe(200);
    // A file is shown under the member that held it, as today.
    expect(info.json()).toMatchObject({ repo: 'libs-a', path: '/org/app.jar', size: '6' });
    const properties = await get(`/artifactory/api/storage/all/org/app.jar?properties&asOf=${membersOnlyA}`);
    expect(properties.json().properties).toEqual({ 'built-by': ['a'] });
    // libs-b's copy has no properties: asOf the reorder the virtual answers with it.
    expect((await get(`/artifactory/api/storage/all/org/app.jar?properties&asOf=${bFirst}`)).statusCode).toBe(404);

    const folderThen = await get(`/artifactory/api/storage/all/org?asOf=${membersOnlyA}`);
    expect(folderThen.json()).toMatchObject({ repo: 'all', children: [{ uri: '/app.jar', folder: false }] });
    const listMerged = await get(`/artifactory/api/storage/all/org?list&deep=1&asOf=${bFirst}`);
    expect(listMerged.json().files.map((file: { uri: string; sha2: string }) => file.uri)).toEqual(['/app.jar', '/only-b.txt']);
    const listToday = await get('/artifactory/api/storage/all/org?list&deep=1');
    expect(listToday.json().files.map((file: { uri: string }) => file.uri)).toEqual(['/app.jar', '/only-b.txt']);
    // The merged list shows each path from the first member that had it then.
    const [appThen] = listMerged.json().files as { sha2: string }[];
    const [appToday] = (await get(`/artifactory/api/storage/all/org?list&deep=1&asOf=${membersOnlyA}`)).json().files as { sha2: string }[];
    expect(appThen!.sha2).not.toBe(appToday!.sha2);
  });

  it('answers 404 before the virtual existed and 400 for a malformed asOf', async () => {
    const before = await get(`/artifactory/api/storage/all/org/app.jar?asOf=${beforeVirtual}`);
    expect(before.statusCode).toBe(404);
    expect(before.json().errors[0].message).toMatch(/did not exist at/);
    expect((await get(`/artifactory/all/org/app.jar?asOf=${beforeVirtual}`)).statusCode).toBe(404);
    expect((await get('/artifactory/all/org/app.jar?asOf=soon')).statusCode).toBe(400);
  });
});
