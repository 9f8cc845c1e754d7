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
  /** The path the event is about, for history (migration 004). */
  target: string | null;
  /** Site chain: the link of the previous event of the stream (migration 004). */
  prev_hash: Uint8Array | null;
  /** Origin chain: meta.originPrev as bytes (migration 004). */
  origin_prev: Uint8Array | null;
  /** The event's digest (core's event-chain.ts; migration 004b). */
  digest: Uint8Array | null;
}

export interface StreamsTable {
  stream: string;
  revision: number;
  /** Site-chain link of the stream's last event (migration 004). */
  chain: Uint8Array | null;
  /** Origin-chain link of the last event `origin_chain_origin` produced in the stream. */
  origin_chain: Uint8Array | null;
  origin_chain_origin: string | null;
}

export interface BlobTrashTable {
  sha256: string;
  /** Epoch ms when blob GC first found the blob unreferenced. */
  since: ColumnType<string, number, number>;
}

/** Small blobs stored with the event that references them (migration 010, inline-blob-store.ts). */
export interface InlineBlobsTable {
  sha256: string;
  bytes: Uint8Array;
  stored_at_ms: ColumnType<string, number, number>;
}

export interface StoreDatabase {
  events: EventsTable;
  streams: StreamsTable;
  blob_trash: BlobTrashTable;
  inline_blobs: InlineBlobsTable;
  // projection tables are declared below by the projection modules' section
  artifacts: ProjectionTables['artifacts'];
  folder_tombstones: ProjectionTables['folder_tombstones'];
  artifact_properties: ProjectionTables['artifact_properties'];
  repositories: ProjectionTables['repositories'];
  projection_checkpoints: ProjectionTables['projection_checkpoints'];
}
