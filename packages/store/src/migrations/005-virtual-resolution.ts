import { sql, type Kysely, type Migration } from 'kysely';
import type { ResolvableRepository } from '@strata/core';
import { writeOrders } from '../projections/virtual-resolution-projection.ts';

/**
 * Remote and virtual repositories (issue 6): the virtual resolution order projection
 * (`VirtualResolutionProjection`), one row per virtual with its flattened member keys in
 * resolution order. Existing virtuals get their row here. Same SQL on PostgreSQL and PGlite.
 */
export const virtualResolutionMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`create table virtual_resolution_orders (virtual_key text collate "C" primary key, members jsonb not null)`.execute(db);
    const rows = await sql<{ key: string; config: unknown }>`select key, config from repositories where exists`.execute(db);
    const configs = new Map<string, ResolvableRepository>();
    for (const row of rows.rows) {
      const config = (typeof row.config === 'string' ? JSON.parse(row.config) : row.config) as Record<string, unknown>;
      configs.set(row.key, { ...config, key: row.key, rclass: String(config.rclass ?? '') });
    }
    await writeOrders(db, configs);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table if exists virtual_resolution_orders`.execute(db);
  },
};
