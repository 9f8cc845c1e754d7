/**
 * A rebuild by stream reads its groups one after another through the stream index, so every
 * page of the log holding a group's events is visited once per such group. Where the log's
 * pages hold events of many groups (appends interleaved event by event across repositories)
 * that costs more than it saves, and the rebuild reads the log in one scan instead
 * (RebuildOptions.streamGroupInterleaving, StreamPartitionedScan.pageVisits).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  readArtifactTreeSnapshot,
  rebuildProjections,
  type OpenedEventStore,
} from '@strata/store';
import { postgresBackend, spiedPartitionStore } from './projection-databases.ts';

let sequence = 0;
function deployed(key: string, index: number): NewEvent {
  sequence++;
  const checksums = { sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32) };
  return {
    id: `interleaved-${sequence}`,
    origin: 'site-i',
    originSeq: sequence,
    hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
    meta: { actor: 'admin' },
    type: 'ArtifactDeployed',
    data: { path: `org/${key}/${index}/artifact-${index}.jar`, ...checksums, size: index, mimeType: 'application/java-archive', properties: { build: [String(index)] } },
  } as NewEvent;
}
const created = (key: string): NewEvent => {
  sequence++;
  return { id: `interleaved-${sequence}`, origin: 'site-i', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'admin' }, type: 'RepositoryCreated', data: { key, config: { rclass: 'local', packageType: 'maven' } } } as NewEvent;
};

const repositories = ['one', 'two', 'three', 'four'];
const eventsPerRepository = 150;
const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') {
  console.log('rebuild-by-stream-interleaved.int.test.ts: skipped — the rebuild by stream is PostgreSQL only (set DATABASE_URL)');
}

describe.skipIf(databaseUrl === undefined || databaseUrl === '')('a rebuild by stream over an interleaved log (PostgreSQL)', () => {
  let opened: OpenedEventStore | undefined;
  afterEach(async () => {
    await opened?.close();
    opened = undefined;
  });

  async function rebuildTwice(): Promise<{ groups: string[][]; visits: number[] }> {
    const db = opened!.db;
    const expected = await readArtifactTreeSnapshot(db);
    const groups: string[][] = [];
    const visits: number[] = [];
    const options = { readByStream: true, streamGroupEventsMin: 1, streamGroupInterleaving: { pageVisitsMax: 2, pagesMin: 0 } };
    const result = await rebuildProjections({ store: spiedPartitionStore(opened!.store, groups, visits), db, bulk: opened!.bulk }, projections, options);
    expect(result.events).toBe(repositories.length * (eventsPerRepository + 1));
    expect(await readArtifactTreeSnapshot(db)).toEqual(expected);
    expect(expected.files.length).toBe(repositories.length * eventsPerRepository);
    return { groups, visits };
  }

  it('reads a log appended event by event across repositories in one scan', async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
    for (const key of repositories) await opened.store.append(`repo-${key}`, [created(key)]);
    for (let index = 0; index < eventsPerRepository; index++) {
      for (const key of repositories) await opened.store.append(`repo-${key}`, [deployed(key, index)]);
    }
    const { groups, visits } = await rebuildTwice();
    expect(visits).toHaveLength(1);
    // Every page holds events of (nearly) every repository.
    expect(visits[0]!).toBeGreaterThan(3);
    expect(groups).toEqual([]);
  });

  it('reads in one scan unless asked to read by stream (the default)', async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
    for (const key of repositories) {
      await opened.store.append(`repo-${key}`, [created(key), ...Array.from({ length: eventsPerRepository }, (_, index) => deployed(key, index))]);
    }
    const groups: string[][] = [];
    const visits: number[] = [];
    await rebuildProjections({ store: spiedPartitionStore(opened.store, groups, visits), db: opened.db, bulk: opened.bulk }, projections, { streamGroupEventsMin: 1 });
    expect(groups).toEqual([]);
    expect((await readArtifactTreeSnapshot(opened.db)).files.length).toBe(repositories.length * eventsPerRepository);
  });

  it('reads a log appended a repository at a time group by group', async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
    for (const key of repositories) {
      await opened.store.append(`repo-${key}`, [created(key), ...Array.from({ length: eventsPerRepository }, (_, index) => deployed(key, index))]);
    }
    const { groups, visits } = await rebuildTwice();
    expect(visits).toHaveLength(1);
    expect(visits[0]!).toBeLessThan(1.5);
    expect(groups).toEqual(repositories.map((key) => `repo-${key}`).sort().map((stream) => [stream]));
  });
});
