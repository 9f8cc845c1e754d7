import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshPostgresDatabase } from '../../../test/support/postgres-database.ts';
import { openEventStore, type OpenedEventStore } from '@strata/store';
import { afterAll, describe, expect, it } from 'vitest';
import { PendingBinariesProjection, SqlFederationStateStore } from '../src/index.ts';
import type { NewEvent } from '@strata/core';

interface Backend {
  readonly name: string;
  open(projections?: readonly PendingBinariesProjection[]): Promise<OpenedEventStore>;
  cleanup(): Promise<void>;
}

const dirs: string[] = [];
let pgliteDir: string | undefined;
const pglite: Backend = {
  name: 'PGlite',
  async open(projections = []) {
    pgliteDir ??= await mkdtemp(join(tmpdir(), 'strata-fed-state-'));
    dirs.push(pgliteDir);
    return openEventStore({ dataDir: pgliteDir, projections });
  },
  async cleanup() {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  },
};
const databaseUrl = process.env.DATABASE_URL;
// A database of its own, not a schema: Kysely's migrator lists the tables of every schema it
// can see, and another test file dropping its schema meanwhile made it fail.
let database: { url: string; drop(): Promise<void> } | undefined;
const postgres: Backend = {
  name: 'PostgreSQL',
  async open(projections = []) {
    database ??= await freshPostgresDatabase('strata_fed_state');
    return openEventStore({ databaseUrl: database!.url, projections });
  },
  async cleanup() {
    await database?.drop();
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

  it('pending binaries cleared at once are deleted together, each gone when its call resolves', async () => {
    const opened = await backend.open();
    const state = new SqlFederationStateStore(opened.db);
    const shas = Array.from({ length: 40 }, (_, index) => index.toString(16).padStart(64, 'c'));
    const earlier = await state.loadPendingBinaries(100); // left by the tests before
    await state.addPendingBinaries([...shas, 'e'.repeat(64)].map((sha256) => ({ sha256, repoKey: 'libs', origin: 'site-b' })));
    await state.addPendingBinaries(shas.slice(0, 5).map((sha256) => ({ sha256, repoKey: 'other', origin: 'site-c' })));
    // The first call is written alone; the ones made meanwhile go together in the next statement.
    const cleared = [...shas.map((sha256) => state.removePendingBinary(sha256)), state.removePendingBinary(shas[3]!)];
    await cleared[0];
    expect(await state.loadPendingBinaries(100)).not.toContainEqual({ sha256: shas[0], repoKey: 'libs', origin: 'site-b' });
    await Promise.all(cleared);
    expect(state.removalStatements).toBe(2);
    expect(await state.loadPendingBinaries(100)).toEqual([...earlier, { sha256: 'e'.repeat(64), repoKey: 'libs', origin: 'site-b' }]);
    await state.removePendingBinary('e'.repeat(64));
    expect(await state.loadPendingBinaries(100)).toEqual(earlier);
    expect(state.removalStatements).toBe(3);
    await opened.close();
  });

  it('a deploy received from another site is recorded as a pending binary in its append transaction; local deploys are not', async () => {
    const opened = await backend.open([new PendingBinariesProjection('site-a')]);
    const state = new SqlFederationStateStore(opened.db);
    const deployEvent = (origin: string, seq: number, sha: string): NewEvent =>
      ({
        id: `pending-${origin}-${seq}`,
        origin,
        originSeq: seq,
        hlc: { wall: 1_800_000_000_000, logical: seq },
        meta: {},
        type: 'ArtifactDeployed',
        data: { path: `p/${origin}-${seq}`, sha256: sha.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'text/plain', properties: {} },
      }) as NewEvent;
    await opened.store.append('repo-libs2', [deployEvent('site-b', 1, 'd'), deployEvent('site-a', 1, 'e'), deployEvent('site-c', 1, 'f')]);
    const pending = (await state.loadPendingBinaries(100)).filter((row) => row.repoKey === 'libs2');
    expect(pending).toEqual([
      { sha256: 'd'.repeat(64), repoKey: 'libs2', origin: 'site-b' },
      { sha256: 'f'.repeat(64), repoKey: 'libs2', origin: 'site-c' },
    ]);
    await opened.close();
  });
});
