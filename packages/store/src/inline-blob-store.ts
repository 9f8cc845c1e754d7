import * as crypto from 'node:crypto';
import { Readable } from 'node:stream';
import { sql, type Kysely } from 'kysely';
import { isStrataError, StrataError, type Checksums, type Clock, type StreamEvent } from '@strata/core';
import type { BlobLease, BlobStore, ByteRange, PutBlobOptions, StoredBlob } from './blob-store.ts';
import {
  BlobLeases,
  BlobRemovals,
  blobNotFound,
  checkByteRange,
  checkUploadComplete,
  checkUploadSize,
  checkWholeBlobs,
  putEach,
  readEach,
  SHA256,
  statEach,
} from './blob-store-support.ts';
import { blobGracePeriodMsDefault } from './fs-blob-store.ts';
import type { AppendWrites } from './projection.ts';
import { sqlText, type SqlText } from './sql-text.ts';
import type { StoreDatabase } from './schema.ts';

/**
 * Deploys up to this size keep their blob in the SQL database (docs/storage.md, "Inline
 * blobs"; the figures behind the choice are in docs/benchmarks.md, "Server HTTP").
 */
export const inlineBlobBytesMaxDefault = 64 * 1024;

/** Rows per page when GC walks the inline blobs. */
const collectPageRowsMax = 1000;

interface Staged {
  readonly bytes: Buffer;
  readonly storedAtMs: number;
  count: number;
}

/**
 * Blobs of deploys in flight, held in memory until the append of the event that references
 * them: given to the SQL event store as `appendWrites`, it adds to each append transaction
 * one insert of the staged blobs its new events reference (`data.sha256`), so a blob row
 * commits with its event or not at all — an event never points at a missing blob (DESIGN
 * §6), and a deploy whose append fails leaves no row. Filled by InlineBlobStore.
 */
export class InlineBlobStaging implements AppendWrites {
  readonly #staged = new Map<string, Staged>();

  statements(events: readonly StreamEvent[]): readonly SqlText[] {
    const rows = new Map<string, Staged>();
    for (const event of events) {
      const sha256 = (event.data as { readonly sha256?: unknown }).sha256;
      if (typeof sha256 !== 'string' || rows.has(sha256)) continue;
      const staged = this.#staged.get(sha256);
      if (staged !== undefined) rows.set(sha256, staged);
    }
    if (rows.size === 0) return [];
    // Sorted: two transactions inserting the same new blobs lock them in one order. A row that
    // is there already (the same content deployed before) is touched: its age restarts, so a
    // collection in another process (servers of one site share the table, not their staging)
    // that claimed it before this commit finds it young again and leaves it (collectGarbage).
    // Text (sql-text.ts), not Kysely's nodes: built in every round of deploys and publishes.
    // The bytes travel as base64 text decoded by PostgreSQL: a third shorter than bytea's
    // hex, and no element of the array literal needs escaping (PostgreSQL evaluated the
    // literal of a round's 8 tarballs of ~560 bytes in ~0.17–0.23 ms against ~0.23–0.31 ms).
    const keys = [...rows.keys()].sort();
    return [
      sqlText`insert into inline_blobs (sha256, bytes, stored_at_ms)
        select u.sha256, decode(u.bytes, 'base64'), u.stored_at_ms
          from unnest(${keys}::text[], ${keys.map((key) => rows.get(key)!.bytes.toString('base64'))}::text[], ${keys.map((key) => rows.get(key)!.storedAtMs)}::bigint[]) as u(sha256, bytes, stored_at_ms)
        on conflict (sha256) do update set stored_at_ms = greatest(inline_blobs.stored_at_ms, excluded.stored_at_ms)`,
    ];
  }

  /** The bytes of a staged blob, or undefined. */
  get(sha256: string): Buffer | undefined {
    return this.#staged.get(sha256)?.bytes;
  }

  has(sha256: string): boolean {
    return this.#staged.has(sha256);
  }

  /** Holds `bytes` until the returned function is called (once). */
  stage(sha256: string, bytes: Buffer, storedAtMs: number): () => void {
    const existing = this.#staged.get(sha256);
    if (existing !== undefined) existing.count++;
    else this.#staged.set(sha256, { bytes, storedAtMs, count: 1 });
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const staged = this.#staged.get(sha256);
      if (staged === undefined) return;
      if (--staged.count <= 0) this.#staged.delete(sha256);
    };
  }
}

export interface InlineBlobStoreOptions {
  /** Where every other blob lives (FsBlobStore): large deploys, and puts without `deferToAppend`. */
  readonly files: BlobStore;
  /** The event store's database (the `inline_blobs` table, migration 010). */
  readonly db: Kysely<StoreDatabase>;
  /** The same staging the SQL event store was given as `appendWrites`. */
  readonly staging: InlineBlobStaging;
  /** Largest blob kept inline; default inlineBlobBytesMaxDefault. 0: nothing is inlined. */
  readonly inlineBytesMax?: number;
  /** Ages for garbage collection; default the system clock. */
  readonly clock?: Clock;
}

/**
 * The BlobStore of a SQL-backed site: a put with `deferToAppend` (a deploy) of at most
 * `inlineBytesMax` bytes is hashed in memory and staged; the append of its event writes it
 * into the `inline_blobs` table in the same transaction, under that transaction's one commit
 * (no temp file, no file or directory fsync). Everything else goes to the file store. Reads,
 * stats, leases and GC look at staged blobs, then files, then the table, so callers see one
 * content-addressed store. Leases are per process, as for files; for inline rows the table
 * itself settles a collection racing a deploy of the same content in another process (a
 * deploy touches the row, a collection claims it, see collectGarbage). A checksum deploy of
 * an inline blob (a lease, no bytes staged) and file blobs are still protected in the
 * deploying process only: run GC there.
 */
export class InlineBlobStore implements BlobStore {
  readonly #files: BlobStore;
  readonly #db: Kysely<StoreDatabase>;
  readonly #staging: InlineBlobStaging;
  readonly #inlineBytesMax: number;
  readonly #clock: Clock;
  /** Leases on inline blobs (staged or stored rows). */
  readonly #leases = new BlobLeases();
  /** Inline blobs collectGarbage is removing right now; a put or lease of the same content waits. */
  readonly #removing = new BlobRemovals();

  constructor(options: InlineBlobStoreOptions) {
    this.#files = options.files;
    this.#db = options.db;
    this.#staging = options.staging;
    const inlineBytesMax = options.inlineBytesMax ?? inlineBlobBytesMaxDefault;
    if (!Number.isSafeInteger(inlineBytesMax) || inlineBytesMax < 0) throw new StrataError('STRATA_ERR_INVARIANT', 'inlineBytesMax must be a non-negative integer');
    this.#inlineBytesMax = inlineBytesMax;
    this.#clock = options.clock ?? { now: () => Date.now() };
  }

  async put(source: Readable | AsyncIterable<Uint8Array>, options: PutBlobOptions = {}): Promise<BlobLease> {
    if (options.deferToAppend !== true || this.#inlineBytesMax === 0 || (options.expectedSize !== undefined && options.expectedSize > this.#inlineBytesMax)) {
      return this.#files.put(source, options);
    }
    options.signal?.throwIfAborted();
    const iterator = (source as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
    const chunks: Buffer[] = [];
    let size = 0;
    for (;;) {
      const next = await iterator.next();
      if (next.done === true) break;
      options.signal?.throwIfAborted();
      const bytes = toBuffer(next.value);
      chunks.push(bytes);
      size += bytes.byteLength;
      // Too large to keep inline: the file store takes what was read and the rest, and checks it all.
      if (size > this.#inlineBytesMax) return this.#files.put(replay(chunks, iterator), options);
    }
    options.signal?.throwIfAborted();
    const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    const checksums = checkUpload(bytes, options);
    // Leased before it is staged: GC never sees it unleased before its event lands.
    const lease = this.#leases.acquire({ ...checksums, size });
    try {
      await this.#removing.settled(checksums.sha256);
    } catch (error) {
      lease.release();
      throw error;
    }
    return this.#withStaging(lease, bytes);
  }

  async stat(sha256: string, options: { signal?: AbortSignal } = {}): Promise<{ size: number } | undefined> {
    options.signal?.throwIfAborted();
    const staged = this.#staging.get(sha256);
    if (staged !== undefined) return { size: staged.byteLength };
    const file = await this.#files.stat(sha256, options);
    if (file !== undefined || !SHA256.test(sha256)) return file;
    const row = await sql<{ size: number }>`select octet_length(bytes) as size from inline_blobs where sha256 = ${sha256}`.execute(this.#db);
    const size = row.rows[0]?.size;
    return size === undefined ? undefined : { size: Number(size) };
  }

  async lease(sha256: string): Promise<BlobLease | undefined> {
    if (!SHA256.test(sha256)) return undefined;
    const staged = this.#staging.get(sha256);
    if (staged !== undefined) {
      // Staged again under this lease: the checksum deploy's own append writes it if the first one does not.
      const lease = this.#leases.acquire({ ...checksumsOf(staged), size: staged.byteLength });
      return this.#withStaging(lease, staged);
    }
    const file = await this.#files.lease(sha256);
    if (file !== undefined) return file;
    // Lease first (GC checks leases before removing), then look: no window in between.
    const lease = this.#leases.acquire({ sha256, sha1: '', md5: '', size: 0 });
    try {
      await this.#removing.settled(sha256);
      const bytes = await this.#readRow(sha256);
      if (bytes === undefined) {
        lease.release();
        return undefined;
      }
      return Object.assign(lease, { ...checksumsOf(bytes), size: bytes.byteLength });
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  async createReadStream(sha256: string, range?: ByteRange): Promise<Readable> {
    checkByteRange(range);
    const staged = this.#staging.get(sha256);
    if (staged === undefined) {
      try {
        return await this.#files.createReadStream(sha256, range);
      } catch (error) {
        if (!isStrataError(error, 'STRATA_ERR_BLOB_NOT_FOUND')) throw error;
      }
    }
    const bytes = staged ?? (await this.#readRow(sha256));
    if (bytes === undefined) throw blobNotFound(sha256);
    return Readable.from(range === undefined ? [bytes] : [bytes.subarray(range.start, range.end + 1)], { objectMode: false });
  }

  async read(sha256: string, options: { signal?: AbortSignal } = {}): Promise<Buffer> {
    const staged = this.#staging.get(sha256);
    if (staged !== undefined) return staged;
    try {
      return await this.#files.read(sha256, options);
    } catch (error) {
      if (!isStrataError(error, 'STRATA_ERR_BLOB_NOT_FOUND')) throw error;
    }
    options.signal?.throwIfAborted();
    const bytes = await this.#readRow(sha256);
    if (bytes === undefined) throw blobNotFound(sha256);
    return bytes;
  }

  /** Staged blobs, then the files (one stat each) and the table (one statement for all), together. */
  async statMany(sha256s: readonly string[], options: { signal?: AbortSignal } = {}): Promise<ReadonlyMap<string, { readonly size: number }>> {
    options.signal?.throwIfAborted();
    const found = new Map<string, { readonly size: number }>();
    const rest: string[] = [];
    for (const sha256 of new Set(sha256s)) {
      const staged = this.#staging.get(sha256);
      if (staged !== undefined) found.set(sha256, { size: staged.byteLength });
      else if (SHA256.test(sha256)) rest.push(sha256);
    }
    if (rest.length === 0) return found;
    const [files, rows] = await Promise.all([
      this.#files.statMany?.(rest, options) ?? statEach(this.#files, rest, options),
      sql<{ sha256: string; size: number }>`select sha256, octet_length(bytes) as size from inline_blobs where sha256 = any(${rest}::text[])`.execute(this.#db),
    ]);
    for (const [sha256, stat] of files) found.set(sha256, stat);
    for (const row of rows.rows) if (!found.has(row.sha256)) found.set(row.sha256, { size: Number(row.size) });
    return found;
  }

  /** Staged blobs, then the table (one statement for all: small blobs are rows), then the files for the rest. */
  async readMany(sha256s: readonly string[], options: { sizeBytesMax: number; signal?: AbortSignal }): Promise<ReadonlyMap<string, StoredBlob>> {
    options.signal?.throwIfAborted();
    const found = new Map<string, StoredBlob>();
    const rest: string[] = [];
    for (const sha256 of new Set(sha256s)) {
      const staged = this.#staging.get(sha256);
      if (staged !== undefined) found.set(sha256, staged.byteLength > options.sizeBytesMax ? { size: staged.byteLength } : { size: staged.byteLength, bytes: staged });
      else if (SHA256.test(sha256)) rest.push(sha256);
    }
    if (rest.length === 0) return found;
    const rows = await sql<{ sha256: string; bytes: Uint8Array }>`select sha256, bytes from inline_blobs where sha256 = any(${rest}::text[])`.execute(this.#db);
    for (const row of rows.rows) {
      const bytes = toBuffer(row.bytes);
      found.set(row.sha256, bytes.byteLength > options.sizeBytesMax ? { size: bytes.byteLength } : { size: bytes.byteLength, bytes });
    }
    const inFiles = rest.filter((sha256) => !found.has(sha256));
    if (inFiles.length === 0) return found;
    for (const [sha256, blob] of await (this.#files.readMany?.(inFiles, options) ?? readEach(this.#files, inFiles, options))) found.set(sha256, blob);
    return found;
  }

  /**
   * Blobs of at most `inlineBytesMax` bytes go into the table by one insert (committed before
   * this resolves: a kill -9 after it keeps them), larger ones into files. A row that is there
   * already is touched, as by a deploy (its age restarts; see collectGarbage).
   */
  async putMany(blobs: readonly { readonly sha256: string; readonly bytes: Uint8Array }[], options: { signal?: AbortSignal } = {}): Promise<void> {
    checkWholeBlobs(blobs);
    options.signal?.throwIfAborted();
    const inline = new Map<string, Buffer>();
    const files: { readonly sha256: string; readonly bytes: Uint8Array }[] = [];
    for (const blob of blobs) {
      if (this.#inlineBytesMax > 0 && blob.bytes.byteLength <= this.#inlineBytesMax) inline.set(blob.sha256, toBuffer(blob.bytes));
      else files.push(blob);
    }
    if (inline.size > 0) {
      // A collection removing the same content in this process ends first (as for a deploy).
      for (const sha256 of inline.keys()) await this.#removing.settled(sha256);
      const keys = [...inline.keys()].sort();
      const now = this.#clock.now();
      await sql`insert into inline_blobs (sha256, bytes, stored_at_ms)
        select * from unnest(${keys}::text[], ${keys.map((key) => inline.get(key)!)}::bytea[], ${keys.map(() => now)}::bigint[])
        on conflict (sha256) do update set stored_at_ms = greatest(inline_blobs.stored_at_ms, excluded.stored_at_ms)`.execute(this.#db);
    }
    if (files.length > 0) await (this.#files.putMany?.(files, options) ?? putEach(this.#files, files, options));
  }

  held(sha256: string): Buffer | undefined {
    return this.#staging.get(sha256);
  }

  async collectGarbage(options: {
    isReferenced(sha256: string): Promise<boolean>;
    gracePeriodMs?: number;
    onCollect?(sha256: string): Promise<void>;
    signal?: AbortSignal;
  }): Promise<{ removed: readonly string[]; failed?: readonly { sha256: string; error: unknown }[] }> {
    const files = await this.#files.collectGarbage(options);
    const removed = [...files.removed];
    const failed = [...(files.failed ?? [])];
    // A blob both a file and a row (a file from federation, a row from a deploy) is recorded once.
    const removedAsFile = new Set(files.removed);
    const oldest = this.#clock.now() - (options.gracePeriodMs ?? blobGracePeriodMsDefault);
    let after = '';
    for (;;) {
      const page = await sql<{ sha256: string }>`
        select sha256 from inline_blobs where sha256 > ${after} and stored_at_ms <= ${oldest}
        order by sha256 limit ${collectPageRowsMax}`.execute(this.#db);
      for (const { sha256 } of page.rows) {
        options.signal?.throwIfAborted();
        if (this.#leases.has(sha256) || this.#staging.has(sha256)) continue;
        if (await options.isReferenced(sha256)) continue;
        // Claimed in the table (its age set to -1) while still old: a deploy of the same content
        // in any process either committed before (the row is young again: not claimed), or
        // touches it after (the age becomes its own: the delete below finds nothing to delete),
        // or inserts it anew after the delete. The leases and staging checked here are this
        // process's only; the table is what other servers of the site share.
        const claimed = await sql<{ sha256: string }>`
          update inline_blobs set stored_at_ms = -1 where sha256 = ${sha256} and stored_at_ms <= ${oldest} returning sha256`.execute(this.#db);
        if (claimed.rows.length === 0) continue;
        // Checked and marked synchronously: a put or lease of this content waits for the removal.
        if (this.#leases.has(sha256) || this.#staging.has(sha256) || this.#removing.has(sha256)) continue;
        const onCollect = removedAsFile.has(sha256) ? undefined : options.onCollect;
        let deleted = false;
        const outcome = await this.#removing.remove(sha256, onCollect, async () => {
          const rows = await sql<{ sha256: string }>`delete from inline_blobs where sha256 = ${sha256} and stored_at_ms = -1 returning sha256`.execute(this.#db);
          deleted = rows.rows.length > 0;
        });
        if ('kept' in outcome) failed.push({ sha256, error: outcome.kept });
        else if (deleted && !removedAsFile.has(sha256)) removed.push(sha256);
      }
      if (page.rows.length < collectPageRowsMax) break;
      after = page.rows.at(-1)!.sha256;
    }
    return { removed, failed };
  }

  async #readRow(sha256: string): Promise<Buffer | undefined> {
    if (!SHA256.test(sha256)) return undefined;
    const result = await sql<{ bytes: Uint8Array }>`select bytes from inline_blobs where sha256 = ${sha256}`.execute(this.#db);
    const bytes = result.rows[0]?.bytes;
    return bytes === undefined ? undefined : toBuffer(bytes);
  }

  /** `lease` with `bytes` staged until it is released. */
  #withStaging(lease: BlobLease, bytes: Buffer): BlobLease {
    const unstage = this.#staging.stage(lease.sha256, bytes, this.#clock.now());
    const release = lease.release;
    return Object.assign(lease, {
      release: () => {
        unstage();
        release();
      },
    });
  }
}

/** The checks FsBlobStore makes while streaming, on a body held whole; returns its checksums. */
function checkUpload(bytes: Buffer, options: PutBlobOptions): Checksums {
  checkUploadSize(bytes.byteLength, options);
  const checksums = checksumsOf(bytes);
  checkUploadComplete(bytes.byteLength, checksums, options);
  return checksums;
}

function checksumsOf(bytes: Buffer): Checksums {
  return { sha256: hex('sha256', bytes), sha1: hex('sha1', bytes), md5: hex('md5', bytes) };
}

/** `crypto.hash` where Node has it (20.12 and later): one call, no Hash object per digest. */
const oneShotHash = typeof crypto.hash === 'function' ? (crypto.hash as (algorithm: string, data: Uint8Array, outputEncoding: 'hex') => string) : undefined;

function hex(algorithm: 'sha256' | 'sha1' | 'md5', bytes: Buffer): string {
  return oneShotHash === undefined ? crypto.createHash(algorithm).update(bytes).digest('hex') : oneShotHash(algorithm, bytes, 'hex');
}

/** The chunks already read, then the rest of `iterator`. */
async function* replay(chunks: readonly Buffer[], iterator: AsyncIterator<Uint8Array | string>): AsyncGenerator<Buffer> {
  yield* chunks;
  for (;;) {
    const next = await iterator.next();
    if (next.done === true) return;
    yield toBuffer(next.value);
  }
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
