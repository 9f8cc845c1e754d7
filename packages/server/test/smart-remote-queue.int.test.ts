/**
 * The smart remote's statistics queue (smart-remote-stores.ts) on PGlite and — when
 * DATABASE_URL is set — PostgreSQL, against the in-memory one: downloads of one path are one
 * entry however many there are; a report acknowledged while more downloads arrive subtracts
 * only what it reported; a failed report keeps everything; nothing is lost or counted twice.
 * Also: a queue of one row per download (the table before 2026-12-06) is folded in at start.
 */
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStore, type OpenedEventStore } from '@strata/store';
import {
  ensureSmartRemoteTables,
  MemorySmartRemoteStatsQueue,
  SqlSmartRemoteStatsQueue,
  type PendingDownloads,
  type SmartRemoteStatsQueue,
} from '../src/smart-remote/smart-remote-stores.ts';
import { sqlAppBackends } from './support/sql-app.ts';

const BACKENDS = sqlAppBackends('smart remote statistics queue', 'smart_queue');

type Step =
  | { readonly kind: 'download'; readonly repo: number; readonly path: number; readonly at: number; readonly by: number }
  /** Take a repository's entries, let `during` downloads happen, then the report succeeds or fails. */
  | { readonly kind: 'report'; readonly repo: number; readonly limit: number; readonly ok: boolean; readonly during: readonly { path: number; at: number; by: number }[] };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('download' as const), repo: fc.nat(1), path: fc.nat(4), at: fc.nat(50), by: fc.nat(2) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('report' as const),
      repo: fc.nat(1),
      limit: fc.integer({ min: 1, max: 4 }),
      ok: fc.boolean(),
      during: fc.array(fc.record({ path: fc.nat(4), at: fc.nat(50), by: fc.nat(2) }), { maxLength: 3 }),
    }),
  },
);

interface Outcome {
  /** Per repo\0path: downloads acknowledged by the origin, and downloads still queued. */
  readonly acknowledged: Map<string, number>;
  readonly pending: readonly PendingDownloads[];
  readonly taken: readonly (readonly string[])[];
}

async function run(queue: SmartRemoteStatsQueue, steps: readonly Step[]): Promise<Outcome> {
  const acknowledged = new Map<string, number>();
  const taken: string[][] = [];
  const download = (repo: number, path: number, at: number, by: number) =>
    queue.add({ repo: `r${repo}`, path: `p/${path}.jar`, downloadedAt: at, downloadedBy: `u${by}` });
  for (const step of steps) {
    if (step.kind === 'download') {
      await download(step.repo, step.path, step.at, step.by);
      continue;
    }
    const entries = await queue.take(`r${step.repo}`, step.limit);
    taken.push(entries.map((entry) => entry.path));
    for (const during of step.during) await download(step.repo, during.path, during.at, during.by);
    if (!step.ok) continue;
    await queue.acknowledge(entries);
    for (const entry of entries) acknowledged.set(`${entry.repo}\0${entry.path}`, (acknowledged.get(`${entry.repo}\0${entry.path}`) ?? 0) + entry.count);
  }
  const pending: PendingDownloads[] = [];
  for (const repo of await queue.repositories()) pending.push(...(await queue.take(repo, 1_000)));
  pending.sort((a, b) => (a.repo + a.path < b.repo + b.path ? -1 : 1));
  return { acknowledged, pending, taken };
}

describe.each(BACKENDS)('smart remote statistics queue on $name', ({ options }) => {
  let opened: OpenedEventStore;
  beforeAll(async () => {
    const { databaseUrl, schema } = options();
    opened = await openEventStore({ ...(databaseUrl === undefined ? {} : { databaseUrl }), ...(schema === undefined ? {} : { schema }) });
    await ensureSmartRemoteTables(opened.db);
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('loses no download and counts none twice, whatever reports fail or overlap new downloads; one entry per path', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { maxLength: 40 }), async (steps) => {
        await sql`delete from server_smart_remote_stats_pending`.execute(opened.db);
        const actual = await run(new SqlSmartRemoteStatsQueue(opened.db), steps);
        const expected = await run(new MemorySmartRemoteStatsQueue(), steps);
        expect(actual.pending).toEqual(expected.pending);
        expect(actual.acknowledged).toEqual(expected.acknowledged);
        expect(actual.taken).toEqual(expected.taken);
        // Conservation: every download is acknowledged or still queued, once.
        const downloads = new Map<string, number>();
        for (const step of steps) {
          const paths = step.kind === 'download' ? [step.path] : step.during.map((during) => during.path);
          for (const path of paths) downloads.set(`r${step.repo}\0p/${path}.jar`, (downloads.get(`r${step.repo}\0p/${path}.jar`) ?? 0) + 1);
        }
        const accounted = new Map(actual.acknowledged);
        for (const entry of actual.pending) accounted.set(`${entry.repo}\0${entry.path}`, (accounted.get(`${entry.repo}\0${entry.path}`) ?? 0) + entry.count);
        for (const [key, count] of [...accounted]) if (count === 0) accounted.delete(key);
        expect(accounted).toEqual(downloads);
        // The latest download of each pending path is the latest of its downloads (ties: the later one).
        const keys = actual.pending.map((entry) => `${entry.repo}\0${entry.path}`);
        expect(new Set(keys).size).toBe(keys.length);
      }),
      { numRuns: 60 },
    );
  });

  it('reports first-queued paths first, and a path downloaded again after its report goes to the back', async () => {
    await sql`delete from server_smart_remote_stats_pending`.execute(opened.db);
    const queue = new SqlSmartRemoteStatsQueue(opened.db);
    for (const path of ['c', 'a', 'b']) await queue.add({ repo: 'r', path, downloadedAt: 1, downloadedBy: 'u' });
    const first = await queue.take('r', 1);
    expect(first.map((entry) => entry.path)).toEqual(['c']);
    await queue.acknowledge(first);
    await queue.add({ repo: 'r', path: 'c', downloadedAt: 2, downloadedBy: 'v' });
    await queue.add({ repo: 'r', path: 'a', downloadedAt: 3, downloadedBy: 'w' });
    expect(await queue.take('r', 10)).toEqual([
      { repo: 'r', path: 'a', count: 2, lastDownloaded: 3, lastDownloadedBy: 'w' },
      { repo: 'r', path: 'b', count: 1, lastDownloaded: 1, lastDownloadedBy: 'u' },
      { repo: 'r', path: 'c', count: 1, lastDownloaded: 2, lastDownloadedBy: 'v' },
    ]);
    await queue.discard('r');
    expect(await queue.repositories()).toEqual([]);
  });

  it('folds a queue of one row per download into one entry per path at start, and drops the old table', async () => {
    await sql`delete from server_smart_remote_stats_pending`.execute(opened.db);
    await new SqlSmartRemoteStatsQueue(opened.db).add({ repo: 'r', path: 'x', downloadedAt: 5, downloadedBy: 'early' });
    await sql`create table server_smart_remote_stats_queue (id bigserial primary key, repo text collate "C" not null, path text collate "C" not null, downloaded_by text not null, downloaded_at bigint not null)`.execute(opened.db);
    await sql`insert into server_smart_remote_stats_queue (repo, path, downloaded_by, downloaded_at) values
      ('r', 'x', 'a', 10), ('r', 'x', 'b', 30), ('r', 'x', 'c', 20), ('r', 'y', 'd', 7), ('s', 'x', 'e', 1)`.execute(opened.db);
    await ensureSmartRemoteTables(opened.db);
    const queue = new SqlSmartRemoteStatsQueue(opened.db);
    expect(await queue.repositories()).toEqual(['r', 's']);
    const entries = [...(await queue.take('r', 10)), ...(await queue.take('s', 10))].sort((a, b) => (a.repo + a.path < b.repo + b.path ? -1 : 1));
    expect(entries).toEqual([
      { repo: 'r', path: 'x', count: 4, lastDownloaded: 30, lastDownloadedBy: 'b' },
      { repo: 'r', path: 'y', count: 1, lastDownloaded: 7, lastDownloadedBy: 'd' },
      { repo: 's', path: 'x', count: 1, lastDownloaded: 1, lastDownloadedBy: 'e' },
    ]);
    const legacy = await sql<{ present: boolean }>`select to_regclass('server_smart_remote_stats_queue') is not null as present`.execute(opened.db);
    expect(legacy.rows[0]?.present).toBe(false);
  });
});
