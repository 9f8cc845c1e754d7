import { StrataError, decodeEventData, decodeMeta, type EventType, type NewEvent, type RecordedEvent } from '@strata/core';
import { sql, type Kysely, type Transaction } from 'kysely';
import {
  appendResult,
  duplicateInOtherStream,
  expectedRevisionConflict,
  prepareAppend,
  recordEvent,
  type PreparedEvent,
} from './append-preparation.ts';
import {
  START_CHECKPOINT,
  readBatchEventsMax,
  type AppendOptions,
  type AppendResult,
  type Checkpoint,
  type EventStore,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type SubscribeOptions,
  type Subscription,
} from './event-store.ts';
import { CommitSignal, PollingSubscription, type CheckpointedEvent } from './polling-subscription.ts';
import type { SqlProjection } from './projection.ts';
import type { StoreDatabase } from './schema.ts';

export interface SqlEventStoreOptions {
  /** Most events written in one group-commit transaction; an append larger than this goes alone. Default 2000. */
  readonly appendBatchEventsMax?: number;
  /** Most events waiting to be written; beyond it appends are refused with STRATA_ERR_STORE_UNAVAILABLE. Default 100 000. */
  readonly appendQueueEventsMax?: number;
  /** Default and cap of readStream/readAll `maxCount`, and the page size of subscriptions. */
  readonly readBatchEventsMax?: number;
  /** How often a failed transaction is retried alone before its append fails (unique races, deadlocks). Default 3. */
  readonly appendAttemptsMax?: number;
  /** Called by close() (say, to destroy the Kysely instance the store was given). */
  readonly onClose?: () => Promise<void>;
}

interface PendingAppend {
  readonly stream: string;
  readonly events: readonly PreparedEvent[];
  readonly expectedRevision: ExpectedRevision | undefined;
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

type Outcome = { readonly result: AppendResult } | { readonly error: StrataError };

interface EventRow {
  position: string;
  transaction_id: string;
  id: string;
  stream: string;
  revision: number;
  origin: string;
  origin_seq: number;
  hlc_wall: string | number;
  hlc_logical: number;
  type: string;
  data: Uint8Array;
  meta: Uint8Array;
}

const EVENT_COLUMNS = sql.raw(
  'position, transaction_id, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta',
);

/** PostgreSQL errors worth retrying alone: unique races with other processes, serialization, deadlock. */
const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set(['23505', '40001', '40P01']);

/**
 * The event store on PostgreSQL (through `pg`) and PGlite, through one Kysely schema.
 *
 * Appends are group-committed: concurrent calls queue up and are written in batches, each
 * in one transaction that locks the streams rows involved, checks every append's
 * expectation in order, inserts all new events with one statement and runs the inline
 * projections on them. An append that fails its check fails alone. Correctness rests on
 * row locks and transaction ids, not on this process, so several processes may share one
 * PostgreSQL database.
 */
export class SqlEventStore implements EventStore {
  readonly #db: Kysely<StoreDatabase>;
  readonly #projections: readonly SqlProjection[];
  readonly #appendBatchEventsMax: number;
  readonly #appendQueueEventsMax: number;
  readonly #readBatchEventsMax: number;
  readonly #appendAttemptsMax: number;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #queue: PendingAppend[] = [];
  #queuedEvents = 0;
  #writer: Promise<void> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #commits = new CommitSignal();
  readonly #subscriptions = new Set<PollingSubscription>();

  constructor(db: Kysely<StoreDatabase>, projections: readonly SqlProjection[] = [], options: SqlEventStoreOptions = {}) {
    this.#db = db;
    this.#projections = [...projections];
    this.#appendBatchEventsMax = positive(options.appendBatchEventsMax ?? 2000, 'appendBatchEventsMax');
    this.#appendQueueEventsMax = positive(options.appendQueueEventsMax ?? 100_000, 'appendQueueEventsMax');
    this.#readBatchEventsMax = positive(options.readBatchEventsMax ?? readBatchEventsMax, 'readBatchEventsMax');
    this.#appendAttemptsMax = positive(options.appendAttemptsMax ?? 3, 'appendAttemptsMax');
    this.#onClose = options.onClose;
  }

  append(stream: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
      options.signal?.throwIfAborted();
      const prepared = prepareAppend(stream, events, options.expectedRevision);
      if (this.#queuedEvents + prepared.length > this.#appendQueueEventsMax && this.#queue.length > 0) {
        throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `append queue is full (${this.#queuedEvents} events waiting)`);
      }
      return new Promise<AppendResult>((resolve, reject) => {
        const signal = options.signal;
        const pending: PendingAppend = {
          stream,
          events: prepared,
          expectedRevision: options.expectedRevision,
          resolve,
          reject,
          signal,
          onAbort: () => {
            // Only an append still waiting can be withdrawn; one being written completes.
            const index = this.#queue.indexOf(pending);
            if (index === -1) return;
            this.#queue.splice(index, 1);
            this.#queuedEvents -= pending.events.length;
            reject(signal?.reason);
          },
        };
        signal?.addEventListener('abort', pending.onAbort, { once: true });
        this.#queue.push(pending);
        this.#queuedEvents += prepared.length;
        this.#startWriter();
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<readonly RecordedEvent[]> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const fromRevision = Math.max(0, options.fromRevision ?? 0);
    const rows = await sql<EventRow>`
      select ${EVENT_COLUMNS} from events
      where stream = ${stream} and revision >= ${fromRevision}
      order by revision
      limit ${this.#limit(options.maxCount)}`.execute(this.#db);
    return rows.rows.map(decodeRow);
  }

  async streamRevision(stream: string, options: { signal?: AbortSignal } = {}): Promise<number | undefined> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const row = await this.#db.selectFrom('streams').select('revision').where('stream', '=', stream).executeTakeFirst();
    return row === undefined || row.revision < 0 ? undefined : row.revision;
  }

  async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const after = options.after ?? START_CHECKPOINT;
    const page = await this.#readPage(after, this.#limit(options.maxCount));
    return { events: page.map((entry) => entry.event), checkpoint: page.at(-1)?.checkpoint ?? after };
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const subscription = new PollingSubscription((after, maxCount) => this.#readPage(after, maxCount), this.#commits, {
      ...options,
      pageEventsMax: Math.min(this.#readBatchEventsMax, 1000),
      onClose: (closed) => this.#subscriptions.delete(closed),
    });
    this.#subscriptions.add(subscription);
    return subscription;
  }

  /** Stops taking appends, lets queued ones finish, ends subscriptions. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      await Promise.all([...this.#subscriptions].map((subscription) => subscription.close()));
      while (this.#writer !== undefined) await this.#writer;
      await this.#onClose?.();
    })();
    return this.#closing;
  }

  /**
   * Only rows of transactions older than every transaction still running are read: a row
   * with a smaller position may still commit in one of those (DESIGN §3).
   */
  async #readPage(after: Checkpoint, maxCount: number): Promise<readonly CheckpointedEvent[]> {
    const rows = await sql<EventRow>`
      select ${EVENT_COLUMNS} from events
      where (transaction_id, position) > (${after.transactionId.toString()}::xid8, ${after.position.toString()}::bigint)
        and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      order by transaction_id, position
      limit ${maxCount}`.execute(this.#db);
    return rows.rows.map((row) => ({
      event: decodeRow(row),
      checkpoint: { transactionId: BigInt(row.transaction_id), position: BigInt(row.position) },
    }));
  }

  #limit(maxCount: number | undefined): number {
    if (maxCount === undefined) return this.#readBatchEventsMax;
    if (!Number.isSafeInteger(maxCount) || maxCount < 0) {
      throw new StrataError('STRATA_ERR_EVENT_INVALID', 'maxCount must be a non-negative integer', { field: 'maxCount' });
    }
    return Math.min(maxCount, this.#readBatchEventsMax);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
  }

  #startWriter(): void {
    if (this.#writer !== undefined) return;
    this.#writer = (async () => {
      try {
        while (this.#queue.length > 0) await this.#writeBatch(this.#takeBatch());
      } finally {
        this.#writer = undefined;
      }
    })();
  }

  #takeBatch(): PendingAppend[] {
    const batch: PendingAppend[] = [];
    let events = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (batch.length > 0 && events + next.events.length > this.#appendBatchEventsMax) break;
      this.#queue.shift();
      this.#queuedEvents -= next.events.length;
      next.signal?.removeEventListener('abort', next.onAbort);
      batch.push(next);
      events += next.events.length;
    }
    return batch;
  }

  async #writeBatch(batch: readonly PendingAppend[]): Promise<void> {
    let outcomes: Outcome[] | undefined;
    try {
      outcomes = await this.#db.transaction().execute((tx) => this.#applyBatch(tx, batch));
    } catch (error) {
      if (batch.length === 1) {
        await this.#writeAlone(batch[0]!, error, 1);
        return;
      }
    }
    if (outcomes === undefined) {
      // The transaction failed as a whole: retry one by one, so one bad append cannot fail its neighbours.
      for (const pending of batch) await this.#writeAlone(pending, undefined, 0);
      return;
    }
    this.#commits.notify();
    batch.forEach((pending, index) => settle(pending, outcomes[index]!));
  }

  async #writeAlone(pending: PendingAppend, firstError: unknown, attempts: number): Promise<void> {
    let lastError = firstError;
    while (attempts < this.#appendAttemptsMax && (lastError === undefined || isRetryable(lastError))) {
      attempts++;
      try {
        const [outcome] = await this.#db.transaction().execute((tx) => this.#applyBatch(tx, [pending]));
        this.#commits.notify();
        settle(pending, outcome!);
        return;
      } catch (error) {
        lastError = error;
      }
    }
    pending.reject(translateError(lastError));
  }

  async #applyBatch(tx: Transaction<StoreDatabase>, batch: readonly PendingAppend[]): Promise<Outcome[]> {
    const streams = [...new Set(batch.map((pending) => pending.stream))].sort();
    // Creating missing rows and locking all of them in one statement, in a fixed order, so
    // concurrent batches (of any process) serialise per stream and never deadlock.
    const locked = await sql<{ stream: string; revision: number }>`
      insert into streams (stream, revision)
      select stream, -1 from unnest(${streams}::text[]) as input(stream) order by stream
      on conflict (stream) do update set revision = streams.revision
      returning stream, revision`.execute(tx);
    const revisions = new Map(locked.rows.map((row) => [row.stream, row.revision]));

    const ids = batch.flatMap((pending) => pending.events.map((prepared) => prepared.event.id));
    const storedRows = await sql<EventRow>`
      select ${EVENT_COLUMNS} from events where id = any(${ids}::text[])`.execute(tx);
    const stored = new Map<string, { stream: string; recorded: () => RecordedEvent }>();
    for (const row of storedRows.rows) stored.set(row.id, { stream: row.stream, recorded: () => decodeRow(row) });

    interface Planned {
      readonly pending: PendingAppend;
      readonly error?: StrataError;
      readonly nextRevision: number;
      /** Per event of the append: a new row to insert, or a reference to an earlier one. */
      readonly slots: readonly ({ readonly insert: InsertRow } | { readonly duplicate: () => RecordedEvent })[];
    }
    interface InsertRow {
      readonly prepared: PreparedEvent;
      readonly stream: string;
      readonly revision: number;
      position?: bigint;
      recorded?: RecordedEvent;
    }
    const inserts: InsertRow[] = [];
    const insertedById = new Map<string, InsertRow>();
    const plans: Planned[] = [];
    for (const pending of batch) {
      const current = revisions.get(pending.stream) ?? -1;
      // Per event: a reference to the stored (or earlier in this batch) event, or undefined if new.
      const duplicates: ((() => RecordedEvent) | undefined)[] = [];
      let error: StrataError | undefined;
      for (const prepared of pending.events) {
        const id = prepared.event.id;
        const earlier = stored.get(id);
        const inBatch = insertedById.get(id);
        if (earlier !== undefined) {
          if (earlier.stream !== pending.stream) error ??= duplicateInOtherStream(id, pending.stream, earlier.stream);
          duplicates.push(earlier.recorded);
        } else if (inBatch !== undefined) {
          if (inBatch.stream !== pending.stream) error ??= duplicateInOtherStream(id, pending.stream, inBatch.stream);
          duplicates.push(() => inBatch.recorded!);
        } else {
          duplicates.push(undefined);
        }
      }
      const freshCount = duplicates.filter((duplicate) => duplicate === undefined).length;
      // Every event already stored: idempotent success without an expectation check.
      if (error === undefined && (freshCount > 0 || pending.events.length === 0)) {
        error = expectedRevisionConflict(pending.stream, pending.expectedRevision, current);
      }
      if (error !== undefined) {
        plans.push({ pending, error, nextRevision: current, slots: [] });
        continue;
      }
      let revision = current;
      const slots = pending.events.map((prepared, index): Planned['slots'][number] => {
        const duplicate = duplicates[index];
        if (duplicate !== undefined) return { duplicate };
        revision++;
        const row: InsertRow = { prepared, stream: pending.stream, revision };
        inserts.push(row);
        insertedById.set(prepared.event.id, row);
        return { insert: row };
      });
      revisions.set(pending.stream, revision);
      plans.push({ pending, nextRevision: revision, slots });
    }

    if (inserts.length > 0) {
      const inserted = await sql<{ id: string; position: string; transaction_id: string }>`
        insert into events (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta)
        select * from unnest(
          ${inserts.map((row) => row.prepared.event.id)}::text[],
          ${inserts.map((row) => row.stream)}::text[],
          ${inserts.map((row) => row.revision)}::int[],
          ${inserts.map((row) => row.prepared.event.origin)}::text[],
          ${inserts.map((row) => row.prepared.event.originSeq)}::int[],
          ${inserts.map((row) => row.prepared.event.hlc.wall)}::bigint[],
          ${inserts.map((row) => row.prepared.event.hlc.logical)}::int[],
          ${inserts.map((row) => row.prepared.event.type)}::text[],
          ${inserts.map((row) => toBuffer(row.prepared.data))}::bytea[],
          ${inserts.map((row) => toBuffer(row.prepared.meta))}::bytea[]
        )
        returning id, position, transaction_id`.execute(tx);
      const positions = new Map(inserted.rows.map((row) => [row.id, BigInt(row.position)]));
      for (const row of inserts) {
        const position = positions.get(row.prepared.event.id);
        if (position === undefined) throw new StrataError('STRATA_ERR_INVARIANT', `insert returned no position for '${row.prepared.event.id}'`);
        row.position = position;
        row.recorded = recordEvent(row.prepared.event, row.stream, row.revision, position);
      }
      const changed = [...new Set(inserts.map((row) => row.stream))];
      await sql`
        update streams set revision = input.revision
        from unnest(${changed}::text[], ${changed.map((stream) => revisions.get(stream)!)}::int[]) as input(stream, revision)
        where streams.stream = input.stream`.execute(tx);
      const recorded = inserts.map((row) => row.recorded!).sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
      for (const projection of this.#projections) await projection.apply(tx, recorded);
    }

    return plans.map((plan): Outcome => {
      if (plan.error !== undefined) return { error: plan.error };
      const events = plan.slots.map((slot) => ('insert' in slot ? slot.insert.recorded! : slot.duplicate()));
      const appendedCount = plan.slots.filter((slot) => 'insert' in slot).length;
      return { result: appendResult(plan.nextRevision, events, appendedCount) };
    });
  }
}

function settle(pending: PendingAppend, outcome: Outcome): void {
  if ('error' in outcome) pending.reject(outcome.error);
  else pending.resolve(outcome.result);
}

function decodeRow(row: EventRow): RecordedEvent {
  const type = row.type as EventType;
  return {
    id: row.id,
    origin: row.origin,
    originSeq: row.origin_seq,
    hlc: { wall: Number(row.hlc_wall), logical: row.hlc_logical },
    type,
    data: decodeEventData(type, row.data),
    meta: decodeMeta(row.meta),
    stream: row.stream,
    revision: row.revision,
    position: BigInt(row.position),
  } as RecordedEvent;
}

function toBuffer(bytes: Uint8Array): Buffer {
  // `pg` writes Buffers in arrays as bytea hex; plain Uint8Arrays it would not.
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

function isRetryable(error: unknown): boolean {
  const state = sqlState(error);
  return state !== undefined && RETRYABLE_SQLSTATES.has(state);
}

function translateError(error: unknown): unknown {
  if (error instanceof StrataError) return error;
  const state = sqlState(error);
  if (state === '23505') {
    return new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', 'a concurrent append won the race; retry', { sqlState: state }, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `store unavailable: ${message}`, { sqlState: state }, { cause: error });
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new StrataError('STRATA_ERR_INVARIANT', `${name} must be a positive integer`);
  return value;
}
