/**
 * (A) Single-event appends from 16 concurrent writers through the SQL event store with the
 * inline projections (artifact tree, repository config), against plain single-row INSERT
 * transactions (autocommit) of the same rows and bytes from 16 clients into a table shaped
 * like events (same columns, constraints and indexes). Rounds alternate the two.
 */
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { encodeEventData, encodeMeta } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection } from '@strata/store';
import { artifactTraffic, repositoryCreations, type BenchEvent } from './support/events.ts';
import { databaseUrl, dropSchema, openPostgres } from './support/databases.ts';
import { log, median, type BenchResult } from './support/report.ts';

const schema = 'bench_append';

export async function appendBenchmark(writers: number, eventsPerRound: number, rounds: number): Promise<BenchResult> {
  await dropSchema(schema);
  const database = await openPostgres(schema, [new ArtifactTreeProjection(), new RepositoryConfigProjection()], writers);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: writers, options: `-c search_path=${schema}` });
  try {
    for (const { stream, event } of repositoryCreations()) await database.store.append(stream, [event]);
    await database.raw('create table insert_reference (like events including all)');
    // Warm both paths up (connections, plans).
    await appendRound(database.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers);
    await insertRound(pool, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })], writers, 0);

    const measured: number[] = [];
    const reference: number[] = [];
    let revision = 1_000_000;
    for (let round = 0; round < rounds; round++) {
      const traffic = [...artifactTraffic(eventsPerRound, { idPrefix: `r${round}-`, seed: 100 + round })];
      reference.push(await insertRound(pool, traffic, writers, revision));
      revision += traffic.length;
      measured.push(await appendRound(database.store, traffic, writers));
      log(`append round ${round + 1}: store ${Math.round(measured.at(-1)!)}/s, plain inserts ${Math.round(reference.at(-1)!)}/s`);
    }
    return {
      benchmark: `append 1 event × ${writers} writers`,
      backend: 'postgres',
      measured: { label: 'appends with projections', perSecond: median(measured) },
      reference: { label: 'single-row INSERT transactions', perSecond: median(reference) },
      target: { ratio: 0.5 },
      notes: `${eventsPerRound} events per round, median of ${rounds} rounds`,
      roundRatios: measured.map((rate, round) => rate / reference[round]!),
    };
  } finally {
    await pool.end();
    await database.close();
    await dropSchema(schema);
  }
}

async function appendRound(store: { append: (stream: string, events: BenchEvent['event'][]) => Promise<unknown> }, traffic: readonly BenchEvent[], writers: number): Promise<number> {
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
