import { join } from 'node:path';
import { Kysely, PostgresDialect, sql, type CompiledQuery } from 'kysely';
import pg from 'pg';
import { StrataError } from '@strata/core';
import { inlineParameters, kyselyAppendTransactions, pgAppendTransactions, type AppendSendHook, type AppendTransactions } from './append-transaction.ts';
import { migrateToLatest } from './migrations/index.ts';
import { openPglite, openPgliteWorker, pgliteKysely } from './open-pglite.ts';
import { PgliteWorkerDatabase, pgliteWorkerAppendTransactions } from './pglite-worker.ts';
import { pgliteBulkLoader, pgliteCopyOut, postgresBulkLoader, postgresCopyOut, type BulkLoader } from './projections/bulk-copy.ts';
import type { CopyOut } from './event-copy-reader.ts';
import type { SqlProjection } from './projection.ts';
import type { StoreDatabase } from './schema.ts';
import { SqlEventStore, type SqlEventStoreOptions } from './sql-event-store.ts';

export interface OpenEventStoreOptions {
  /** PostgreSQL connection string; when absent the store is PGlite under `<dataDir>/pg`. */
  readonly databaseUrl?: string;
  /** Data directory for PGlite; absent (and no databaseUrl): a throwaway in-memory PGlite. */
  readonly dataDir?: string;
  /** Inline projections, applied inside each append transaction. */
  readonly projections?: readonly SqlProjection[];
  /** PostgreSQL only: the schema to use (created if missing), e.g. one per test run. */
  readonly schema?: string;
  /** PostgreSQL only: pool size; default 10. */
  readonly poolConnectionsMax?: number;
  /**
   * PostgreSQL only: the pool keeps the connections it opened while they are idle, instead of
   * closing each after 10 s idle (pg's default, kept for short-lived callers: a CLI command, a
   * test). A new connection is a new PostgreSQL backend, and a backend's first read of pages
   * in shared buffers maps them into its own page table, one fault per few pages: the first
   * history page of 10,000 events a backend reads took ~160 ms against ~20 ms for its next
   * ones (docs/audit.md). A server keeps them (`strata serve`).
   */
  readonly poolKeepsIdleConnections?: boolean;
  /** PostgreSQL: told every round trip of an append transaction (diagnostics; pgAppendTransactions' onSend). */
  readonly onAppendSend?: AppendSendHook;
  readonly store?: Omit<SqlEventStoreOptions, 'onClose'>;
  /**
   * PGlite only: where its SQL runs. `worker` (default): a worker thread, so the main thread
   * serves requests while a statement runs; `main`: in this thread, as before (docs/storage.md).
   */
  readonly pgliteThread?: PgliteThread;
}

export const PGLITE_THREADS = ['worker', 'main'] as const;
export type PgliteThread = (typeof PGLITE_THREADS)[number];

export interface OpenedEventStore {
  readonly store: SqlEventStore;
  /** The same database, for projection queries; never use it inside a store transaction. */
  readonly db: Kysely<StoreDatabase>;
  /** Transactions with COPY on the same database, for `rebuildProjections` (`source.bulk`). */
  readonly bulk: BulkLoader;
  /** Binary COPY out of the same database (bulk reads: `SqlEventAudit`'s history pages). */
  readonly copyOut: CopyOut;
  /**
   * Runs a read sent over and over (a deploy round's tree-shape lookup) the cheapest way this
   * database allows, with the rows `db` would return: on PGlite in its worker, as one `exec`
   * with the parameters inlined as literals (one pass into PostgreSQL instead of the six of a
   * query with parameters, no parameter serialisers; still planned every time, so a plan never
   * outlives the table sizes it was made for), holding the connection as `db` does; on
   * PostgreSQL a named prepared statement per connection (see preparedHotRead: the text must
   * not vary and must probe indexes on any table size); elsewhere through `db`. Read-only
   * statements only.
   */
  readonly hotRead: HotRead;
  /** Closes the store, then the database. */
  close(): Promise<void>;
}

/** See OpenedEventStore.hotRead. */
export type HotRead = <R>(query: CompiledQuery<R>) => Promise<readonly R[]>;

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Opens (and migrates) the SQL event store: PostgreSQL when `databaseUrl` is set, else PGlite. */
export async function openEventStore(options: OpenEventStoreOptions = {}): Promise<OpenedEventStore> {
  const { db, bulk, copyOut, copyStatementRowsMax, appendTransactions, hotRead, appendOneRoundTrip } =
    options.databaseUrl === undefined ? await openPgliteDatabase(options) : await openPostgresDatabase(options.databaseUrl, options);
  // Reading ahead pays on a pool (PostgreSQL), not on PGlite's single connection.
  const readAhead = options.databaseUrl !== undefined;
  const store = new SqlEventStore(db, options.projections ?? [], {
    readAhead,
    copyOut,
    ...(copyStatementRowsMax === undefined ? {} : { copyStatementRowsMax }),
    ...(appendTransactions === undefined ? {} : { appendTransactions }),
    ...(appendOneRoundTrip === undefined ? {} : { appendOneRoundTrip }),
    ...options.store,
    onClose: () => db.destroy(),
  });
  return { store, db, bulk, copyOut, hotRead: hotRead ?? (async (query) => (await db.executeQuery(query)).rows), close: () => store.close() };
}

interface OpenedDatabase {
  readonly db: Kysely<StoreDatabase>;
  readonly bulk: BulkLoader;
  readonly copyOut: CopyOut;
  readonly copyStatementRowsMax?: number;
  readonly appendTransactions?: AppendTransactions;
  readonly hotRead?: HotRead;
  /** SqlEventStoreOptions.appendOneRoundTrip (PostgreSQL). */
  readonly appendOneRoundTrip?: boolean;
}

/**
 * PGlite hands a COPY's whole output over as one blob (copied into its memory first): a
 * scan copies this many events per statement (~20 MB).
 */
export const pgliteCopyStatementRowsMax = 50_000;

async function openPgliteDatabase(options: OpenEventStoreOptions): Promise<OpenedDatabase> {
  const location = options.dataDir === undefined ? 'memory' : join(options.dataDir, 'pg');
  const database = (options.pgliteThread ?? 'worker') === 'worker' ? await openPgliteWorker(location) : await openPglite(location);
  const db = pgliteKysely(database);
  return {
    db,
    bulk: pgliteBulkLoader(database, db),
    copyOut: pgliteCopyOut(database, db),
    copyStatementRowsMax: pgliteCopyStatementRowsMax,
    appendTransactions:
      database instanceof PgliteWorkerDatabase
        ? // Each send of an append batch is one message to the worker (pglite-worker.ts).
          pgliteWorkerAppendTransactions(db, database)
        : // Large appends COPY their events from a blob (sql-event-store.ts, appendCopyEventsMin).
          kyselyAppendTransactions(db, { pglite: database }),
    ...(database instanceof PgliteWorkerDatabase
      ? {
          hotRead: <R>(query: CompiledQuery<R>) =>
            db.connection().execute(async () => {
              const [result] = await database.exec(inlineParameters(query));
              return (result?.rows ?? []) as R[];
            }),
        }
      : {}),
  };
}

async function openPostgresDatabase(databaseUrl: string, options: OpenEventStoreOptions): Promise<OpenedDatabase> {
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StrataError('STRATA_ERR_INVARIANT', `schema name '${schema}' must match ${SCHEMA_NAME.source}`);
  }
  const poolConnectionsMax = options.poolConnectionsMax ?? 10;
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: poolConnectionsMax,
    ...(options.poolKeepsIdleConnections === true ? { idleTimeoutMillis: 0 } : {}),
    ...(schema === undefined ? {} : { options: `-c search_path=${schema}` }),
  });
  const db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool }) });
  try {
    if (schema !== undefined) await sql`create schema if not exists ${sql.id(schema)}`.execute(db);
    await migrateToLatest(db, schema === undefined ? {} : { schema });
    // Append batches in two round trips (begin with the locks, commit with the writes).
    return {
      db,
      bulk: postgresBulkLoader(pool, poolConnectionsMax),
      copyOut: postgresCopyOut(pool),
      appendTransactions: pgAppendTransactions(pool, options.onAppendSend === undefined ? {} : { onSend: options.onAppendSend }),
      hotRead: preparedHotRead(pool),
      // A batch whose first round trip this store can tell in advance goes in one round trip.
      appendOneRoundTrip: true,
    };
  } catch (error) {
    await db.destroy();
    if (error instanceof StrataError) throw error;
    throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `cannot open PostgreSQL: ${(error as Error).message}`, undefined, { cause: error });
  }
}

/** Most distinct hot-read texts prepared per pool; further ones are sent unnamed (parsed and planned each time). */
const hotReadStatementsMax = 16;

/**
 * Hot reads on PostgreSQL as named prepared statements (`pg` parses each once per connection,
 * PostgreSQL plans generically after five runs): a deploy round's tree-shape query spent
 * ~1 ms planning and ~0.2-0.4 ms executing, on every round. Such a statement takes its
 * values as parameters (its text does not vary) and probes indexes whatever the tables'
 * sizes (`offset 0` subqueries, as the append's statements): a generic plan made while a
 * table is nearly empty is kept.
 */
function preparedHotRead(pool: pg.Pool): HotRead {
  const names = new Map<string, string>();
  return async <R>(query: CompiledQuery<R>) => {
    let name = names.get(query.sql);
    if (name === undefined && names.size < hotReadStatementsMax) {
      name = `strata_hot_read_${names.size + 1}`;
      names.set(query.sql, name);
    }
    const result = await pool.query({ ...(name === undefined ? {} : { name }), text: query.sql, values: [...query.parameters] });
    return result.rows as R[];
  };
}
