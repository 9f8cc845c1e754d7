import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ArtifactTreeProjection, readVirtualResolutionOrder, rebuildProjections, RepositoryConfigProjection, VirtualResolutionProjection } from '@strata/store';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildSqlApp } from './support/sql-app.ts';
import type { SqlApp } from './support/sql-app.ts';

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') console.log('skipping the PostgreSQL run of the virtual resolution projection test: DATABASE_URL is not set');
const backends = [
  { name: 'PGlite', databaseUrl: undefined },
  { name: 'PostgreSQL', databaseUrl: databaseUrl === '' ? undefined : databaseUrl },
] as const;

for (const backend of backends) describe.skipIf(backend.name === 'PostgreSQL' && backend.databaseUrl === undefined)(`the virtual resolution order projection (${backend.name})`, () => {
  let t: SqlApp;
  const schema = `virtual_order_${Date.now().toString(36)}_${process.pid}`;
  beforeAll(async () => {
    t = await buildSqlApp(new MemoryBlobStore(), backend.databaseUrl === undefined ? {} : { databaseUrl: backend.databaseUrl, schema });
  }, 60_000);
  afterAll(async () => {
    await t?.close();
    if (backend.databaseUrl !== undefined) {
      const client = new pg.Client({ connectionString: backend.databaseUrl });
      await client.connect();
      try {
        await client.query(`drop schema if exists ${schema} cascade`);
      } finally {
        await client.end();
      }
    }
  });

  const put = (key: string, payload: Record<string, unknown>) => t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload });
  const post = (key: string, payload: Record<string, unknown>) => t.app.inject({ method: 'POST', url: `/artifactory/api/repositories/${key}`, payload });
  const shown = async (key: string) => (await t.app.inject({ method: 'GET', url: `/artifactory/api/repositories/${key}` })).json().resolvedRepositories as string[];

  it('keeps every virtual order up to date when a nested member changes, and a rebuild yields the same rows', async () => {
    for (const key of ['a', 'b']) expect((await put(key, { rclass: 'local' })).statusCode).toBe(200);
    expect((await put('r', { rclass: 'remote', url: 'http://127.0.0.1:9/x' })).statusCode).toBe(200);
    expect((await put('inner', { rclass: 'virtual', repositories: ['r', 'b'] })).statusCode).toBe(200);
    expect((await put('outer', { rclass: 'virtual', repositories: ['inner', 'a'] })).statusCode).toBe(200);
    expect(await readVirtualResolutionOrder(t.opened.db, 'outer')).toEqual(['b', 'a', 'r']);
    expect(await shown('outer')).toEqual(['b', 'a', 'r']);
    // A change to the nested virtual alone re-projects the outer one.
    expect((await post('inner', { repositories: ['r'] })).statusCode).toBe(200);
    expect(await readVirtualResolutionOrder(t.opened.db, 'outer')).toEqual(['a', 'r']);
    expect((await post('a', { priorityResolution: true })).statusCode).toBe(200);
    expect((await post('inner', { repositories: ['b', 'r'] })).statusCode).toBe(200);
    expect(await shown('outer')).toEqual(['a', 'b', 'r']);
    expect(await readVirtualResolutionOrder(t.opened.db, 'a')).toBeUndefined();
    // Deleting a member removes it from every order.
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/api/repositories/b' })).statusCode).toBe(200);
    expect(await shown('outer')).toEqual(['a', 'r']);

    // The rebuild reads the global order, which on a shared PostgreSQL stops below the oldest
    // open transaction of any client (other test files): checked on PGlite, whose order is its own.
    if (backend.name === 'PGlite') {
      const rows = async () => JSON.stringify((await t.opened.db.selectFrom('virtual_resolution_orders' as never).selectAll().execute()).map((row) => JSON.stringify(row)).sort());
      const before = await rows();
      await rebuildProjections({ store: t.opened.store, db: t.opened.db }, [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection()]);
      expect(await rows()).toBe(before);
    }
    expect(await shown('outer')).toEqual(['a', 'r']);
  });
});
