import type { DownloadCounter, DownloadStats } from './ports.ts';

/** Pending counts of one repo/path, not yet written to the side table. */
export interface PendingDownloads {
  readonly repo: string;
  readonly path: string;
  count: number;
  lastDownloaded: number;
  lastDownloadedBy: string;
}

/** Where batched download counts go (the SQL side table in production). */
export interface DownloadStatsSink {
  add(batch: readonly PendingDownloads[]): Promise<void>;
  get(repo: string, path: string): Promise<DownloadStats | undefined>;
}

export class MemoryDownloadStatsSink implements DownloadStatsSink {
  readonly #rows = new Map<string, DownloadStats>();
  async add(batch: readonly PendingDownloads[]): Promise<void> {
    for (const pending of batch) {
      const key = `${pending.repo}\0${pending.path}`;
      const row = this.#rows.get(key);
      this.#rows.set(key, {
        downloadCount: (row?.downloadCount ?? 0) + pending.count,
        lastDownloaded: Math.max(row?.lastDownloaded ?? 0, pending.lastDownloaded),
        lastDownloadedBy: (row?.lastDownloaded ?? 0) > pending.lastDownloaded ? (row?.lastDownloadedBy ?? '') : pending.lastDownloadedBy,
      });
    }
  }
  async get(repo: string, path: string): Promise<DownloadStats | undefined> {
    return this.#rows.get(`${repo}\0${path}`);
  }
}

/**
 * Counts downloads in memory and writes them to the sink in batches (downloads are too hot
 * to be events or single-row writes). Reads add the pending counts, so `?stats` is exact
 * on this server; a crash loses at most one flush interval of counts.
 */
export class BatchingDownloadCounter implements DownloadCounter {
  readonly #sink: DownloadStatsSink;
  readonly #pendingEntriesMax: number;
  #pending = new Map<string, PendingDownloads>();
  /** The batch being written: still counted by `get` until the sink has it. */
  #writing = new Map<string, PendingDownloads>();
  #batchesWritten = 0;
  #flushing: Promise<void> = Promise.resolve();
  readonly #timer: NodeJS.Timeout | undefined;

  constructor(sink: DownloadStatsSink, options: { flushIntervalMs?: number; pendingEntriesMax?: number } = {}) {
    this.#sink = sink;
    this.#pendingEntriesMax = options.pendingEntriesMax ?? 10_000;
    const interval = options.flushIntervalMs ?? 1_000;
    this.#timer = interval > 0 ? setInterval(() => void this.flush().catch(() => undefined), interval) : undefined;
    this.#timer?.unref();
  }

  record(repo: string, path: string, user: string, at: number): void {
    const key = `${repo}\0${path}`;
    const pending = this.#pending.get(key);
    if (pending === undefined) {
      this.#pending.set(key, { repo, path, count: 1, lastDownloaded: at, lastDownloadedBy: user });
      if (this.#pending.size >= this.#pendingEntriesMax) void this.flush().catch(() => undefined);
      return;
    }
    pending.count += 1;
    if (at >= pending.lastDownloaded) {
      pending.lastDownloaded = at;
      pending.lastDownloadedBy = user;
    }
  }

  async get(repo: string, path: string): Promise<DownloadStats | undefined> {
    const key = `${repo}\0${path}`;
    let stored: DownloadStats | undefined;
    // Bounded: re-read while a batch finished writing during the read (it may or may not be in `stored`).
    for (let attempt = 0; attempt < 3; attempt++) {
      const written = this.#batchesWritten;
      stored = await this.#sink.get(repo, path);
      if (this.#batchesWritten === written) break;
    }
    let result = stored;
    for (const pending of [this.#writing.get(key), this.#pending.get(key)]) {
      if (pending === undefined) continue;
      const newer = pending.lastDownloaded >= (result?.lastDownloaded ?? 0);
      result = {
        downloadCount: (result?.downloadCount ?? 0) + pending.count,
        lastDownloaded: newer ? pending.lastDownloaded : (result?.lastDownloaded ?? 0),
        lastDownloadedBy: newer ? pending.lastDownloadedBy : (result?.lastDownloadedBy ?? ''),
      };
    }
    return result;
  }

  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(async () => {
      if (this.#pending.size === 0) return;
      const batch = [...this.#pending.values()];
      this.#writing = this.#pending;
      this.#pending = new Map();
      try {
        await this.#sink.add(batch);
        this.#writing = new Map();
        this.#batchesWritten += 1;
      } catch (error) {
        this.#writing = new Map();
        // Put the counts back so the next flush retries them.
        for (const pending of batch) {
          const key = `${pending.repo}\0${pending.path}`;
          const current = this.#pending.get(key);
          if (current === undefined) this.#pending.set(key, pending);
          else current.count += pending.count;
        }
        throw error;
      }
    });
    return this.#flushing;
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.flush();
  }
}
