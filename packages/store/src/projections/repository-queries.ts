import { sql, type Kysely } from 'kysely';
import type { RepositoryConfigView } from '@strata/core';
import type { StoreDatabase } from '../schema.ts';
import { toNumber } from './sql-values.ts';
import type { QueryOptions } from './artifact-tree-queries.ts';
import { readVirtualResolutionOrder } from './virtual-resolution-projection.ts';

type Row = Record<string, unknown>;

function viewFromRow(row: Row): RepositoryConfigView {
  const config = (typeof row.config === 'string' ? JSON.parse(row.config) : row.config) as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const field of Object.keys(config).sort()) sorted[field] = config[field];
  return {
    key: String(row.key),
    keyIdentity: String(row.key_identity),
    config: sorted,
    createdAt: toNumber(row.created_at),
    lastModified: toNumber(row.modified_at),
  };
}

/** Read side of repository configuration: existing repositories only, as RepositoryConfigModel shows them. */
export class RepositoryQueries {
  readonly #db: Kysely<StoreDatabase>;

  constructor(db: Kysely<StoreDatabase>) {
    this.#db = db;
  }

  /** The repository with exactly this key, or undefined (deleted ones are absent). */
  async get(key: string, options: QueryOptions = {}): Promise<RepositoryConfigView | undefined> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`select key, key_identity, config, created_at, modified_at from repositories
      where key = ${key} and exists`.execute(this.#db);
    const row = result.rows[0];
    return row === undefined ? undefined : viewFromRow(row);
  }

  /** The existing repository whose lower-cased key is `identity` (the smallest key if several). */
  async getByIdentity(identity: string, options: QueryOptions = {}): Promise<RepositoryConfigView | undefined> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`select key, key_identity, config, created_at, modified_at from repositories
      where key_identity = ${identity} and exists order by key limit 1`.execute(this.#db);
    const row = result.rows[0];
    return row === undefined ? undefined : viewFromRow(row);
  }

  /** A virtual's resolution order as VirtualResolutionProjection keeps it (undefined: not a virtual, or not projected). */
  async resolutionOrder(key: string, options: QueryOptions = {}): Promise<string[] | undefined> {
    options.signal?.throwIfAborted();
    return readVirtualResolutionOrder(this.#db, key);
  }

  /** Existing repositories ordered by key, optionally of one rclass. */
  async list(options: QueryOptions & { rclass?: string } = {}): Promise<RepositoryConfigView[]> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`select key, key_identity, config, created_at, modified_at from repositories
      where exists ${options.rclass === undefined ? sql`` : sql`and rclass = ${options.rclass}`}
      order by key`.execute(this.#db);
    return result.rows.map(viewFromRow);
  }
}
