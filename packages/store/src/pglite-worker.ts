import { Worker } from 'node:worker_threads';
import type { Kysely } from 'kysely';
import { StrataError } from '@strata/core';
import { PreparedAppendStatements, sendParts, type AppendSession, type AppendTransactions } from './append-transaction.ts';
import type { StoreDatabase } from './schema.ts';
import { int8AsText } from './pglite-dialect.ts';

/**
 * PGlite in a node:worker_threads Worker (pglite-worker-thread.mjs), so that its SQL — which
 * runs synchronously, in WebAssembly — no longer holds the main thread: HTTP parsing, auth,
 * hashing and file-system callbacks run while a statement does (docs/storage.md, "PGlite in a
 * worker thread"). This is the slice of PGlite the store calls (PgliteDialect's
 * PgliteDatabase, and COPY from and to `/dev/blob`), one message per call each way.
 *
 * @electric-sql/pglite's own `PGliteWorker` does not run here: it needs the browser's
 * `navigator.locks` and leader election over `BroadcastChannel` (Node 20 has no `navigator`).
 */
export interface PgliteWorkerStart {
  /** The data directory (already created from the template, see open-pglite.ts). */
  readonly dataDir?: string;
  /** For an in-memory database: the data directory as a tarball. */
  readonly loadDataDir?: Blob;
  readonly startParams: readonly string[];
}

export interface PgliteQueryOptions {
  /** Only the int8-as-text parser of pglite-dialect.ts crosses to the worker (functions do not). */
  readonly parsers?: Readonly<Record<number, (value: string, typeId: number) => unknown>>;
  /** The contents of `/dev/blob` for a COPY … FROM '/dev/blob'. */
  readonly blob?: Blob;
}

export interface PgliteQueryResult<T> {
  readonly rows: T[];
  readonly affectedRows?: number;
  /** The output of a COPY … TO '/dev/blob'. */
  readonly blob?: Blob;
}

/**
 * The worker's V8 young generation (MiB). Left to V8's default it grows under load and the
 * server's peak resident memory rose by 25-45 MiB over PGlite on the main thread; at 3 it
 * measured within the main-thread figures (docs/benchmarks.md, "Server HTTP", 2026-12-06
 * evening). PGlite's own memory is WebAssembly memory, outside this limit.
 */
export const pgliteWorkerYoungGenerationMb = 3;

/** Fields of PostgreSQL's error (pg-protocol's DatabaseError) carried back from the worker. */
const DATABASE_ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'where', 'schema', 'table', 'column', 'dataType', 'constraint', 'routine'] as const;
type DatabaseErrorField = (typeof DATABASE_ERROR_FIELDS)[number];

/**
 * An error PGlite raised in the worker, rebuilt on the main thread with PostgreSQL's fields:
 * `code` is the SQLSTATE (the store maps 23505 and friends from it, as for `pg` and PGlite).
 */
export class PgliteDatabaseError extends Error {
  readonly code?: string;
  readonly severity?: string;
  readonly detail?: string;
  readonly hint?: string;
  readonly position?: string;
  readonly where?: string;
  readonly schema?: string;
  readonly table?: string;
  readonly column?: string;
  readonly dataType?: string;
  readonly constraint?: string;
  readonly routine?: string;

  constructor(message: string, fields: Readonly<Partial<Record<DatabaseErrorField, string>>>, name: string) {
    super(message);
    this.name = name;
    for (const field of DATABASE_ERROR_FIELDS) {
      const value = fields[field];
      if (value !== undefined) Object.defineProperty(this, field, { value, enumerable: true });
    }
  }
}

interface DescribedError {
  readonly name: string;
  readonly message: string;
  readonly fields: Readonly<Partial<Record<DatabaseErrorField, string>>>;
}

/** Main thread → worker. */
type WorkerRequest =
  | { readonly kind: 'query'; readonly id: number; readonly sql: string; readonly params: unknown[]; readonly int8AsText: boolean; readonly blob?: Blob }
  | { readonly kind: 'exec'; readonly id: number; readonly sql: string; readonly int8AsText: boolean }
  | { readonly kind: 'close'; readonly id: number };

/** Worker → main thread. */
type WorkerMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'failed'; readonly error: DescribedError }
  | { readonly kind: 'result'; readonly id: number; readonly ok: true; readonly rows: unknown[]; readonly affectedRows?: number; readonly blob?: Blob }
  | { readonly kind: 'result'; readonly id: number; readonly ok: false; readonly error: DescribedError }
  | { readonly kind: 'results'; readonly id: number; readonly ok: true; readonly results: PgliteQueryResult<unknown>[] }
  | { readonly kind: 'results'; readonly id: number; readonly ok: false; readonly error: DescribedError };

interface Pending {
  resolve(result: PgliteQueryResult<unknown> | PgliteQueryResult<unknown>[]): void;
  reject(error: Error): void;
}

/**
 * The main thread's handle on the worker's PGlite. Calls may overlap: the worker hands them
 * to PGlite in arrival order, as PGlite's own queue would. The worker keeps the process
 * alive only while a call is in flight, so a store nobody closed does not hang the exit.
 */
export class PgliteWorkerDatabase {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;
  #exited: Promise<void>;
  #failure: Error | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    this.#exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.on('message', (message: WorkerMessage) => this.#receive(message));
    worker.on('error', (error) => this.#fail(error));
    worker.once('exit', (exitCode) => this.#fail(new Error(`the PGlite worker exited (code ${exitCode})`)));
  }

  /** Starts the worker and waits for its PGlite to be ready. */
  static async start(start: PgliteWorkerStart): Promise<PgliteWorkerDatabase> {
    const worker = new Worker(new URL(import.meta.resolve('@strata/store/pglite-worker-thread')), {
      workerData: { ...start, startParams: [...start.startParams] },
      resourceLimits: { maxYoungGenerationSizeMb: pgliteWorkerYoungGenerationMb },
    });
    const database = new PgliteWorkerDatabase(worker);
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: WorkerMessage): void => {
        if (message.kind === 'ready') {
          settle();
          resolve();
        } else if (message.kind === 'failed') {
          settle();
          reject(rebuildError(message.error));
        }
      };
      const onExit = (exitCode: number): void => {
        settle();
        reject(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `the PGlite worker exited while starting (code ${exitCode})`));
      };
      const onError = (error: Error): void => {
        settle();
        reject(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `the PGlite worker failed to start: ${error.message}`, undefined, { cause: error }));
      };
      const settle = (): void => {
        worker.off('message', onMessage);
        worker.off('exit', onExit);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.once('exit', onExit);
      worker.once('error', onError);
    });
    worker.unref();
    return database;
  }

  get closed(): boolean {
    return this.#closed;
  }

  query<T>(sql: string, params: unknown[] = [], options: PgliteQueryOptions = {}): Promise<PgliteQueryResult<T>> {
    let asText = false;
    for (const [typeId, parser] of Object.entries(options.parsers ?? {})) {
      if (Number(typeId) === 20 && parser === int8AsText) asText = true;
      else throw new StrataError('STRATA_ERR_INVARIANT', `a parser for type ${typeId} cannot cross to the PGlite worker`);
    }
    return this.#call({ kind: 'query', id: this.#nextId++, sql, params, int8AsText: asText, ...(options.blob === undefined ? {} : { blob: options.blob }) }) as Promise<
      PgliteQueryResult<T>
    >;
  }

  /**
   * Runs `sql`, one or more statements without parameters, as one simple query (PGlite's
   * `exec`; int8 as text, as the dialect reads it) and returns each statement's result. The
   * first error ends it and rejects (in a transaction: the sender rolls back).
   */
  exec(sql: string): Promise<PgliteQueryResult<Record<string, unknown>>[]> {
    return this.#call({ kind: 'exec', id: this.#nextId++, sql, int8AsText: true }) as Promise<PgliteQueryResult<Record<string, unknown>>[]>;
  }

  /** Closes PGlite in the worker (it writes its last pages) and waits for the worker to end. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#failure === undefined) {
        try {
          await this.#call({ kind: 'close', id: this.#nextId++ });
        } finally {
          this.#closed = true;
        }
      }
      this.#closed = true;
      // Held until the worker has ended: an unreferenced worker would let the process exit
      // with this promise (a top-level await, say) unsettled.
      this.#worker.ref();
      await this.#exited;
    })();
    return this.#closing;
  }

  #call(request: WorkerRequest): Promise<PgliteQueryResult<unknown> | PgliteQueryResult<unknown>[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the PGlite database is closed'));
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#worker.ref();
      this.#pending.set(request.id, { resolve, reject });
      this.#worker.postMessage(request);
    });
  }

  #receive(message: WorkerMessage): void {
    if (message.kind !== 'result' && message.kind !== 'results') return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (message.kind === 'results' && message.ok) {
      pending.resolve(message.results);
    } else if (message.kind === 'result' && message.ok) {
      pending.resolve({
        rows: message.rows,
        ...(message.affectedRows === undefined ? {} : { affectedRows: message.affectedRows }),
        ...(message.blob === undefined ? {} : { blob: message.blob }),
      });
    } else if (!message.ok) {
      pending.reject(rebuildError(message.error));
    }
  }

  #fail(error: Error): void {
    if (this.#failure !== undefined) return;
    const expected = this.#closed || this.#closing !== undefined;
    this.#failure = expected
      ? new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the PGlite database is closed')
      : new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `the PGlite worker failed: ${error.message}`, undefined, { cause: error });
    this.#closed = true;
    for (const pending of this.#pending.values()) pending.reject(this.#failure);
    this.#pending.clear();
    this.#worker.unref();
  }
}

function rebuildError(described: DescribedError): PgliteDatabaseError {
  return new PgliteDatabaseError(described.message, described.fields, described.name);
}

/**
 * Append transactions on the worker's PGlite (see AppendTransactions), shaped as on PostgreSQL
 * (pgAppendTransactions): each `send` is one `exec` — one simple query holding `begin` with
 * the first statements and `commit` with the last, parameters inlined as literals — and the
 * hot statements are prepared once in PGlite's session and sent as `EXECUTE name(…)`. A
 * statement sent with PGlite's `query` costs six passes into PostgreSQL's WebAssembly
 * (parse, describe, bind, describe, execute, sync), its parse and plan every time, and its
 * parameters serialised by PGlite's JavaScript; an append batch here costs two passes and
 * two messages between the threads. The single connection is held through `db` for the
 * whole transaction, so nothing else lands inside it.
 */
export function pgliteWorkerAppendTransactions(db: Kysely<StoreDatabase>, database: PgliteWorkerDatabase, options: { readonly prepareAfter?: number } = {}): AppendTransactions {
  const statements = new PreparedAppendStatements(options.prepareAfter ?? 3);
  /** The names prepared in PGlite's one session. */
  const prepared = new Set<string>();
  return {
    run: (work) =>
      db.connection().execute(async (connection) => {
        let begun = false;
        let finished = false;
        /** Hot statements sent inlined in this transaction, to prepare after it. */
        const toPrepare = new Map<string, string>();
        const session: AppendSession = {
          db: connection,
          async send(sent, options = {}) {
            if (finished) throw new StrataError('STRATA_ERR_INVARIANT', 'a statement sent after the append transaction committed');
            const texts = sent.map((statement) => statements.text(statement, prepared, toPrepare));
            // No key reads' settings (AppendSendOptions.keyReads): PGlite has no autovacuum, its
            // tables are never analysed small, and its probes plan as index scans at any size.
            const { parts, results: positions } = sendParts(texts, !begun, { commit: options.commit === true });
            begun = true;
            if (parts.length === 0) return [];
            const results = await database.exec(parts.join(';\n'));
            if (results.length !== parts.length) {
              throw new StrataError('STRATA_ERR_INVARIANT', `expected ${parts.length} results from the append statements, got ${results.length}`);
            }
            // A statement that fails rejects the exec (the rest are skipped): a commit that ran committed.
            if (options.commit === true) finished = true;
            return positions.map((position) => results[position]!.rows);
          },
          async copyIn(statement, data) {
            if (!begun || finished) throw new StrataError('STRATA_ERR_INVARIANT', 'COPY outside the open append transaction');
            await database.query(statement(`'/dev/blob'`), [], { blob: new Blob(data as Uint8Array<ArrayBuffer>[]) });
          },
        };
        try {
          const result = await work(session);
          if (begun && !finished) await session.send([], { commit: true });
          if (toPrepare.size > 0) await statements.prepare((text) => database.exec(text), prepared, toPrepare).catch(() => undefined);
          return result;
        } catch (error) {
          if (begun && !finished) await database.query('rollback').catch(() => undefined);
          throw error;
        }
      }),
  };
}
