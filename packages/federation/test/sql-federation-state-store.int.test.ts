import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openEventStore, type OpenedEventStore } from '@strata/store';
import { afterAll, describe, expect, it } from 'vitest';
import { SqlFederationStateStore } from '../src/index.ts';

interface Backend {
  readonly name: string;
  open(): Promise<OpenedEventStore>;
  cleanup(): Promise<void>;
}

const dirs: string[] = [];
const schemas: string[] = [];
let pgliteDir: string | undefined;
const pglite: Backend = {
  name: 'PGlite',
  async open() {
    pgliteDir ??= await mkdtemp(join(tmpdir(), 'strata-fed-state-'));
    dirs.push(pgliteDir);
    return openEventStore({ dataDir: pgliteDir });
  },
  async cleanup() {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  },
};
const databaseUrl = process.env.DATABASE_URL;
const schema = `fed_state_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
const postgres: Backend = {
  name: 'PostgreSQL',
  async open() {
    schemas.push(schema);
    return openEventStore({ databaseUrl: databaseUrl!, schema });
  },
  async cleanup() {
    if (schemas.length === 0) return;
    const opened = await openEventStore({ databaseUrl: databaseUrl!, schema });
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(opened.db);
    await opened.close();
  },
};
const backends = databaseUrl === undefined || databaseUrl === '' ? [pglite] : [pglite, postgres];
if (backends.length === 1) console.log('DATABASE_URL is unset: the SQL federation state store is tested on PGlite only');

describe.each(backends)('SqlFederationStateStore on $name', (backend) => {
  afterAll(async () => backend.cleanup());

  it('outbox cursors, peer addresses and pending binaries survive closing and reopening the database', async () => {
    let opened = await backend.open();
    let state = new SqlFederationStateStore(opened.db);
    expect(await state.loadCursor('libs', 'site-b')).toBeUndefined();
    await state.saveCursor('libs', 'site-b', { 'site-a': 3, 'site-c': 1 });
    await state.saveCursor('libs', 'site-b', { 'site-a': 5, 'site-c': 1 });
    await state.saveCursor('libs', 'site-c', { 'site-a': 2 });
    await state.savePeer('http://127.0.0.1:9002', 'site-b');
    await state.savePeer('http://127.0.0.1:9002', 'site-b2');
    await state.addPendingBinaries([
      { sha256: 'a'.repeat(64), repoKey: 'libs', origin: 'site-b' },
      { sha256: 'a'.repeat(64), repoKey: 'libs', origin: 'site-c' },
      { sha256: 'b'.repeat(64), repoKey: 'libs', origin: 'site-c' },
    ]);
    await state.removePendingBinary('b'.repeat(64));
    await opened.close();

    opened = await backend.open();
    state = new SqlFederationStateStore(opened.db);
    expect(await state.loadCursor('libs', 'site-b')).toEqual({ 'site-a': 5, 'site-c': 1 });
    expect(await state.loadCursor('libs', 'site-c')).toEqual({ 'site-a': 2 });
    expect(await state.loadCursor('other', 'site-b')).toBeUndefined();
    expect(await state.loadPeers()).toEqual([{ baseUrl: 'http://127.0.0.1:9002', siteId: 'site-b2' }]);
    expect(await state.loadPendingBinaries(10)).toEqual([{ sha256: 'a'.repeat(64), repoKey: 'libs', origin: 'site-b' }]);
    await opened.close();
  });
});
