import { StrataError, validateEventType, type EventMeta, type EventType, type NewEvent, type RecordedEvent, type StreamEvent } from '@strata/core';
import { sql, type CompiledQuery, type Kysely, type RawBuilder } from 'kysely';
import { Unpackr } from 'msgpackr';
// Lets the event loop serve I/O (the connections' replies, sockets, timers) before the caller goes on.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  appendResult,
  duplicateInOtherStream,
  expectedRevisionConflict,
  prepareAppend,
  prepareAppendMany,
  recordEvent,
  type PreparedEvent,
} from './append-preparation.ts';
import {
  START_CHECKPOINT,
  appendCondition,
  readBatchEventsMax,
  type AppendGuard,
  type AppendManyOptions,
  type AppendOptions,
  type AppendResult,
  type Checkpoint,
  type EventStore,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadAllResult,
  type ReadStreamOptions,
  type EventScanner,
  type EventSinkScanner,
  type ScanAllOptions,
  type PageVisits,
  type ScanStreamOptions,
  type StreamPartitionScanner,
  type StreamPartitionedScan,
  type StreamScanner,
  type StreamSinkScanner,
  type SubscribeOptions,
  type StreamAppend,
  type Subscription,
} from './event-store.ts';
import { boundedReadCount } from './read-count.ts';
import { asSqlText, compiledStatement, joinText, rawText, sqlText, type SqlText } from './sql-text.ts';
import { kyselyAppendTransactions, type AppendSession, type AppendTransactions, type StatementRows } from './append-transaction.ts';
import { CHAIN_GENESIS, eventDigest } from '@strata/core';
import { chainEvent, type ChainedEvent, type StreamChainHeads } from './event-chaining.ts';
import { CommitSignal, PollingSubscription, type CheckpointedEvent } from './polling-subscription.ts';
import type { AppendWrites, InlineProjectionPlan, ProjectionCopy, SqlProjection } from './projection.ts';
import { PROJECTION_LOCK_CLASS, sqlTextLiteral } from './projections/sql-values.ts';
import type { StoreDatabase } from './schema.ts';
import { COPY_EVENT_COLUMNS, decodeEventCopy, observeTakes, type CopyOut, type EventCopyRowSink } from './event-copy-reader.ts';
import { BINARY_COPY_HEADER, BINARY_COPY_TRAILER, BinaryCopyWriter, binaryCopyRows } from './projections/binary-copy.ts';
import { copyChunks, copyStatement } from './projections/bulk-copy.ts';

export interface SqlEventStoreOptions {
  /** Most events written in one group-commit transaction; an append larger than this goes alone. Default 2000. */
  readonly appendBatchEventsMax?: number;
  /** Most events waiting to be written; beyond it appends are refused with STRATA_ERR_STORE_UNAVAILABLE. Default 100 000. */
  readonly appendQueueEventsMax?: number;
  /** Default and cap of readStream/readAll `maxCount`, and the page size of subscriptions. */
  readonly readBatchEventsMax?: number;
  /** How often a failed transaction is retried alone before its append fails (unique races, deadlocks). Default 3. */
  readonly appendAttemptsMax?: number;
  /**
   * After readAll returns a full page, read the next one at once, so that the database works
   * while the caller handles this page (a scan from the start, a rebuild). Worth it with a
   * connection pool (PostgreSQL); with one connection (PGlite) it would only hold appends
   * back. Default false.
   */
  readonly readAhead?: boolean;
  /** Called by close() (say, to destroy the Kysely instance the store was given). */
  readonly onClose?: () => Promise<void>;
  /**
   * This site's id: events it produced get the origin chain in `meta.originPrev` when they
   * arrive without one (issue 8). Undefined: no origin chain is added.
   */
  readonly siteId?: string;
  /**
   * Binary COPY out of the same database (bulk-copy.ts): `scanAll` reads with it; without
   * it `scanAll` pages through readAll.
   */
  readonly copyOut?: CopyOut;
  /**
   * Rows per COPY statement of `scanAll`; undefined: one statement for the whole scan
   * (PostgreSQL streams it). PGlite hands a COPY's output over as one blob: bound it.
   */
  readonly copyStatementRowsMax?: number;
  /**
   * How append transactions reach the database (append-transaction.ts): on PostgreSQL
   * `pgAppendTransactions(pool)` (two round trips per batch). Default: statement by
   * statement in a Kysely transaction of `db`.
   */
  readonly appendTransactions?: AppendTransactions;
  /**
   * Statements sent in every append transaction after the projections' writes (e.g. the
   * inline blobs of the batch's deploys, inline-blob-store.ts); none by default.
   */
  readonly appendWrites?: readonly AppendWrites[];
  /**
   * A batch with at least this many new events is inserted with one binary COPY instead of
   * an INSERT of unnested arrays, where the append transactions offer COPY (`AppendSession.copyIn`). The rows, the
   * revisions, the chains and the projections are the same either way; the COPY spares
   * the hex text of every bytea and its parsing (a receiver catching up, a bulk import).
   * Default 100; Number.MAX_SAFE_INTEGER: never.
   */
  readonly appendCopyEventsMin?: number;
  /**
   * Send a batch in one round trip instead of two when this store knows what its first round
   * trip would read: each stream's row as this store's last commit left it, no stored ids, no
   * projection rows to load (deploys of new paths). The batch is then built from that guess
   * before anything is sent, and sent as `begin`, the locks, one statement that checks the guess
   * against what the locks read (a division by zero when it does not hold: the transaction
   * fails before anything is written), the writes and `commit`. A failed guess is rolled back
   * and the batch written as usual, in two round trips (docs/storage.md, "Appends: group
   * commit"). Only where a failed statement skips the rest of the round trip (PostgreSQL's
   * simple query). Default false.
   */
  readonly appendOneRoundTrip?: boolean;
}

/** Streams whose guess failed sit out this many batches before this store guesses for them again. */
const guessPausedBatches = 64;
/** Most streams whose rows this store remembers for its guesses. */
const guessedStreamsMax = 10_000;

/** A `streams` row as the first round trip's lock statement reads it. */
interface LockedStreamRow {
  readonly stream: string;
  readonly revision: number;
  readonly chain: Uint8Array | null;
  readonly origin_chain: Uint8Array | null;
  readonly origin_chain_origin: string | null;
}

/** Thrown (and caught) inside the store when a batch's guess did not hold: it is written again, as usual. */
class GuessFailed extends Error {}

/** A one-round-trip batch whose callers' checks refused after its writes were sent: rolled back (GuessFailed follows). */
class ChecksRefused extends Error {}

/**
 * How one batch is written besides its appends: `guessRows`, the streams' rows it is built on
 * (a batch pipelined behind the one in flight: the rows that one leaves when it commits);
 * `onBuilt`, told the streams' rows this batch leaves when it commits, once its Node work is
 * done and only its database work is left (a large batch, appendOneRoundTrip).
 */
interface BatchFlow {
  readonly guessRows?: readonly LockedStreamRow[];
  readonly onBuilt?: (rows: readonly LockedStreamRow[]) => void;
}

/** A large batch whose Node work is done and whose transaction has not ended: the next one may be built on it. */
interface BatchAhead {
  readonly rows: ReadonlyMap<string, LockedStreamRow>;
  /** Settles (never rejects) when the batch and any retry of it have settled their appends. */
  readonly done: Promise<void>;
}

/** The SQLSTATE of the guess check's division by zero. */
const GUESS_FAILED_SQLSTATE = '22012';
/**
 * The SQLSTATE the guess check raises when the guess holds but a guard (AppendOptions.guard)
 * does not (a smallint overflow): the batch goes again as usual, which refuses that append,
 * and the stream's guesses are not paused (they held).
 */
const GUARD_REFUSED_SQLSTATE = '22003';

interface PendingAppend {
  readonly stream: string;
  readonly events: readonly PreparedEvent[];
  readonly expectedRevision: ExpectedRevision | undefined;
  /** AppendOptions.writes: sent with the batch's writes when this append inserts events. */
  readonly writes?: AppendWrites | undefined;
  /** AppendOptions.precondition: awaited after the first round trip (one round trip: before its commit), before anything commits. */
  readonly precondition?: Promise<void> | undefined;
  /** AppendOptions.guard: checked in the first round trip (one round trip: with the guess). */
  readonly guard?: AppendGuard | undefined;
  /** AppendOptions.after: it follows an earlier append, so it never joins a batch behind another append (it leads its own). */
  readonly leads?: boolean;
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
  /** Scans (SCAN_COLUMNS) instead of data and meta: data then meta, and data's length. */
  payload?: Uint8Array;
  data_bytes?: number;
}

const EVENT_COLUMN_LIST = 'position, transaction_id, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta';
const EVENT_COLUMNS = sql.raw(EVENT_COLUMN_LIST);
/**
 * EVENT_COLUMNS for scans: data and meta travel as one bytea (and data's length), which
 * halves the driver's per-row bytea work and garbage.
 */
const SCAN_COLUMNS = sql.raw(
  'position, transaction_id, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, octet_length(data) as data_bytes, data || meta as payload',
);
/** readAll pages at least this large are read with COPY (when the store has it); smaller ones with a query. */
const copyReadEventsMin = 1000;

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
export class SqlEventStore implements EventStore, EventScanner, EventSinkScanner, StreamScanner, StreamSinkScanner, StreamPartitionScanner {
  readonly #db: Kysely<StoreDatabase>;
  readonly #projections: readonly SqlProjection[];
  readonly #appendBatchEventsMax: number;
  readonly #appendQueueEventsMax: number;
  readonly #readBatchEventsMax: number;
  readonly #appendAttemptsMax: number;
  readonly #onClose: (() => Promise<void>) | undefined;
  readonly #readAhead: boolean;
  readonly #siteId: string | undefined;
  readonly #copyOut: CopyOut | undefined;
  readonly #copyStatementRowsMax: number | undefined;
  readonly #transactions: AppendTransactions;
  readonly #appendWrites: readonly AppendWrites[];
  readonly #appendCopyEventsMin: number;
  readonly #appendOneRoundTrip: boolean;
  /** Per stream, its row as this store's last commit to it left it (appendOneRoundTrip); bounded. */
  readonly #guessedRows = new Map<string, LockedStreamRow>();
  /** Per stream whose guess failed: the batch count until which it is not guessed again. */
  readonly #guessPausedUntil = new Map<string, number>();
  #batchesWritten = 0;
  /** The page after the last full page readAll returned, being read (see `readAhead`). */
  #pageAhead: { readonly after: Checkpoint; readonly maxCount: number; readonly page: Promise<ReadAllResult | undefined> } | undefined;
  readonly #queue: PendingAppend[] = [];
  #queuedEvents = 0;
  #writer: Promise<void> | undefined;
  /** Wakes the writer waiting, with a batch in flight, for the next append. */
  #wakeWriter: (() => void) | undefined;
  /** `appendMany` transactions in flight (close waits for them). */
  readonly #atomicWrites = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #commits = new CommitSignal();
  readonly #subscriptions = new Set<PollingSubscription>();
  /**
   * Subscriptions' reads in flight: close waits for them before it ends the pool, whose
   * `end()` never answers a connection request still queued (the read would hang forever).
   */
  readonly #subscriptionReads = new Set<Promise<unknown>>();

  constructor(db: Kysely<StoreDatabase>, projections: readonly SqlProjection[] = [], options: SqlEventStoreOptions = {}) {
    this.#db = db;
    this.#projections = [...projections];
    this.#appendBatchEventsMax = positive(options.appendBatchEventsMax ?? 2000, 'appendBatchEventsMax');
    this.#appendQueueEventsMax = positive(options.appendQueueEventsMax ?? 100_000, 'appendQueueEventsMax');
    this.#readBatchEventsMax = positive(options.readBatchEventsMax ?? readBatchEventsMax, 'readBatchEventsMax');
    this.#appendAttemptsMax = positive(options.appendAttemptsMax ?? 3, 'appendAttemptsMax');
    this.#onClose = options.onClose;
    this.#readAhead = options.readAhead ?? false;
    this.#siteId = options.siteId;
    this.#copyOut = options.copyOut;
    this.#copyStatementRowsMax = options.copyStatementRowsMax === undefined ? undefined : positive(options.copyStatementRowsMax, 'copyStatementRowsMax');
    this.#transactions = options.appendTransactions ?? kyselyAppendTransactions(db);
    this.#appendWrites = options.appendWrites ?? [];
    this.#appendCopyEventsMin = positive(options.appendCopyEventsMin ?? 100, 'appendCopyEventsMin');
    this.#appendOneRoundTrip = options.appendOneRoundTrip ?? false;
  }

  /** EventStore.appendsPipelined: large batches are pipelined where one-round-trip appends are (PostgreSQL). */
  get appendsPipelined(): boolean {
    return this.#appendOneRoundTrip;
  }

  /** The database this store writes (for the audit queries of the same package). */
  get database(): Kysely<StoreDatabase> {
    return this.#db;
  }

  append(stream: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    try {
      if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
      options.signal?.throwIfAborted();
      const prepared = prepareAppend(stream, events, options.expectedRevision);
      // Awaited only after the first round trip: its rejection must not count as unhandled meanwhile.
      const precondition = appendCondition(options);
      precondition?.catch(() => undefined);
      if (this.#queuedEvents + prepared.length > this.#appendQueueEventsMax && this.#queue.length > 0) {
        throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `append queue is full (${this.#queuedEvents} events waiting)`);
      }
      return new Promise<AppendResult>((resolve, reject) => {
        const signal = options.signal;
        const pending: PendingAppend = {
          stream,
          events: prepared,
          expectedRevision: options.expectedRevision,
          writes: options.writes,
          precondition,
          guard: options.guard,
          leads: options.after !== undefined,
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

  /**
   * One transaction of its own (not group-committed with `append`s): the parts are planned
   * by the same code as a batch, and any part's refusal rolls all of them back.
   */
  appendMany(appends: readonly StreamAppend[], options: AppendManyOptions = {}): Promise<readonly AppendResult[]> {
    try {
      if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
      options.signal?.throwIfAborted();
      const parts: PendingAppend[] = prepareAppendMany(appends).map((part) => ({
        stream: part.stream,
        events: part.events,
        expectedRevision: part.expectedRevision,
        resolve: () => undefined,
        reject: () => undefined,
        signal: undefined,
        onAbort: () => undefined,
      }));
      const run = this.#writeAtomically(parts);
      this.#atomicWrites.add(run);
      void run.catch(() => undefined).finally(() => this.#atomicWrites.delete(run));
      return run;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async #writeAtomically(parts: readonly PendingAppend[]): Promise<AppendResult[]> {
    let lastError: unknown;
    for (let attempt = 0; attempt < this.#appendAttemptsMax; attempt++) {
      try {
        const outcomes = await this.#runBatch(parts, true);
        this.#commits.notify();
        return outcomes.map((outcome) => (outcome as { result: AppendResult }).result);
      } catch (error) {
        lastError = error;
        if (!isRetryable(error)) break;
      }
    }
    throw translateError(lastError);
  }

  async readStream(stream: string, options: ReadStreamOptions = {}): Promise<readonly RecordedEvent[]> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const fromRevision = Math.max(0, options.fromRevision ?? 0);
    const rows = await sql<EventRow>`
      select ${EVENT_COLUMNS} from events
      where stream = ${stream} and revision >= ${fromRevision}
      order by revision
      limit ${boundedReadCount(options.maxCount, this.#readBatchEventsMax)}`.execute(this.#db);
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
    const maxCount = boundedReadCount(options.maxCount, this.#readBatchEventsMax);
    const page = (await this.#takePageAhead(after, maxCount)) ?? (await this.#readAllPage(after, maxCount));
    if (this.#readAhead && maxCount > 0 && page.events.length === maxCount && !this.#closed) {
      const next = page.checkpoint;
      this.#pageAhead = { after: next, maxCount, page: this.#readAllPage(next, maxCount).catch(() => undefined) };
    }
    return page;
  }

  /**
   * One page of the global order: through a binary COPY when the store has one and the page
   * is large (no hex text to decode, a third of the driver's row parsing gone), else a query.
   */
  async #readAllPage(after: Checkpoint, maxCount: number): Promise<ReadAllResult> {
    const copyOut = this.#copyOut;
    if (copyOut !== undefined && maxCount >= copyReadEventsMin) {
      const statement = eventCopyStatement(after, 'pg_snapshot_xmin(pg_current_snapshot())', maxCount);
      let result: ReadAllResult = { events: [], checkpoint: after };
      for await (const page of decodeEventCopy(copyOut(statement), maxCount)) result = page;
      return result;
    }
    const rows = await this.#readRows(after, maxCount);
    const events = new Array<RecordedEvent>(rows.length);
    for (let index = 0; index < rows.length; index++) events[index] = decodeRow(rows[index]!);
    const last = rows.at(-1);
    return { events, checkpoint: last === undefined ? after : { transactionId: BigInt(last.transaction_id), position: BigInt(last.position) } };
  }

  scanAll(options: ScanAllOptions = {}): AsyncGenerator<ReadAllResult> {
    return this.#scanAll(options, undefined);
  }

  /** scanAll, with the rows `sink` takes left out of the pages (EventSinkScanner; every row decoded without a COPY). */
  scanAllInto(sink: EventCopyRowSink, options: ScanAllOptions = {}): AsyncGenerator<ReadAllResult> {
    return this.#scanAll(options, sink);
  }

  async *#scanAll(options: ScanAllOptions, sink: EventCopyRowSink | undefined): AsyncGenerator<ReadAllResult> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    let after = options.after ?? START_CHECKPOINT;
    const pageEventsMax = Math.max(1, Math.floor(options.pageEventsMax ?? this.#readBatchEventsMax));
    const copyOut = this.#copyOut;
    if (copyOut === undefined) {
      for (;;) {
        const page = await this.readAll({ after, maxCount: Math.min(pageEventsMax, this.#readBatchEventsMax), ...(options.signal ? { signal: options.signal } : {}) });
        if (page.events.length === 0) return;
        after = page.checkpoint;
        yield page;
      }
    }
    const below = await scanHorizon(this.#db);
    // Whole pages per statement, so that pages do not shrink at statement boundaries.
    const rowsMax = this.#copyStatementRowsMax === undefined ? undefined : Math.ceil(this.#copyStatementRowsMax / pageEventsMax) * pageEventsMax;
    for (;;) {
      const statement = eventCopyStatement(after, below, rowsMax);
      let rows = 0;
      for await (const page of decodeEventCopy(copyOut(statement, options.signal), pageEventsMax, sink)) {
        rows += page.rows;
        after = page.checkpoint;
        yield { events: page.events, checkpoint: page.checkpoint };
      }
      if (rowsMax === undefined || rows < rowsMax) return;
    }
  }

  /**
   * Every event of `stream` (up to a point), in no particular order (StreamScanner). On
   * PostgreSQL one binary COPY without an ORDER BY: the planner reads the stream's rows as
   * they lie in the table (a bitmap or sequential scan) instead of one index probe per event
   * in revision order, which for a stream interleaved with others is most of a replay's read.
   * PGlite hands a COPY's output over as one blob, so there it reads slices in revision
   * order; a store without COPY pages through readStream.
   */
  scanStream(stream: string, options: ScanStreamOptions = {}): AsyncGenerator<readonly RecordedEvent[]> {
    return this.#scanStream(stream, options, undefined);
  }

  /**
   * scanStream, with the rows `sink` takes left out of the pages (StreamSinkScanner; a page
   * may be empty). Without a COPY every row is decoded and paged, none taken.
   */
  scanStreamInto(stream: string, sink: EventCopyRowSink, options: ScanStreamOptions = {}): AsyncGenerator<readonly RecordedEvent[]> {
    return this.#scanStream(stream, options, sink);
  }

  async *#scanStream(stream: string, options: ScanStreamOptions, sink: EventCopyRowSink | undefined): AsyncGenerator<readonly RecordedEvent[]> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const pageEventsMax = Math.max(1, Math.floor(options.pageEventsMax ?? this.#readBatchEventsMax));
    const kept = (event: RecordedEvent) =>
      (options.untilPosition === undefined || event.position <= options.untilPosition) && (options.untilWall === undefined || event.hlc.wall <= options.untilWall);
    const copyOut = this.#copyOut;
    if (copyOut === undefined) {
      for (let fromRevision = 0; ; ) {
        options.signal?.throwIfAborted();
        const page = await this.readStream(stream, { fromRevision, maxCount: Math.min(pageEventsMax, this.#readBatchEventsMax) });
        if (page.length === 0) return;
        fromRevision = page[page.length - 1]!.revision + 1;
        const events = page.filter(kept);
        if (events.length > 0) yield events;
      }
    }
    const where =
      `where stream = ${sqlTextLiteral(stream)}` +
      (options.untilPosition === undefined ? '' : ` and position <= ${signedDigits(options.untilPosition)}`) +
      (options.untilWall === undefined ? '' : ` and hlc_wall <= ${signedDigits(BigInt(Math.floor(options.untilWall)))}`);
    const sliceRows = this.#copyStatementRowsMax;
    if (sliceRows === undefined) {
      const statement = (target: string) => `copy (select ${COPY_EVENT_COLUMNS} from events ${where}) to ${target} (format binary)`;
      for await (const page of decodeEventCopy(copyOut(statement, options.signal), pageEventsMax, sink)) yield page.events;
      return;
    }
    // Slices in revision order: the next starts after the last row read, decoded or taken.
    let lastTaken = -1;
    const tracked =
      sink === undefined
        ? undefined
        : observeTakes(sink, (revision) => {
            lastTaken = revision;
          });
    for (let fromRevision = 0; ; ) {
      const statement = (target: string) =>
        `copy (select ${COPY_EVENT_COLUMNS} from events ${where} and revision >= ${fromRevision} order by revision limit ${sliceRows}) to ${target} (format binary)`;
      let rows = 0;
      for await (const page of decodeEventCopy(copyOut(statement, options.signal), pageEventsMax, tracked)) {
        rows += page.rows;
        const last = page.events.at(-1)?.revision ?? -1;
        fromRevision = Math.max(fromRevision, last + 1, lastTaken + 1);
        yield page.events;
      }
      if (rows < sliceRows) return;
    }
  }

  /**
   * The bulk scan split by stream (StreamPartitionScanner): one horizon, the checkpoint of
   * the last event below it, the streams; each group of streams then read as scanStream reads
   * one (one binary COPY without ORDER BY: a bitmap scan of the stream index), below the horizon.
   */
  async scanByStream(options: { readonly signal?: AbortSignal } = {}): Promise<StreamPartitionedScan | undefined> {
    this.#assertOpen();
    options.signal?.throwIfAborted();
    const copyOut = this.#copyOut;
    if (copyOut === undefined || this.#copyStatementRowsMax !== undefined) return undefined;
    const db = this.#db;
    const below = await scanHorizon(db);
    // (Ordered by the columns, not the text of the output: one probe of the index, backwards.)
    const last = await sql<{ xid: string; at: string }>`
      select transaction_id::text as xid, position::text as at from events
      where transaction_id < ${sql.raw(below)} order by transaction_id desc, position desc limit 1`.execute(this.#db);
    const row = last.rows[0];
    const checkpoint = row === undefined ? START_CHECKPOINT : { transactionId: BigInt(row.xid), position: BigInt(row.at) };
    // A stream with events below the horizon was written by a transaction that has ended: it is listed.
    const streams = await sql<{ stream: string; revision: number }>`
      select stream, revision from streams where revision >= 0 order by stream collate "C"`.execute(this.#db);
    return {
      checkpoint,
      streams: streams.rows.map(({ stream, revision }) => ({ stream, eventsMax: revision + 1 })),
      async *scanStreams(group, scanOptions = {}) {
        if (group.length === 0) return;
        const pageEventsMax = Math.max(1, Math.floor(scanOptions.pageEventsMax ?? readBatchEventsMax));
        const statement = (target: string) =>
          `copy (select ${COPY_EVENT_COLUMNS} from events where stream in (${group.map(sqlTextLiteral).join(', ')}) and transaction_id < ${below}) to ${target} (format binary)`;
        for await (const page of decodeEventCopy(copyOut(statement, scanOptions.signal), pageEventsMax)) yield page.events;
      },
      pageVisits: (groups) => sampledPageVisits(db, below, groups),
    };
  }

  /**
   * The bulk scan of scanAll as the raw bytes of its one binary COPY statement (rows of
   * COPY_EVENT_COLUMNS up to the horizon as it stands when iterated, after `after`), for a
   * rebuild whose worker threads decode it (projections/rebuild-workers.ts). Undefined when
   * this store scans otherwise (no COPY, or one statement per slice of rows, as on PGlite).
   */
  scanAllCopy(options: { readonly after?: Checkpoint; readonly signal?: AbortSignal } = {}): AsyncIterable<Uint8Array> | undefined {
    this.#assertOpen();
    const copyOut = this.#copyOut;
    if (copyOut === undefined || this.#copyStatementRowsMax !== undefined) return undefined;
    const from = options.after ?? START_CHECKPOINT;
    const db = this.#db;
    return (async function* () {
      yield* copyOut(eventCopyStatement(from, await scanHorizon(db)), options.signal);
    })();
  }

  subscribe(options: SubscribeOptions = {}): Subscription {
    this.#assertOpen();
    const readPage = (after: Checkpoint, maxCount: number): Promise<readonly CheckpointedEvent[]> => {
      const read = this.#readPage(after, maxCount);
      const settled: Promise<unknown> = read.then(
        () => this.#subscriptionReads.delete(settled),
        () => this.#subscriptionReads.delete(settled),
      );
      this.#subscriptionReads.add(settled);
      return read;
    };
    const subscription = new PollingSubscription(readPage, this.#commits, {
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
      await this.#pageAhead?.page;
      this.#pageAhead = undefined;
      await Promise.all([...this.#subscriptions].map((subscription) => subscription.close()));
      // A closed subscription starts no read; the one in flight ends before the pool does.
      await Promise.all([...this.#subscriptionReads]);
      while (this.#writer !== undefined) await this.#writer;
      await Promise.allSettled([...this.#atomicWrites]);
      await this.#onClose?.();
    })();
    return this.#closing;
  }

  /**
   * Only rows of transactions older than every transaction still running are read: a row
   * with a smaller position may still commit in one of those (DESIGN §3).
   */
  /**
   * The page read ahead, if it starts at `after`, has this size and came back full. A full
   * page read earlier equals a page read now: its rows are below the horizon of its read, so
   * no transaction could still add a row among them, and every row committed since sorts
   * after them. A short page might have grown since: it is read again.
   */
  async #takePageAhead(after: Checkpoint, maxCount: number): Promise<ReadAllResult | undefined> {
    const ahead = this.#pageAhead;
    this.#pageAhead = undefined;
    if (ahead === undefined || ahead.maxCount !== maxCount) return undefined;
    if (ahead.after.transactionId !== after.transactionId || ahead.after.position !== after.position) return undefined;
    const page = await ahead.page;
    return page !== undefined && page.events.length === maxCount ? page : undefined;
  }

  async #readRows(after: Checkpoint, maxCount: number): Promise<EventRow[]> {
    const rows = await sql<EventRow>`
      select ${SCAN_COLUMNS} from events
      where (transaction_id, position) > (${after.transactionId.toString()}::xid8, ${after.position.toString()}::bigint)
        and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
      order by transaction_id, position
      limit ${maxCount}`.execute(this.#db);
    return rows.rows;
  }

  async #readPage(after: Checkpoint, maxCount: number): Promise<readonly CheckpointedEvent[]> {
    const rows = await this.#readRows(after, maxCount);
    return rows.map((row) => ({
      event: decodeRow(row),
      checkpoint: { transactionId: BigInt(row.transaction_id), position: BigInt(row.position) },
    }));
  }

  #assertOpen(): void {
    if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED');
  }

  /**
   * Writes the queue batch by batch. A large batch (appendCopyEventsMin, appendOneRoundTrip)
   * tells when its Node work is done and only its database work (COPYs, commit) is left; the
   * next batch, when it writes only streams that one writes, is then built on the rows that
   * one leaves and sent on another connection behind it (#writePipelined): PostgreSQL holds
   * it on the streams' row locks until the batch ahead ends, and its guess check refuses it
   * unless the rows are exactly those. At most two batches are in flight.
   */
  #startWriter(): void {
    if (this.#writer !== undefined) {
      this.#wakeWriter?.();
      return;
    }
    this.#writer = (async () => {
      let ahead: BatchAhead | undefined;
      try {
        for (;;) {
          if (this.#queue.length === 0) {
            if (ahead === undefined) break;
            // The next append may come before the batch ahead ends: it is then built on it.
            const ended = await Promise.race([ahead.done.then(() => true), new Promise<boolean>((resolve) => (this.#wakeWriter = () => resolve(false)))]);
            this.#wakeWriter = undefined;
            if (ended) ahead = undefined;
            continue;
          }
          const batch = this.#takeBatch();
          const guessRows = ahead === undefined ? undefined : this.#pipelinedRows(batch, ahead.rows);
          if (ahead !== undefined && guessRows === undefined) {
            await ahead.done;
            ahead = undefined;
          }
          let built!: (rows: readonly LockedStreamRow[]) => void;
          const builtRows = new Promise<readonly LockedStreamRow[]>((resolve) => (built = resolve));
          const done = (guessRows === undefined ? this.#writeBatch(batch, built) : this.#writePipelined(batch, guessRows, ahead!.done, built)).catch(() => undefined);
          const rows = await Promise.race([builtRows, done.then(() => undefined)]);
          // The batch before this one ends before a third is sent.
          await ahead?.done;
          ahead = rows === undefined ? undefined : { rows: new Map(rows.map((row) => [row.stream, row])), done };
          if (ahead === undefined) await done;
        }
      } finally {
        this.#writer = undefined;
      }
    })();
  }

  /**
   * The rows `batch` is built on behind the batch in flight (`aheadRows`: the rows that one
   * leaves), or undefined when it waits for that one to end: not a large batch, a stream the
   * batch ahead does not write, a stream whose guess failed lately.
   */
  #pipelinedRows(batch: readonly PendingAppend[], aheadRows: ReadonlyMap<string, LockedStreamRow>): LockedStreamRow[] | undefined {
    if (!this.#appendOneRoundTrip) return undefined;
    let events = 0;
    for (const pending of batch) {
      if (!aheadRows.has(pending.stream)) return undefined;
      if ((this.#guessPausedUntil.get(pending.stream) ?? 0) > this.#batchesWritten) return undefined;
      events += pending.events.length;
    }
    if (events < this.#appendCopyEventsMin) return undefined;
    return [...new Set(batch.map((pending) => pending.stream))].sort().map((stream) => aheadRows.get(stream)!);
  }

  /**
   * A batch built on `guessRows` (the rows the batch ahead leaves) and sent while that one
   * still runs. When the guess does not hold (the batch ahead failed, or another writer came
   * between) nothing of it commits: once the batch ahead has settled (its retries too), it is
   * written as usual, on the state as it is. Its appends settle after those ahead of it.
   */
  async #writePipelined(
    batch: readonly PendingAppend[],
    guessRows: readonly LockedStreamRow[],
    aheadDone: Promise<void>,
    onBuilt: (rows: readonly LockedStreamRow[]) => void,
  ): Promise<void> {
    this.#batchesWritten++;
    let outcomes: Outcome[];
    try {
      outcomes = await this.#transactions.run((session) => this.#applyBatch(session, batch, false, true, { guessRows, onBuilt }));
    } catch (error) {
      if (!(error instanceof GuessFailed)) for (const pending of batch) this.#guessedRows.delete(pending.stream);
      await aheadDone;
      return this.#writeBatch(batch, onBuilt);
    }
    await aheadDone;
    this.#commits.notify();
    batch.forEach((pending, index) => settle(pending, outcomes[index]!));
  }

  #takeBatch(): PendingAppend[] {
    const batch: PendingAppend[] = [];
    let events = 0;
    while (this.#queue.length > 0) {
      const next = this.#queue[0]!;
      if (batch.length > 0 && (next.leads === true || events + next.events.length > this.#appendBatchEventsMax)) break;
      this.#queue.shift();
      this.#queuedEvents -= next.events.length;
      next.signal?.removeEventListener('abort', next.onAbort);
      batch.push(next);
      events += next.events.length;
    }
    return batch;
  }

  async #writeBatch(batch: readonly PendingAppend[], onBuilt?: (rows: readonly LockedStreamRow[]) => void): Promise<void> {
    let outcomes: Outcome[] | undefined;
    try {
      outcomes = await this.#runBatch(batch, false, onBuilt === undefined ? {} : { onBuilt });
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
        const [outcome] = await this.#runBatch([pending]);
        this.#commits.notify();
        settle(pending, outcome!);
        return;
      } catch (error) {
        lastError = error;
      }
    }
    pending.reject(translateError(lastError));
  }

  /**
   * One transaction of #applyBatch; when its guess failed (appendOneRoundTrip), a second one
   * without a guess. When a transaction fails, the guesses of its streams are forgotten.
   */
  async #runBatch(batch: readonly PendingAppend[], atomic = false, flow: BatchFlow = {}): Promise<Outcome[]> {
    this.#batchesWritten++;
    try {
      try {
        return await this.#transactions.run((session) => this.#applyBatch(session, batch, atomic, true, flow));
      } catch (error) {
        if (!(error instanceof GuessFailed)) throw error;
        return await this.#transactions.run((session) => this.#applyBatch(session, batch, atomic, false, flow));
      }
    } catch (error) {
      for (const pending of batch) this.#guessedRows.delete(pending.stream);
      throw error;
    }
  }

  /** The guessed rows of `streams` (sorted), or undefined when one is not known or paused. */
  #guessedRowsOf(streams: readonly string[]): LockedStreamRow[] | undefined {
    const rows: LockedStreamRow[] = [];
    for (const stream of streams) {
      const row = this.#guessedRows.get(stream);
      if (row === undefined || (this.#guessPausedUntil.get(stream) ?? 0) > this.#batchesWritten) return undefined;
      rows.push(row);
    }
    return rows;
  }

  /** After a commit: the streams' rows as it left them (the next batch's guess). */
  #rememberRows(rows: Iterable<LockedStreamRow>): void {
    for (const row of rows) {
      this.#guessedRows.delete(row.stream);
      this.#guessedRows.set(row.stream, row);
      this.#guessPausedUntil.delete(row.stream);
      if (this.#guessedRows.size > guessedStreamsMax) {
        const oldest = this.#guessedRows.keys().next().value;
        if (oldest !== undefined) this.#guessedRows.delete(oldest);
      }
    }
  }

  /**
   * Writes one batch in the open transaction `session`, in two round trips on PostgreSQL:
   * (1) `begin`, the stream and projection locks, then (each statement with a snapshot of
   * its own, taken after the locks) the events already stored under the batch's ids and what
   * the inline projections need loaded; (2) the events' insert with the streams' new
   * revisions, the projections' writes, and `commit`. A projection that applies itself
   * (no `planInline`, or `'apply'`) needs the inserted events first: the statements queued
   * before it are sent, then it applies in the same transaction. With `atomic` any refused
   * part throws (rolling everything back) before anything is written.
   */
  async #applyBatch(session: AppendSession, batch: readonly PendingAppend[], atomic = false, guess = false, flow: BatchFlow = {}): Promise<Outcome[]> {
    const db = this.#db;
    const streams = [...new Set(batch.map((pending) => pending.stream))].sort();
    const ids = batch.flatMap((pending) => pending.events.map((prepared) => prepared.event.id));
    // The events as the projections see them, per append of the batch (reused below for the
    // rows inserted, unless the chain changed the event).
    const streamEventsOf = batch.map((pending) => pending.events.map((prepared) => streamEvent(prepared.event, pending.stream)));
    const candidates = streamEventsOf.flat();
    const projectionPlans: (InlineProjectionPlan | undefined | 'apply')[] = this.#projections.map((projection) =>
      projection.planInline === undefined ? 'apply' : projection.planInline(candidates),
    );
    const lockKeys = [...new Set(projectionPlans.flatMap((plan) => (plan === undefined || plan === 'apply' ? [] : plan.lockKeys)))].sort();
    // The projections' advisory locks are taken after every stream lock (the InitPlan over
    // `locked` completes those first), in sorted order, so that appends and catch-ups never
    // deadlock; the next statements' snapshots, which read the stored events and load the
    // projection rows, follow both.
    const advisory =
      lockKeys.length === 0
        ? sqlText`, advisory as (select 0::bigint as n)`
        : sqlText`, advisory as (
            select count(pg_advisory_xact_lock(${PROJECTION_LOCK_CLASS}::int4, h)) as n
            from (select hashtext(k) as h from unnest(${lockKeys}::text[]) with ordinality as t(k, o)
                  where (select count(*) from locked) >= 0 order by o) as s)`;
    // Create missing stream rows and lock all of them, in a fixed order, so concurrent
    // batches (of any process) serialise per stream and never deadlock; then take the
    // projections' locks. The locked revisions are the latest (ON CONFLICT DO UPDATE waits
    // and rereads). Statements of every batch are text built without Kysely (sql-text.ts).
    const lockStatement = sqlText`
      with locked as (
        insert into streams (stream, revision)
        select stream, -1 from unnest(${streams}::text[]) as input(stream) order by stream
        on conflict (stream) do update set revision = streams.revision
        returning stream, revision, chain, origin_chain, origin_chain_origin)${advisory}
      select stream, revision, chain, origin_chain, origin_chain_origin, (select n from advisory) as advisory_locks from locked`;
    // A one-round-trip batch's streams have rows (its guess comes from this store's commits to
    // them): they are locked in the same order without the upsert, which wrote a new version of
    // every row only to lock it (the insert's update then wrote another). A row gone missing
    // fails the guess's check, and the batch goes again with the upsert.
    const lockExistingStatement = sqlText`
      with locked as (
        select stream, revision, chain, origin_chain, origin_chain_origin from streams
        where stream = any(${streams}::text[]) order by stream for update)${advisory}
      select stream, revision, chain, origin_chain, origin_chain_origin, (select n from advisory) as advisory_locks from locked`;
    // The events already stored under the batch's ids, as of after the locks: an event a
    // concurrent batch of another stream commits later is missed here, its insert then breaks
    // the unique id and the batch is retried one append at a time, which sees it.
    const storedStatement = eventsByIdText(ids, EVENT_COLUMN_LIST);
    const loads = projectionPlans.flatMap((plan, index) =>
      plan === undefined || plan === 'apply' || plan.load === undefined
        ? []
        : [sqlText`select ${rawText(String(index))}::int as load_index, l.kind::text as kind, l.row::jsonb as row from (${asSqlText(plan.load, db)}) as l`],
    );
    const guards = guardsStatement(batch, db);
    // Pipelined (flow.guessRows): built on the rows the batch ahead leaves, COPYs allowed.
    const guessedRows = flow.guessRows ?? (guess && this.#appendOneRoundTrip && !atomic ? this.#guessedRowsOf(streams) : undefined);
    if (guessedRows !== undefined) {
      // One round trip (appendOneRoundTrip): the batch built from the guess; the locks, then the
      // check of the guess (what the first round trip would have read), then the writes and the
      // commit. The callers' checks must pass before the commit: when they are still running
      // once the batch is built, the writes go at once and the commit follows when they pass.
      const preconditions = batch.some((pending) => pending.precondition !== undefined) ? preconditionFailures(batch) : undefined;
      let checksSettled = preconditions === undefined;
      void preconditions?.then(() => (checksSettled = true));
      const guessCheck = guessCheckStatement(guessedRows, storedStatement, loads, guards);
      const built = await this.#completeBatch(
        session,
        batch,
        atomic,
        streamEventsOf,
        projectionPlans,
        { lockedRows: guessedRows as unknown as StatementRows, storedRows: [], loadRows: loads.length === 0 ? undefined : [] },
        undefined,
        true,
        [lockExistingStatement.compile(), guessCheck.compile()],
        flow,
      ).catch(() => undefined);
      // Pipelined: nothing is sent before the callers' checks pass (they may wait for the batch
      // ahead, which must never wait for this one's locks).
      if (built !== undefined && flow.guessRows !== undefined && preconditions !== undefined) await preconditions;
      const passed = async () => (preconditions === undefined ? true : (await preconditions).every((reason) => reason === undefined));
      if (built !== undefined && (!checksSettled || (await passed()))) {
        try {
          return await built(checksSettled ? undefined : passed);
        } catch (error) {
          // A refused check: nothing commits; the batch goes again as usual, which refuses it alone.
          if (error instanceof ChecksRefused) throw new GuessFailed();
          // A guard that does not hold: the usual way reads which one and refuses its append alone.
          if (sqlState(error) === GUARD_REFUSED_SQLSTATE && guards !== undefined) throw new GuessFailed();
          if (sqlState(error) !== GUESS_FAILED_SQLSTATE) throw error;
          if (this.#guessPausedUntil.size >= guessedStreamsMax) this.#guessPausedUntil.clear();
          for (const stream of streams) this.#guessPausedUntil.set(stream, this.#batchesWritten + guessPausedBatches);
          throw new GuessFailed();
        }
      }
      // Pipelined: never written on the state as it is before the batch ahead has settled.
      if (flow.guessRows !== undefined) throw new GuessFailed();
      // Not built from the guess (a refusal, a round trip before the commit): as usual; nothing was sent.
    }
    const first = [lockStatement, storedStatement, ...(loads.length === 0 ? [] : [joinText(loads, ' union all ')]), ...(guards === undefined ? [] : [guards])];
    const answers = await session.send(first.map((statement) => statement.compile()), { keyReads: first.length });
    const [lockedRows, storedRows] = answers;
    const loadRows = loads.length === 0 ? undefined : answers[2];
    // The guards ran after the locks, as the loads did: an append whose guard does not hold is refused alone.
    const guarded = guards === undefined ? undefined : guardRefusals(batch, answers[answers.length - 1]!);
    // The callers' checks ran while the first round trip did; a failed one refuses its append
    // alone. Checks still running do not hold the second round trip's JavaScript back: it is
    // built as if every check passes while they finish, and sent as built when they all did
    // (the usual case); when one refused, or the build needs a round trip of its own before
    // the commit, it is built again with the refusals known.
    const preconditions = batch.some((pending) => pending.precondition !== undefined) ? preconditionFailures(batch) : undefined;
    if (preconditions !== undefined) {
      const built =
        guarded === undefined ? await this.#completeBatch(session, batch, atomic, streamEventsOf, projectionPlans, { lockedRows, storedRows, loadRows }, undefined, true).catch(() => undefined) : undefined;
      const refused = (await preconditions).map((reason, index) => reason ?? guarded?.[index]);
      if (built !== undefined && refused.every((reason) => reason === undefined)) return built();
      return (await this.#completeBatch(session, batch, atomic, streamEventsOf, projectionPlans, { lockedRows, storedRows, loadRows }, refused, false, [], flow))!();
    }
    return (await this.#completeBatch(session, batch, atomic, streamEventsOf, projectionPlans, { lockedRows, storedRows, loadRows }, guarded, false, [], flow))!();
  }

  /**
   * The rest of #applyBatch once its first round trip answered: plans every append against
   * the locked revisions and stored ids (`refusedByPrecondition`: the callers' refusals), chains
   * the new events, builds the insert and the projections' writes, and returns the send of
   * the second round trip with its commit, which yields the outcomes. `speculative`: nothing
   * is sent — undefined is returned instead where a round trip would be needed before the
   * commit (an origin-chain lookup, a COPY, a projection that applies itself).
   */
  async #completeBatch(
    session: AppendSession,
    batch: readonly PendingAppend[],
    atomic: boolean,
    /** Per append of the batch, its events with their stream (what the projections planned). */
    streamEventsOf: readonly (readonly StreamEvent[])[],
    projectionPlans: readonly (InlineProjectionPlan | undefined | 'apply')[],
    answered: { readonly lockedRows: StatementRows | undefined; readonly storedRows: StatementRows | undefined; readonly loadRows: StatementRows | undefined },
    refusedByPrecondition: readonly (StrataError | undefined)[] | undefined,
    speculative: boolean,
    /** Sent first in the round trip that commits (one round trip: the locks and the guess's check); with a COPY, alone before it. */
    leading: readonly CompiledQuery[] = [],
    /** flow.guessRows: a speculative build may take the COPY path; flow.onBuilt: told once a large batch's Node work is done. */
    flow: BatchFlow = {},
  ): Promise<((commitWhen?: () => Promise<boolean>) => Promise<Outcome[]>) | undefined> {
    const db = this.#db;
    const { lockedRows, storedRows, loadRows } = answered;
    const revisions = new Map<string, number>();
    const chainHeads = new Map<string, StreamChainHeads & { originKnown: boolean; originTouched: boolean }>();
    for (const row of lockedRows as unknown as { stream: string; revision: number; chain: Uint8Array | null; origin_chain: Uint8Array | null; origin_chain_origin: string | null }[]) {
      revisions.set(row.stream, row.revision);
      const empty = row.revision < 0;
      const originKnown = empty || (row.origin_chain !== null && row.origin_chain_origin === this.#siteId);
      chainHeads.set(row.stream, {
        head: row.chain ?? CHAIN_GENESIS,
        originHead: originKnown && !empty ? (row.origin_chain ?? undefined) : undefined,
        originKnown,
        originTouched: false,
      });
    }
    const stored = new Map<string, { stream: string; recorded: () => RecordedEvent }>();
    for (const row of storedRows as unknown as EventRow[]) stored.set(row.id, { stream: row.stream, recorded: () => decodeRow(row) });
    const loaded = projectionPlans.map(() => [] as { kind: string; row: unknown }[]);
    for (const row of (loadRows ?? []) as unknown as { load_index: number; kind: string; row: unknown }[]) loaded[row.load_index]!.push({ kind: row.kind, row: row.row });

    interface Planned {
      readonly pending: PendingAppend;
      readonly error?: StrataError;
      readonly nextRevision: number;
      /** Per event of the append: a new row to insert, or a reference to an earlier one. */
      readonly slots: readonly ({ readonly insert: InsertRow } | { readonly duplicate: () => RecordedEvent })[];
    }
    interface InsertRow {
      readonly prepared: PreparedEvent;
      /** `prepared.event` with its stream. */
      readonly candidate: StreamEvent;
      readonly stream: string;
      readonly revision: number;
      chained?: ChainedEvent;
      position?: bigint;
      recorded?: RecordedEvent;
    }
    const inserts: InsertRow[] = [];
    const insertedById = new Map<string, InsertRow>();
    const plans: Planned[] = [];
    for (const [batchIndex, pending] of batch.entries()) {
      const current = revisions.get(pending.stream) ?? -1;
      // Per event: a reference to the stored (or earlier in this batch) event, or undefined if new.
      const duplicates: ((() => RecordedEvent) | undefined)[] = [];
      let error: StrataError | undefined = refusedByPrecondition?.[batchIndex];
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
        if (atomic) throw error;
        plans.push({ pending, error, nextRevision: current, slots: [] });
        continue;
      }
      let revision = current;
      const slots = pending.events.map((prepared, index): Planned['slots'][number] => {
        const duplicate = duplicates[index];
        if (duplicate !== undefined) return { duplicate };
        revision++;
        const row: InsertRow = { prepared, candidate: streamEventsOf[batchIndex]![index]!, stream: pending.stream, revision };
        inserts.push(row);
        insertedById.set(prepared.event.id, row);
        return { insert: row };
      });
      revisions.set(pending.stream, revision);
      plans.push({ pending, nextRevision: revision, slots });
    }

    const outcomes = () =>
      plans.map((plan): Outcome => {
        if (plan.error !== undefined) return { error: plan.error };
        const events = plan.slots.map((slot) => ('insert' in slot ? slot.insert.recorded! : slot.duplicate()));
        const appendedCount = plan.slots.filter((slot) => 'insert' in slot).length;
        return { result: appendResult(plan.nextRevision, events, appendedCount) };
      });
    if (inserts.length === 0) {
      // Nothing new (duplicates, refusals): the stream rows the locks created still commit.
      return async (commitWhen) => {
        await session.send(leading, { commit: commitWhen === undefined, keyReads: leading.length });
        if (commitWhen !== undefined) {
          if (!(await commitWhen())) throw new ChecksRefused();
          await session.send([], { commit: true });
        }
        return outcomes();
      };
    } else {
      const changed = [...new Set(inserts.map((row) => row.stream))];
      for (const stream of changed) {
        const heads = chainHeads.get(stream)!;
        heads.originTouched = this.#siteId !== undefined && inserts.some((row) => row.stream === stream && row.prepared.event.origin === this.#siteId);
        if (heads.originTouched && !heads.originKnown) {
          if (speculative) return undefined;
          heads.originHead = await lastOriginLink(session, db, stream, this.#siteId!);
        }
      }
      for (const row of inserts) row.chained = chainEvent(row.stream, row.revision, row.prepared, chainHeads.get(row.stream)!, this.#siteId);
      // The streams' new revisions and chain heads.
      const streamsUpdate = sqlText`
          update streams set revision = input.revision, chain = input.chain,
            origin_chain = coalesce(input.origin_chain, streams.origin_chain),
            origin_chain_origin = case when input.origin_chain is null then streams.origin_chain_origin else ${this.#siteId ?? null}::text end
          from unnest(
            ${changed}::text[],
            ${changed.map((stream) => revisions.get(stream)!)}::int[],
            ${changed.map((stream) => toBuffer(chainHeads.get(stream)!.head))}::bytea[],
            ${changed.map((stream) => {
              const heads = chainHeads.get(stream)!;
              return !heads.originTouched || heads.originHead === undefined ? null : toBuffer(heads.originHead);
            })}::bytea[]
          ) as input(stream, revision, chain, origin_chain)
          where streams.stream = input.stream`;
      // The binary columns travel as base64 text decoded by PostgreSQL (as the inline blobs do,
      // inline-blob-store.ts): a third shorter than bytea's hex, and no element of the array
      // literals needs escaping. A round of 8 publishes sent ~14 kB of hex here.
      const insertStatement = sqlText`
        with inserted as (
        insert into events (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, target, prev_hash, origin_prev, digest)
        select u.id, u.stream, u.revision, u.origin, u.origin_seq, u.hlc_wall, u.hlc_logical, u.type,
          decode(u.data, 'base64'), decode(u.meta, 'base64'), u.target, decode(u.prev_hash, 'base64'), decode(u.origin_prev, 'base64'), decode(u.digest, 'base64')
        from unnest(
          ${inserts.map((row) => row.prepared.event.id)}::text[],
          ${inserts.map((row) => row.stream)}::text[],
          ${inserts.map((row) => row.revision)}::int[],
          ${inserts.map((row) => row.prepared.event.origin)}::text[],
          ${inserts.map((row) => row.prepared.event.originSeq)}::int[],
          ${inserts.map((row) => row.prepared.event.hlc.wall)}::bigint[],
          ${inserts.map((row) => row.prepared.event.hlc.logical)}::int[],
          ${inserts.map((row) => row.prepared.event.type)}::text[],
          ${inserts.map((row) => base64Of(row.prepared.data))}::text[],
          ${inserts.map((row) => base64Of(row.chained!.meta))}::text[],
          ${inserts.map((row) => row.chained!.target)}::text[],
          ${inserts.map((row) => base64Of(row.chained!.prevHash))}::text[],
          ${inserts.map((row) => (row.chained!.originPrev === null ? null : base64Of(row.chained!.originPrev)))}::text[],
          ${inserts.map((row) => base64Of(row.chained!.digest))}::text[]
        ) as u(id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, target, prev_hash, origin_prev, digest)
        returning id, position),
        revised as (${streamsUpdate})
        select id, position from inserted`;

      // The events as the projections evolve them, in insertion (= position) order.
      const streamEvents: StreamEvent[] = inserts.map((row) => (row.chained!.event === row.prepared.event ? row.candidate : streamEvent(row.chained!.event, row.stream)));
      let queued: CompiledQuery[];
      let insertedRows: readonly Record<string, unknown>[] | undefined;
      // The transaction's remaining round trips, one after the other, each started as soon as
      // the one before it ends: while the database works on one (a large batch's COPYs), this
      // thread prepares the next instead of waiting for it. The first failure skips the rest
      // and is what the last one rejects with.
      // Pipelined (flow.guessRows): nothing goes before the built batch is sent (`release`).
      let release: (() => void) | undefined;
      let discard: ((error: unknown) => void) | undefined;
      let roundTrips: Promise<unknown> =
        flow.guessRows === undefined
          ? Promise.resolve()
          : new Promise<void>((resolve, reject) => {
              release = resolve;
              discard = reject;
            });
      const next = <T>(roundTrip: () => Promise<T>): Promise<T> => {
        const started = roundTrips.then(roundTrip);
        roundTrips = started;
        // Handled here; whoever needs the outcome awaits it (the last one is always awaited).
        started.catch(() => undefined);
        return started;
      };
      const copyIn = inserts.length >= this.#appendCopyEventsMin ? session.copyIn : undefined;
      if (copyIn !== undefined && speculative && flow.guessRows === undefined) return undefined;
      // A large batch's build takes a tenth of a second: the event loop is served between its
      // parts, so that the round trips of the batch ahead (pipelined) are not held up by all of it.
      if (copyIn !== undefined) await yieldToEventLoop();
      // The leading statements go with the first send (the one round trip: the only send).
      let leadingStatements = leading;
      // The first queued statements that read by key only (the events' insert with the streams'
      // update, which joins `streams` by key; with a COPY, the positions by the transaction's
      // index and the streams' update): planned with the leading key reads (AppendSendOptions.keyReads).
      // The update's generic plan is kept until `streams` is analysed again: planned while the
      // table was small, it read the whole table by a sequential scan in every batch.
      let queuedKeyReads = 0;
      const send = async (commit: boolean) => {
        const statements = leadingStatements.length === 0 ? queued : [...leadingStatements, ...queued];
        const skipped = leadingStatements.length;
        const keyReads = skipped + queuedKeyReads;
        leadingStatements = [];
        queued = [];
        queuedKeyReads = 0;
        const results = await next(() => session.send(statements, { commit, keyReads }));
        insertedRows ??= results[skipped];
      };
      const record = () => {
        if (inserts[0]!.recorded !== undefined) return;
        const positions = new Map<string, bigint>();
        for (const row of insertedRows!) positions.set(row.id as string, BigInt(row.position as string | bigint));
        for (const row of inserts) {
          const position = positions.get(row.prepared.event.id);
          if (position === undefined) throw new StrataError('STRATA_ERR_INVARIANT', `insert returned no position for '${row.prepared.event.id}'`);
          row.position = position;
          row.recorded = recordEvent(row.chained!.event, row.stream, row.revision, position);
        }
      };
      /** Nothing of this transaction may still be on its way when it rolls back. */
      const settled = async (error: unknown): Promise<never> => {
        discard?.(error);
        await roundTrips.catch(() => undefined);
        throw error;
      };
      try {
        if (copyIn !== undefined) {
          // A large batch goes in by one binary COPY (appendCopyEventsMin): the same rows the
          // INSERT writes, positions and transaction id from the columns' defaults, in row
          // order. The positions come back with the next statements (eventPositionsOfThisTransaction).
          const rows = eventCopyData(inserts);
          if (leadingStatements.length > 0) {
            // Pipelined: the locks and the guess's check first (held until the batch ahead ends), then the COPYs.
            const first = leadingStatements;
            leadingStatements = [];
            void next(() => session.send(first, { keyReads: first.length }));
          }
          void next(() => copyIn((source) => `copy events (${EVENT_COPY_IN_COLUMNS}) from ${source} (format binary)`, rows));
          queued = [eventPositionsOfThisTransaction(inserts.length).compile(), streamsUpdate.compile()];
          queuedKeyReads = 2;
        } else {
          queued = [insertStatement.compile()];
          queuedKeyReads = 1;
        }
        for (let index = 0; index < this.#projections.length; index++) {
          const plan = projectionPlans[index];
          if (plan === undefined) continue;
          if (plan === 'apply') {
            if (speculative) return undefined;
            await send(false);
            record();
            const recorded = inserts.map((row) => row.recorded!).sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
            await this.#projections[index]!.apply(session.db, recorded);
          } else if (copyIn !== undefined && plan.applyBulk !== undefined) {
            // A large batch: the projection's big upserts by COPY into temporary tables too.
            await yieldToEventLoop();
            const bulk = plan.applyBulk(streamEvents, loaded[index]!);
            copyProjectionRows(session, copyIn, db, bulk.copies, next);
            for (const statement of bulk.statements) queued.push(compiledStatement(statement, db));
          } else {
            for (const statement of plan.apply(streamEvents, loaded[index]!)) queued.push(compiledStatement(statement, db));
          }
        }
        for (const writes of this.#appendWrites) for (const statement of writes.statements(streamEvents)) queued.push(compiledStatement(statement, db));
        for (const plan of plans) {
          const writes = plan.pending.writes;
          if (writes === undefined || plan.error !== undefined || !plan.slots.some((slot) => 'insert' in slot)) continue;
          // One append alone in the batch (a received page): every inserted event is its own.
          const ids = plans.length === 1 ? undefined : new Set(plan.slots.flatMap((slot) => ('insert' in slot ? [slot.insert.prepared.event.id] : [])));
          const own = ids === undefined ? streamEvents : streamEvents.filter((event) => ids.has(event.id));
          for (const statement of writes.statements(own)) queued.push(compiledStatement(statement, db));
        }
      } catch (error) {
        return settled(error);
      }
      // The streams' rows as this transaction leaves them (the next batch's guess, appendOneRoundTrip).
      const written: LockedStreamRow[] = [];
      if (this.#appendOneRoundTrip) {
        const before = new Map((lockedRows as unknown as LockedStreamRow[]).map((row) => [row.stream, row]));
        for (const stream of changed) {
          const heads = chainHeads.get(stream)!;
          const read = before.get(stream);
          const originChain = !heads.originTouched || heads.originHead === undefined ? null : toBuffer(heads.originHead);
          written.push({
            stream,
            revision: revisions.get(stream)!,
            chain: toBuffer(heads.head),
            origin_chain: originChain ?? read?.origin_chain ?? null,
            origin_chain_origin: originChain === null ? (read?.origin_chain_origin ?? null) : (this.#siteId ?? null),
          });
        }
      }
      // `commitWhen`: the writes are sent without the commit, which follows once it answers true
      // (ChecksRefused otherwise: the caller rolls back).
      const onBuilt = copyIn === undefined || !this.#appendOneRoundTrip ? undefined : flow.onBuilt;
      return async (commitWhen) => {
        try {
          onBuilt?.(written);
          release?.();
          await send(commitWhen === undefined);
          record();
          if (commitWhen !== undefined) {
            if (!(await commitWhen())) throw new ChecksRefused();
            await next(() => session.send([], { commit: true }));
          }
          this.#rememberRows(written);
          return outcomes();
        } catch (error) {
          return settled(error);
        }
      };
    }
  }
}

/**
 * A large batch's projection rows (InlineProjectionPlan.applyBulk) into their temporary
 * tables: each created once per session (`on commit delete rows`: empty at every
 * transaction's start, so a statement prepared over it finds it on that session), then one
 * COPY of text per table — each round trip handed to `next`, the rows encoded meanwhile.
 */
function copyProjectionRows(
  session: AppendSession,
  copyIn: NonNullable<AppendSession['copyIn']>,
  db: Kysely<StoreDatabase>,
  copies: readonly ProjectionCopy[],
  next: (roundTrip: () => Promise<unknown>) => Promise<unknown>,
): void {
  if (copies.length === 0) return;
  const creates = copies.flatMap((copy) =>
    copy.like === undefined
      ? []
      : [sql`create temporary table if not exists ${sql.table(copy.table)} (like ${sql.table(copy.like)} including defaults) on commit delete rows`.compile(db)],
  );
  if (creates.length > 0) void next(() => session.send(creates));
  for (const copy of copies) {
    // Binary (no numbers turned into text here, no text parsed there); text for rows holding
    // a value the binary writer does not take as it is.
    const binary = binaryCopyRows(copy.columns, copy.rows);
    if (binary !== undefined) {
      void next(() => copyIn((source) => `${copyStatement(copy.table, copy.columns, source)} (format binary)`, binary));
      continue;
    }
    const chunks = [...copyChunks(copy.rows, { rows: 0 })];
    void next(() => copyIn((source) => copyStatement(copy.table, copy.columns, source), chunks));
  }
}

/** The origin-chain link of the last event `origin` produced in `stream` (undefined: none). */
async function lastOriginLink(session: AppendSession, db: Kysely<StoreDatabase>, stream: string, origin: string): Promise<Uint8Array | undefined> {
  const [rows] = await session.send([
    sql<EventRow>`select ${EVENT_COLUMNS} from events where stream = ${stream} and origin = ${origin} order by origin_seq desc limit 1`.compile(db),
  ]);
  const row = rows![0] as EventRow | undefined;
  if (row === undefined) return undefined;
  const envelope = { stream, id: row.id, origin: row.origin, originSeq: row.origin_seq, hlc: { wall: Number(row.hlc_wall), logical: row.hlc_logical }, type: row.type };
  return eventDigest(envelope, row.data, row.meta);
}

/**
 * The check of a one-round-trip batch's guess (appendOneRoundTrip), run after the locks:
 * every stream's row as guessed, none of the batch's ids stored, nothing for the projections
 * to load. A division by zero (GUESS_FAILED_SQLSTATE) when any of it does not hold: the rest
 * of the round trip, the writes and the commit, is then skipped.
 */
function guessCheckStatement(rows: readonly LockedStreamRow[], stored: SqlText, loads: readonly SqlText[], guards: SqlText | undefined): SqlText {
  const unchanged = sqlText`(select count(*) from streams
      join unnest(${rows.map((row) => row.stream)}::text[], ${rows.map((row) => row.revision)}::int[], ${rows.map((row) => (row.chain === null ? null : toBuffer(row.chain)))}::bytea[],
        ${rows.map((row) => (row.origin_chain === null ? null : toBuffer(row.origin_chain)))}::bytea[], ${rows.map((row) => row.origin_chain_origin)}::text[])
        as guessed(stream, revision, chain, origin_chain, origin_chain_origin) on streams.stream = guessed.stream
      where streams.revision = guessed.revision and streams.chain is not distinct from guessed.chain
        and streams.origin_chain is not distinct from guessed.origin_chain
        and streams.origin_chain_origin is not distinct from guessed.origin_chain_origin) = ${rows.length}`;
  const nothingToLoad = loads.length === 0 ? sqlText`true` : sqlText`not exists (${joinText(loads, ' union all ')})`;
  const guessed = sqlText`1 / (case when ${unchanged} and not exists (${stored}) and ${nothingToLoad} then 1 else 0 end)`;
  if (guards === undefined) return sqlText`select ${guessed} as guessed`;
  // Once the guess is known to hold (the inner select), a guard that does not hold overflows a
  // smallint (GUARD_REFUSED_SQLSTATE) instead: the stream's guesses are not paused for it.
  // g.guessed is selected so that the planner keeps it (an unused output of a subquery is dropped).
  return sqlText`select g.guessed, 32767::int2 + (case when exists (${guards}) then 1 else 0 end)::int2 as guarded from (select ${guessed} as guessed offset 0) as g`;
}

/**
 * The guards (AppendOptions.guard) of a batch's appends as one statement: each row names the
 * append (its index in the batch) whose guard returned it, and that row as JSON.
 */
function guardsStatement(batch: readonly PendingAppend[], db: Kysely<StoreDatabase>): SqlText | undefined {
  const parts: SqlText[] = [];
  batch.forEach((pending, index) => {
    if (pending.guard !== undefined) {
      parts.push(sqlText`select ${rawText(String(index))}::int as guard_index, to_jsonb(g) as row from (${asSqlText(pending.guard.statement, db)}) as g`);
    }
  });
  return parts.length === 0 ? undefined : joinText(parts, ' union all ');
}

/** Per append of the batch: its guard's refusal when its guard returned rows, else undefined; undefined when none did. */
function guardRefusals(batch: readonly PendingAppend[], rows: StatementRows): (StrataError | undefined)[] | undefined {
  const returned = new Map<number, Readonly<Record<string, unknown>>[]>();
  for (const { guard_index: index, row } of rows as unknown as { guard_index: number; row: Readonly<Record<string, unknown>> }[]) {
    let list = returned.get(index);
    if (list === undefined) returned.set(index, (list = []));
    list.push(row);
  }
  if (returned.size === 0) return undefined;
  return batch.map((pending, index) => {
    const guardRows = returned.get(index);
    if (guardRows === undefined) return undefined;
    try {
      const refusal: unknown = pending.guard!.refusal(guardRows);
      return refusal instanceof StrataError ? refusal : new StrataError('STRATA_ERR_INVARIANT', `an append's guard refused with ${String(refusal)}`);
    } catch (error) {
      return error instanceof StrataError ? error : new StrataError('STRATA_ERR_INVARIANT', `an append's guard refusal failed: ${String(error)}`);
    }
  });
}

/** Per append of the batch: the reason its precondition rejected with, or undefined. */
async function preconditionFailures(batch: readonly PendingAppend[]): Promise<(StrataError | undefined)[]> {
  const settled = await Promise.allSettled(batch.map((pending) => pending.precondition));
  return settled.map((outcome) => {
    if (outcome.status === 'fulfilled') return undefined;
    const reason: unknown = outcome.reason;
    return reason instanceof StrataError ? reason : new StrataError('STRATA_ERR_INVARIANT', `an append's precondition failed: ${String(reason)}`);
  });
}

/** `event` in `stream`, field by field (one object shape; a spread cost more per event). */
function streamEvent(event: NewEvent, stream: string): StreamEvent {
  const { id, origin, originSeq, hlc, type, data, meta } = event;
  return { id, origin, originSeq, hlc, type, data, meta, stream } as StreamEvent;
}

function settle(pending: PendingAppend, outcome: Outcome): void {
  if ('error' in outcome) pending.reject(outcome.error);
  else pending.resolve(outcome.result);
}

/**
 * The same msgpack options as core's codec. Stored data and meta were validated and encoded
 * by core on append (prepareAppend), so reads only unpack them: validating every event again
 * cost as much as reading it, and readAll feeds rebuilds and catch-up. A row that does not
 * unpack to a map still fails with a typed error.
 */
const storedUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });

function unpackStored(bytes: Uint8Array, what: string, id: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = storedUnpackr.unpack(bytes);
  } catch (error) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `stored ${what} of event '${id}' does not unpack`, { id }, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `stored ${what} of event '${id}' is not a msgpack map`, { id });
  }
  return value as Record<string, unknown>;
}

const knownTypes = new Set<string>();

function decodeRow(row: EventRow): RecordedEvent {
  let type = row.type as EventType;
  if (!knownTypes.has(type)) knownTypes.add((type = validateEventType(type)));
  return {
    id: row.id,
    origin: row.origin,
    originSeq: row.origin_seq,
    hlc: { wall: Number(row.hlc_wall), logical: row.hlc_logical },
    type,
    data: unpackStored(row.payload === undefined ? row.data : row.payload.subarray(0, row.data_bytes), 'data', row.id),
    meta: unpackStored(row.payload === undefined ? row.meta : row.payload.subarray(row.data_bytes), 'meta', row.id) as EventMeta,
    stream: row.stream,
    revision: row.revision,
    position: BigInt(row.position),
  } as RecordedEvent;
}

function toBuffer(bytes: Uint8Array): Buffer {
  // `pg` writes Buffers in arrays as bytea hex; plain Uint8Arrays it would not.
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Bytes as base64 text, for a `decode(…, 'base64')` in a statement. */
function base64Of(bytes: Uint8Array): string {
  return toBuffer(bytes).toString('base64');
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

/** A transaction id or position spliced into COPY text (COPY takes no parameters): digits only. */
/**
 * The binary COPY of the events after `after` in the global order, below the transaction
 * horizon `below` (an SQL xid8 expression), at most `limit` rows: the bulk reads' statement
 * (readAll's large pages, scanAll, scanAllCopy), for CopyOut's target.
 */
function eventCopyStatement(after: Checkpoint, below: string, limit?: number): (target: string) => string {
  return (target) =>
    `copy (select ${COPY_EVENT_COLUMNS} from events` +
    ` where (transaction_id, position) > ('${digits(after.transactionId)}'::xid8, ${signedDigits(after.position)}::int8)` +
    ` and transaction_id < ${below} order by transaction_id, position` +
    (limit === undefined ? '' : ` limit ${limit}`) +
    `) to ${target} (format binary)`;
}

/**
 * One horizon for a whole scan, as an xid8 literal: every row below it has committed (or
 * never will), so the scan returns exactly what readAll would up to it, in the same order.
 */
/** Pages of the events table scanPageVisits samples at least (all of them in a smaller table). */
const pageVisitsSamplePages = 1_000;

/**
 * StreamPartitionedScan.pageVisits on PostgreSQL: a TABLESAMPLE SYSTEM of whole pages of the
 * events table (about pageVisitsSamplePages), the distinct groups of each sampled page's
 * events below the horizon summed, per sampled page. Reading a group is a bitmap scan of the
 * stream index, so it visits every page that holds one of its events: a log written a stream
 * at a time costs ~1 visit per page, one interleaved event by event up to one per group.
 */
async function sampledPageVisits(db: Kysely<StoreDatabase>, below: string, groups: readonly (readonly string[])[]): Promise<PageVisits> {
  const size = await sql<{ pages: string }>`select (pg_relation_size('events') / current_setting('block_size')::bigint)::text as pages`.execute(db);
  const pages = Number(size.rows[0]?.pages ?? 0);
  const streams = groups.flatMap((group) => group);
  const indexes = groups.flatMap((group, index) => group.map(() => index));
  if (pages === 0 || streams.length === 0) return { pages, sampledPages: 0, perPage: 1 };
  const percent = Math.min(100, (100 * pageVisitsSamplePages) / pages);
  const sampled = await sql<{ pages: string; visits: string }>`
    select count(*)::text as pages, coalesce(sum(groups), 0)::text as visits from (
      select (e.ctid::text::point)[0] as page, count(distinct g.grp) as groups
      from events as e tablesample system (${sql.lit(percent)}) join unnest(${streams}::text[], ${indexes}::int[]) as g(stream, grp) on g.stream = e.stream
      where e.transaction_id < ${sql.raw(below)}
      group by 1) sampled`.execute(db);
  const sampledPages = Number(sampled.rows[0]?.pages ?? 0);
  return { pages, sampledPages, perPage: sampledPages === 0 ? 1 : Number(sampled.rows[0]!.visits) / sampledPages };
}

async function scanHorizon(db: Kysely<StoreDatabase>): Promise<string> {
  const horizon = await sql<{ xmin: string }>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`.execute(db);
  return `'${digits(horizon.rows[0]?.xmin)}'::xid8`;
}

function digits(value: unknown): string {
  const text = String(value);
  if (!/^[0-9]{1,20}$/.test(text)) throw new StrataError('STRATA_ERR_INVARIANT', `expected an unsigned integer, got '${text.slice(0, 30)}'`);
  return text;
}
function signedDigits(value: bigint): string {
  return value < 0n ? `-${digits(-value)}` : digits(value);
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new StrataError('STRATA_ERR_INVARIANT', `${name} must be a positive integer`);
  return value;
}

/**
 * The `events` rows of `ids` (those stored), `columns` of each, by one probe of the unique id
 * index per id: `offset 0` keeps the lateral subquery a parameterised index scan, which
 * PostgreSQL plans so even on an empty table. The append's statements are prepared once hot
 * (append-transaction.ts) and a generic plan made in a new database's first seconds is kept
 * until autovacuum analyses the table: `where id = any(…)` was planned then as a sequential
 * scan, which read the whole growing table on every batch (appends fell from ~2,000/s to
 * ~500/s over the first 32,000 events; storage.md). `columns` is fixed SQL; the statement is
 * text built without Kysely (sql-text.ts).
 */
function eventsByIdText(ids: readonly string[], columns: string): SqlText {
  return sqlText`select found.* from unnest(${ids}::text[]) as wanted(id)
    cross join lateral (select ${rawText(columns)} from events where events.id = wanted.id offset 0) as found`;
}

/**
 * The ids and positions of the events this transaction inserted: a large batch's, by its one
 * COPY (nothing else inserts events in its transaction before the statement runs), which
 * returns none. One range of `events_transaction_id_position` instead of a probe of the id
 * index per event (4 µs per event of the backend's CPU). Ordered by that index and limited to
 * the batch's size, so that the planner reads the range by the index however many rows it
 * believes one transaction holds (a sequential scan would need all its rows sorted first);
 * an event missing from the answer fails the batch (STRATA_ERR_INVARIANT in `record`).
 */
function eventPositionsOfThisTransaction(events: number): SqlText {
  return sqlText`select id, position from events where transaction_id = pg_current_xact_id()
    order by transaction_id, position limit ${rawText(String(Math.trunc(events)))}`;
}

/** The columns `eventCopyData` writes, in its order (position and transaction_id take their defaults). */
const EVENT_COPY_IN_COLUMNS = 'id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, target, prev_hash, origin_prev, digest';

interface CopiedEventRow {
  readonly prepared: PreparedEvent;
  readonly stream: string;
  readonly revision: number;
  readonly chained?: ChainedEvent;
}

/** A binary COPY of `rows` into `events` (EVENT_COPY_IN_COLUMNS): the values the INSERT of unnested arrays writes. */
function eventCopyData(rows: readonly CopiedEventRow[]): Uint8Array[] {
  let bytes = 0;
  for (const row of rows) bytes += row.prepared.data.length + row.chained!.meta.length + 512;
  const out = new BinaryCopyWriter(bytes);
  for (const row of rows) {
    const event = row.prepared.event;
    const chained = row.chained!;
    out.row(14);
    out.text(event.id);
    out.text(row.stream);
    out.int4(row.revision);
    out.text(event.origin);
    out.int4(event.originSeq);
    out.int8(event.hlc.wall);
    out.int4(event.hlc.logical);
    out.text(event.type);
    out.bytea(row.prepared.data);
    out.bytea(chained.meta);
    if (chained.target === null) out.null();
    else out.text(chained.target);
    out.bytea(chained.prevHash);
    if (chained.originPrev === null) out.null();
    else out.bytea(chained.originPrev);
    out.bytea(chained.digest);
    out.endRow();
  }
  return [BINARY_COPY_HEADER, ...out.take(true), BINARY_COPY_TRAILER];
}

/** For the audit queries of this package (sql-event-audit.ts); not part of the package's surface. */
export { decodeRow as decodeStoredEventRow, EVENT_COLUMNS as STORED_EVENT_COLUMNS, SCAN_COLUMNS as STORED_SCAN_COLUMNS, type EventRow as StoredEventRow };
