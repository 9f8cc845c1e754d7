/**
 * `strata replay --repo` (replayRepository) on PGlite and PostgreSQL: the stream is read in
 * whatever order the store finds its rows (StreamScanner) and, with COPY, only the rows that
 * differ from the replayed state are rewritten. Properties over random deliveries: a replay of
 * an intact repository changes no row (the inline projections and the rebuild's fold write the
 * same rows), a damaged one gets exactly its wrong rows back, a replay up to a position leaves
 * that point's state, and other repositories are never touched.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sql } from 'kysely';
import { ArtifactTreeModel, RepositoryConfigModel, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  isStreamScanner,
  readArtifactTreeSnapshot,
  readRepositorySnapshot,
  rebuildProjections,
  replayRepository,
  type OpenedEventStore,
} from '@strata/store';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryRepositoryEvents } from '../../../core/test/artifact-arbitraries.ts';
import { newEvent, PROJECTION_BACKENDS } from './projection-databases.ts';

const RUNS = Number(process.env.PROJECTION_PROPERTY_RUNS ?? 20);
const projections = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];

/** Every row of the projection tables, as text, in key order: what "untouched" compares. */
async function rawRows(opened: OpenedEventStore, repo?: string): Promise<string[]> {
  const rows = await sql<{ row: string }>`
    select 'a ' || a::text as row from artifacts a where ${repo === undefined ? sql`true` : sql`a.repo = ${repo}`}
    union all select 'f ' || f::text from folder_tombstones f where ${repo === undefined ? sql`true` : sql`f.repo = ${repo}`}
    union all select 'p ' || p::text from artifact_properties p where ${repo === undefined ? sql`true` : sql`p.repo = ${repo}`}
    union all select 'r ' || r::text from repositories r where ${repo === undefined ? sql`true` : sql`r.key = ${repo}`}
    order by 1`.execute(opened.db);
  return rows.rows.map((row) => row.row);
}

/**
 * Every stored event. readAll stops at the oldest transaction open anywhere on the server (its
 * horizon), which other sessions on a shared PostgreSQL hold back for a while: read until it
 * returns as many events as the table holds (bounded: 60 s).
 */
async function everyEvent(opened: OpenedEventStore): Promise<RecordedEvent[]> {
  const stored = Number((await sql<{ n: string | number }>`select count(*) as n from events`.execute(opened.db)).rows[0]!.n);
  for (let attempt = 0; attempt < 600; attempt++) {
    const events = (await opened.store.readAll({ maxCount: 10_000 })).events;
    if (events.length >= stored) return [...events];
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`readAll did not reach the ${stored} stored events within 60 s`);
}

for (const backend of PROJECTION_BACKENDS) {
  describe(`strata replay --repo on ${backend.name}`, () => {
    let opened: OpenedEventStore;
    beforeAll(async () => {
      opened = await backend.open(projections());
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('reads the stream with the unordered scan, and writes nothing when the repository is intact', async () => {
      expect(isStreamScanner(opened.store)).toBe(true);
      let run = 0;
      const allEvents: RecordedEvent[] = [];
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(arbitraryArtifactEvents({ maxLength: 40 }), arbitraryRepositoryEvents({ maxLength: 6 })).chain(([tree, config]) => {
            const events = [...tree, ...config];
            return fc.record({ events: fc.constant(events), delivery: arbitraryDelivery(events, 4), writers: fc.integer({ min: 1, max: 4 }), cut: fc.double({ min: 0, max: 1, noNaN: true }) });
          }),
          async ({ delivery, writers, cut }) => {
            // Each run has repositories of its own, so runs never see each other's events.
            run++;
            const rename = (event: RecordedEvent): RecordedEvent => {
              const key = `${event.stream.slice(5)}-${run}`;
              const data = 'key' in event.data ? { ...event.data, key } : event.data;
              return { ...event, id: `${run}-${event.id}`, stream: `repo-${key}`, data } as RecordedEvent;
            };
            const renamed = delivery.map(rename);
            const stored = new Map<string, RecordedEvent>();
            let next = 0;
            await Promise.all(
              Array.from({ length: writers }, async () => {
                for (;;) {
                  const event = renamed[next++];
                  if (event === undefined) return;
                  const result = await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
                  for (const recorded of result.events) stored.set(recorded.id, recorded);
                }
              }),
            );
            allEvents.push(...stored.values());
            const repo = `libs-${run}`;
            const source = { store: opened.store, db: opened.db, bulk: opened.bulk };
            const before = await rawRows(opened);
            const repoRows = (await rawRows(opened, repo)).length;

            // Intact: nothing differs, nothing is written.
            const intact = await replayRepository(source, projections(), repo);
            expect(intact.events).toBe([...stored.values()].filter((event) => event.stream === `repo-${repo}`).length);
            expect(intact.rows).toBe(repoRows);
            expect(intact.rowsChanged).toBe(0);
            expect(await rawRows(opened)).toEqual(before);

            // Damaged: a row gone, a row altered, a row that should not be there, a property altered.
            let damage = 0;
            const gone = await sql`delete from artifacts where repo = ${repo} and path = (select min(path) from artifacts where repo = ${repo})`.execute(opened.db);
            damage += Number(gone.numAffectedRows ?? 0n);
            const altered = await sql`update artifacts set size = coalesce(size, 0) + 1 where repo = ${repo} and path = (select max(path) from artifacts where repo = ${repo})`.execute(opened.db);
            damage += 2 * Number(altered.numAffectedRows ?? 0n); // the wrong row out, the right one in
            await sql`insert into artifacts (repo, path, parent, name, present) values (${repo}, 'zz/bogus.jar', 'zz', 'bogus.jar', true)`.execute(opened.db);
            damage += 1;
            const property = await sql`update artifact_properties set values = '["tampered"]'::jsonb where repo = ${repo} and (path, key) = (select path, key from artifact_properties where repo = ${repo} order by path, key limit 1)`.execute(opened.db);
            damage += 2 * Number(property.numAffectedRows ?? 0n);
            const repaired = await replayRepository(source, projections(), repo);
            expect(repaired.rowsChanged).toBe(damage);
            expect(await rawRows(opened)).toEqual(before);

            // Up to a position: that point's state for this repository, the others untouched.
            const positions = [...stored.values()].filter((event) => event.stream === `repo-${repo}`).map((event) => event.position).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
            if (positions.length > 0) {
              const until = positions[Math.min(positions.length - 1, Math.floor(cut * positions.length))]!;
              const others = before.filter((row) => !(row.startsWith(`a (${repo},`) || row.startsWith(`f (${repo},`) || row.startsWith(`p (${repo},`) || row.startsWith(`r (${repo},`)));
              await replayRepository(source, projections(), repo, { until: { kind: 'position', position: until } });
              const past = allEvents.filter((event) => event.stream !== `repo-${repo}` || event.position <= until);
              expect(await readArtifactTreeSnapshot(opened.db)).toEqual(new ArtifactTreeModel().applyAll(past).snapshot());
              expect(await readRepositorySnapshot(opened.db)).toEqual(new RepositoryConfigModel().applyAll(past).snapshot());
              expect((await rawRows(opened)).filter((row) => others.includes(row))).toEqual(others);
              await replayRepository(source, projections(), repo);
              expect(await rawRows(opened)).toEqual(before);
            }
          },
        ),
        { numRuns: RUNS },
      );
    }, 240_000);

    it('a rebuild keeps the events appended while it runs', async () => {
      const extra = fc.sample(arbitraryArtifactEvents({ maxLength: 30, repositoryDeletes: false }), { seed: 7, numRuns: 20 }).filter((events) => events.length >= 10)[0]!;
      const tag = 'r';
      const tagged = extra.map((event) => ({ ...event, id: `during-${tag}-${event.id}`, stream: `repo-during-${tag}-${event.stream.slice(5)}` }) as RecordedEvent);
      const rebuilding = rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections());
      for (const event of tagged) await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
      await rebuilding;
      const all = await everyEvent(opened);
      expect(await readArtifactTreeSnapshot(opened.db)).toEqual(new ArtifactTreeModel().applyAll(all).snapshot());
      expect(await readRepositorySnapshot(opened.db)).toEqual(new RepositoryConfigModel().applyAll(all).snapshot());
    }, 240_000);
  });
}
