/**
 * (A) Single-event appends from 16 concurrent writers through the SQL event store with the
 * inline projections (artifact tree, repository config), against plain single-row INSERT
 * transactions (autocommit) of the same rows and bytes from 16 clients into a table shaped
 * like events (same columns, constraints and indexes). Each measured run of a store follows
 * a warm-up of it and a reference run of its own (see `measure`).
 *
 * The reference writes every column the store's insert writes (see `referenceColumns`;
 * STRATA_BENCH_APPEND_REFERENCE=envelope: the ten envelope columns only, as before 2026-12-07).
 *
 * A baseline to compare in the same run (before/after a change): another checkout's
 * @strata/store entry point, e.g. STRATA_BENCH_BASELINE_STORE=/tmp/main/packages/store/src/index.ts;
 * it appends the same traffic into a schema of its own, in every round, its place in the
 * round's order alternating with the store's.
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { CHAIN_GENESIS, encodeEventData, encodeMeta, eventDigest, eventTargetPath, siteChainLink } from '@strata/core';
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
    log(`append: the reference writes ${referenceColumns === 'all' ? 'every column the store writes' : 'the ten envelope columns (STRATA_BENCH_APPEND_REFERENCE=envelope)'}`);
    for (const { stream, event } of repositoryCreations()) await database.store.append(stream, [event]);
    if (baseline !== undefined) for (const { stream, event } of repositoryCreations()) await baseline.store.append(stream, [event]);
    await database.raw('create table insert_reference (like events including all)');

    // Every measured run is set up the same way, whichever slot it is and wherever it falls
    // in the round: a short unmeasured warm-up of that store (its pool's connections may
    // have been closed as idle — pg closes them after 10 s — and its backends' caches gone
    // cold while the other slot ran), then the reference right before it, also warmed, and
    // the run's ratio against that adjacent reference. Before, one reference per round
    // served both slots and the second slot of a round ran after the first one's whole
    // run: with the same code in both slots the baseline slot measured 0.43 against 0.32.
    const warmEvents = writers * 10;
    let revision = 1_000_000;
    const measure = async (store: Appender, traffic: readonly BenchEvent[], warm: readonly BenchEvent[], tag: string) => {
      await insertRound(pool, warm, writers, revision, `${tag}-warm`);
      revision += warm.length;
      const referenceRate = await insertRound(pool, traffic, writers, revision, tag);
      revision += traffic.length;
      await appendRound(store, warm, writers);
      const rate = await appendRound(store, traffic, writers);
      return { rate, referenceRate };
    };
    // Warm every path up once (connections, plans, the JIT).
    await appendRound(database.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers);
    if (baseline !== undefined) await appendRound(baseline.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers);
    await insertRound(pool, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers, 0, 'warm');

    const measured: number[] = [];
    const reference: number[] = [];
    const baselineRates: number[] = [];
    const baselineReference: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const traffic = [...artifactTraffic(eventsPerRound, { idPrefix: `r${round}-`, seed: 100 + round })];
      const warm = [...artifactTraffic(warmEvents, { idPrefix: `w${round}-`, seed: 1000 + round })];
      const runStore = async () => {
        const { rate, referenceRate } = await measure(database.store, traffic, warm, `s${round}`);
        measured.push(rate);
        reference.push(referenceRate);
      };
      const runBaseline = async () => {
        if (baseline === undefined) return;
        const { rate, referenceRate } = await measure(baseline.store, traffic, warm, `b${round}`);
        baselineRates.push(rate);
        baselineReference.push(referenceRate);
      };
      // The slots' order alternates; an even number of rounds puts each first equally often.
      if (round % 2 === 1) await runBaseline();
      await runStore();
      if (round % 2 === 0) await runBaseline();
      const baselineNote =
        baseline === undefined
          ? ''
          : `; baseline ${Math.round(baselineRates.at(-1)!)}/s, plain inserts ${Math.round(baselineReference.at(-1)!)}/s (ratio ${(baselineRates.at(-1)! / baselineReference.at(-1)!).toFixed(2)}), ${round % 2 === 0 ? 'second' : 'first'}`;
      log(
        `append round ${round + 1}: store ${Math.round(measured.at(-1)!)}/s, plain inserts ${Math.round(reference.at(-1)!)}/s ` +
          `(ratio ${(measured.at(-1)! / reference.at(-1)!).toFixed(2)})${baselineNote}; load ${(await readFile('/proc/loadavg', 'utf8').catch(() => '?')).trim()}`,
      );
    }
    const result = (label: string, rates: number[], references: number[]): BenchResult => ({
      benchmark: `${label} 1 event × ${writers} writers`,
      backend: 'postgres',
      measured: { label: 'appends with projections', perSecond: median(rates) },
      reference: { label: 'single-row INSERT transactions', perSecond: median(references) },
      target: { ratio: 0.5 },
      notes: `${eventsPerRound} events per round, median of ${rounds} rounds, each against the reference run right before it (reference columns: ${referenceColumns})`,
      roundRatios: rates.map((rate, round) => rate / references[round]!),
    });
    return [result('append', measured, reference), ...(baseline === undefined ? [] : [result('baseline append', baselineRates, baselineReference)])];
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

/**
 * Which columns the reference writes. `all` (default since 2026-12-07, append8): every column
 * the store's insert writes — the ten of the envelope plus the history target, the site chain's
 * link and the digest (computed beforehand, like the encoding), so the reference writes the same
 * rows and bytes (and the same entries of the partial index on target). `envelope`
 * (STRATA_BENCH_APPEND_REFERENCE=envelope): the ten envelope columns only, as the reference was
 * until then (~100 bytes a row and one index entry fewer than the store writes).
 */
const referenceColumns = process.env.STRATA_BENCH_APPEND_REFERENCE === 'envelope' ? 'envelope' : 'all';

/** `tag` keeps ids unique when the same traffic is inserted again (a reference per slot). */
export async function insertRound(pool: pg.Pool, traffic: readonly BenchEvent[], writers: number, firstRevision: number, tag: string): Promise<number> {
  // Encoded (and chained) beforehand: the reference pays for the database only.
  const heads = new Map<string, Uint8Array>();
  const rows = traffic.map(({ stream, event }, index) => {
    const id = `${event.id}~${tag}`;
    const revision = firstRevision + index;
    const data = Buffer.from(encodeEventData(event.type, event.data));
    const meta = Buffer.from(encodeMeta(event.meta));
    const envelope = [id, stream, revision, event.origin, event.originSeq, event.hlc.wall, event.hlc.logical, event.type, data, meta];
    if (referenceColumns === 'envelope') return envelope;
    const digest = eventDigest({ stream, id, origin: event.origin, originSeq: event.originSeq, hlc: event.hlc, type: event.type }, data, meta);
    const prev = heads.get(stream) ?? CHAIN_GENESIS;
    heads.set(stream, siteChainLink(prev, stream, revision, digest));
    return [...envelope, eventTargetPath(event) ?? null, Buffer.from(prev), digest];
  });
  const statement =
    referenceColumns === 'envelope'
      ? 'insert into insert_reference (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)'
      : 'insert into insert_reference (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, target, prev_hash, digest) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)';
  const clients = await Promise.all(Array.from({ length: writers }, () => pool.connect()));
  let next = 0;
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      for (let row = rows[next++]; row !== undefined; row = rows[next++]) await client.query(statement, row);
    }),
  );
  const rate = (rows.length * 1000) / (performance.now() - started);
  for (const client of clients) client.release();
  return rate;
}
