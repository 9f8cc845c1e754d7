/**
 * `strata replay --repo` reads the repository's plain ArtifactDeployed, ArtifactDeleted and
 * PropertiesSet rows through the artifact tree's row sink (the store's scanStreamInto), as the
 * whole-log rebuild does (rebuild-deployed-bytes.int.test.ts). Property over random event
 * sequences (deletes, folder deletes, property sets and removals, configuration changes,
 * duplicates delivered by several writers), a replay up to a position or a time, and events
 * appended after the scan (folded by the replay's late read): the sink path leaves exactly
 * the rows the old path (every row decoded) leaves, and counts the same events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import type { RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  openEventStore,
  replayRepository,
  type EventCopyRowSink,
  type OpenedEventStore,
  type PointInTime,
  type ProjectionRebuild,
  type ScanStreamOptions,
} from '@strata/store';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryRepositoryEvents } from '../../../core/test/artifact-arbitraries.ts';
import { newEvent, PROJECTION_BACKENDS, type ProjectionBackend } from './projection-databases.ts';

const RUNS = Number(process.env.PROJECTION_PROPERTY_RUNS ?? 20);

/** The artifact tree without the row sink: every row decoded, as before it. */
class DecodedArtifactTree extends ArtifactTreeProjection {
  override startRebuild(): ProjectionRebuild {
    const { add, write } = super.startRebuild();
    return { add, write };
  }
}

const withSink = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
const decoded = () => [new DecodedArtifactTree(), new RepositoryConfigProjection()];

/** The repository's rows of the projection tables, as text, in key order. */
async function repoRows(opened: OpenedEventStore, repo: string): Promise<string[]> {
  const rows = await sql<{ row: string }>`
    select 'a ' || a::text as row from artifacts a where a.repo = ${repo}
    union all select 'f ' || f::text from folder_tombstones f where f.repo = ${repo}
    union all select 'p ' || p::text from artifact_properties p where p.repo = ${repo}
    union all select 'r ' || r::text from repositories r where r.key = ${repo}
    order by 1`.execute(opened.db);
  return rows.rows.map((row) => row.row);
}

const BACKENDS: ProjectionBackend[] = [
  ...PROJECTION_BACKENDS,
  // PGlite reads a stream in slices of rows in revision order: slices of 3 here, so that a
  // slice may end on a row the sink took.
  { name: 'pglite, slices of 3 rows', open: (projections = []) => openEventStore({ projections, store: { copyStatementRowsMax: 3 } }) },
];

for (const backend of BACKENDS) {
  describe(`strata replay --repo through the row sink (${backend.name})`, () => {
    let opened: OpenedEventStore;
    beforeAll(async () => {
      opened = await backend.open(withSink());
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('leaves the rows and counts the events of a replay that decodes every row, with --until and late events', async () => {
      let run = 0;
      let takenRuns = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(arbitraryArtifactEvents({ maxLength: 40 }), arbitraryRepositoryEvents({ maxLength: 6 })).chain(([tree, config]) => {
            const events = [...tree, ...config];
            return fc.record({
              delivery: arbitraryDelivery(events, 4),
              writers: fc.integer({ min: 1, max: 3 }),
              late: fc.integer({ min: 0, max: 8 }),
              until: fc.oneof(fc.constant(undefined), fc.double({ min: 0, max: 1, noNaN: true }).map((cut) => ({ kind: 'position' as const, cut })), fc.integer({ min: 999, max: 1_009 }).map((wall) => ({ kind: 'time' as const, wall }))),
            });
          }),
          async ({ delivery, writers, late, until }) => {
            // Each run has repositories of its own, so runs never see each other's events.
            run++;
            const rename = (event: RecordedEvent): RecordedEvent => {
              const key = `${event.stream.slice(5)}-b${run}`;
              const data = 'key' in event.data ? { ...event.data, key } : event.data;
              return { ...event, id: `b${run}-${event.id}`, stream: `repo-${key}`, data } as RecordedEvent;
            };
            const renamed = delivery.map(rename);
            const early = renamed.slice(0, Math.max(0, renamed.length - late));
            const lateEvents = renamed.slice(early.length);
            // By id: a duplicate delivered again is stored once.
            const byId = new Map<string, RecordedEvent>();
            const append = async (events: readonly RecordedEvent[]) => {
              let next = 0;
              await Promise.all(
                Array.from({ length: writers }, async () => {
                  for (;;) {
                    const event = events[next++];
                    if (event === undefined) return;
                    const result = await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
                    for (const recorded of result.events) byId.set(recorded.id, recorded);
                  }
                }),
              );
            };
            await append(early);
            const repo = `libs-b${run}`;
            const stream = `repo-${repo}`;
            const positions = [...byId.values()].filter((event) => event.stream === stream).map((event) => event.position).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
            const point: PointInTime | undefined =
              until === undefined
                ? undefined
                : until.kind === 'time'
                  ? { kind: 'time', wall: until.wall }
                  : positions.length === 0
                    ? undefined
                    : { kind: 'position', position: positions[Math.min(positions.length - 1, Math.floor(until.cut * positions.length))]! };
            // The store, appending the late events once the scan has read its last row (before
            // the replay's transaction: its late read must fold them, and only them).
            let takes = 0;
            const store = opened.store;
            const source = {
              db: opened.db,
              bulk: opened.bulk,
              store: {
                readStream: store.readStream.bind(store),
                streamRevision: store.streamRevision.bind(store),
                async *scanStream(scanned: string, options?: ScanStreamOptions) {
                  yield* store.scanStream(scanned, options);
                  throw new Error('the replay with the artifact tree\'s sink scans through scanStreamInto');
                },
                async *scanStreamInto(scanned: string, sink: EventCopyRowSink, options?: ScanStreamOptions) {
                  const counting: EventCopyRowSink = {
                    readData: (type, bytes, start, end) => sink.readData(type, bytes, start, end),
                    take: (...row) => {
                      takes++;
                      sink.take(...row);
                    },
                  };
                  yield* store.scanStreamInto(scanned, counting, options);
                  await append(lateEvents);
                },
              },
            };
            // Every row of the repository gone first: the replay writes all of them.
            for (const [table, column] of [['artifacts', 'repo'], ['folder_tombstones', 'repo'], ['artifact_properties', 'repo']] as const) {
              await sql`delete from ${sql.table(table)} where ${sql.ref(column)} = ${repo}`.execute(opened.db);
            }
            const options = point === undefined ? {} : { until: point };
            const replayed = await replayRepository(source, withSink(), repo, options);
            if (takes > 0) takenRuns++;
            const kept = [...byId.values()].filter((event) => event.stream === stream && (point === undefined || (point.kind === 'time' ? event.hlc.wall <= point.wall : event.position <= point.position)));
            expect(replayed.events).toBe(kept.length);
            // Every deploy here has the plain shape: when the scan read one, the sink took it.
            const lateIds = new Set(lateEvents.map((event) => event.id));
            if (kept.some((event) => event.type === 'ArtifactDeployed' && !lateIds.has(event.id))) expect(takes).toBeGreaterThan(0);
            const rows = await repoRows(opened, repo);
            // The old path over the same events: nothing differs, nothing is rewritten.
            const reference = await replayRepository({ store: opened.store, db: opened.db, bulk: opened.bulk }, decoded(), repo, options);
            expect(reference.events).toBe(replayed.events);
            expect(await repoRows(opened, repo)).toEqual(rows);
            expect(reference.rowsChanged).toBe(0);
            expect(reference.rows).toBe(replayed.rows);
          },
        ),
        { numRuns: RUNS },
      );
      expect(takenRuns).toBeGreaterThan(0);
    }, 240_000);
  });
}
