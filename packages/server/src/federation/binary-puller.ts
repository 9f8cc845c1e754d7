/**
 * Binaries of a federated repository travel apart from its events (DESIGN §5): a received
 * deploy names a sha256 this site may not hold yet. The puller fetches such binaries by
 * sha256 from the members (the deploying site first), in the background, a bounded number at
 * a time, retrying with capped backoff; a download of one still missing fetches it at once.
 * What is still missing is kept in SQL (federation_pending_binaries, written by
 * PendingBinariesProjection in the append transaction) and counted in the status.
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { isStrataError, StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import { FEDERATION_BLOB_PATH, type PendingBinary, type SignedPeerClient } from '@strata/federation';

export interface BinaryPullerOptions {
  readonly blobs: BlobStore;
  readonly client: SignedPeerClient;
  /** Where to ask for a repository's binaries: base URLs, the preferred (origin's) first. */
  readonly sourcesOf: (repoKey: string, origin: string) => readonly string[];
  readonly persist: {
    remove(sha256: string): Promise<void>;
  };
  readonly pullsConcurrentMax: number;
  readonly retryDelayBaseMs: number;
  readonly retryDelayMaxMs: number;
  readonly fetchTimeoutMs: number;
  readonly onError: (message: string, error: unknown) => void;
}

interface PendingEntry extends PendingBinary {
  attempt: number;
  queued: boolean;
  retryTimer: NodeJS.Timeout | null;
  lastError: string | null;
}

const SHA256_PATTERN = /^[0-9a-f]{64}$/;

export class BinaryPuller {
  readonly #options: BinaryPullerOptions;
  readonly #pending = new Map<string, PendingEntry>();
  readonly #queue: string[] = [];
  readonly #inFlight = new Map<string, Promise<boolean>>();
  readonly #controller = new AbortController();
  /** Binaries that came inside a push and are being stored: not pulled meanwhile (count per sha256). */
  readonly #arriving = new Map<string, number>();
  #active = 0;
  #closed = false;

  constructor(options: BinaryPullerOptions) {
    this.#options = options;
  }

  /** Binaries left pending by a previous run. */
  resume(pending: readonly PendingBinary[]): void {
    for (const entry of pending) this.#track(entry);
    this.#pump();
  }

  /**
   * Deploys just received (already recorded as pending, in their append transaction): pulls
   * the binaries this site lacks and clears the rows of those it holds.
   */
  async consider(candidates: readonly PendingBinary[]): Promise<void> {
    const seen = new Set<string>();
    for (const candidate of candidates) {
      if (seen.has(candidate.sha256) || this.#pending.has(candidate.sha256) || this.#arriving.has(candidate.sha256)) continue;
      seen.add(candidate.sha256);
      if ((await this.#options.blobs.stat(candidate.sha256)) === undefined) this.#track(candidate);
      else await this.#options.persist.remove(candidate.sha256);
    }
    this.#pump();
  }

  /**
   * Binaries that arrived inside a push, stored by `store` in the background (off the path of
   * the batch's append): they are not pulled meanwhile; once stored their pending rows go, and
   * one that could not be stored (e.g. its content does not match its sha256) is pulled as usual.
   */
  markArriving(binaries: readonly PendingBinary[]): void {
    for (const binary of binaries) this.#arriving.set(binary.sha256, (this.#arriving.get(binary.sha256) ?? 0) + 1);
  }

  /** Ends `markArriving` without storing (the batch was refused). */
  unmarkArriving(binaries: readonly PendingBinary[]): void {
    for (const binary of binaries) this.#unmark(binary.sha256);
  }

  #unmark(sha256: string): void {
    const count = (this.#arriving.get(sha256) ?? 1) - 1;
    if (count <= 0) this.#arriving.delete(sha256);
    else this.#arriving.set(sha256, count);
  }

  /** After `markArriving` and the batch's append: stores them in the background (see above). */
  storeArriving(binaries: readonly PendingBinary[], store: (sha256: string) => Promise<void>): void {
    void Promise.all(
      binaries.map(async (binary) => {
        let stored = false;
        try {
          await store(binary.sha256);
          stored = true;
        } catch (error) {
          this.#options.onError(`binary ${binary.sha256} sent with a batch was not stored; pulling it instead`, error);
        }
        this.#unmark(binary.sha256);
        if (stored) await this.#options.persist.remove(binary.sha256).catch((error: unknown) => this.#options.onError('pending binary not cleared', error));
        else await this.consider([binary]);
      }),
    );
  }

  /** Pending binaries per (repository, origin). */
  pendingCount(repoKey: string, origin?: string): number {
    let count = 0;
    for (const entry of this.#pending.values()) if (entry.repoKey === repoKey && (origin === undefined || entry.origin === origin)) count++;
    return count;
  }

  isPending(sha256: string): boolean {
    return this.#pending.has(sha256);
  }

  /** Fetches a binary now (a download is waiting for it); true once it is stored here. */
  async fetchNow(repoKey: string, origin: string, sha256: string): Promise<boolean> {
    if (!SHA256_PATTERN.test(sha256)) return false;
    if ((await this.#options.blobs.stat(sha256)) !== undefined) return true;
    const entry = this.#pending.get(sha256) ?? this.#track({ sha256, repoKey, origin });
    return this.#pull(entry);
  }

  close(): void {
    this.#closed = true;
    this.#controller.abort(new StrataError('STRATA_ERR_FEDERATION_CLOSED'));
    for (const entry of this.#pending.values()) if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
  }

  #track(binary: PendingBinary): PendingEntry {
    const existing = this.#pending.get(binary.sha256);
    if (existing !== undefined) return existing;
    const entry: PendingEntry = { ...binary, attempt: 0, queued: false, retryTimer: null, lastError: null };
    this.#pending.set(binary.sha256, entry);
    this.#enqueue(entry);
    return entry;
  }

  #enqueue(entry: PendingEntry): void {
    if (entry.queued || this.#closed) return;
    entry.queued = true;
    this.#queue.push(entry.sha256);
  }

  #pump(): void {
    while (!this.#closed && this.#active < this.#options.pullsConcurrentMax && this.#queue.length > 0) {
      const sha256 = this.#queue.shift()!;
      const entry = this.#pending.get(sha256);
      if (entry === undefined) continue;
      entry.queued = false;
      this.#active++;
      void this.#pull(entry).finally(() => {
        this.#active--;
        this.#pump();
      });
    }
  }

  /** One attempt over every source (deduplicated with a pull already running). */
  #pull(entry: PendingEntry): Promise<boolean> {
    const running = this.#inFlight.get(entry.sha256);
    if (running !== undefined) return running;
    const attempt = this.#attempt(entry).finally(() => this.#inFlight.delete(entry.sha256));
    this.#inFlight.set(entry.sha256, attempt);
    return attempt;
  }

  async #attempt(entry: PendingEntry): Promise<boolean> {
    const errors: string[] = [];
    // Rows left by a previous run or a rebuild may name binaries that arrived meanwhile.
    if ((await this.#options.blobs.stat(entry.sha256).catch(() => undefined)) !== undefined) return this.#arrived(entry);
    for (const baseUrl of this.#options.sourcesOf(entry.repoKey, entry.origin)) {
      if (this.#closed) return false;
      try {
        if (await this.#fetchFrom(baseUrl, entry.sha256)) return this.#arrived(entry);
        errors.push(`${baseUrl}: not there`);
      } catch (error) {
        errors.push(`${baseUrl}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    entry.lastError = errors.length === 0 ? 'no member to ask' : errors.join('; ');
    this.#retryLater(entry);
    return false;
  }

  async #arrived(entry: PendingEntry): Promise<boolean> {
    this.#pending.delete(entry.sha256);
    if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
    await this.#options.persist.remove(entry.sha256).catch((error: unknown) => this.#options.onError('pending binary not cleared', error));
    return true;
  }

  async #fetchFrom(baseUrl: string, sha256: string): Promise<boolean> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#options.fetchTimeoutMs)]);
    const response = await this.#options.client.stream(baseUrl, `${FEDERATION_BLOB_PATH}/${sha256}`, signal);
    if (response.status === 404) {
      await response.body?.cancel();
      return false;
    }
    if (response.status !== 200 || response.body === null) {
      await response.body?.cancel();
      throw new Error(`HTTP ${response.status}`);
    }
    const declared = response.headers.get('content-length');
    try {
      // The content is checked against its sha256 while it is written: nothing else is kept.
      const lease = await this.#options.blobs.put(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), {
        expected: { sha256 },
        ...(declared === null ? {} : { expectedSize: Number(declared) }),
        signal,
      });
      lease.release();
      return true;
    } catch (error) {
      if (isStrataError(error)) throw new Error(`${error.code}: ${error.message}`);
      throw error;
    }
  }

  #retryLater(entry: PendingEntry): void {
    if (this.#closed || entry.retryTimer !== null) return;
    entry.attempt++;
    const delayMs = Math.min(this.#options.retryDelayMaxMs, this.#options.retryDelayBaseMs * 2 ** Math.min(entry.attempt - 1, 20));
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = null;
      if (!this.#pending.has(entry.sha256)) return;
      this.#enqueue(entry);
      this.#pump();
    }, Math.floor(delayMs / 2 + Math.random() * (delayMs / 2)));
    entry.retryTimer.unref();
  }
}
