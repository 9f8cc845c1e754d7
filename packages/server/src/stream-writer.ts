import { invariant, isStrataError, StrataError } from '@strata/core';
import type { DomainEvent, EventMeta, NewEvent, RecordedEvent } from '@strata/core';
import type { EventStore } from '@strata/store';
import { readBatchEventsMax } from '@strata/store';
import type { IdGenerator, LocalHlc } from './ports.ts';

/**
 * A decider's pure halves (STYLE: Emmett's Decider). `decide` may be async because some
 * commands also consult projections (does this path exist?), but it never writes.
 */
export interface StreamFold<S> {
  initialState(): S;
  evolve(state: S, event: RecordedEvent): S;
}

export interface StreamSnapshot<S> {
  /** Revision of the last event folded, -1 when the stream is empty. */
  readonly revision: number;
  /** The highest originSeq this site produced in the stream (0 when none). */
  readonly originSeq: number;
  readonly state: S;
}

export type Decide<S, R> = (state: S) => Promise<Decision<R>> | Decision<R>;
export interface Decision<R> {
  readonly events: readonly DomainEvent[];
  readonly result: R;
}

export interface StreamWriterOptions {
  readonly siteId: string;
  readonly hlc: LocalHlc;
  readonly newId: IdGenerator;
  readonly appendRetriesMax: number;
  /** Streams whose folded state stays in memory (least recently used ones are dropped). */
  readonly streamsCachedMax?: number;
}

/**
 * Runs commands against one event stream: folds the stream's state (kept in memory and
 * caught up incrementally), calls `decide`, stamps the events (id, origin, gapless
 * originSeq, HLC, meta) and appends them with the expected revision. Commands on one stream
 * are serialised in this process; a conflict with another process re-reads and retries.
 */
export class StreamWriter<S> {
  readonly #store: EventStore;
  readonly #fold: StreamFold<S>;
  readonly #options: StreamWriterOptions;
  readonly #snapshots = new Map<string, StreamSnapshot<S>>();
  readonly #queues = new Map<string, Promise<unknown>>();
  readonly #streamsCachedMax: number;

  constructor(store: EventStore, fold: StreamFold<S>, options: StreamWriterOptions) {
    this.#store = store;
    this.#fold = fold;
    this.#options = options;
    this.#streamsCachedMax = options.streamsCachedMax ?? 10_000;
  }

  /** The stream's current folded state (caught up with the store). */
  async load(stream: string): Promise<StreamSnapshot<S>> {
    return this.#serialised(stream, () => this.#catchUp(stream));
  }

  async execute<R>(stream: string, meta: EventMeta, decide: Decide<S, R>): Promise<{ result: R; events: readonly RecordedEvent[] }> {
    return this.#serialised(stream, async () => {
      let snapshot = this.#snapshots.get(stream) ?? (await this.#catchUp(stream));
      for (let attempt = 0; ; attempt++) {
        const decision = await decide(snapshot.state);
        if (decision.events.length === 0) return { result: decision.result, events: [] };
        const stamped = decision.events.map((event, index): NewEvent => {
          const newEvent = {
            ...event,
            id: this.#options.newId(),
            origin: this.#options.siteId,
            originSeq: snapshot.originSeq + index + 1,
            hlc: this.#options.hlc.now(),
            meta,
          };
          return newEvent as NewEvent;
        });
        try {
          const appended = await this.#store.append(stream, stamped, {
            expectedRevision: snapshot.revision < 0 ? 'no_stream' : snapshot.revision,
          });
          invariant(appended.appendedCount === stamped.length, 'freshly generated event ids were reported as duplicates');
          let state = snapshot.state;
          for (const recorded of appended.events) state = this.#fold.evolve(state, recorded);
          this.#remember(stream, {
            revision: appended.nextRevision,
            originSeq: snapshot.originSeq + stamped.length,
            state,
          });
          return { result: decision.result, events: appended.events };
        } catch (error) {
          if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')) {
            // Unknown outcome (e.g. the store went away): forget the snapshot so the next command re-reads.
            this.#snapshots.delete(stream);
            throw error;
          }
          if (attempt + 1 >= this.#options.appendRetriesMax) {
            this.#snapshots.delete(stream);
            throw new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', `stream ${stream} kept changing; gave up after ${attempt + 1} attempts`);
          }
          snapshot = await this.#catchUp(stream);
        }
      }
    });
  }

  /** Reads events the snapshot lacks (all of them the first time) and folds them. */
  async #catchUp(stream: string): Promise<StreamSnapshot<S>> {
    let snapshot: StreamSnapshot<S> = this.#snapshots.get(stream) ?? {
      revision: -1,
      originSeq: 0,
      state: this.#fold.initialState(),
    };
    let { revision, originSeq, state } = snapshot;
    // Bounded: a stream of N events takes N / readBatchEventsMax reads, and each read is non-empty.
    for (;;) {
      const events = await this.#store.readStream(stream, { fromRevision: revision + 1, maxCount: readBatchEventsMax });
      for (const event of events) {
        invariant(event.revision === revision + 1, `stream ${stream} skipped from ${revision} to ${event.revision}`);
        revision = event.revision;
        if (event.origin === this.#options.siteId && event.originSeq > originSeq) originSeq = event.originSeq;
        state = this.#fold.evolve(state, event);
      }
      if (events.length < readBatchEventsMax) break;
    }
    snapshot = { revision, originSeq, state };
    this.#remember(stream, snapshot);
    return snapshot;
  }

  #remember(stream: string, snapshot: StreamSnapshot<S>): void {
    this.#snapshots.delete(stream);
    this.#snapshots.set(stream, snapshot);
    if (this.#snapshots.size > this.#streamsCachedMax) {
      const oldest = this.#snapshots.keys().next().value;
      if (oldest !== undefined) this.#snapshots.delete(oldest);
    }
  }

  async #serialised<T>(stream: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(stream) ?? Promise.resolve();
    const run = previous.then(task, task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(stream, settled);
    void settled.then(() => {
      if (this.#queues.get(stream) === settled) this.#queues.delete(stream);
    });
    return run;
  }
}
