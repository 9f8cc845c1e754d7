import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('storage API', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
    for (const path of ['a/one.txt', 'a/b/two.txt', 'a/b/c/three.txt', 'top.txt']) {
      await t.app.inject({ method: 'PUT', url: `/artifactory/libs/${path}`, payload: path, headers: { 'content-type': 'text/plain' } });
    }
  });
  afterEach(async () => {
    await t.app.close();
  });

  const get = (url: string) => t.app.inject({ method: 'GET', url: `/artifactory/api/storage/${url}` });

  it('shows file info with checksums and size as a string', async () => {
    const response = await get('libs/a/one.txt');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ repo: 'libs', path: '/a/one.txt', size: '9', createdBy: 'admin', modifiedBy: 'admin', mimeType: 'text/plain', checksums: { sha1: expect.any(String), sha256: expect.any(String), md5: expect.any(String) } });
  });

  it('shows folder info with its children', async () => {
    const response = await get('libs/a');
    expect(response.json()).toMatchObject({ repo: 'libs', path: '/a', children: [{ uri: '/b', folder: true }, { uri: '/one.txt', folder: false }] });
    const root = await get('libs');
    expect(root.json().children).toEqual([{ uri: '/a', folder: true }, { uri: '/top.txt', folder: false }]);
  });

  it('lists files deep, by depth and with folders', async () => {
    const deep = await get('libs/a?list&deep=1');
    expect(deep.json().files.map((f: { uri: string }) => f.uri)).toEqual(['/b/c/three.txt', '/b/two.txt', '/one.txt']);
    const shallow = await get('libs/a?list&deep=1&depth=2&listFolders=1');
    expect(shallow.json().files.map((f: { uri: string; folder: boolean }) => `${f.uri}${f.folder ? '/' : ''}`)).toEqual(['/b/', '/b/c/', '/b/two.txt', '/one.txt']);
    expect(shallow.json().files.find((f: { uri: string }) => f.uri === '/one.txt')).toMatchObject({ size: 9, folder: false, sha1: expect.any(String) });
  });

  it('sets, reads and removes properties with the ; , and | syntax and escapes', async () => {
    const set = await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/a/one.txt?properties=os=linux,win;arch=x64|note=a%5C,b' });
    expect(set.statusCode).toBe(204);
    const read = await get('libs/a/one.txt?properties');
    expect(read.json()).toMatchObject({ properties: { os: ['linux', 'win'], arch: ['x64'], note: ['a,b'] } });
    const some = await get('libs/a/one.txt?properties=os');
    expect(Object.keys(some.json().properties)).toEqual(['os']);
    const removed = await t.app.inject({ method: 'DELETE', url: '/artifactory/api/storage/libs/a/one.txt?properties=os,arch' });
    expect(removed.statusCode).toBe(204);
    expect((await get('libs/a/one.txt?properties')).json().properties).toEqual({ note: ['a,b'] });
  });

  it('sets properties on a folder recursively by default and not with recursive=0', async () => {
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/a/b?properties=team=core' });
    expect((await get('libs/a/b/c/three.txt?properties')).json().properties).toEqual({ team: ['core'] });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/a?properties=only=here&recursive=0' });
    expect((await get('libs/a/one.txt?properties=only')).statusCode).toBe(404);
  });

  it('counts downloads without appending events', async () => {
    const before = t.store.all.length;
    await t.app.inject({ method: 'GET', url: '/artifactory/libs/top.txt', headers: { 'x-test-user': 'alice' } });
    await t.app.inject({ method: 'GET', url: '/artifactory/libs/top.txt', headers: { 'x-test-user': 'bob' } });
    const stats = await get('libs/top.txt?stats');
    expect(stats.json()).toMatchObject({ downloadCount: 2, lastDownloadedBy: 'bob', lastDownloaded: expect.any(Number) });
    expect(t.store.all.length).toBe(before);
  });

  it('answers 404 in Artifactory shape for unknown repositories and items', async () => {
    for (const url of ['nope/x', 'libs/missing.txt']) {
      const response = await get(url);
      expect(response.statusCode).toBe(404);
      expect(response.json().errors[0].status).toBe(404);
    }
  });
});

describe('include/exclude patterns on reads', () => {
  it('hides excluded files from listings and refuses reading them', async () => {
    const t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
    for (const path of ['pub/a.txt', 'secret/b.txt']) await t.app.inject({ method: 'PUT', url: `/artifactory/libs/${path}`, payload: 'x', headers: { 'content-type': 'text/plain' } });
    await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/libs', payload: { excludesPattern: 'secret/**' } });
    const list = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs?list&deep=1' });
    expect(list.json().files.map((f: { uri: string }) => f.uri)).toEqual(['/pub/a.txt']);
    const read = await t.app.inject({ method: 'GET', url: '/artifactory/libs/secret/b.txt' });
    expect(read.statusCode).toBe(403);
    expect(read.json().errors[0].message).toContain('secret/**');
    await t.app.close();
  });
});
