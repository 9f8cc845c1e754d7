import { Kysely, PostgresDialect, sql } from 'kysely';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { CopyOut } from '../event-copy-reader.ts';
import type { StoreDatabase } from '../schema.ts';
import { CopyOutQuery } from './copy-out-stream.ts';
import { BINARY_COPY_HEADER, BINARY_COPY_TRAILER, BinaryCopyWriter, type BinaryCopySource } from './binary-copy.ts';
import { quoteIdentifier, type UnnestColumn } from './sql-values.ts';

/**
 * Writes rows into a table with COPY inside the current transaction; returns how many. Rows
 * are arrays in the order of `columns`; null and undefined are SQL NULL.
 */
export interface CopyRows {
  (table: string, columns: readonly UnnestColumn[], rows: Iterable<readonly unknown[]>): Promise<number>;
  /**
   * The same in the binary format, each row written field by field by `source` (no row
   * arrays): what a rebuild writes its million rows with.
   */
  binary?: (source: BinaryCopySource) => Promise<number>;
  /**
   * Rows already encoded in the binary format (no header or trailer; a row never spans two
   * chunks), as a rebuild's workers hand them over: one COPY into `table`.
   */
  encoded?: (table: string, columns: readonly UnnestColumn[], chunks: AsyncIterable<Uint8Array>) => Promise<void>;
  /**
   * A COPY … TO in the same transaction (`statement` gets the target: stdout, or PGlite's
   * '/dev/blob'), its output chunk by chunk (PGlite: one chunk): what a repository replay
   * reads the live rows with to compare them.
   */
  out?: (statement: (target: string) => string) => AsyncIterable<Uint8Array>;
}

/**
 * One transaction on one connection with COPY available in it: what a rebuild needs to swap
 * a projection's tables in bulk (plain batched INSERTs are several times slower).
 */
export interface BulkLoader {
  transaction<T>(work: (tx: Kysely<StoreDatabase>, copy: CopyRows) => Promise<T>): Promise<T>;
  /**
   * How many more `transaction`s may run at the same time, each on a connection of its own,
   * while one is open (PostgreSQL: the pool's size less one, at most 3). Absent or 0: one at
   * a time (PGlite has a single connection). A rebuild then writes its tables and builds
   * their indexes side by side in a shadow schema (rebuild-projections.ts).
   */
  readonly concurrentTransactionsMax?: number;
}

/** Connections a rebuild's side-by-side transactions use at most, besides its swap's. */
const concurrentTransactionsCap = 3;

/** maintenance_work_mem of a bulk transaction on PostgreSQL (index builds after a COPY). */
const indexBuildMemory = '256MB';

/** Bytes of COPY text handed over at a time (PostgreSQL: one write; PGlite: one COPY statement). */
const copyChunkBytesMax = 4 * 1024 * 1024;

/** The first buffer of a COPY's text, grown by doubling up to copyChunkBytesMax. */
const copyFirstBufferBytes = 64 * 1024;

/** A value in COPY's text format (tab-separated, `\N` for NULL, backslash escapes). */
function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return NEEDS_ESCAPE.test(text) ? text.replace(ESCAPED, (character) => ESCAPES[character]!) : text;
}

const NEEDS_ESCAPE = /[\\\t\n\r]/;
const ESCAPED = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/**
 * Writes `text` as UTF-8 at `at` (the caller made room); returns the end. Most fields are
 * short ASCII (stamps, ids, checksums, names): copying their code units in a loop costs less
 * than a call into Buffer.write each.
 */
function writeText(buffer: Buffer, at: number, text: string): number {
  const length = text.length;
  if (length > 64) return at + buffer.write(text, at, 'utf8');
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code >= 0x80) return at + buffer.write(text, at, 'utf8');
    buffer[at + index] = code;
  }
  return at + length;
}

/**
 * COPY text of rows, UTF-8 encoded straight into buffers of about copyChunkBytesMax bytes
 * (building one long string and encoding it cost twice as much). A buffer is never
 * written again once handed over; a row never spans two.
 */
export function* copyChunks(rows: Iterable<readonly unknown[]>, counter: { rows: number }): Generator<Buffer> {
  // The first buffer starts small and doubles while it fills, up to a whole chunk: an append's
  // COPY of a few thousand rows (a receiver's page, each of its projection tables) takes a
  // megabyte or two, and a fresh 4 MiB buffer per table per page was external memory the
  // garbage collector answered with full collections.
  let buffer = Buffer.allocUnsafe(copyFirstBufferBytes);
  let at = 0;
  for (const row of rows) {
    let rowStart = at;
    for (let index = 0; index < row.length; index++) {
      const text = copyField(row[index]);
      // UTF-8 takes at most 3 bytes per UTF-16 code unit; plus the tab and the newline.
      const need = 3 * text.length + 2;
      if (at + need > buffer.length && buffer.length < copyChunkBytesMax + 64 * 1024) {
        // Not handed over yet: grown in place of yielding.
        const grown = Buffer.allocUnsafe(Math.max(Math.min(2 * buffer.length, copyChunkBytesMax + 64 * 1024), at + need));
        buffer.copy(grown, 0, 0, at);
        buffer = grown;
      }
      if (at + need > buffer.length) {
        if (rowStart > 0) yield buffer.subarray(0, rowStart);
        const next = Buffer.allocUnsafe(Math.max(copyChunkBytesMax + 64 * 1024, at - rowStart + need));
        buffer.copy(next, 0, rowStart, at);
        at -= rowStart;
        rowStart = 0;
        buffer = next;
      }
      if (index > 0) buffer[at++] = 0x09;
      at = writeText(buffer, at, text);
    }
    buffer[at++] = 0x0a;
    counter.rows++;
    if (at >= copyChunkBytesMax) {
      yield buffer.subarray(0, at);
      buffer = Buffer.allocUnsafe(copyChunkBytesMax + 64 * 1024);
      at = 0;
    }
  }
  if (at > 0) yield buffer.subarray(0, at);
}

/**
 * The binary COPY data of `source`'s rows in chunks of about copyChunkBytesMax bytes; with
 * `framed`, the first chunk starts with the header and the last ends with the trailer (one
 * COPY for all chunks).
 */
function* binaryChunks(source: BinaryCopySource, out: BinaryCopyWriter, framed: boolean): Generator<Uint8Array> {
  if (framed) yield BINARY_COPY_HEADER;
  for (;;) {
    const more = source.writeRow(out);
    if (out.hasChunk || !more) yield* out.take(!more);
    if (!more) break;
  }
  if (framed) yield BINARY_COPY_TRAILER;
}

export function copyStatement(table: string, columns: readonly UnnestColumn[], source: string): string {
  const names = columns.map(([name]) => quoteIdentifier(name)).join(', ');
  return `copy ${quoteIdentifier(table)} (${names}) from ${source}`;
}

/**
 * PostgreSQL: takes one client from the pool for the whole transaction and streams COPY
 * text to it (pg-copy-streams), honouring backpressure; Kysely runs on the same client.
 */
export function postgresBulkLoader(pool: pg.Pool, poolConnectionsMax: number): BulkLoader {
  return {
    concurrentTransactionsMax: Math.max(0, Math.min(concurrentTransactionsCap, poolConnectionsMax - 1)),
    async transaction(work) {
      const client = await pool.connect();
      let failed: unknown;
      const db = new Kysely<StoreDatabase>({
        // The one client, never released by Kysely: it goes back to the pool below.
        dialect: new PostgresDialect({ pool: { connect: async () => ({ query: client.query.bind(client), release: () => {} }), end: async () => {} } as never }),
      });
      /** Streams `chunks` into one COPY statement, honouring backpressure. */
      const copyIn = async (statement: string, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>) => {
        const stream = client.query(copyFrom(statement));
        const finished = new Promise<void>((resolve, reject) => {
          stream.on('finish', resolve);
          stream.on('error', reject);
        });
        try {
          for await (const chunk of chunks) {
            if (!stream.write(chunk)) await Promise.race([new Promise((resolve) => stream.once('drain', resolve)), finished]);
          }
        } catch (error) {
          stream.destroy(error as Error);
          await finished.catch(() => undefined);
          throw error;
        }
        stream.end();
        await finished;
      };
      const copy: CopyRows = async (table, columns, rows) => {
        const counter = { rows: 0 };
        await copyIn(copyStatement(table, columns, 'stdin'), copyChunks(rows, counter));
        return counter.rows;
      };
      copy.binary = async (source) => {
        const out = new BinaryCopyWriter(copyChunkBytesMax);
        await copyIn(copyStatement(source.table, source.columns, 'stdin') + ' (format binary)', binaryChunks(source, out, true));
        return out.rows;
      };
      copy.out = async function* (statement) {
        yield* client.query(new CopyOutQuery(statement('stdout'))) as AsyncIterable<Buffer>;
      };
      copy.encoded = async (table, columns, chunks) => {
        await copyIn(
          copyStatement(table, columns, 'stdin') + ' (format binary)',
          (async function* () {
            yield BINARY_COPY_HEADER;
            yield* chunks;
            yield BINARY_COPY_TRAILER;
          })(),
        );
      };
      try {
        return await db.transaction().execute(async (tx) => {
          // Room for a rebuild's index builds (the default 64MB sorts the artifacts' primary
          // key on disk); transaction-local. Not on PGlite, which runs in a small heap.
          await sql`select set_config('maintenance_work_mem', ${indexBuildMemory}, true)`.execute(tx);
          return work(tx, copy);
        });
      } catch (error) {
        failed = error;
        throw error;
      } finally {
        await db.destroy();
        // A connection whose COPY broke midway is not handed to anyone else.
        client.release(failed instanceof Error ? failed : undefined);
      }
    },
  };
}

/** The slice of PGlite a COPY needs: a query with a blob standing for /dev/blob. */
export interface PgliteCopyDatabase {
  query(query: string, params?: unknown[], options?: { blob?: Blob }): Promise<{ readonly blob?: Blob }>;
}

/**
 * PGlite: the transaction runs on the Kysely instance (PGlite has one connection); COPY goes
 * straight to PGlite from /dev/blob, in the same session, so inside the same transaction.
 * One COPY per chunk keeps the blob, which PGlite copies into its memory, small.
 */
export function pgliteBulkLoader(pglite: PgliteCopyDatabase, db: Kysely<StoreDatabase>): BulkLoader {
  return {
    transaction(work) {
      const copy: CopyRows = async (table, columns, rows) => {
        const counter = { rows: 0 };
        const statement = copyStatement(table, columns, `'/dev/blob'`);
        for (const chunk of copyChunks(rows, counter)) await pglite.query(statement, [], { blob: new Blob([chunk]) });
        return counter.rows;
      };
      copy.binary = async (source) => {
        const out = new BinaryCopyWriter(copyChunkBytesMax);
        const statement = copyStatement(source.table, source.columns, `'/dev/blob'`) + ' (format binary)';
        // Rows never span chunks: each chunk is a whole COPY of its own.
        for (const chunk of binaryChunks(source, out, false)) {
          await pglite.query(statement, [], { blob: new Blob([BINARY_COPY_HEADER, chunk, BINARY_COPY_TRAILER]) });
        }
        return out.rows;
      };
      copy.out = async function* (statement) {
        const blob = (await pglite.query(statement(`'/dev/blob'`))).blob;
        if (blob === undefined) throw new Error('PGlite returned no blob for COPY TO /dev/blob');
        yield new Uint8Array(await blob.arrayBuffer());
      };
      copy.encoded = async (table, columns, chunks) => {
        const statement = copyStatement(table, columns, `'/dev/blob'`) + ' (format binary)';
        for await (const chunk of chunks) await pglite.query(statement, [], { blob: new Blob([BINARY_COPY_HEADER, chunk, BINARY_COPY_TRAILER]) });
      };
      return db.transaction().execute((tx) => work(tx, copy));
    },
  };
}

/**
 * PostgreSQL: a COPY … TO STDOUT on a client of its own, streamed chunk by chunk (the
 * database produces rows while the caller decodes; the protocol's framing taken out in place
 * by CopyOutQuery). A COPY abandoned midway (the caller
 * stopped reading, or an error) destroys its connection rather than hand it back busy.
 */
export function postgresCopyOut(pool: pg.Pool): CopyOut {
  return async function* copyOut(statement, signal, transaction) {
    signal?.throwIfAborted();
    const client = await pool.connect();
    let completed = false;
    try {
      if (transaction !== undefined) {
        await client.query('begin isolation level repeatable read read only');
        await client.query(`set transaction snapshot '${transaction.snapshot.replaceAll("'", "''")}'`);
        for (const setup of transaction.statements) await client.query(setup);
      }
      const stream = client.query(new CopyOutQuery(statement('stdout')));
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        signal?.throwIfAborted();
        yield chunk;
      }
      if (transaction !== undefined) await client.query('commit');
      completed = true;
    } finally {
      client.release(completed ? undefined : new Error('COPY abandoned'));
    }
  };
}

/**
 * PGlite: COPY … TO '/dev/blob' while holding the single connection (through Kysely, so it
 * never lands inside another caller's transaction); the whole output arrives as one blob,
 * so callers bound it with LIMIT.
 */
export function pgliteCopyOut(pglite: PgliteCopyDatabase, db: Kysely<StoreDatabase>): CopyOut {
  return async function* copyOut(statement, signal, transaction) {
    signal?.throwIfAborted();
    if (transaction !== undefined) throw new Error('PGlite has one connection: a COPY cannot import another transaction\'s snapshot');
    const blob = await db.connection().execute(async () => (await pglite.query(statement(`'/dev/blob'`))).blob);
    if (blob === undefined) throw new Error('PGlite returned no blob for COPY TO /dev/blob');
    yield new Uint8Array(await blob.arrayBuffer());
  };
}
