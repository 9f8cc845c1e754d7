import type { Kysely, RawBuilder } from 'kysely';
import type { RecordedEvent, StreamEvent } from '@strata/core';
import type { StoreDatabase } from './schema.ts';

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
   * store can fold its lock and its load into the store's own two statements (two round
   * trips fewer per append transaction). `events` are the batch's candidates (some may turn
   * out to be duplicates or refused): the plan may lock and load more than `apply` then
   * uses. undefined: these events do not concern the projection.
   */
  planInline?(events: readonly StreamEvent[]): InlineProjectionPlan | undefined;
}

/** What `planInline` returns; see SqlProjection.planInline. */
export interface InlineProjectionPlan {
  /**
   * Keys of transaction-scoped advisory locks (class PROJECTION_LOCK_CLASS, hashtext(key)),
   * taken by the store after its stream locks and before the statement that runs `load`.
   */
  readonly lockKeys: readonly string[];
  /** A query returning rows `(kind text, row jsonb)`, run inside the statement that inserts the events. */
  readonly load: RawBuilder<{ kind: string; row: unknown }>;
  /** Applies the recorded events of the batch (in global order) given what `load` returned. */
  apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[], loaded: readonly { kind: string; row: unknown }[]): Promise<void>;
}
