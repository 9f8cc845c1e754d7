import type { RecordedEvent } from '@strata/core';
import { START_CHECKPOINT, type Checkpoint, type SubscribeOptions, type Subscription } from './event-store.ts';

export interface CheckpointedEvent {
  readonly event: RecordedEvent;
  readonly checkpoint: Checkpoint;
}

/** Reads up to `maxCount` events after `after`, each with the checkpoint just past it. */
export type ReadPage = (after: Checkpoint, maxCount: number) => Promise<readonly CheckpointedEvent[]>;

/** In-process wake-ups after a commit; other processes' commits are found by polling. */
export class CommitSignal {
  readonly #listeners = new Set<() => void>();

  notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export const subscribePollIntervalMsDefault = 50;

/**
 * A catch-up subscription that pages through the global order, `pageEventsMax` events at a
 * time (so memory stays bounded however far behind it starts), then polls. It ends when
 * closed, when its signal aborts, or when its store closes.
 */
export class PollingSubscription implements Subscription {
  readonly #readPage: ReadPage;
  readonly #commits: CommitSignal;
  readonly #pageEventsMax: number;
  readonly #pollIntervalMs: number;
  readonly #signal: AbortSignal | undefined;
  readonly #onClose: (subscription: PollingSubscription) => void;
  #checkpoint: Checkpoint;
  #closed = false;
  #wake: (() => void) | undefined;
  #iterating = false;

  constructor(
    readPage: ReadPage,
    commits: CommitSignal,
    options: SubscribeOptions & { pageEventsMax: number; onClose: (subscription: PollingSubscription) => void },
  ) {
    this.#readPage = readPage;
    this.#commits = commits;
    this.#pageEventsMax = options.pageEventsMax;
    this.#pollIntervalMs = options.pollIntervalMs ?? subscribePollIntervalMsDefault;
    this.#signal = options.signal;
    this.#checkpoint = options.after ?? START_CHECKPOINT;
    this.#onClose = options.onClose;
    this.#signal?.addEventListener('abort', this.#abort, { once: true });
  }

  /** The checkpoint after the last event handed out. */
  get checkpoint(): Checkpoint {
    return this.#checkpoint;
  }

  readonly #abort = (): void => {
    void this.close();
  };

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#signal?.removeEventListener('abort', this.#abort);
    this.#wake?.();
    this.#onClose(this);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<CheckpointedEvent> {
    if (this.#iterating) throw new Error('a subscription can be iterated only once');
    this.#iterating = true;
    try {
      while (!this.#closed && this.#signal?.aborted !== true) {
        // Listen before reading, so a commit that lands during the read is not missed.
        let committed = false;
        const stopListening = this.#commits.listen(() => {
          committed = true;
          this.#wake?.();
        });
        let page: readonly CheckpointedEvent[];
        try {
          page = await this.#readPage(this.#checkpoint, this.#pageEventsMax);
          for (const entry of page) {
            if (this.#closed) return;
            this.#checkpoint = entry.checkpoint;
            yield entry;
          }
          if (page.length === 0 && !committed && !this.#closed) await this.#sleep();
        } finally {
          stopListening();
        }
      }
    } finally {
      await this.close();
    }
  }

  #sleep(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.#pollIntervalMs);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }
}
