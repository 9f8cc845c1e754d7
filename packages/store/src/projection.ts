import type { Kysely, RawBuilder } from 'kysely';
import type { RecordedEvent, StreamEvent } from '@strata/core';
import type { StoreDatabase } from './schema.ts';
import type { UnnestColumn } from './projections/sql-values.ts';
import type { SqlText } from './sql-text.ts';

/** A statement a projection hands the store: a Kysely builder, or text built without Kysely's nodes (sql-text.ts, the hot path). */
export type ProjectionStatement = RawBuilder<unknown> | SqlText;

/**
 * A projection kept in the same SQL database as the events. The SQL event store calls
 * `apply` inside the append transaction (read-your-writes); catch-up and rebuild call the
 * same code. Because projections merge by LWW (DESIGN §4), applying an event twice or in
 * another order yields the same rows.
 */
export interface SqlProjection {
  readonly name: string;
  /** Applies `events` (this batch, in global order) using `db`, which is the open transaction. */
  apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[]): Promise<void>;
  /** Removes every row this projection owns (the first step of a rebuild). */
  truncate(db: Kysely<StoreDatabase>): Promise<void>;
  /**
   * Optional, for appends: how this projection would apply a batch, so that the SQL event
   * store can fold its lock, its load and its writes into the store's own round trips (on
   * PostgreSQL an append batch is then two: locks and loads, then insert, writes and
   * commit). `events` are the batch's candidates (some may turn out to be duplicates or
   * refused): the plan may lock and load more than its `apply` then uses. undefined: these
   * events do not concern the projection (nothing is run for it). 'apply': they do, but it
   * cannot say up front — the store calls `apply` with the open transaction once the events
   * and the writes of the projections before it are in (one more round trip).
   */
  planInline?(events: readonly StreamEvent[]): InlineProjectionPlan | 'apply' | undefined;
}

/** What `planInline` returns; see SqlProjection.planInline. */
export interface InlineProjectionPlan {
  /**
   * Keys of transaction-scoped advisory locks (class PROJECTION_LOCK_CLASS, hashtext(key)),
   * taken by the store after its stream locks and before the statement that runs `load`.
   */
  readonly lockKeys: readonly string[];
  /**
   * A query returning rows `(kind text, row jsonb)`, run after the locks (its snapshot
   * follows them), before the events are inserted. undefined: nothing to load.
   */
  readonly load?: RawBuilder<{ kind: string; row: unknown }> | SqlText;
  /**
   * The statements that write the batch's effect, given what `load` returned: `events` are
   * the batch's new events (in global order; without revision and position, which are not
   * known yet). The store sends them after its insert, with the commit.
   */
  apply(events: readonly StreamEvent[], loaded: readonly { kind: string; row: unknown }[]): readonly ProjectionStatement[];
  /**
   * Optional: `apply`'s effect for a large batch (the store calls it instead of `apply` when
   * it writes the batch's events by COPY, `appendCopyEventsMin`), with the rows of its big
   * upserts handed over as COPY data into temporary tables that `statements` then merge into
   * the projection's tables: no literal of thousands of array elements to build, send and
   * parse. The same rows and the same order of effects as `apply`.
   */
  applyBulk?(events: readonly StreamEvent[], loaded: readonly { kind: string; row: unknown }[]): ProjectionBulkWrites;
}

/**
 * Rows a projection writes by COPY in a large append batch: into `table`, a temporary table
 * the store creates like `like` (its columns and defaults; one per session, emptied at every
 * commit) before the COPY; without `like`, straight into `table`, one of the projection's own
 * (rows the batch's locks and loads showed to be new: a plain insert, no merge). Only the
 * `columns` named are written.
 */
export interface ProjectionCopy {
  readonly table: string;
  readonly like?: string;
  readonly columns: readonly UnnestColumn[];
  readonly rows: readonly (readonly unknown[])[];
}

/** What `InlineProjectionPlan.applyBulk` returns: the COPYs first, then the statements, in order. */
export interface ProjectionBulkWrites {
  readonly copies: readonly ProjectionCopy[];
  readonly statements: readonly ProjectionStatement[];
}

/**
 * Writes that travel with an append batch without being a projection (nothing to rebuild or
 * truncate): e.g. the rows of small blobs the batch's events reference (inline-blob-store.ts).
 * The SQL event store sends them in the batch's transaction after its insert and its
 * projections' writes, with the commit: they commit with the events or not at all.
 */
export interface AppendWrites {
  /** `events` are the batch's new events (in global order, without revision and position). */
  statements(events: readonly StreamEvent[]): readonly (SqlText | RawBuilder<unknown>)[];
}
