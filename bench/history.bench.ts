/**
 * (H) The history of one path with 10,000 events, on a stream of 100,000 events (PostgreSQL):
 * `SqlEventAudit.pathHistory` for the whole history in one page, and the events turned into
 * the API's JSON, as the history route does. Reference: the same 10,000 rows read by
 * revision range (`select … where stream = $1 and revision between …`, the unique index)
 * through the same driver, decoded the same way — what the path index has to get close to.
 * Target: p99 < 100 ms.
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import type { NewEvent } from '@strata/core';
import { historyEventJson, SqlEventAudit, type HistoryEntry } from '@strata/store';
import { openPostgres } from './support/databases.ts';
import { log, median, type BenchResult } from './support/report.ts';

const SCHEMA = 'bench_history_v1';
const STREAM = 'repo-history';
const PATH = 'org/app/1.0/app-1.0.jar';
const PATH_EVENTS = 10_000;
const OTHER_EVENTS = 90_000;

export async function historyBenchmark(rounds: number): Promise<BenchResult[]> {
  const database = await openPostgres(SCHEMA, [], 4, { siteId: 'site-a' });
  try {
    const stored = Number((await database.raw('select count(*)::int8 as n from events')).rows[0]!.n);
    if (stored !== PATH_EVENTS + OTHER_EVENTS + 1) {
      log(`history: loading ${(PATH_EVENTS + OTHER_EVENTS).toLocaleString('en-US')} events into ${SCHEMA}`);
      await database.raw('truncate events, streams');
      const events: NewEvent[] = [
        { id: 'h-create', origin: 'site-a', originSeq: 1, hlc: { wall: 1_700_000_000_000, logical: 0 }, meta: { actor: 'admin' }, type: 'RepositoryCreated', data: { key: 'history', config: { rclass: 'local' } } } as NewEvent,
      ];
      // One event on the path in ten, the others spread over 5,000 paths of the same folders.
      for (let index = 0; index < PATH_EVENTS + OTHER_EVENTS; index++) {
        const onPath = index % 10 === 0;
        const path = onPath ? PATH : `org/app/${index % 50}.0/other-${index % 5000}.jar`;
        const base = { id: `h-${index}`, origin: 'site-a', originSeq: index + 2, hlc: { wall: 1_700_000_000_001 + index, logical: 0 }, meta: { actor: index % 3 === 0 ? 'alice' : 'bob' } };
        events.push(
          index % 4 === 0
            ? ({ ...base, type: 'PropertiesSet', data: { path, properties: { build: [String(index)] } } } as NewEvent)
            : ({
                ...base,
                type: 'ArtifactDeployed',
                data: { path, sha256: index.toString(16).padStart(64, '0'), sha1: index.toString(16).padStart(40, '0'), md5: index.toString(16).padStart(32, '0'), size: 1000 + index, mimeType: 'application/java-archive', properties: {} },
              } as NewEvent),
        );
      }
      for (let offset = 0; offset < events.length; offset += 2000) await database.store.append(STREAM, events.slice(offset, offset + 2000));
      await database.raw('vacuum analyze');
    }
    // A baseline to compare in the same run (before/after a change): another checkout's
    // @strata/store entry point, e.g. STRATA_BENCH_BASELINE_STORE=/tmp/main/packages/store/src/index.ts.
    const baselinePath = process.env.STRATA_BENCH_BASELINE_STORE;
    const baseline = baselinePath === undefined ? undefined : ((await import(baselinePath)) as Pick<typeof import('@strata/store'), 'SqlEventAudit' | 'historyEventJson'>);
    const variants = [
      { name: '', audit: new SqlEventAudit(database.db, { copyOut: database.copyOut }) as Pick<SqlEventAudit, 'pathHistory'>, toJson: historyEventJson as (entry: HistoryEntry, siteId: string) => unknown },
      ...(baseline === undefined ? [] : [{ name: 'baseline ', audit: new baseline.SqlEventAudit(database.db as never) as Pick<SqlEventAudit, 'pathHistory'>, toJson: baseline.historyEventJson as (entry: HistoryEntry, siteId: string) => unknown }]),
    ];
    if (baseline !== undefined) log(`history: baseline ${baselinePath}`);
    const calls = variants.map((variant) => {
      const history = async () => {
        const page = await variant.audit.pathHistory(STREAM, PATH, { limit: 10_000 });
        if (page.entries.length !== 10_000) throw new Error(`history returned ${page.entries.length} events`);
        return page;
      };
      return {
        name: variant.name,
        history,
        historyAsJson: async () => JSON.stringify((await history()).entries.map((entry) => variant.toJson(entry, 'site-a'))).length,
        firstPage: () => variant.audit.pathHistory(STREAM, PATH, { limit: 1000 }),
        /** Every page of 1,000 by cursor, as a client pages through (each page one sample in `pages`). */
        walk: async (into: number[]) => {
          let after: number | undefined;
          let events = 0;
          do {
            const started = performance.now();
            const page = await variant.audit.pathHistory(STREAM, PATH, { limit: 1000, ...(after === undefined ? {} : { afterRevision: after }) });
            into.push(performance.now() - started);
            events += page.entries.length;
            after = page.nextAfterRevision;
          } while (after !== undefined);
          if (events !== PATH_EVENTS + 1) throw new Error(`paging returned ${events} events`);
        },
        samples: { history: [] as number[], json: [] as number[], firstPage: [] as number[], pages: [] as number[], walk: [] as number[] },
      };
    });
    // The reference: as many rows by revision range, through the unique (stream, revision) index.
    const reference = async () => {
      const rows = await sql`select position, transaction_id, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, prev_hash
        from events where stream = ${STREAM} and revision between 50000 and ${50_000 + PATH_EVENTS - 1} order by revision`.execute(database.db);
      if (rows.rows.length !== PATH_EVENTS) throw new Error('reference read short');
    };
    for (let warm = 0; warm < 3; warm++) {
      for (const call of calls) await call.history();
      await reference();
    }
    const referenceSamples: number[] = [];
    const time = async (into: number[], run: () => Promise<unknown>) => {
      const started = performance.now();
      await run();
      into.push(performance.now() - started);
    };
    const perRound = 40;
    for (let round = 0; round < rounds; round++) {
      for (let index = 0; index < perRound; index++) {
        await time(referenceSamples, reference);
        for (const call of calls) {
          await time(call.samples.history, call.history);
          await time(call.samples.json, call.historyAsJson);
          await time(call.samples.firstPage, call.firstPage);
          if (index % 4 === 0) await time(call.samples.walk, () => call.walk(call.samples.pages));
        }
      }
      for (const call of calls) {
        log(
          `history round ${round + 1}: ${call.name}p99 whole ${percentile(call.samples.history, 0.99).toFixed(1)} ms, as JSON ${percentile(call.samples.json, 0.99).toFixed(1)} ms, first page ${percentile(call.samples.firstPage, 0.99).toFixed(1)} ms, any page ${percentile(call.samples.pages, 0.99).toFixed(1)} ms, all 11 pages ${percentile(call.samples.walk, 0.99).toFixed(1)} ms, reference ${percentile(referenceSamples, 0.99).toFixed(1)} ms`,
        );
      }
    }
    const note = (values: number[]) => `p50 ${median(values).toFixed(1)} ms, p99 ${percentile(values, 0.99).toFixed(1)} ms`;
    const asRate = (values: number[]) => 1000 / percentile(values, 0.99);
    const referenceRate = asRate(referenceSamples);
    const result = (label: string, values: number[]): BenchResult => ({
      benchmark: `history of a 10,000-event path: ${label}`,
      backend: 'postgres',
      measured: { label: 'requests at p99 latency', perSecond: asRate(values) },
      reference: { label: '10,000 rows by revision range', perSecond: referenceRate },
      target: { perSecond: 10 },
      notes: `${note(values)} over ${values.length} calls; reference ${note(referenceSamples)}; target p99 < 100 ms (10/s at p99)`,
    });
    return calls.flatMap((call) => [
      result(`${call.name}whole history, one page`, call.samples.history),
      result(`${call.name}whole history as API JSON`, call.samples.json),
      result(`${call.name}first page of 1,000`, call.samples.firstPage),
      result(`${call.name}any page of 1,000 (paging by cursor)`, call.samples.pages),
      result(`${call.name}all 11 pages of 1,000, one after the other`, call.samples.walk),
    ]);
  } finally {
    await database.close();
  }
}

function percentile(values: readonly number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}
