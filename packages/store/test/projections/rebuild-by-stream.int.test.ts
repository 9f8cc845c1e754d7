/**
 * On PostgreSQL a rebuild reads the events a group of streams at a time and writes each
 * group's artifact-tree rows while it folds the next (rebuild-projections.ts,
 * readByStreamInShadow): the tables equal those of one fold of every event, events appended
 * while it reads are caught up, and an event that concerns another stream's rows (a
 * RepositoryDeleted outside its own stream, which the store refuses to append) sends it back
 * to one fold of every event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import { sql } from 'kysely';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  readArtifactTreeSnapshot,
  readRepositorySnapshot,
  rebuildProjections,
  type OpenedEventStore,
} from '@strata/store';
import { postgresBackend, spiedPartitionStore } from './projection-databases.ts';

let sequence = 0;
function event(type: string, data: Record<string, unknown>): NewEvent {
  sequence++;
  return { id: `by-stream-${sequence}`, origin: 'site-s', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'admin' }, type, data } as NewEvent;
}
const checksums = { sha256: 'e'.repeat(64), sha1: 'e'.repeat(40), md5: 'e'.repeat(32) };
const repositories = ['alpha', 'beta', 'gamma', 'delta'];

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') {
  console.log('rebuild-by-stream.int.test.ts: skipped — the rebuild by stream is PostgreSQL only (set DATABASE_URL)');
}

describe.skipIf(databaseUrl === undefined || databaseUrl === '')('rebuilding a group of streams at a time (PostgreSQL)', () => {
  let opened: OpenedEventStore;
  const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
  const state = async () => ({ tree: await readArtifactTreeSnapshot(opened.db), repositories: await readRepositorySnapshot(opened.db) });

  const spiedStore = (groups: string[][]) => spiedPartitionStore(opened.store, groups);

  beforeAll(async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
    for (const [index, key] of repositories.entries()) {
      await opened.store.append(`repo-${key}`, [
        event('RepositoryCreated', { key, config: { rclass: 'local', packageType: 'maven' } }),
        event('ArtifactDeployed', { path: `org/${key}/1/a.jar`, ...checksums, size: index, mimeType: 'text/plain', properties: { k: ['v'] } }),
        event('ArtifactDeployed', { path: `org/${key}/2/a.jar`, ...checksums, size: index, mimeType: 'text/plain', properties: {} }),
        event('PropertiesSet', { path: `org/${key}/2/a.jar`, properties: { q: ['1', '2'] } }),
        event('FolderDeleted', { prefix: `org/${key}/1` }),
        event('ArtifactDeployed', { path: `org/${key}/1/b.jar`, ...checksums, size: 7, mimeType: 'text/plain', properties: {} }),
      ]);
    }
    await opened.store.append('repo-gamma', [event('ArtifactDeleted', { path: 'org/gamma/2/a.jar' })]);
    await opened.store.append('repo-delta', [event('RepositoryDeleted', { key: 'delta' })]);
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('writes each group of repositories while it reads the next, into the tables one fold of every event gives', async () => {
    const expected = await state();
    const groups: string[][] = [];
    const result = await rebuildProjections({ store: spiedStore(groups), db: opened.db, bulk: opened.bulk }, projections, { readByStream: true, streamGroupEventsMin: 1 });
    expect(groups).toEqual(repositories.map((key) => `repo-${key}`).sort().map((stream) => [stream]));
    expect(result.events).toBe(repositories.length * 6 + 2);
    expect(await state()).toEqual(expected);

    // Several streams to a group: the same tables.
    groups.length = 0;
    await rebuildProjections({ store: spiedStore(groups), db: opened.db, bulk: opened.bulk }, projections, { readByStream: true, streamGroupEventsMin: 12 });
    expect(groups).toEqual([
      ['repo-alpha', 'repo-beta'],
      ['repo-delta', 'repo-gamma'],
    ]);
    expect(await state()).toEqual(expected);
  });

  it('catches up with the events appended while it reads', async () => {
    let appending: Promise<unknown> | undefined;
    const result = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, {
      readByStream: true,
      streamGroupEventsMin: 1,
      onProgress: (progress) => {
        if (progress.phase === 'read' && appending === undefined) {
          appending = opened.store.append('repo-alpha', [event('ArtifactDeployed', { path: 'org/alpha/late.jar', ...checksums, size: 9, mimeType: 'text/plain', properties: {} })]);
        }
      },
    });
    await appending;
    const after = await state();
    expect(after.tree.files.map((file) => file.path)).toContain('org/alpha/late.jar');
    // What the inline projections hold now, once more from zero: the same.
    await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections);
    expect(await state()).toEqual(after);
    expect(result.checkpoint.position).toBeGreaterThan(0n);
  });

  it('leaves the live tables and no shadow schema when aborted between groups', async () => {
    const before = await state();
    const artifacts = (await sql<{ oid: string }>`select 'artifacts'::regclass::oid::text as oid`.execute(opened.db)).rows[0]!.oid;
    const abort = new AbortController();
    await expect(
      rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, {
        readByStream: true,
        streamGroupEventsMin: 1,
        signal: abort.signal,
        onProgress: (progress) => {
          if (progress.phase === 'read' && progress.events > 8) abort.abort(new Error('stopped between groups'));
        },
      }),
    ).rejects.toThrow('stopped between groups');
    expect((await sql<{ oid: string }>`select 'artifacts'::regclass::oid::text as oid`.execute(opened.db)).rows[0]!.oid).toBe(artifacts);
    const shadows = await sql<{ name: string }>`select nspname as name from pg_namespace where nspname = current_schema() || '__rebuild'`.execute(opened.db);
    expect(shadows.rows).toEqual([]);
    expect(await state()).toEqual(before);
  });

  it('rebuilds an empty store into empty tables', async () => {
    const empty = await postgresBackend(databaseUrl!).open(projections);
    try {
      const groups: string[][] = [];
      const store = empty.store;
      const result = await rebuildProjections(
        {
          store: {
            readAll: (options) => store.readAll(options),
            scanAll: (options) => store.scanAll(options),
            scanByStream: async (options) => {
              const scan = await store.scanByStream(options);
              return scan === undefined ? undefined : { ...scan, scanStreams: (streams, scanOptions) => (groups.push([...streams]), scan.scanStreams(streams, scanOptions)) };
            },
          },
          db: empty.db,
          bulk: empty.bulk,
        },
        projections,
      );
      expect(result.events).toBe(0);
      expect(groups).toEqual([]);
      expect((await readArtifactTreeSnapshot(empty.db)).files).toEqual([]);
      await empty.store.append('repo-alpha', [event('ArtifactDeployed', { path: 'a.jar', ...checksums, size: 1, mimeType: 'text/plain', properties: {} })]);
      expect((await readArtifactTreeSnapshot(empty.db)).files.map((file) => file.path)).toEqual(['a.jar']);
    } finally {
      await empty.close();
    }
  });

  it('folds every event at once when one concerns another stream', async () => {
    // A RepositoryDeleted of beta moved into alpha's stream (the store refuses to append one there).
    await opened.store.append('repo-beta', [event('RepositoryDeleted', { key: 'beta' })]);
    await sql`update events set stream = 'repo-alpha', revision = (select max(revision) + 1 from events where stream = 'repo-alpha')
      where position = (select max(position) from events)`.execute(opened.db);
    const expected = await state();
    expect(expected.tree.files.filter((file) => file.repo === 'beta').every((file) => !file.present)).toBe(true);

    const groups: string[][] = [];
    await rebuildProjections({ store: spiedStore(groups), db: opened.db, bulk: opened.bulk }, projections, { readByStream: true, streamGroupEventsMin: 1 });
    expect(groups[0]).toEqual(['repo-alpha']);
    expect(await state()).toEqual(expected);
  });
});
