import { StrataError, type NewEvent, type RecordedEvent } from '@strata/core';
import {
  appendResult,
  duplicateInOtherStream,
  expectedRevisionConflict,
  prepareAppend,
  prepareAppendMany,
  recordEvent,
  type PreparedStreamAppend,
} from './append-preparation.ts';
import {
  START_CHECKPOINT,
  appendCondition,
  readBatchEventsMax,
  type AppendManyOptions,
  type AppendOptions,
  type AppendResult,
  type Checkpoint,
  type EventStore,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type SubscribeOptions,
  type StreamAppend,
  type Subscription,
} from './event-store.ts';
import { boundedReadCount } from './read-count.ts';
import type { PreparedEvent } from './append-preparation.ts';
import { CHAIN_GENESIS } from '@strata/core';
import { chainEvent, type StreamChainHeads } from './event-chaining.ts';
import { CommitSignal, PollingSubscription, type CheckpointedEvent } from './polling-subscription.ts';

/** A projection of the memory store, applied before an append resolves; if it throws, the append fails and stores nothing. */
export interface MemoryProjection {
  apply(events: readonly RecordedEvent[]): void | Promise<void>;
}

export interface MemoryEventStoreOptions {
  readonly projections?: readonly MemoryProjection[];
  /** Default and cap of readStream/readAll `maxCount`, and the page size of subscriptions. */
  readonly readBatchEventsMax?: number;
  /** This site's id: its events get the origin chain (see SqlEventStoreOptions.siteId). */
  readonly siteId?: string;
}

/** What the memory store keeps per event for tamper evidence (the SQL columns). */
export interface MemoryChainEntry {
  readonly prevHash: Uint8Array;
  readonly target: string | null;
}

/**
 * The event store in memory, with the semantics of the SQL store (the conformance suite
 * runs on both): same validation, expectations, idempotency and global order. Appends run
 * one at a time; checkpoints carry transactionId 0n.
 */
export class MemoryEventStore implements EventStore {
  readonly #projections: readonly MemoryProjection[];
  readonly #readBatchEventsMax: number;
  readonly #all: RecordedEvent[] = [];
  readonly #streams = new Map<string, RecordedEvent[]>();
  readonly #byId = new Map<string, RecordedEvent>();
  readonly #siteId: string | undefined;
  readonly #chainHeads = new Map<string, StreamChainHeads>();
  /** Per stream, per revision: the chain entry. */
  readonly #chainEntries = new Map<string, MemoryChainEntry[]>();
  readonly #commits = new CommitSignal();
  readonly #subscriptions = new Set<PollingSubscription>();
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: MemoryEventStoreOptions = {}) {
    this.#projections = [...(options.projections ?? [])];
    this.#readBatchEventsMax = options.readBatchEventsMax ?? readBatchEventsMax;
    this.#siteId = options.siteId;
  }

  /** The chain entries of a stream, by revision (the audit functions read them). */
  chainEntries(stream: string): readonly MemoryChainEntry[] {
    return this.#chainEntries.get(stream) ?? [];
  }

  /** The site-chain link of the stream's last event (CHAIN_GENESIS when empty). */
  chainHead(stream: string): Uint8Array {
    return this.#chainHeads.get(stream)?.head ?? CHAIN_GENESIS;
  }

  /** Every stream, in name order. */
  streamNames(): string[] {
    return [...this.#streams.keys()].sort();
  }

  append(stream: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      this.#assertOpen();
      options.signal?.throwIfAborted();
      // A guard is a SQL statement: refused rather than ignored (the caller would think it checked).
      if (options.guard !== undefined) throw new StrataError('STRATA_ERR_INVARIANT', 'the memory event store cannot check an append guard (a SQL statement)');
      const prepared = prepareAppend(stream, events, options.expectedRevision);
      // Awaited in turn: its rejection must not count as unhandled meanwhile.
      const precondition = appendCondition(options);
      precondition?.catch(() => undefined);
      const run = this.#tail.then(() => this.#appendNow(stream, prepared, options.expectedRevision, precondition));
      this.#tail = run.catch(() => undefined);
      return run;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  appendMany(appends: readonly StreamAppend[], options: AppendManyOptions = {}): Promise<readonly AppendResult[]> {
    try {
      this.#assertOpen();
      options.signal?.throwIfAborted();
      const prepared = prepareAppendMany(appends);
      const run = this.#tail.then(() => this.#appendManyNow(prepared));
      this.#tail = run.catch(() => undefined);
      return run;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #appendNow(stream: string, prepared: readonly PreparedEvent[], expectedRevision: AppendOptions['expectedRevision'], precondition: Promise<void> | undefined): Promise<AppendResult> {
    if (precondition !== undefined) {
      try {
        await precondition;
      } catch (reason) {
        throw reason instanceof StrataError ? reason : new StrataError('STRATA_ERR_INVARIANT', `an append's precondition failed: ${String(reason)}`);
      }
    }
    const [result] = await this.#appendManyNow([{ stream, events: prepared, expectedRevision }]);
    return result!;
  }

  /** Plans every part (any refusal throws before anything changes), projects all of them, then stores all of them. */
  async #appendManyNow(parts: readonly PreparedStreamAppend[]): Promise<AppendResult[]> {
    let position = BigInt(this.#all.length);
    const fresh: RecordedEvent[] = [];
    const commits: (() => void)[] = [];
    const results = parts.map(({ stream, events: prepared, expectedRevision }) => {
      const events: readonly NewEvent[] = prepared.map((entry) => entry.event);
      const stored = this.#streams.get(stream) ?? [];
      const current = stored.length - 1;
      const slots: (RecordedEvent | undefined)[] = [];
      for (const event of events) {
        const earlier = this.#byId.get(event.id);
        if (earlier !== undefined && earlier.stream !== stream) throw duplicateInOtherStream(event.id, stream, earlier.stream);
        slots.push(earlier);
      }
      const freshCount = slots.filter((slot) => slot === undefined).length;
      if (freshCount > 0 || events.length === 0) {
        const conflict = expectedRevisionConflict(stream, expectedRevision, current);
        if (conflict !== undefined) throw conflict;
      }
      let revision = current;
      const streamFresh: RecordedEvent[] = [];
      const previousHeads = this.#chainHeads.get(stream);
      const heads: StreamChainHeads = { head: previousHeads?.head ?? CHAIN_GENESIS, originHead: previousHeads?.originHead };
      const entries: MemoryChainEntry[] = [];
      const recorded = events.map((_event, index) => {
        const earlier = slots[index];
        if (earlier !== undefined) return earlier;
        revision++;
        position++;
        const chained = chainEvent(stream, revision, prepared[index]!, heads, this.#siteId);
        entries.push({ prevHash: chained.prevHash, target: chained.target });
        const record = deepFreeze(recordEvent(chained.event, stream, revision, position));
        streamFresh.push(record);
        return record;
      });
      fresh.push(...streamFresh);
      if (streamFresh.length > 0) {
        commits.push(() => {
          this.#streams.set(stream, [...stored, ...streamFresh]);
          this.#chainHeads.set(stream, heads);
          this.#chainEntries.set(stream, [...(this.#chainEntries.get(stream) ?? []), ...entries]);
        });
      }
      return appendResult(revision, recorded, streamFresh.length);
    });
    // Projections first: if one throws, nothing is stored (as a rolled-back transaction).
    if (fresh.length > 0) {
      for (const projection of this.#projections) await projection.apply(fresh);
      this.#all.push(...fresh);
      for (const commit of commits) commit();
      for (const record of fresh) this.#byId.set(record.id, record);
      this.#commits.notify();
    }
    return results;
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<readonly RecordedEvent[]> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const from = Math.max(0, options.fromRevision ?? 0);
    return (this.#streams.get(stream) ?? []).slice(from, from + boundedReadCount(options.maxCount, this.#readBatchEventsMax));
  }

  async streamRevision(stream: string, options: { signal?: AbortSignal } = {}): Promise<number | undefined> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const length = this.#streams.get(stream)?.length ?? 0;
    return length === 0 ? undefined : length - 1;
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const after = options.after ?? START_CHECKPOINT;
    const page = this.#readPage(after, boundedReadCount(options.maxCount, this.#readBatchEventsMax));
    return { events: page.map((entry) => entry.event), checkpoint: page.at(-1)?.checkpoint ?? after };
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const subscription = new PollingSubscription(async (after, maxCount) => this.#readPage(after, maxCount), this.#commits, {
      ...options,
      pageEventsMax: Math.min(this.#readBatchEventsMax, 1000),
      onClose: (closed) => this.#subscriptions.delete(closed),
    });
    this.#subscriptions.add(subscription);
    return subscription;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#subscriptions].map((subscription) => subscription.close()));
    await this.#tail;
  }

  #readPage(after: Checkpoint, maxCount: number): CheckpointedEvent[] {
    // Positions are 1-based and dense: the event at position p sits at index p - 1.
    const start = after.position < 0n ? 0 : Number(after.position);
    return this.#all.slice(start, start + maxCount).map((event) => ({ event, checkpoint: { transactionId: 0n, position: event.position } }));
  }

  #assertOpen(): void {
    if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const entry of Object.values(value)) deepFreeze(entry);
  }
  return value;
}
