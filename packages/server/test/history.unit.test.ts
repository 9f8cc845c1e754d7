import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

interface HistoryBody {
  repo: string;
  path: string;
  events: { id: string; action: string; path: string; actor: string; origin: string; received: boolean; time: string; hlc: { wall: number; logical: number }; data: Record<string, unknown> }[];
  next?: string;
}

describe('history API', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/app.jar', payload: 'one' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/other.txt', payload: 'other' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/org?properties=team=core' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/app.jar', payload: 'two' });
    await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/org/app' });
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/org/app/app.jar', payload: 'three' });
  });
  afterEach(async () => {
    await t.app.close();
  });

  const history = async (url: string) => {
    const response = await t.app.inject({ method: 'GET', url: `/artifactory/api/history/${url}` });
    return { status: response.statusCode, body: response.json() as HistoryBody };
  };

  it('lists every event on the path and the folders above it, oldest first, with actor, time, origin and id', async () => {
    const { status, body } = await history('libs/org/app/app.jar');
    expect(status).toBe(200);
    expect(body.events.map((event) => `${event.action} ${event.path}`)).toEqual([
      'repository-created /',
      'deployed /org/app/app.jar',
      // A recursive property change is one event per path it touches.
      'properties-set /org',
      'properties-set /org/app',
      'properties-set /org/app/app.jar',
      'deployed /org/app/app.jar',
      'folder-deleted /org/app',
      'deployed /org/app/app.jar',
    ]);
    const deployed = body.events[1]!;
    expect(deployed).toMatchObject({ actor: 'admin', origin: 'site-test', received: false, data: { path: 'org/app/app.jar', size: 3, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) } });
    expect(new Date(deployed.time).getTime()).toBe(deployed.hlc.wall);
    expect(new Set(body.events.map((event) => event.id)).size).toBe(8);
  });

  it('pages with limit and cursor until no next is given', async () => {
    const seen: string[] = [];
    let url = 'libs/org/app/app.jar?limit=4';
    for (let pages = 0; pages < 10; pages++) {
      const { body } = await history(url);
      seen.push(...body.events.map((event) => event.id));
      if (body.next === undefined) break;
      url = `libs/org/app/app.jar?limit=4&cursor=${body.next}`;
    }
    expect(seen).toEqual((await history('libs/org/app/app.jar')).body.events.map((event) => event.id));
    expect(seen).toHaveLength(8);
  });

  it('answers JSON as JSON.stringify writes it, the envelope keys in order', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/history/libs/org/app/app.jar?limit=3' });
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8');
    const body = response.json() as Record<string, unknown>;
    expect(response.body).toBe(JSON.stringify(body));
    expect(Object.keys(body)).toEqual(['repo', 'path', 'uri', 'siteId', 'events', 'next', 'nextUri']);
    expect(body).toMatchObject({ repo: 'libs', path: '/org/app/app.jar', siteId: 'site-test', next: expect.any(String), nextUri: expect.stringContaining(`?limit=3&cursor=${String(body['next'])}`) });
    const last = await t.app.inject({ method: 'GET', url: `/artifactory/api/history/libs/org/app/app.jar?limit=100` });
    expect(Object.keys(last.json() as object)).toEqual(['repo', 'path', 'uri', 'siteId', 'events']);
  });

  it('adds the paths below a folder with deep=1', async () => {
    const { body } = await history('libs/org?deep=1');
    expect(body.events.filter((event) => event.action === 'deployed').map((event) => event.path)).toEqual(['/org/app/app.jar', '/org/other.txt', '/org/app/app.jar', '/org/app/app.jar']);
  });

  it('refuses a bad limit and answers 404 for a repository that never existed', async () => {
    expect((await history('libs/org?limit=0')).status).toBe(400);
    expect((await history('libs/org?limit=abc')).status).toBe(400);
    expect((await history('libs/org?cursor=-1')).status).toBe(400);
    const missing = await history('nope/x');
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ errors: [{ status: 404 }] });
  });
});
