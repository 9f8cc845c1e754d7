import type { NewEvent, RecordedEvent, StrataError } from '@strata/core';
import type { RawBuilder } from 'kysely';
import type { AppendWrites } from './projection.ts';
import type { EventCopyRowSink } from './event-copy-reader.ts';
import type { SqlText } from './sql-text.ts';

/**
 * What the caller expects the stream's current revision to be (optimistic concurrency):
 * a number (the revision of the last event, 0-based), `any` (no check), `no_stream`
 * (the stream must not exist yet) or `exists` (it must have at least one event).
 */
export type ExpectedRevision = number | 'any' | 'no_stream' | 'exists';

/**
 * A position in this site's global order. On PostgreSQL it is the pair (transaction id,
 * position) so that a reader never skips a row committed late by a concurrent writer
 * (DESIGN §3); other backends leave `transactionId` at 0n.
 */
export interface Checkpoint {
  readonly transactionId: bigint;
  readonly position: bigint;
}
export const START_CHECKPOINT: Checkpoint = Object.freeze({ transactionId: 0n, position: -1n });

export interface AppendOptions {
  readonly expectedRevision?: ExpectedRevision;
  readonly signal?: AbortSignal;
  /**
   * SQL stores: statements that commit in this append's transaction, sent with its other
   * writes — only when this append writes at least one new event (an append of duplicates
   * only, or a refused one, sends none). E.g. the nonce of the federation push whose events
   * these are, so that the push costs no commit of its own. Other stores ignore them.
   */
  readonly writes?: AppendWrites;
  /**
   * A condition the caller is still checking (say, a lookup of the projections): the store
   * starts the append's transaction without waiting for it, takes the stream's lock, and
   * waits for it before the append's writes commit (a SQL store sending a batch in one round
   * trip may send them meanwhile, and rolls them back if it rejects). If it rejects, the append
   * is refused with its reason (a StrataError; anything else becomes STRATA_ERR_INVARIANT) and
   * nothing of it is written; the other appends of the batch go on. The check thus runs while
   * the transaction's first round trip does, instead of before it.
   */
  readonly precondition?: Promise<void>;
  /**
   * SQL stores only (the memory store refuses an append with one): a condition on the
   * database checked inside the append's own transaction, after its locks, in the round trip
   * that takes them — a caller's lookup without a query or a wait of its own. Nothing of the
   * append is written unless it holds; if it does not, the append alone is refused with
   * `refusal`'s error, as for a failed precondition.
   */
  readonly guard?: AppendGuard;
  /**
   * Another append this one is planned on (a received catch-up page behind the one ahead of
   * it, federation): this one is written only after that one has committed — a SQL store
   * never puts the two in one transaction — and is refused, nothing of it written, with the
   * rejection's reason if that one failed (as a `precondition` that rejects).
   */
  readonly after?: Promise<unknown>;
}

/** `options.precondition` and `options.after` as one condition (undefined: none). */
export function appendCondition(options: AppendOptions): Promise<void> | undefined {
  const { after, precondition } = options;
  if (after === undefined) return precondition;
  const followed = after.then(() => undefined);
  return precondition === undefined ? followed : Promise.all([followed, precondition]).then(() => undefined);
}

/** AppendOptions.guard: a statement returning no rows when the append may go. */
export interface AppendGuard {
  /**
   * Read-only; rows when the condition does not hold (any columns: the refusal reads them).
   * An SqlText (sqlText) is spliced in as it is; a Kysely builder is compiled first.
   */
  readonly statement: SqlText | RawBuilder<unknown>;
  /** The error refusing the append, from the statement's rows (as JSON objects, by column name). */
  refusal(rows: readonly Readonly<Record<string, unknown>>[]): StrataError;
}

export interface AppendResult {
  /** Revision of the stream's last event after the append (-1 if the stream is empty). */
  readonly nextRevision: number;
  /** The events as stored, in order; events skipped as duplicates are returned as stored before. */
  readonly events: readonly RecordedEvent[];
  /** How many of the given events were new (the rest were already stored: idempotent). */
  readonly appendedCount: number;
}

/** One stream's part of a multi-stream append (`appendMany`). */
export interface StreamAppend {
  readonly stream: string;
  readonly events: readonly NewEvent[];
  readonly expectedRevision?: ExpectedRevision;
}

export interface AppendManyOptions {
  readonly signal?: AbortSignal;
}

export interface ReadStreamOptions {
  /** First revision to return (inclusive); default 0. */
  readonly fromRevision?: number;
  /** Default and cap: `readBatchEventsMax`. */
  readonly maxCount?: number;
  readonly signal?: AbortSignal;
}

export interface ReadAllOptions {
  /** Return events strictly after this checkpoint; default START_CHECKPOINT. */
  readonly after?: Checkpoint;
  readonly maxCount?: number;
  readonly signal?: AbortSignal;
}

export interface ReadAllResult {
  readonly events: readonly RecordedEvent[];
  /** Checkpoint to pass as `after` to continue; equal to the input when nothing was read. */
  readonly checkpoint: Checkpoint;
}

export interface SubscribeOptions {
  readonly after?: Checkpoint;
  readonly signal?: AbortSignal;
  /** Poll interval when caught up (SQL backends); default 50 ms. */
  readonly pollIntervalMs?: number;
}

/** A catch-up subscription: every event after the checkpoint, then live events, in global order. */
export interface Subscription extends AsyncIterable<{ event: RecordedEvent; checkpoint: Checkpoint }> {
  close(): Promise<void>;
}

export const readBatchEventsMax = 10_000;

export interface ScanAllOptions {
  /** Return events strictly after this checkpoint; default START_CHECKPOINT. */
  readonly after?: Checkpoint;
  /** Events per page; default readBatchEventsMax. */
  readonly pageEventsMax?: number;
  readonly signal?: AbortSignal;
}

/**
 * A bulk reader of the global order, for whatever reads all of it: rebuilds, `strata
 * replay`, exports. `scanAll` returns what consecutive `readAll` calls would, as pages with
 * checkpoints in global order, up to the global-order horizon as it stood when the scan
 * started (events committed later are left to readAll), at a fraction of the cost: the SQL
 * store reads with one binary COPY instead of a query per page.
 */
export interface EventScanner {
  scanAll(options?: ScanAllOptions): AsyncIterable<ReadAllResult>;
}

export function isEventScanner(store: object): store is EventScanner {
  return typeof (store as Partial<EventScanner>).scanAll === 'function';
}

/**
 * A bulk scan (EventScanner) whose rows a sink may take undecoded (the SQL store's binary
 * COPY: see EventCopyRowSink): a rebuild's fold in this thread reads ArtifactDeployed data
 * from its bytes. The pages leave the taken rows out; their checkpoints are scanAll's.
 */
export interface EventSinkScanner {
  scanAllInto(sink: EventCopyRowSink, options?: ScanAllOptions): AsyncIterable<ReadAllResult>;
}

export function isEventSinkScanner(store: object): store is EventSinkScanner {
  return typeof (store as Partial<EventSinkScanner>).scanAllInto === 'function';
}

export interface ScanStreamOptions {
  /** Only events at or before this position of the global order. */
  readonly untilPosition?: bigint;
  /** Only events whose HLC physical time is at or before this (ms since the epoch). */
  readonly untilWall?: number;
  /** Events per page at most; default readBatchEventsMax. */
  readonly pageEventsMax?: number;
  readonly signal?: AbortSignal;
}

/**
 * A bulk reader of one stream for a fold that does not depend on the order of its events
 * (the artifact tree and the repository configuration merge by HLC stamps, whatever order
 * events arrive in: core's delivery-order properties): `strata replay --repo`. Pages come in
 * no particular order, so the store can read the stream's rows as they lie in the table
 * instead of one index probe per event.
 */
export interface StreamScanner {
  scanStream(stream: string, options?: ScanStreamOptions): AsyncIterable<readonly RecordedEvent[]>;
}

export function isStreamScanner(store: object): store is StreamScanner {
  return typeof (store as Partial<StreamScanner>).scanStream === 'function';
}

/**
 * A stream scan (StreamScanner) whose rows a sink may take undecoded (the SQL store's binary
 * COPY: see EventCopyRowSink), as EventSinkScanner does for the global order: `strata replay
 * --repo` folds a repository's ArtifactDeployed, ArtifactDeleted and PropertiesSet rows from
 * their bytes. The pages leave the taken rows out (a page may be empty); the sink gets each
 * taken row's revision. Where the store reads without COPY, every row is decoded and paged.
 */
export interface StreamSinkScanner {
  scanStreamInto(stream: string, sink: EventCopyRowSink, options?: ScanStreamOptions): AsyncIterable<readonly RecordedEvent[]>;
}

export function isStreamSinkScanner(store: object): store is StreamSinkScanner {
  return typeof (store as Partial<StreamSinkScanner>).scanStreamInto === 'function';
}

/**
 * The bulk scan of the global order (EventScanner) split by stream, for a rebuild that folds
 * and writes one group of streams while it reads the next (rebuild-projections.ts): every
 * event below one horizon, taken once, read a group of streams at a time. Events are immutable and every
 * transaction below the horizon has ended, so the streams read at any time make up exactly
 * what readAll returns up to `checkpoint`.
 */
export interface StreamPartitionedScan {
  /** After the last event of the scan in the global order (START_CHECKPOINT when there is none). */
  readonly checkpoint: Checkpoint;
  /** Every stream that may hold events of the scan, in code-unit order, with its length at most. */
  readonly streams: readonly { readonly stream: string; readonly eventsMax: number }[];
  /** The scan's events of `streams`, in no particular order (as StreamScanner). */
  scanStreams(streams: readonly string[], options?: { readonly pageEventsMax?: number; readonly signal?: AbortSignal }): AsyncIterable<readonly RecordedEvent[]>;
  /**
   * How interleaved `groups` are in the log's storage, from a sample of its pages: the pages
   * that reading the groups one after another visits, per page that one scan visits (1 when
   * every page holds one group's events; up to the number of groups when every page holds all).
   */
  pageVisits(groups: readonly (readonly string[])[]): Promise<PageVisits>;
}

/** StreamPartitionedScan.pageVisits: the log's size in pages, the pages sampled, the estimate. */
export interface PageVisits {
  readonly pages: number;
  readonly sampledPages: number;
  /** Estimated page visits of the group-by-group read per page of the log (1 when nothing was sampled). */
  readonly perPage: number;
}

export interface StreamPartitionScanner {
  /** The scan after nothing, split by stream; undefined when this store reads otherwise (no COPY, or COPY in slices, as on PGlite). */
  scanByStream(options?: { readonly signal?: AbortSignal }): Promise<StreamPartitionedScan | undefined>;
}

export function isStreamPartitionScanner(store: object): store is StreamPartitionScanner {
  return typeof (store as Partial<StreamPartitionScanner>).scanByStream === 'function';
}

/**
 * A store whose bulk scan is one binary COPY it can hand over undecoded (the SQL store on
 * PostgreSQL): a rebuild's worker threads decode it (projections/rebuild-workers.ts).
 */
export interface EventCopyScanner {
  /** The raw COPY output of the scan after `after`, or undefined when this store cannot give it. */
  scanAllCopy(options?: { readonly after?: Checkpoint; readonly signal?: AbortSignal }): AsyncIterable<Uint8Array> | undefined;
}

export function isEventCopyScanner(store: object): store is EventCopyScanner {
  return typeof (store as Partial<EventCopyScanner>).scanAllCopy === 'function';
}

/**
 * The one event-store interface every backend implements (memory, PostgreSQL, PGlite, and
 * later EventStoreDB) and the conformance suite in test/ checks.
 */
export interface EventStore {
  /**
   * True when this store builds an append given `after` while the append ahead of it is still
   * being written (the SQL store on PostgreSQL: "Large batches pipelined", storage.md): a caller
   * then gains by handing appends over early. Undefined or false: it would only wait in the queue.
   */
  readonly appendsPipelined?: boolean;
  /**
   * Appends events to one stream atomically (all or none). Events whose id is already stored
   * in this stream are skipped (idempotent redelivery); an id stored in another stream, or a
   * stream name an event does not fit, is refused. When every event is a duplicate the call
   * succeeds without checking `expectedRevision`. Inline projections run inside the same
   * transaction, so a resolved append is visible to every read that follows.
   * Throws StrataError STRATA_ERR_STORE_CONCURRENCY_CONFLICT when the expectation fails.
   */
  append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult>;
  /**
   * Appends to several streams in one transaction: every part is stored, or none is (a
   * failed expectation or a refused event in any part fails the whole call), and readers
   * see all parts at once — never some streams' events without the others'. Each part has
   * `append`'s semantics (its own expectation, idempotent duplicates); inline projections
   * run once over all parts in the same transaction. Streams must be distinct. Results are
   * in the order of `appends`.
   */
  appendMany(appends: readonly StreamAppend[], options?: AppendManyOptions): Promise<readonly AppendResult[]>;
  /** Events of one stream in revision order. */
  readStream(stream: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]>;
  /** Revision of the stream's last event, or undefined if the stream has none. */
  streamRevision(stream: string, options?: { signal?: AbortSignal }): Promise<number | undefined>;
  /** Events of every stream in this site's global order, never skipping one committed late. */
  readAll(options?: ReadAllOptions): Promise<ReadAllResult>;
  /** Catch-up subscription from a checkpoint. */
  subscribe(options?: SubscribeOptions): Subscription;
  close(): Promise<void>;
}
