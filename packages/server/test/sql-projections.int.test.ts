import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildSqlApp } from './support/sql-app.ts';
import type { SqlApp } from './support/sql-app.ts';

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') console.log('skipping the PostgreSQL run of the server int tests: DATABASE_URL is not set');

const backends = [
  { name: 'PGlite', databaseUrl: undefined },
  { name: 'PostgreSQL', databaseUrl: databaseUrl === '' ? undefined : databaseUrl },
] as const;

for (const backend of backends) {
describe.skipIf(backend.name === 'PostgreSQL' && backend.databaseUrl === undefined)(`the server on the SQL event store and its projections (${backend.name})`, () => {
  let t: SqlApp;
  const schema = `server_int_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
  beforeAll(async () => {
    t = await buildSqlApp(new MemoryBlobStore(), backend.databaseUrl === undefined ? {} : { databaseUrl: backend.databaseUrl, schema });
    const create = await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local', description: 'int' } });
    expect(create.statusCode).toBe(200);
    for (const path of ['a/one.txt;k=v', 'a/b/two.txt', 'a/b/c/three.txt', 'top.txt']) {
      const response = await t.app.inject({ method: 'PUT', url: `/artifactory/libs/${path}`, payload: path, headers: { 'content-type': 'text/plain' } });
      expect(response.statusCode).toBe(201);
    }
  });
  afterAll(async () => {
    await t?.close();
    if (backend.databaseUrl !== undefined) {
      const client = new pg.Client({ connectionString: backend.databaseUrl });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  });

  it('reads its own writes: config, file info, folder info and listings', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories/libs' })).json()).toMatchObject({ key: 'libs', rclass: 'local', description: 'int' });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a/one.txt' })).json()).toMatchObject({ path: '/a/one.txt', size: '13', createdBy: 'admin' });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a' })).json().children).toEqual([{ uri: '/b', folder: true }, { uri: '/one.txt', folder: false }]);
    const deep = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs?list&deep=1&listFolders=1' });
    expect(deep.json().files.map((f: { uri: string }) => f.uri)).toEqual(['/a', '/a/b', '/a/b/c', '/a/b/c/three.txt', '/a/b/two.txt', '/a/one.txt', '/top.txt']);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b/two.txt' })).body).toBe('a/b/two.txt');
  });

  it('keeps matrix and API properties per key, recursively on folders', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a/one.txt?properties' })).json().properties).toEqual({ k: ['v'] });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/storage/libs/a?properties=team=core' });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a/b/c/three.txt?properties' })).json().properties).toEqual({ team: ['core'] });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a?properties' })).json().properties).toEqual({ team: ['core'] });
    await t.app.inject({ method: 'DELETE', url: '/artifactory/api/storage/libs/a/one.txt?properties=k' });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a/one.txt?properties' })).json().properties).toEqual({ team: ['core'] });
  });

  it('deletes a folder with one event and hides everything below it', async () => {
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/a/b' })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b/c/three.txt' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/a' })).json().children).toEqual([{ uri: '/one.txt', folder: false }]);
  });

  it('counts downloads in the side table and reports storage usage', async () => {
    await t.app.inject({ method: 'GET', url: '/artifactory/libs/top.txt' });
    await t.app.inject({ method: 'GET', url: '/artifactory/libs/top.txt' });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/top.txt?stats' })).json().downloadCount).toBe(2);
    const info = (await t.app.inject({ method: 'GET', url: '/artifactory/api/storageinfo' })).json();
    expect(info.repositoriesSummaryList.find((r: { repoKey: string }) => r.repoKey === 'libs')).toMatchObject({ filesCount: 2, foldersCount: 1 });
  });

  it('copies across repositories and moves within one', async () => {
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/other', payload: { rclass: 'local' } });
    expect((await t.app.inject({ method: 'POST', url: '/artifactory/api/copy/libs/a?to=/other/copy' })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/other/copy/one.txt?properties' })).json().properties).toEqual({ team: ['core'] });
    expect((await t.app.inject({ method: 'POST', url: '/artifactory/api/move/other/copy?to=/other/moved' })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/other/moved/one.txt' })).body).toBe('a/one.txt;k=v');
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/other/copy/one.txt' })).statusCode).toBe(404);
  });
});
}
