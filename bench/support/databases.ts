/**
 * Databases for the benchmarks. PostgreSQL: one schema per data set in DATABASE_URL's
 * database (default postgres://strata:strata@127.0.0.1:5432/strata_bench); PGlite: a data
 * directory under BENCH_DATA_DIR (default <tmpdir>/strata-benchmarks). Loaded data sets are kept
 * and reused by later runs (loading a million events takes longer than reading them).
 */
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { PGlite } from '@electric-sql/pglite';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import {
  SqlEventStore,
  openEventStore,
  openPglite,
  pgliteBulkLoader,
  pgliteCopyOut,
  pgliteCopyStatementRowsMax,
  pgliteKysely,
  type BulkLoader,
  type CopyOut,
  type OpenEventStoreOptions,
  type SqlProjection,
  type StoreDatabase,
} from '@strata/store';
import { artifactTraffic, repositoryCreations, type BenchEvent } from './events.ts';
import { log } from './report.ts';

export const databaseUrl = process.env.DATABASE_URL ?? 'postgres://strata:strata@127.0.0.1:5432/strata_bench';
export const benchDataDir = process.env.BENCH_DATA_DIR ?? join(tmpdir(), 'strata-benchmarks');
/** Bump when the generated traffic changes, so that stale data sets are not reused. */
const DATASET_VERSION = 1;

export interface BenchDatabase {
  readonly backend: 'postgres' | 'pglite';
  readonly store: SqlEventStore;
  readonly db: Kysely<StoreDatabase>;
  /** COPY in a transaction, for rebuilds. */
  readonly bulk: BulkLoader;
  /** Binary COPY out of the same database (history pages). */
  readonly copyOut: CopyOut;
  /** A plain query on the same database, outside Kysely and the store (the references). */
  raw(text: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  close(): Promise<void>;
}

/**
 * Drops (forcing its connections off) and creates the database `name` on the server of `base`;
 * returns `base` pointing at it. For benches and probes that start from an empty database.
 */
export async function recreateDatabase(name: string, base = databaseUrl): Promise<string> {
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.href;
}

/** CPU time (user + system) of a process, in ms, from /proc (0 once it is gone). */
export function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

export async function dropSchema(schema: string): Promise<void> {
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    await admin.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await admin.end();
  }
}

export async function openPostgres(
  schema: string,
  projections: readonly SqlProjection[] = [],
  poolConnectionsMax = 16,
  storeOptions: OpenEventStoreOptions['store'] = {},
  poolKeepsIdleConnections = false,
): Promise<BenchDatabase> {
  const opened = await openEventStore({ databaseUrl, schema, projections, poolConnectionsMax, poolKeepsIdleConnections, store: storeOptions });
  const client = new pg.Client({ connectionString: databaseUrl, options: `-c search_path=${schema}` });
  await client.connect();
  return {
    backend: 'postgres',
    store: opened.store,
    db: opened.db,
    bulk: opened.bulk,
    copyOut: opened.copyOut,
    raw: (text, params) => client.query(text, params as unknown[]),
    async close() {
      await client.end();
      await opened.close();
    },
  };
}

export async function openPgliteDirectory(
  directory: string,
  projections: readonly SqlProjection[] = [],
  storeOptions: OpenEventStoreOptions['store'] = {},
): Promise<BenchDatabase & { readonly pglite: PGlite }> {
  await mkdir(directory, { recursive: true });
  const pglite = await openPglite(directory);
  const db = pgliteKysely(pglite);
  const copyOut = pgliteCopyOut(pglite, db);
  const store = new SqlEventStore(db, projections, {
    copyOut,
    copyStatementRowsMax: pgliteCopyStatementRowsMax,
    ...storeOptions,
    onClose: () => db.destroy(),
  });
  return {
    backend: 'pglite',
    pglite,
    store,
    db,
    bulk: pgliteBulkLoader(pglite, db),
    copyOut,
    // Only between store operations: PGlite has one connection.
    raw: (text, params) => pglite.query(text, params) as Promise<{ rows: Record<string, unknown>[] }>,
    close: () => store.close(),
  };
}

/** The schema (PostgreSQL) or directory name (PGlite) of openEventsDataset's data set. */
export function eventsDatasetName(count: number, prefix = 'bench_events'): string {
  return `${prefix}_v${DATASET_VERSION}_${count}`;
}

/**
 * The previous code's store on the same PostgreSQL data set, for before/after runs:
 * STRATA_BENCH_BASELINE_STORE is another checkout's @strata/store entry point (e.g.
 * /tmp/main/packages/store/src/index.ts); undefined when it is not set.
 */
export async function openBaselinePostgres(schema: string): Promise<{ readonly module: typeof import('@strata/store'); readonly opened: Awaited<ReturnType<typeof import('@strata/store').openEventStore>>; readonly path: string } | undefined> {
  const path = process.env.STRATA_BENCH_BASELINE_STORE;
  if (path === undefined) return undefined;
  const module = (await import(path)) as typeof import('@strata/store');
  const opened = await module.openEventStore({ databaseUrl, schema, projections: [], poolConnectionsMax: 16 });
  return { module, opened, path };
}

/** A database holding the repository creations and `count` events of traffic, loaded once and kept. */
export async function openEventsDataset(
  backend: 'postgres' | 'pglite',
  count: number,
  options: {
    readonly prefix?: string;
    readonly siteId?: string;
    /** Renumber originSeq gapless per stream and origin (as real sites do), for origin chains. */
    readonly gaplessOriginSeq?: boolean;
  } = {},
): Promise<BenchDatabase> {
  const name = eventsDatasetName(count, options.prefix);
  const siteStore = options.siteId === undefined ? {} : { siteId: options.siteId };
  const open = () => (backend === 'postgres' ? openPostgres(name, [], 16, siteStore) : openPgliteDirectory(join(benchDataDir, name), [], siteStore));
  let database = await open();
  const expected = count + repositoryCreations().length;
  const stored = Number((await database.raw('select count(*)::int8 as n from events')).rows[0]!.n);
  if (stored === expected) return database;
  log(`${backend}: loading ${count.toLocaleString('en-US')} events into ${name} (kept for later runs)`);
  await database.close();
  if (backend === 'postgres') await dropSchema(name);
  else await rm(join(benchDataDir, name), { recursive: true, force: true });
  database = await open();
  const started = performance.now();
  await appendAll(database.store, repositoryCreations());
  const window: BenchEvent[] = [];
  const originSeqs = new Map<string, number>();
  for (const entry of artifactTraffic(count)) {
    if (options.gaplessOriginSeq === true) {
      const key = `${entry.stream}\n${entry.event.origin}`;
      // The repository creations are site-a's first event of each stream.
      const originSeq = (originSeqs.get(key) ?? (entry.event.origin === 'site-a' ? 1 : 0)) + 1;
      originSeqs.set(key, originSeq);
      window.push({ stream: entry.stream, event: { ...entry.event, originSeq } });
    } else window.push(entry);
    if (window.length === 50_000) await appendAll(database.store, window.splice(0));
  }
  await appendAll(database.store, window);
  log(`${backend}: loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  await database.raw('vacuum analyze');
  return database;
}

/** Appends in order per stream, streams concurrently, up to 1000 events per append. */
async function appendAll(store: SqlEventStore, entries: readonly BenchEvent[]): Promise<void> {
  const byStream = new Map<string, NewEvent[]>();
  for (const { stream, event } of entries) {
    let list = byStream.get(stream);
    if (list === undefined) byStream.set(stream, (list = []));
    list.push(event);
  }
  await Promise.all(
    [...byStream].map(async ([stream, events]) => {
      for (let offset = 0; offset < events.length; offset += 1000) await store.append(stream, events.slice(offset, offset + 1000));
    }),
  );
}

export async function countTable(db: Kysely<StoreDatabase>, table: string): Promise<number> {
  const result = await sql<{ n: unknown }>`select count(*) as n from ${sql.table(table)}`.execute(db);
  return Number(result.rows[0]?.n ?? 0);
}
