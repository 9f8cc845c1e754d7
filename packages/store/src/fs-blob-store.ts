import { createHash, randomUUID } from 'node:crypto';
import { constants, createReadStream as createFileReadStream, open as openFile, stat as statFile, type Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Checksums, Clock } from '@strata/core';
import type { BlobLease, BlobStore, ByteRange, PutBlobOptions, StoredBlob } from './blob-store.ts';
import { BlobLeases, BlobRemovals, blobNotFound, checkByteRange, checkUploadComplete, checkUploadSize, putEach, readEach, SHA256 } from './blob-store-support.ts';

export interface FsBlobStoreOptions {
  /** Blobs live under `<root>/blobs/ab/cd/<sha256>`, uploads in progress under `<root>/tmp`. */
  readonly root: string;
  /** Ages for garbage collection; default the system clock. */
  readonly clock?: Clock;
  /**
   * Fsync each blob and its directory before a put resolves (default true). False where the
   * events that name blobs are not fsynced either (PGlite, DESIGN §6): a killed process still
   * loses nothing — the rename is atomic and the OS holds the pages — and a power cut could
   * lose the event as well as the blob.
   */
  readonly syncWrites?: boolean;
}

/** Blobs (and abandoned temp files) younger than this survive collectGarbage by default. */
export const blobGracePeriodMsDefault = 15 * 60 * 1000;

/**
 * Content-addressed blobs on the local filesystem (DESIGN §6). A blob becomes visible only
 * complete and verified: it is written to a temp file while hashed, checked, fsynced, and
 * renamed into place, and the temp file is removed on any failure. A lease, taken before
 * the rename, keeps collectGarbage away until the event that references the blob is
 * appended. Leases are per process: run GC in the process that deploys.
 */
export class FsBlobStore implements BlobStore {
  readonly #blobsDir: string;
  readonly #tmpDir: string;
  readonly #clock: Clock;
  readonly #syncWrites: boolean;
  readonly #leases = new BlobLeases();
  /** Blobs collectGarbage is removing right now; a put of the same content waits for it. */
  readonly #removing = new BlobRemovals();

  constructor(options: FsBlobStoreOptions) {
    this.#blobsDir = join(options.root, 'blobs');
    this.#tmpDir = join(options.root, 'tmp');
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#syncWrites = options.syncWrites ?? true;
  }

  async put(source: Readable | AsyncIterable<Uint8Array>, options: PutBlobOptions = {}): Promise<BlobLease> {
    options.signal?.throwIfAborted();
    const temporary = join(this.#tmpDir, `${randomUUID()}.part`);
    let handle: FileHandle | undefined;
    let lease: BlobLease | undefined;
    try {
      // Directories are created when missing, not before every put: each file-system call is
      // a threadpool round trip, and on PGlite each one waits for the main thread.
      handle = await withDirectory(this.#tmpDir, () => open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644));
      const sha256 = createHash('sha256');
      const sha1 = createHash('sha1');
      const md5 = createHash('md5');
      let size = 0;
      for await (const chunk of source as AsyncIterable<Uint8Array | string>) {
        options.signal?.throwIfAborted();
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        size += bytes.byteLength;
        checkUploadSize(size, options);
        sha256.update(bytes);
        sha1.update(bytes);
        md5.update(bytes);
        await writeAll(handle, bytes);
      }
      options.signal?.throwIfAborted();
      const checksums: Checksums = { sha256: sha256.digest('hex'), sha1: sha1.digest('hex'), md5: md5.digest('hex') };
      checkUploadComplete(size, checksums, options);
      if (this.#syncWrites) await handle.sync();
      await handle.close();
      handle = undefined;

      // Lease before the blob is visible, so GC can never see it unleased before the event lands.
      lease = this.#leases.acquire({ ...checksums, size });
      await this.#removing.settled(checksums.sha256);
      const directory = this.#directoryOf(checksums.sha256);
      // Same name, same content: whichever concurrent put renames last wins, harmlessly.
      await withDirectory(directory, () => rename(temporary, join(directory, checksums.sha256)));
      if (this.#syncWrites) await syncDirectory(directory);
      return lease;
    } catch (error) {
      lease?.release();
      await handle?.close().catch(() => undefined);
      await rm(temporary, { force: true });
      throw error;
    }
  }

  async stat(sha256: string, options: { signal?: AbortSignal } = {}): Promise<{ size: number } | undefined> {
    options.signal?.throwIfAborted();
    const stats = await this.#statBlob(sha256);
    return stats === undefined ? undefined : { size: stats.size };
  }

  async lease(sha256: string): Promise<BlobLease | undefined> {
    if (!SHA256.test(sha256)) return undefined;
    // Lease first (GC checks leases before removing), then look: no window in between.
    const lease = this.#leases.acquire({ sha256, sha1: '', md5: '', size: 0 });
    try {
      await this.#removing.settled(sha256);
      const path = this.#pathOf(sha256);
      const sha1 = createHash('sha1');
      const md5 = createHash('md5');
      let size = 0;
      let handle: FileHandle;
      try {
        handle = await open(path, 'r');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          lease.release();
          return undefined;
        }
        throw error;
      }
      try {
        for await (const chunk of handle.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
          size += chunk.byteLength;
          sha1.update(chunk);
          md5.update(chunk);
        }
      } finally {
        await handle.close();
      }
      return Object.assign(lease, { sha1: sha1.digest('hex'), md5: md5.digest('hex'), size });
    } catch (error) {
      lease.release();
      throw error;
    }
  }

  /**
   * On a plain file descriptor (fs.open with a callback), not a FileHandle: a FileHandle's
   * stream reads through the promise API, and streaming 1 MiB downloads that way measured
   * about a fifth slower and costlier in CPU than the callback-based stream (docs/benchmarks.md,
   * "Server HTTP", put4). Opened before the stream is returned, so a missing blob is still
   * refused before a response starts; the stream closes the descriptor when it ends or is destroyed.
   */
  async createReadStream(sha256: string, range?: ByteRange): Promise<Readable> {
    checkByteRange(range);
    if (!SHA256.test(sha256)) throw blobNotFound(sha256);
    const path = this.#pathOf(sha256);
    const fd = await new Promise<number>((resolve, reject) =>
      openFile(path, 'r', (error, opened) => {
        if (error === null) return resolve(opened);
        reject(error.code === 'ENOENT' ? blobNotFound(sha256) : error);
      }),
    );
    return createFileReadStream(path, { fd, ...(range === undefined ? {} : { start: range.start, end: range.end }) });
  }

  async read(sha256: string, options: { signal?: AbortSignal } = {}): Promise<Buffer> {
    if (!SHA256.test(sha256)) throw blobNotFound(sha256);
    try {
      return await readFile(this.#pathOf(sha256), options.signal === undefined ? {} : { signal: options.signal });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw blobNotFound(sha256);
      throw error;
    }
  }

  /**
   * One `stat` per blob, run together, through the callback API: a received batch's binaries
   * are mostly not here yet, and a missing file costs the promise API a rejected promise and an
   * Error with its stack per blob — measured 55-78 µs of CPU each against 14-22 µs this way
   * (docs/benchmarks.md, Federation, seventh pass).
   */
  async statMany(sha256s: readonly string[], options: { signal?: AbortSignal } = {}): Promise<ReadonlyMap<string, { readonly size: number }>> {
    options.signal?.throwIfAborted();
    const found = new Map<string, { readonly size: number }>();
    await Promise.all(
      [...new Set(sha256s)].map((sha256) =>
        SHA256.test(sha256)
          ? new Promise<void>((resolve, reject) =>
              statFile(this.#pathOf(sha256), (error, stats) => {
                if (error === null) {
                  found.set(sha256, { size: stats.size });
                  resolve();
                } else if (error.code === 'ENOENT') resolve();
                else reject(error);
              }),
            )
          : undefined,
      ),
    );
    return found;
  }

  readMany(sha256s: readonly string[], options: { sizeBytesMax: number; signal?: AbortSignal }): Promise<ReadonlyMap<string, StoredBlob>> {
    return readEach(this, sha256s, options);
  }

  putMany(blobs: readonly { readonly sha256: string; readonly bytes: Uint8Array }[], options: { signal?: AbortSignal } = {}): Promise<void> {
    return putEach(this, blobs, options);
  }

  async collectGarbage(options: {
    isReferenced(sha256: string): Promise<boolean>;
    gracePeriodMs?: number;
    onCollect?(sha256: string): Promise<void>;
    signal?: AbortSignal;
  }): Promise<{ removed: readonly string[]; failed?: readonly { sha256: string; error: unknown }[] }> {
    const gracePeriodMs = options.gracePeriodMs ?? blobGracePeriodMsDefault;
    const oldest = this.#clock.now() - gracePeriodMs;
    const removed: string[] = [];
    const failed: { sha256: string; error: unknown }[] = [];
    for await (const [sha256, path] of this.#listBlobs()) {
      options.signal?.throwIfAborted();
      if (this.#leases.has(sha256)) continue;
      const stats = await stat(path).catch(() => undefined);
      if (stats === undefined || stats.mtimeMs > oldest) continue;
      if (await options.isReferenced(sha256)) continue;
      // Checked and marked synchronously: a put or lease taken from here on waits for the removal.
      if (this.#leases.has(sha256) || this.#removing.has(sha256)) continue;
      const outcome = await this.#removing.remove(sha256, options.onCollect, () =>
        unlink(path).then(
          () => undefined,
          (error: NodeJS.ErrnoException) => {
            if (error.code !== 'ENOENT') throw error;
          },
        ),
      );
      if ('kept' in outcome) failed.push({ sha256, error: outcome.kept });
      else removed.push(sha256);
    }
    await this.#removeAbandonedUploads(oldest);
    return { removed, failed };
  }

  /** Temp files of uploads that died with their process. */
  async #removeAbandonedUploads(oldest: number): Promise<void> {
    const names = await readdir(this.#tmpDir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(this.#tmpDir, name);
      const stats = await stat(path).catch(() => undefined);
      if (stats !== undefined && stats.mtimeMs <= oldest) await rm(path, { force: true });
    }
  }

  async *#listBlobs(): AsyncGenerator<[string, string]> {
    for (const first of await listDirectory(this.#blobsDir)) {
      for (const second of await listDirectory(join(this.#blobsDir, first))) {
        const directory = join(this.#blobsDir, first, second);
        for (const name of await listDirectory(directory)) {
          if (SHA256.test(name) && name.startsWith(first + second)) yield [name, join(directory, name)];
        }
      }
    }
  }

  async #statBlob(sha256: string): Promise<Stats | undefined> {
    if (!SHA256.test(sha256)) return undefined;
    try {
      return await stat(this.#pathOf(sha256));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  #directoryOf(sha256: string): string {
    return join(this.#blobsDir, sha256.slice(0, 2), sha256.slice(2, 4));
  }

  #pathOf(sha256: string): string {
    return join(this.#directoryOf(sha256), sha256);
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

/** Runs `operation`; when it fails with ENOENT, creates `directory` and runs it once more. */
async function withDirectory<T>(directory: string, operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(directory, { recursive: true });
    return operation();
  }
}

/** Makes a rename durable: the directory entry is on disk, not only the file's bytes. */
async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function listDirectory(directory: string): Promise<string[]> {
  try {
    return await readdir(directory);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
