import type { ColumnType } from 'kysely';

/**
 * Kysely types of the projection tables created by migration 002-projections. Stamps are
 * stored flat (wall ms as int8, logical, origin); text that is ordered or compared uses
 * COLLATE "C" so that SQL order is byte order, which equals JavaScript's code-unit order for
 * every string without characters beyond U+FFFF. int8 columns come back as strings from pg
 * and as numbers or bigints from other drivers: readers convert with Number().
 */
type Int8 = ColumnType<string | number | bigint, string | number | bigint, string | number | bigint>;
type NullableInt8 = ColumnType<string | number | bigint | null, string | number | bigint | null, string | number | bigint | null>;

/** One row per (repo, path) that ever saw a deploy or a delete: the content register. */
export interface ArtifactsTable {
  repo: string;
  path: string;
  /** The folder holding the path ('' at the root). */
  parent: string;
  name: string;
  /** Derived: content stamped after the effective tombstone. */
  present: boolean;
  sha256: string | null;
  sha1: string | null;
  md5: string | null;
  size: NullableInt8;
  mime_type: string | null;
  remote_url: string | null;
  /** Derived (see fileView): wall ms and actor of the deploy that started the current life. */
  created_at: NullableInt8;
  created_by: string | null;
  /** Wall ms and actor of the winning deploy. */
  modified_at: NullableInt8;
  modified_by: string | null;
  content_wall: NullableInt8;
  content_logical: number | null;
  content_origin: string | null;
  content_id: string | null;
  first_wall: NullableInt8;
  first_logical: number | null;
  first_origin: string | null;
  first_id: string | null;
  first_actor: string | null;
  /** Effective tombstone: own deletes and covering folder deletes. */
  tombstone_wall: NullableInt8;
  tombstone_logical: number | null;
  tombstone_origin: string | null;
}

/** FolderDeleted (and RepositoryDeleted as prefix ''): the highest stamp per prefix. */
export interface FolderTombstonesTable {
  repo: string;
  prefix: string;
  wall: Int8;
  logical: number;
  origin: string;
}

/** A normalised property register: the winning value, or the winning removal. */
export interface ArtifactPropertiesTable {
  repo: string;
  path: string;
  key: string;
  removed: boolean;
  wall: Int8;
  logical: number;
  origin: string;
  /** Event id of a value (null for a removal): ties between values break on it. */
  event_id: string | null;
  /** jsonb array of strings. */
  values: ColumnType<string[], string, string>;
}

/** One row per repository key that ever saw a configuration event. */
export interface RepositoriesTable {
  key: string;
  key_identity: string;
  exists: boolean;
  rclass: string | null;
  /** The visible configuration (fields stamped after the delete tombstone). */
  config: ColumnType<Record<string, unknown>, string, string>;
  /** field → { value, wall, logical, origin, id }: the per-field registers. */
  fields: ColumnType<Record<string, { value: unknown; wall: number; logical: number; origin: string; id: string }>, string, string>;
  created_at: NullableInt8;
  modified_at: NullableInt8;
  created_wall: NullableInt8;
  created_logical: number | null;
  created_origin: string | null;
  created_id: string | null;
  deleted_wall: NullableInt8;
  deleted_logical: number | null;
  deleted_origin: string | null;
}

/** How far each projection has been rebuilt or caught up (inline appends do not touch it). */
export interface ProjectionCheckpointsTable {
  name: string;
  transaction_id: Int8;
  position: Int8;
  updated_at: ColumnType<Date, never, never>;
}

export interface ProjectionTables {
  artifacts: ArtifactsTable;
  folder_tombstones: FolderTombstonesTable;
  artifact_properties: ArtifactPropertiesTable;
  repositories: RepositoriesTable;
  projection_checkpoints: ProjectionCheckpointsTable;
}
