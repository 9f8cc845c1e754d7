import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';
import { quoteIdentifier } from './projections/sql-values.ts';

/**
 * The slice of PGlite this dialect calls (as Kysely declares the slice of each driver it
 * uses), so that a fake or another build of PGlite fits.
 */
export interface PgliteDatabase {
  readonly closed: boolean;
  query<T>(
    query: string,
    params?: unknown[],
    options?: { parsers?: Record<number, (value: string, typeId: number) => unknown> },
  ): Promise<{ rows: T[]; affectedRows?: number }>;
  close(): Promise<void>;
}

export interface PgliteDialectConfig {
  readonly database: PgliteDatabase;
  /** Close the PGlite database when the Kysely instance is destroyed; default true. */
  readonly closeOnDestroy?: boolean;
}

const INT8_TYPE_ID = 20;
// `pg` returns int8 as a string (it may not fit a number); PGlite would return a number.
// Both backends must hand the same row shapes to the same code.
// The same function object is recognised by the worker's handle (pglite-worker.ts), which
// cannot send a function to the worker and asks it for int8 as text instead.
export const int8AsText = (value: string): string => value;
const PARSERS = { [INT8_TYPE_ID]: int8AsText };

/**
 * A Kysely dialect for PGlite. PGlite has exactly one connection, so the driver hands it out
 * to one holder at a time: a transaction keeps it until commit or rollback, and everything
 * else waits in line. Code inside a transaction must use the transaction handle — touching
 * the outer Kysely instance there waits for the connection the transaction holds, forever.
 */
export class PgliteDialect implements Dialect {
  readonly #config: PgliteDialectConfig;

  constructor(config: PgliteDialectConfig) {
    this.#config = config;
  }

  createDriver(): Driver {
    return new PgliteDriver(this.#config);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter();
  }

  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}

class PgliteDriver implements Driver {
  readonly #config: PgliteDialectConfig;
  readonly #connection: PgliteConnection;
  readonly #mutex = new ConnectionMutex();

  constructor(config: PgliteDialectConfig) {
    this.#config = config;
    this.#connection = new PgliteConnection(config.database);
  }

  async init(): Promise<void> {}

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#mutex.lock();
    return this.#connection;
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    let statement = 'begin';
    if (settings.isolationLevel !== undefined) statement += ` isolation level ${settings.isolationLevel}`;
    if (settings.accessMode !== undefined) statement += ` ${settings.accessMode}`;
    await connection.executeQuery(CompiledQuery.raw(statement));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`savepoint ${quoteIdentifier(name)}`));
  }

  async rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`rollback to savepoint ${quoteIdentifier(name)}`));
  }

  async releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw(`release savepoint ${quoteIdentifier(name)}`));
  }

  async releaseConnection(): Promise<void> {
    this.#mutex.unlock();
  }

  async destroy(): Promise<void> {
    // Wait for the current holder, so that a closing store does not cut a transaction short.
    await this.#mutex.lock();
    try {
      if ((this.#config.closeOnDestroy ?? true) && !this.#config.database.closed) await this.#config.database.close();
    } finally {
      this.#mutex.unlock();
    }
  }
}

class PgliteConnection implements DatabaseConnection {
  readonly #database: PgliteDatabase;

  constructor(database: PgliteDatabase) {
    this.#database = database;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.#database.query<R>(compiledQuery.sql, [...compiledQuery.parameters], { parsers: PARSERS });
    return {
      rows: result.rows,
      ...(result.affectedRows === undefined ? {} : { numAffectedRows: BigInt(result.affectedRows) }),
    };
  }

  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('the PGlite dialect does not stream query results; page with limit instead');
  }
}

/** A FIFO lock: waiters get the connection in arrival order. */
class ConnectionMutex {
  #held = false;
  readonly #waiters: (() => void)[] = [];

  lock(): Promise<void> {
    if (!this.#held) {
      this.#held = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  unlock(): void {
    const next = this.#waiters.shift();
    if (next === undefined) this.#held = false;
    else next();
  }
}
