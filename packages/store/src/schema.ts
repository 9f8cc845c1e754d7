import type { ColumnType, Generated } from 'kysely';
import type { ProjectionTables } from './projections/projection-tables.ts';

/**
 * The Kysely schema shared by PostgreSQL and PGlite. One set of migrations (./migrations)
 * creates it. Event tables first, projection tables after.
 */

export interface EventsTable {
  position: Generated<string>; // bigint identity; pg returns int8 as string
  transaction_id: Generated<string>; // xid8 from pg_current_xact_id()
  id: string;
  stream: string;
  revision: number;
  origin: string;
  origin_seq: number;
  hlc_wall: ColumnType<string, string | number | bigint, never>;
  hlc_logical: number;
  type: string;
  /** msgpackr-encoded domain data. */
  data: Uint8Array;
  /** msgpackr-encoded meta. */
  meta: Uint8Array;
}

export interface StreamsTable {
  stream: string;
  revision: number;
}

export interface StoreDatabase {
  events: EventsTable;
  streams: StreamsTable;
  // projection tables are declared below by the projection modules' section
  artifacts: ProjectionTables['artifacts'];
  folder_tombstones: ProjectionTables['folder_tombstones'];
  artifact_properties: ProjectionTables['artifact_properties'];
  repositories: ProjectionTables['repositories'];
  projection_checkpoints: ProjectionTables['projection_checkpoints'];
}
