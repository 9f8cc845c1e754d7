import type { Readable } from 'node:stream';
import type { Checksums } from '@strata/core';

export interface BlobInfo extends Checksums {
  readonly size: number;
}

export interface PutBlobOptions {
  /** Checksums the client declared; any mismatch → STRATA_ERR_BLOB_CHECKSUM_MISMATCH, nothing kept. */
  readonly expected?: Partial<Checksums>;
  /** Declared length (Content-Length); a shorter body → STRATA_ERR_BLOB_INCOMPLETE, nothing kept. */
  readonly expectedSize?: number;
  /** Default: no limit. A longer body → STRATA_ERR_BLOB_TOO_LARGE, nothing kept. */
  readonly sizeBytesMax?: number;
  readonly signal?: AbortSignal;
  /**
   * The caller appends an event referencing this blob (`data.sha256`) to the store's SQL
   * event store before it releases the lease (a deploy). A store may then keep a small blob
   * in memory and write it inside that append's transaction (InlineBlobStore: no file, no
   * fsync of its own); until the append commits the blob exists only under the lease, and
   * if the append never happens it is gone with the lease. Stores that do not inline ignore it.
   */
  readonly deferToAppend?: boolean;
}

/**
 * A blob that has been stored and is protected from GC until released. The caller appends
 * the event that references it, then releases the lease.
 */
export interface BlobLease extends BlobInfo {
  release(): void;
}

export interface ByteRange {
  /** Inclusive first byte. */
  readonly start: number;
  /** Inclusive last byte. */
  readonly end: number;
}

/** A blob found by `readMany`: its bytes when small enough. */
export interface StoredBlob {
  readonly size: number;
  readonly bytes?: Buffer;
}

/** Content-addressed binary storage, keyed by sha256 (DESIGN §6). */
export interface BlobStore {
  /**
   * Streams `source` into a temp file while hashing sha256/sha1/md5 in one pass, checks
   * the expectations, fsyncs, and renames it into place. Never buffers the whole body.
   */
  put(source: Readable | AsyncIterable<Uint8Array>, options?: PutBlobOptions): Promise<BlobLease>;
  /** Stat of a stored blob, or undefined. */
  stat(sha256: string, options?: { signal?: AbortSignal }): Promise<{ size: number } | undefined>;
  /** Leases an existing blob (checksum deploy) so GC cannot remove it before the event lands. */
  lease(sha256: string): Promise<BlobLease | undefined>;
  /** A stream of the blob's bytes (or a range). Throws STRATA_ERR_BLOB_NOT_FOUND if absent. */
  createReadStream(sha256: string, range?: ByteRange): Promise<Readable>;
  /** The whole blob in memory (for small blobs and caches). */
  read(sha256: string, options?: { signal?: AbortSignal }): Promise<Buffer>;
  /**
   * Removes blobs that `isReferenced` says are unreferenced, except leased ones and those
   * younger than `gracePeriodMs`. Returns what it removed.
   */
  /**
   * Optional batch forms, for callers that handle many small blobs at once (federation's
   * binary pulls: one SQL statement for a batch instead of one or two per blob). A caller
   * falls back to the single-blob methods above when a store lacks them.
   */
  /** Which of `sha256s` are stored here, with their sizes (absent ones are left out). */
  statMany?(sha256s: readonly string[], options?: { signal?: AbortSignal }): Promise<ReadonlyMap<string, { readonly size: number }>>;
  /**
   * The stored blobs among `sha256s`: the bytes of those of at most `sizeBytesMax` bytes, only
   * the size of larger ones; absent ones are left out.
   */
  readMany?(sha256s: readonly string[], options: { sizeBytesMax: number; signal?: AbortSignal }): Promise<ReadonlyMap<string, StoredBlob>>;
  /**
   * Stores whole blobs held in memory (e.g. pulled from a federation member). Every one is
   * checked against its sha256 before anything is written (a mismatch:
   * STRATA_ERR_BLOB_CHECKSUM_MISMATCH, nothing stored); once it resolves they survive kill -9.
   */
  putMany?(blobs: readonly { readonly sha256: string; readonly bytes: Uint8Array }[], options?: { signal?: AbortSignal }): Promise<void>;
  /** The bytes of a blob this process holds in memory right now, without I/O (a deploy's blob until its append commits), or undefined. */
  held?(sha256: string): Buffer | undefined;
  collectGarbage(options: {
    isReferenced(sha256: string): Promise<boolean>;
    gracePeriodMs?: number;
    /**
     * Called for each blob about to be removed, before it is (issue 8: the history records
     * the collection as an event first). If it throws, the blob stays.
     */
    onCollect?(sha256: string): Promise<void>;
    signal?: AbortSignal;
  }): Promise<{ removed: readonly string[]; failed?: readonly { sha256: string; error: unknown }[] }>;
}
