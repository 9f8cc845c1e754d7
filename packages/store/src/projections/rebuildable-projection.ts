import type { Kysely } from 'kysely';
import type { EventType, RecordedEvent } from '@strata/core';
import type { SqlProjection } from '../projection.ts';
import type { StoreDatabase } from '../schema.ts';
import type { CopyRows } from './bulk-copy.ts';
import type { EventCopyRowSink } from '../event-copy-reader.ts';

/**
 * A rebuild in progress: the projection folds events into an in-memory model (pure code,
 * much faster than evolving rows), then writes its final state into its truncated tables
 * in bulk.
 */
export interface ProjectionRebuild {
  add(events: readonly RecordedEvent[]): void;
  /**
   * Writes the final state into empty tables; returns the number of rows written. `copy`,
   * when given, writes rows with COPY in the same transaction as `db`.
   */
  write(db: Kysely<StoreDatabase>, onRows?: (rows: number) => void, copy?: CopyRows, options?: ProjectionWriteOptions): Promise<number>;
  /**
   * The same rows as `write`, table by table: `writeTable` runs each table's `work` in a
   * transaction of its own and commits it before the next (one at a time, in the order
   * called), so that a rebuild may build a table's indexes while the next table is written
   * (rebuild-projections.ts, swapThroughShadowSchema). Only where the tables are written with
   * COPY into empty tables without indexes (`unindexed`); absent: `write` in one transaction.
   */
  writeTables?(writeTable: ShadowTableWriter, onRows?: (rows: number) => void): Promise<number>;
  /**
   * Rows of the rebuild's bulk scan this rebuild folds without a decoded event (the
   * artifact tree's ArtifactDeployed rows, read from their bytes), of `rowSink.types` only.
   * Used when every other projection of the rebuild declares rebuildEventTypes without those
   * types: the rows it takes reach no other projection.
   */
  readonly rowSink?: EventCopyRowSink & { readonly types: readonly EventType[] };
}

/** Writes one table's rows by `work` (returning the rows written) in a transaction of its own, committed when it resolves. */
export type ShadowTableWriter = (table: string, work: (tx: Kysely<StoreDatabase>, copy: CopyRows) => Promise<number>) => Promise<number>;

export interface ProjectionWriteOptions {
  /**
   * The tables have no indexes and no key constraints for now (a rebuild creates them once
   * the rows are in): rows may come in any order. Default false: primary-key order, which
   * keeps inserts at the right edge of each index.
   */
  readonly unindexed?: boolean;
}

/** A projection that can rebuild in bulk rather than by replaying `apply` batch by batch. */
export interface RebuildableSqlProjection extends SqlProjection {
  /** The tables `truncate` empties; their secondary indexes are rebuilt after a bulk write. */
  readonly tables: readonly string[];
  startRebuild(): ProjectionRebuild;
  /**
   * The event types its rebuild folds, when it ignores every other: a rebuild whose
   * artifact-tree fold runs in worker threads (rebuild-workers.ts) hands it only these, as
   * the workers decode them. Absent: it needs every event, and the rebuild folds in one thread.
   */
  readonly rebuildEventTypes?: readonly EventType[];
  /**
   * Present when the projection's rows fall apart by stream: the rows a rebuild writes for
   * a set of streams depend on those streams' events alone and never meet the rows of
   * another set. A rebuild on PostgreSQL then folds and writes a group of streams while it
   * reads the next (rebuild-projections.ts), with a `startRebuild()` per group. `crosses`
   * tells an event of one stream that concerns another stream's rows: the rebuild then
   * falls back to one fold of every event.
   */
  readonly rebuildByStream?: { crosses(event: RecordedEvent): boolean };
}

export function isRebuildableProjection(projection: SqlProjection): projection is RebuildableSqlProjection {
  return typeof (projection as Partial<RebuildableSqlProjection>).startRebuild === 'function';
}
