import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { StrataError, type Checksums } from '@strata/core';
import type { BlobLease, BlobStore, ByteRange, PutBlobOptions, StoredBlob } from './blob-store.ts';

/** What the BlobStore implementations share: address check, errors, upload checks, leases, removals. */

export const SHA256 = /^[0-9a-f]{64}$/;

export function blobNotFound(sha256: string): StrataError {
  return new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `blob ${sha256.slice(0, 80)} not found`, { sha256: sha256.slice(0, 80) });
}

export function checkByteRange(range: ByteRange | undefined): void {
  if (range !== undefined && !(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.end >= range.start)) {
    throw new RangeError(`invalid byte range ${range.start}-${range.end}`);
  }
}

/** The checks of an upload's size so far (after each chunk): over the limit, longer than declared. */
export function checkUploadSize(size: number, options: PutBlobOptions): void {
  if (options.sizeBytesMax !== undefined && size > options.sizeBytesMax) {
    throw new StrataError('STRATA_ERR_BLOB_TOO_LARGE', `upload exceeds ${options.sizeBytesMax} bytes`, { sizeBytesMax: options.sizeBytesMax });
  }
  if (options.expectedSize !== undefined && size > options.expectedSize) {
    throw new StrataError('STRATA_ERR_BLOB_INCOMPLETE', `upload is longer than its declared ${options.expectedSize} bytes`, {
      expectedSize: options.expectedSize,
    });
  }
}

/** The checks of a whole upload: not shorter than declared, the checksums the client sent. */
export function checkUploadComplete(size: number, checksums: Checksums, options: PutBlobOptions): void {
  if (options.expectedSize !== undefined && size < options.expectedSize) {
    throw new StrataError('STRATA_ERR_BLOB_INCOMPLETE', `upload ended after ${size} of ${options.expectedSize} bytes`, {
      size,
      expectedSize: options.expectedSize,
    });
  }
  for (const algorithm of ['sha256', 'sha1', 'md5'] as const) {
    const expected = options.expected?.[algorithm];
    if (expected !== undefined && expected.toLowerCase() !== checksums[algorithm]) {
      throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', `${algorithm} mismatch: expected ${expected}, got ${checksums[algorithm]}`, {
        algorithm,
        expected,
        actual: checksums[algorithm],
      });
    }
  }
}

/** Leases counted per blob: garbage collection keeps a blob while any lease on it is held. */
export class BlobLeases {
  readonly #counts = new Map<string, number>();

  has(sha256: string): boolean {
    return this.#counts.has(sha256);
  }

  /** A lease on `info.sha256`; releasing it more than once releases it once. */
  acquire(info: Checksums & { size: number }): BlobLease {
    const { sha256 } = info;
    this.#counts.set(sha256, (this.#counts.get(sha256) ?? 0) + 1);
    let released = false;
    return {
      ...info,
      release: () => {
        if (released) return;
        released = true;
        const count = (this.#counts.get(sha256) ?? 1) - 1;
        if (count <= 0) this.#counts.delete(sha256);
        else this.#counts.set(sha256, count);
      },
    };
  }
}

/** Garbage collection's removals in progress; a put or lease of the same content waits for them. */
export class BlobRemovals {
  readonly #removing = new Map<string, Promise<void>>();

  has(sha256: string): boolean {
    return this.#removing.has(sha256);
  }

  /** Settles when a removal of `sha256` in progress has ended (undefined: none is). */
  settled(sha256: string): Promise<void> | undefined {
    return this.#removing.get(sha256);
  }

  /**
   * Removes one collected blob: `onCollect` first — if it fails the blob is kept (the next
   * collection tries again) and its error returned — then `remove`, whose failure is thrown.
   * Marked as removing before this returns its promise, so a caller that checked leases and
   * `has` synchronously leaves no window for a new lease.
   */
  async remove(sha256: string, onCollect: ((sha256: string) => Promise<void>) | undefined, remove: () => Promise<void>): Promise<{ readonly kept?: unknown }> {
    const removal = (async (): Promise<{ readonly kept?: unknown }> => {
      if (onCollect !== undefined) {
        try {
          await onCollect(sha256);
        } catch (error) {
          return { kept: error };
        }
      }
      await remove();
      return {};
    })();
    this.#removing.set(
      sha256,
      removal.then(
        () => undefined,
        () => undefined,
      ),
    );
    try {
      return await removal;
    } finally {
      this.#removing.delete(sha256);
    }
  }
}

/** `putMany`'s check, before anything is written: every blob's bytes hash to its sha256. */
export function checkWholeBlobs(blobs: readonly { readonly sha256: string; readonly bytes: Uint8Array }[]): void {
  for (const { sha256, bytes } of blobs) {
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== sha256) {
      throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', `sha256 mismatch: expected ${sha256.slice(0, 80)}, got ${actual}`, {
        algorithm: 'sha256',
        expected: sha256.slice(0, 80),
        actual,
      });
    }
  }
}

/** `statMany` by one `stat` per blob (run together): for stores without a batch form. */
export async function statEach(store: Pick<BlobStore, 'stat'>, sha256s: readonly string[], options: { signal?: AbortSignal } = {}): Promise<Map<string, { readonly size: number }>> {
  const found = new Map<string, { readonly size: number }>();
  await Promise.all(
    [...new Set(sha256s)].map(async (sha256) => {
      const stat = await store.stat(sha256, options);
      if (stat !== undefined) found.set(sha256, { size: stat.size });
    }),
  );
  return found;
}

/** `readMany` by one `stat` and one `read` per blob (run together): for stores without a batch form. */
export async function readEach(
  store: Pick<BlobStore, 'stat' | 'read'>,
  sha256s: readonly string[],
  options: { sizeBytesMax: number; signal?: AbortSignal },
): Promise<Map<string, StoredBlob>> {
  const found = new Map<string, StoredBlob>();
  await Promise.all(
    [...new Set(sha256s)].map(async (sha256) => {
      const stat = await store.stat(sha256, options);
      if (stat === undefined) return;
      if (stat.size > options.sizeBytesMax) {
        found.set(sha256, { size: stat.size });
        return;
      }
      try {
        const bytes = await store.read(sha256, options);
        found.set(sha256, { size: bytes.byteLength, bytes });
      } catch (error) {
        // Collected between the stat and the read: absent.
        if (!(error instanceof StrataError && error.code === 'STRATA_ERR_BLOB_NOT_FOUND')) throw error;
      }
    }),
  );
  return found;
}

/** `putMany` by one `put` per blob (checked first, then run together): for stores without a batch form. */
export async function putEach(
  store: Pick<BlobStore, 'put'>,
  blobs: readonly { readonly sha256: string; readonly bytes: Uint8Array }[],
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  checkWholeBlobs(blobs);
  await Promise.all(
    blobs.map(async ({ sha256, bytes }) => {
      const lease = await store.put(Readable.from([bytes]), { expected: { sha256 }, expectedSize: bytes.byteLength, ...(options.signal === undefined ? {} : { signal: options.signal }) });
      lease.release();
    }),
  );
}
