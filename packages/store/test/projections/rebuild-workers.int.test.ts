/**
 * The artifact-tree fold of a rebuild split among worker threads by repository
 * (rebuild-partition.ts, rebuild-workers.ts) gives exactly what one fold of every event
 * gives, and what the projections maintained append by append hold:
 *
 * - in this thread, for any set of events over several repositories (deploys, deletes,
 *   folder deletes, property sets and removals, repository deletes — also carried by another
 *   repository's stream — re-creates and config edits) and 1–4 partitions, the partitions'
 *   snapshots together equal one ArtifactTreeFold's, and each config event is handed back
 *   exactly once;
 * - on PostgreSQL, with real worker threads decoding the real COPY scan: events appended
 *   through the store (inline projections) → rebuild with 2 workers → the same tables as
 *   before, and the same as a rebuild folded in this thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { ArtifactTreeFold, canonicalArtifactTreeSnapshot, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RebuildPartition,
  RepositoryConfigProjection,
  VirtualResolutionProjection,
  readArtifactTreeSnapshot,
  readRepositorySnapshot,
  rebuildProjections,
  type OpenedEventStore,
} from '@strata/store';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryRepositoryEvents } from '../../../core/test/artifact-arbitraries.ts';
import { newEvent, pgliteBackend, postgresBackend } from './projection-databases.ts';

const RUNS = Number(process.env.PROJECTION_PROPERTY_RUNS ?? 25);
const REPOS = ['libs', 'Libs2', 'maven-local', 'npm', 'r5', 'r_6.x'] as const;
const CONFIG_TYPES = ['RepositoryCreated', 'RepositoryConfigChanged', 'RepositoryDeleted'] as const;

/** Events over REPOS: the arbitraries' two repositories spread over six, ids kept unique. */
const arbitraryEvents = fc
  .tuple(
    arbitraryArtifactEvents({ maxLength: 60 }),
    arbitraryRepositoryEvents({ maxLength: 15 }),
    fc.array(fc.constantFrom(...REPOS), { minLength: 100, maxLength: 100 }),
  )
  .map(([tree, config, repos]) =>
    [...tree, ...config.map((event) => ({ ...event, id: `x-${event.id}` }))].map((event, index) => {
      const repo = repos[index % repos.length]!;
      const moved = { ...event, stream: `repo-${repo}` } as RecordedEvent;
      return CONFIG_TYPES.includes(moved.type as (typeof CONFIG_TYPES)[number]) ? ({ ...moved, data: { ...moved.data, key: repo } } as RecordedEvent) : moved;
    }),
  );

describe('the artifact-tree fold split by repository', () => {
  it('equals one fold of every event, and hands each config event back once', () => {
    fc.assert(
      fc.property(
        arbitraryEvents.chain((events) =>
          fc.record({
            delivery: arbitraryDelivery(events, 3),
            count: fc.integer({ min: 1, max: 4 }),
            // A RepositoryDeleted carried by another repository's stream (no store appends one, the fold reads data.key).
            foreignDelete: fc.option(fc.tuple(fc.constantFrom(...REPOS), fc.constantFrom(...REPOS)), { nil: undefined }),
          }),
        ),
        ({ delivery, count, foreignDelete }) => {
          const events = [...delivery];
          if (foreignDelete !== undefined) {
            const [stream, key] = foreignDelete;
            events.push({ id: 'foreign-delete', stream: `repo-${stream}`, revision: 0, position: 0n, origin: 'site-a', originSeq: 1, hlc: { wall: 5, logical: 0 }, meta: {}, type: 'RepositoryDeleted', data: { key } } as RecordedEvent);
          }
          const sequential = new ArtifactTreeFold().applyAll(events).snapshot();
          const partitions = Array.from({ length: count }, (_, index) => new RebuildPartition({ index, count, forwardTypes: CONFIG_TYPES }));
          // Every partition sees every event, in batches.
          for (let start = 0; start < events.length; start += 7) for (const partition of partitions) partition.addEvents(events.slice(start, start + 7));
          const snapshots = partitions.map((partition) => partition.fold.snapshot());
          const union = canonicalArtifactTreeSnapshot({
            files: snapshots.flatMap((snapshot) => snapshot.files),
            folderTombstones: snapshots.flatMap((snapshot) => snapshot.folderTombstones),
            properties: snapshots.flatMap((snapshot) => snapshot.properties),
          });
          expect(union).toEqual(sequential);
          // No repository's rows in two partitions.
          const owners = new Map<string, number>();
          snapshots.forEach((snapshot, index) => {
            for (const { repo } of [...snapshot.files, ...snapshot.folderTombstones, ...snapshot.properties]) {
              expect(owners.get(repo) ?? index).toBe(index);
              owners.set(repo, index);
            }
          });
          const forwarded = partitions.flatMap((partition) => partition.takeForwarded());
          expect(forwarded.map((event) => event.id).sort()).toEqual(events.filter((event) => CONFIG_TYPES.includes(event.type as (typeof CONFIG_TYPES)[number])).map((event) => event.id).sort());
          expect(partitions.reduce((sum, partition) => sum + partition.events, 0)).toBe(events.length);
        },
      ),
      { numRuns: RUNS * 8 },
    );
  });
});

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') {
  console.log('rebuild-workers.int.test.ts: the worker-thread rebuild is PostgreSQL only (set DATABASE_URL); only the in-thread property ran');
}

describe.skipIf(databaseUrl === undefined || databaseUrl === '')('rebuilding in worker threads (PostgreSQL)', () => {
  let opened: OpenedEventStore;
  const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection()];
  const state = async () => ({
    tree: await readArtifactTreeSnapshot(opened.db),
    config: await readRepositorySnapshot(opened.db),
    virtual: (await sql<{ virtual_key: string; members: unknown }>`select virtual_key, members from virtual_resolution_orders order by virtual_key`.execute(opened.db)).rows,
  });

  beforeAll(async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('worker fold == fold in this thread == the projections maintained append by append', async () => {
    await fc.assert(
      fc.asyncProperty(arbitraryEvents.chain((events) => arbitraryDelivery(events, 0)), async (delivery) => {
        await sql`truncate events, streams, artifacts, artifact_properties, folder_tombstones, repositories, virtual_resolution_orders, projection_checkpoints`.execute(opened.db);
        for (const event of delivery) await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
        const incremental = await state();
        const inWorkers = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, { workers: 2 });
        expect(inWorkers.workers).toBe(2);
        expect(inWorkers.events).toBe(delivery.length);
        expect(await state()).toEqual(incremental);
        const inThisThread = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, { workers: 0 });
        expect(inThisThread.workers).toBe(0);
        expect(inThisThread.checkpoint).toEqual(inWorkers.checkpoint);
        expect(await state()).toEqual(incremental);
      }),
      { numRuns: Math.max(4, Math.floor(RUNS / 3)) },
    );
  });
});

describe('asking for workers on PGlite', () => {
  it('folds in this thread (its scan is one COPY per slice of rows) and rebuilds the same tables', async () => {
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    const opened = await pgliteBackend.open(projections);
    try {
      const events = fc.sample(arbitraryEvents, { numRuns: 5, seed: 42 }).reduce((longest, sample) => (sample.length > longest.length ? sample : longest));
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
      const before = { tree: await readArtifactTreeSnapshot(opened.db), config: await readRepositorySnapshot(opened.db) };
      const result = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, { workers: 2 });
      expect(result.workers).toBe(0);
      expect(result.events).toBe(events.length);
      expect({ tree: await readArtifactTreeSnapshot(opened.db), config: await readRepositorySnapshot(opened.db) }).toEqual(before);
    } finally {
      await opened.close();
    }
  });
});
