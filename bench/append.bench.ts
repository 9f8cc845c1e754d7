/**
 * (A) Single-event appends from 16 concurrent writers through the SQL event store with the
 * inline projections (artifact tree, repository config), against plain single-row INSERT
 * transactions (autocommit) of the same rows and bytes from 16 clients into a table shaped
 * like events (same columns, constraints and indexes). Rounds alternate the two.
 *
 * A baseline to compare in the same run (before/after a change): another checkout's
 * @strata/store entry point, e.g. STRATA_BENCH_BASELINE_STORE=/tmp/main/packages/store/src/index.ts;
 * it appends the same traffic into a schema of its own, in every round, its place in the
 * round's order alternating with the store's.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { encodeEventData, encodeMeta } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection } from '@strata/store';
import { artifactTraffic, repositoryCreations, type BenchEvent } from './support/events.ts';
import { databaseUrl, dropSchema, openPostgres } from './support/databases.ts';
import { log, median, type BenchResult } from './support/report.ts';

const schema = 'bench_append';
const baselineSchema = 'bench_append_baseline';

type Appender = { append: (stream: string, events: BenchEvent['event'][]) => Promise<unknown> };

export async function appendBenchmark(writers: number, eventsPerRound: number, rounds: number): Promise<BenchResult[]> {
  await dropSchema(schema);
  const database = await openPostgres(schema, [new ArtifactTreeProjection(), new RepositoryConfigProjection()], writers);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: writers, options: `-c search_path=${schema}` });
  const baselinePath = process.env.STRATA_BENCH_BASELINE_STORE;
  let baseline: { store: Appender; close(): Promise<void> } | undefined;
  try {
    if (baselinePath !== undefined) {
      const module = (await import(baselinePath)) as typeof import('@strata/store');
      await dropSchema(baselineSchema);
      const opened = await module.openEventStore({
        databaseUrl,
        schema: baselineSchema,
        projections: [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()],
        poolConnectionsMax: writers,
      });
      baseline = { store: opened.store, close: () => opened.close() };
      log(`append: baseline ${baselinePath}`);
    }
    for (const { stream, event } of repositoryCreations()) await database.store.append(stream, [event]);
    if (baseline !== undefined) for (const { stream, event } of repositoryCreations()) await baseline.store.append(stream, [event]);
    await database.raw('create table insert_reference (like events including all)');
    // Warm every path up (connections, plans).
    await appendRound(database.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers);
    if (baseline !== undefined) await appendRound(baseline.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers);
    await insertRound(pool, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers, 0);

    const measured: number[] = [];
    const reference: number[] = [];
    const baselineRates: number[] = [];
    let revision = 1_000_000;
    for (let round = 0; round < rounds; round++) {
      const traffic = [...artifactTraffic(eventsPerRound, { idPrefix: `r${round}-`, seed: 100 + round })];
      reference.push(await insertRound(pool, traffic, writers, revision));
      revision += traffic.length;
      const runBaseline = async () => {
        if (baseline !== undefined) baselineRates.push(await appendRound(baseline.store, traffic, writers));
      };
      if (round % 2 === 1) await runBaseline();
      measured.push(await appendRound(database.store, traffic, writers));
      if (round % 2 === 0) await runBaseline();
      const baselineNote = baseline === undefined ? '' : `, baseline ${Math.round(baselineRates.at(-1)!)}/s (ratio ${(baselineRates.at(-1)! / reference.at(-1)!).toFixed(2)})`;
      log(
        `append round ${round + 1}: store ${Math.round(measured.at(-1)!)}/s, plain inserts ${Math.round(reference.at(-1)!)}/s ` +
          `(ratio ${(measured.at(-1)! / reference.at(-1)!).toFixed(2)})${baselineNote}; load ${(await readFile('/proc/loadavg', 'utf8').catch(() => '?')).trim()}`,
      );
    }
    const result = (label: string, rates: number[]): BenchResult => ({
      benchmark: `${label} 1 event × ${writers} writers`,
      backend: 'postgres',
      measured: { label: 'appends with projections', perSecond: median(rates) },
      reference: { label: 'single-row INSERT transactions', perSecond: median(reference) },
      target: { ratio: 0.5 },
      notes: `${eventsPerRound} events per round, median of ${rounds} rounds`,
      roundRatios: rates.map((rate, round) => rate / reference[round]!),
    });
    return [result('append', measured), ...(baseline === undefined ? [] : [result('baseline append', baselineRates)])];
  } finally {
    await pool.end();
    await baseline?.close();
    await database.close();
    await dropSchema(schema);
    if (baseline !== undefined) await dropSchema(baselineSchema);
  }
}

async function appendRound(store: Appender, traffic: readonly BenchEvent[], writers: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let entry = traffic[next++]; entry !== undefined; entry = traffic[next++]) await store.append(entry.stream, [entry.event]);
    }),
  );
  return (traffic.length * 1000) / (performance.now() - started);
}

async function insertRound(pool: pg.Pool, traffic: readonly BenchEvent[], writers: number, firstRevision: number): Promise<number> {
  // Encoded beforehand: the reference pays for the database only.
  const rows = traffic.map(({ stream, event }, index) => [
    event.id,
    stream,
    firstRevision + index,
    event.origin,
    event.originSeq,
    event.hlc.wall,
    event.hlc.logical,
    event.type,
    Buffer.from(encodeEventData(event.type, event.data)),
    Buffer.from(encodeMeta(event.meta)),
  ]);
  const clients = await Promise.all(Array.from({ length: writers }, () => pool.connect()));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      for (let row = rows[next++]; row !== undefined; row = rows[next++]) {
        await client.query(
          'insert into insert_reference (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)',
          row,
        );
      }
    }),
  );
  const rate = (rows.length * 1000) / (performance.now() - started);
  for (const client of clients) client.release();
  return rate;
}
