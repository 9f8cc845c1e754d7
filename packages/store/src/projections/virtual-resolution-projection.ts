import { sql, type Kysely } from 'kysely';
import { REPOSITORY_CONFIG_EVENT_TYPES, RepositoryConfigModel, repositoryConfigTarget, virtualResolutionOrder, type RecordedEvent, type ResolvableRepository, type StreamEvent } from '@strata/core';
import type { StoreDatabase } from '../schema.ts';
import type { ProjectionRebuild, RebuildableSqlProjection } from './rebuildable-projection.ts';
import { lockKeysStatement } from './sql-values.ts';

type Row = Record<string, unknown>;

/**
 * The effective resolution order of every virtual repository (core's virtualResolutionOrder:
 * nested virtuals flattened, priority members first, locals before remotes), one row per
 * virtual in `virtual_resolution_orders`. A change to any repository's configuration can
 * change the order of virtuals that reach it, so each batch with a configuration event
 * recomputes every virtual from the `repositories` rows — this projection runs after
 * RepositoryConfigProjection, in the same transaction, under one advisory lock so that two
 * concurrent configuration changes cannot each miss the other's.
 */
export class VirtualResolutionProjection implements RebuildableSqlProjection {
  readonly name = 'virtual-resolution';
  readonly tables = ['virtual_resolution_orders'] as const;

  /** Only configuration events concern it; it reads the repositories rows they wrote, so it applies itself after them. */
  planInline(events: readonly StreamEvent[]): 'apply' | undefined {
    return events.some((event) => repositoryConfigTarget(event) !== undefined) ? 'apply' : undefined;
  }

  async apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[]): Promise<void> {
    if (!events.some((event) => repositoryConfigTarget(event) !== undefined)) return;
    await lockKeysStatement(['virtual-resolution']).execute(db);
    const rows = await sql<Row>`select key, config from repositories where exists`.execute(db);
    const configs = new Map<string, ResolvableRepository>();
    for (const row of rows.rows) {
      const config = (typeof row.config === 'string' ? JSON.parse(row.config) : row.config) as Record<string, unknown>;
      configs.set(String(row.key), { ...config, key: String(row.key), rclass: String(config.rclass ?? '') });
    }
    await writeOrders(db, configs);
  }

  async truncate(db: Kysely<StoreDatabase>): Promise<void> {
    await sql`truncate virtual_resolution_orders`.execute(db);
  }

  /** Its rebuild folds RepositoryConfigModel, which looks at these only. */
  readonly rebuildEventTypes = REPOSITORY_CONFIG_EVENT_TYPES;

  startRebuild(): ProjectionRebuild {
    const model = new RepositoryConfigModel();
    return {
      add(events: readonly RecordedEvent[]): void {
        for (const event of events) model.apply(event);
      },
      async write(db: Kysely<StoreDatabase>, onRows?: (rows: number) => void): Promise<number> {
        const configs = new Map<string, ResolvableRepository>();
        for (const view of model.list()) configs.set(view.key, { ...view.config, key: view.key, rclass: String(view.config.rclass ?? '') });
        const written = await writeOrders(db, configs);
        onRows?.(written);
        return written;
      },
    };
  }
}

/** Replaces every row with the orders of the virtuals among `configs`; returns the rows written. */
export async function writeOrders(db: Kysely<any>, configs: ReadonlyMap<string, ResolvableRepository>): Promise<number> {
  const keys: string[] = [];
  const orders: string[] = [];
  for (const [key, config] of configs) {
    if (config.rclass !== 'virtual') continue;
    keys.push(key);
    orders.push(JSON.stringify(virtualResolutionOrder(key, (member) => configs.get(member))));
  }
  await sql`delete from virtual_resolution_orders`.execute(db);
  if (keys.length > 0) {
    await sql`insert into virtual_resolution_orders (virtual_key, members)
      select k, m::jsonb from unnest(${keys}::text[], ${orders}::text[]) as t(k, m)`.execute(db);
  }
  return keys.length;
}

/** The stored order of a virtual repository, or undefined when it is not a virtual. */
export async function readVirtualResolutionOrder(db: Kysely<StoreDatabase>, key: string): Promise<string[] | undefined> {
  const result = await sql<Row>`select members from virtual_resolution_orders where virtual_key = ${key}`.execute(db);
  const row = result.rows[0];
  if (row === undefined) return undefined;
  return (typeof row.members === 'string' ? JSON.parse(row.members) : row.members) as string[];
}
