import type { Kysely } from 'kysely';
import type { RecordedEvent } from '@strata/core';
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
}
