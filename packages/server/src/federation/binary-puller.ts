/**
 * Binaries of a federated repository travel apart from its events (DESIGN §5): a received
 * deploy names a sha256 this site may not hold yet. The puller fetches such binaries by
 * sha256 from the members (the deploying site first), in the background, a bounded number of
 * requests at a time, retrying with capped backoff; a download of one still missing fetches
 * it at once. What is still missing is kept in SQL (federation_pending_binaries, written by
 * PendingBinariesProjection in the append transaction) and counted in the status.
 *
 * Per batch, not per binary (docs/benchmarks.md, Federation, sixth pass): the binaries of a
 * received batch are looked up here by one `statMany` (one SQL statement for the inline
 * ones); binaries queued together for the same repository and origin are pulled by one signed
 * request (`POST …/federation/blobs`, blob-batch.ts in @strata/federation) and stored by one
 * `putMany` (small ones: one insert into the inline table); their pending rows go by the
 * batched delete. A member that does not know the batch route (404) is asked one binary at a
 * time on the single-blob route, as before; so is a binary too large for a batch.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { isStrataError, StrataError } from '@strata/core';
import { putEach, statEach, type BlobStore } from '@strata/store';
import {
  blobBatchReplyWireBytesMax,
  blobBatchShasMax,
  decodeBlobBatchReply,
  encodeBlobBatchRequest,
  FEDERATION_BLOB_PATH,
  FEDERATION_BLOBS_PATH,
  type BlobBatchEntry,
  type PendingBinary,
  type SignedPeerClient,
} from '@strata/federation';

export interface BinaryPullerOptions {
  readonly blobs: BlobStore;
  readonly client: SignedPeerClient;
  /** Where to ask for a repository's binaries: base URLs, the preferred (origin's) first. */
  readonly sourcesOf: (repoKey: string, origin: string) => readonly string[];
  readonly persist: {
    remove(sha256: string): Promise<void>;
  };
  /** Pull requests in flight at most (each asks for up to pullBatchShasMax binaries). */
  readonly pullsConcurrentMax: number;
  /** Binaries asked for in one request at most (default and upper bound: blobBatchShasMax). */
  readonly pullBatchShasMax?: number;
  readonly retryDelayBaseMs: number;
  readonly retryDelayMaxMs: number;
  readonly fetchTimeoutMs: number;
  readonly onError: (message: string, error: unknown) => void;
}

interface PendingEntry extends PendingBinary {
  attempt: number;
  queued: boolean;
  /** Looked up here and not found, with nothing tried since: the next attempt skips the lookup. */
  checked: boolean;
  retryTimer: NodeJS.Timeout | null;
  lastError: string | null;
}

const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** Requests of one batch: the binaries that arrived, by sha256. */
type Arrivals = ReadonlySet<string>;
/** A member's answer to a batch: its entries, or that it predates the batch route. */
type BatchReply = readonly BlobBatchEntry[] | 'no-batch-route';

export class BinaryPuller {
  readonly #options: BinaryPullerOptions;
  readonly #batchShasMax: number;
  readonly #pending = new Map<string, PendingEntry>();
  /** Queued sha256s per (repository, origin): the binaries one request may ask for together. */
  readonly #queues = new Map<string, string[]>();
  readonly #inFlight = new Map<string, Promise<boolean>>();
  readonly #controller = new AbortController();
  /** Binaries that came inside a push and are being stored: not pulled meanwhile (count per sha256). */
  readonly #arriving = new Map<string, number>();
  #active = 0;
  #closed = false;

  constructor(options: BinaryPullerOptions) {
    this.#options = options;
    this.#batchShasMax = Math.max(1, Math.min(blobBatchShasMax, options.pullBatchShasMax ?? blobBatchShasMax));
  }

  /** Binaries left pending by a previous run (looked up again, a batch at a time, before they are pulled). */
  resume(pending: readonly PendingBinary[]): void {
    for (const entry of pending) this.#track(entry, false);
    this.#pump();
  }

  /**
   * Deploys just received (already recorded as pending, in their append transaction): pulls
   * the binaries this site lacks and clears the rows of those it holds — looked up together.
   */
  async consider(candidates: readonly PendingBinary[]): Promise<void> {
    const fresh = new Map<string, PendingBinary>();
    for (const candidate of candidates) {
      if (fresh.has(candidate.sha256) || this.#pending.has(candidate.sha256) || this.#arriving.has(candidate.sha256)) continue;
      fresh.set(candidate.sha256, candidate);
    }
    if (fresh.size === 0) return;
    const held = await this.#statMany([...fresh.keys()]);
    const removals: Promise<void>[] = [];
    for (const [sha256, candidate] of fresh) {
      if (held.has(sha256)) removals.push(this.#options.persist.remove(sha256));
      else this.#track(candidate, true);
    }
    this.#pump();
    await Promise.all(removals);
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

  /**
   * After `markArriving` and the batch's append: stores them in the background (see above),
   * together — each checked against its sha256 first, then one `putMany` (small ones: one
   * insert into the inline table), then their pending rows go by the batched delete; one that
   * does not match, or a batch that could not be stored, is pulled as usual.
   */
  storeArriving(binaries: readonly (PendingBinary & { readonly bytes: Uint8Array })[]): void {
    if (binaries.length === 0) return;
    void (async () => {
      const matching: (PendingBinary & { readonly bytes: Uint8Array })[] = [];
      const pull: PendingBinary[] = [];
      for (const binary of binaries) {
        if (createHash('sha256').update(binary.bytes).digest('hex') === binary.sha256) matching.push(binary);
        else {
          this.#options.onError(`binary ${binary.sha256} sent with a batch does not match its sha256; pulling it instead`, undefined);
          pull.push(binary);
        }
      }
      let stored = false;
      try {
        if (matching.length > 0) {
          const blobs = matching.map((binary) => ({ sha256: binary.sha256, bytes: binary.bytes }));
          await (this.#options.blobs.putMany?.(blobs, { signal: this.#controller.signal }) ?? putEach(this.#options.blobs, blobs, { signal: this.#controller.signal }));
        }
        stored = true;
      } catch (error) {
        this.#options.onError(`${matching.length} binaries sent with a batch were not stored; pulling them instead`, error);
      }
      for (const binary of binaries) this.#unmark(binary.sha256);
      if (stored) {
        await Promise.all(matching.map((binary) => this.#options.persist.remove(binary.sha256).catch((error: unknown) => this.#options.onError('pending binary not cleared', error))));
      } else pull.push(...matching);
      if (pull.length > 0 && !this.#closed) await this.consider(pull.map(({ sha256, repoKey, origin }) => ({ sha256, repoKey, origin })));
    })().catch((error: unknown) => this.#options.onError('binaries sent with a batch', error));
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
    const running = this.#inFlight.get(sha256);
    if (running !== undefined && (await running)) return true;
    if ((await this.#options.blobs.stat(sha256)) !== undefined) return true;
    const entry = this.#pending.get(sha256) ?? this.#track({ sha256, repoKey, origin }, true);
    return this.#pullOne(entry);
  }

  close(): void {
    this.#closed = true;
    this.#controller.abort(new StrataError('STRATA_ERR_FEDERATION_CLOSED'));
    for (const entry of this.#pending.values()) if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
  }

  #track(binary: PendingBinary, checked: boolean): PendingEntry {
    const existing = this.#pending.get(binary.sha256);
    if (existing !== undefined) return existing;
    const entry: PendingEntry = { sha256: binary.sha256, repoKey: binary.repoKey, origin: binary.origin, attempt: 0, queued: false, checked, retryTimer: null, lastError: null };
    this.#pending.set(binary.sha256, entry);
    this.#enqueue(entry);
    return entry;
  }

  #enqueue(entry: PendingEntry): void {
    if (entry.queued || this.#closed) return;
    entry.queued = true;
    const group = `${entry.repoKey}\n${entry.origin}`;
    const queue = this.#queues.get(group);
    if (queue === undefined) this.#queues.set(group, [entry.sha256]);
    else queue.push(entry.sha256);
  }

  /** Starts requests while fewer than pullsConcurrentMax run: each takes what is queued for one (repository, origin), up to a batch. */
  #pump(): void {
    while (!this.#closed && this.#active < this.#options.pullsConcurrentMax && this.#queues.size > 0) {
      const [group, queue] = this.#queues.entries().next().value!;
      const taken = queue.splice(0, this.#batchShasMax);
      if (queue.length === 0) this.#queues.delete(group);
      const entries: PendingEntry[] = [];
      for (const sha256 of taken) {
        const entry = this.#pending.get(sha256);
        if (entry === undefined || !entry.queued) continue;
        entry.queued = false;
        if (this.#inFlight.has(sha256)) continue; // a download's pull of it runs: it is retried if that fails
        entries.push(entry);
      }
      if (entries.length === 0) continue;
      this.#active++;
      const batch = this.#pullBatch(entries).finally(() => {
        this.#active--;
        for (const entry of entries) this.#inFlight.delete(entry.sha256);
        this.#pump();
      });
      for (const entry of entries) this.#inFlight.set(entry.sha256, batch.then((arrived) => arrived.has(entry.sha256)));
    }
  }

  /** One attempt for a batch of one (repository, origin) over every source; resolves to what arrived. */
  async #pullBatch(entries: readonly PendingEntry[]): Promise<Arrivals> {
    const arrived = new Set<string>();
    const errors = new Map<string, string[]>();
    const noteError = (sha256: string, message: string) => {
      const list = errors.get(sha256);
      if (list === undefined) errors.set(sha256, [message]);
      else list.push(message);
    };
    let wanted = [...entries];
    try {
      // Rows left by a previous run, a rebuild or an earlier failed attempt may name binaries that arrived meanwhile.
      const unchecked = wanted.filter((entry) => !entry.checked);
      if (unchecked.length > 0) {
        const held = await this.#statMany(unchecked.map((entry) => entry.sha256));
        for (const entry of unchecked) if (held.has(entry.sha256)) arrived.add(entry.sha256);
        wanted = wanted.filter((entry) => !arrived.has(entry.sha256));
      }
      const deferred = new Set<string>();
      const first = entries[0]!;
      for (const baseUrl of this.#options.sourcesOf(first.repoKey, first.origin)) {
        if (this.#closed || wanted.length === 0) break;
        const stillWanted: PendingEntry[] = [];
        const shas = wanted.map((entry) => entry.sha256);
        let reply: BatchReply;
        try {
          reply = await this.#fetchBatchFrom(baseUrl, shas);
        } catch (error) {
          for (const sha256 of shas) noteError(sha256, `${baseUrl}: ${messageOf(error)}`);
          continue;
        }
        const alone: string[] = [];
        const found: { sha256: string; bytes: Uint8Array }[] = [];
        if (reply === 'no-batch-route') alone.push(...shas);
        else {
          for (const entry of reply) {
            if (entry.status === 'found') found.push(entry);
            else if (entry.status === 'too-large') alone.push(entry.sha256);
            else if (entry.status === 'deferred') deferred.add(entry.sha256);
            else noteError(entry.sha256, `${baseUrl}: not there`);
          }
        }
        if (found.length > 0) {
          try {
            await (this.#options.blobs.putMany?.(found, { signal: this.#controller.signal }) ?? putEach(this.#options.blobs, found, { signal: this.#controller.signal }));
            for (const blob of found) arrived.add(blob.sha256);
          } catch (error) {
            for (const blob of found) noteError(blob.sha256, `${baseUrl}: not stored: ${messageOf(error)}`);
          }
        }
        // Too large for a batch, or a member without the batch route: one request each, streamed.
        for (const sha256 of alone) {
          if (this.#closed) break;
          try {
            if (await this.#fetchFrom(baseUrl, sha256)) arrived.add(sha256);
            else noteError(sha256, `${baseUrl}: not there`);
          } catch (error) {
            noteError(sha256, `${baseUrl}: ${messageOf(error)}`);
          }
        }
        for (const entry of wanted) if (!arrived.has(entry.sha256) && !deferred.has(entry.sha256)) stillWanted.push(entry);
        wanted = stillWanted;
      }
      await Promise.all(entries.filter((entry) => arrived.has(entry.sha256)).map((entry) => this.#arrived(entry)));
      for (const entry of entries) {
        if (arrived.has(entry.sha256)) continue;
        if (deferred.has(entry.sha256) && !errors.has(entry.sha256)) {
          // The source's reply budget was spent: asked again at once, not a failure.
          this.#enqueue(entry);
          continue;
        }
        entry.checked = false;
        entry.lastError = errors.get(entry.sha256)?.join('; ') ?? 'no member to ask';
        this.#retryLater(entry);
      }
    } catch (error) {
      // The lookup itself failed (the database): every binary of the batch is tried again later.
      for (const entry of entries) {
        if (arrived.has(entry.sha256) || !this.#pending.has(entry.sha256)) continue;
        entry.checked = false;
        entry.lastError = messageOf(error);
        this.#retryLater(entry);
      }
    }
    return arrived;
  }

  /** One binary over every source, streamed on the single-blob route (a download waiting for it). */
  #pullOne(entry: PendingEntry): Promise<boolean> {
    const running = this.#inFlight.get(entry.sha256);
    if (running !== undefined) return running;
    const attempt = this.#attemptOne(entry).finally(() => this.#inFlight.delete(entry.sha256));
    this.#inFlight.set(entry.sha256, attempt);
    return attempt;
  }

  async #attemptOne(entry: PendingEntry): Promise<boolean> {
    const errors: string[] = [];
    for (const baseUrl of this.#options.sourcesOf(entry.repoKey, entry.origin)) {
      if (this.#closed) return false;
      try {
        if (await this.#fetchFrom(baseUrl, entry.sha256)) {
          await this.#arrived(entry);
          return true;
        }
        errors.push(`${baseUrl}: not there`);
      } catch (error) {
        errors.push(`${baseUrl}: ${messageOf(error)}`);
      }
    }
    entry.checked = false;
    entry.lastError = errors.length === 0 ? 'no member to ask' : errors.join('; ');
    this.#retryLater(entry);
    return false;
  }

  async #arrived(entry: PendingEntry): Promise<void> {
    this.#pending.delete(entry.sha256);
    if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
    await this.#options.persist.remove(entry.sha256).catch((error: unknown) => this.#options.onError('pending binary not cleared', error));
  }

  #statMany(sha256s: readonly string[]): Promise<ReadonlyMap<string, { readonly size: number }>> {
    const signal = this.#controller.signal;
    return this.#options.blobs.statMany?.(sha256s, { signal }) ?? statEach(this.#options.blobs, sha256s, { signal });
  }

  /** A batch request to one member: its entries (bytes checked), or 'no-batch-route' (a member that predates it). */
  async #fetchBatchFrom(baseUrl: string, sha256s: readonly string[]): Promise<BatchReply> {
    const signal = AbortSignal.any([this.#controller.signal, AbortSignal.timeout(this.#options.fetchTimeoutMs)]);
    const response = await this.#options.client.request(baseUrl, 'POST', FEDERATION_BLOBS_PATH, encodeBlobBatchRequest(sha256s), signal, blobBatchReplyWireBytesMax);
    if (response.status === 404 && !response.authentic) return 'no-batch-route';
    if (response.status !== 200) throw new Error(`HTTP ${response.status}`);
    if (!response.authentic) throw new Error('blob batch reply without a valid signature');
    // Refused whole (nothing stored) when malformed or when any bytes do not match their sha256.
    return decodeBlobBatchReply(response.body, sha256s);
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
    if (this.#closed || entry.retryTimer !== null || !this.#pending.has(entry.sha256)) return;
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

function messageOf(error: unknown): string {
  if (isStrataError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
