import { createHash } from 'node:crypto';
import { Migrator, type Kysely, type Migration } from 'kysely';
import { StrataError } from '@strata/core';
import { eventsMigration } from './001-events.ts';
import { projectionsMigration } from './002-projections.ts';
import { federationMigration } from './003-federation.ts';
import { auditMigration } from './004-audit.ts';
import { eventDigestMigration } from './004b-event-digest.ts';
import { virtualResolutionMigration } from './005-virtual-resolution.ts';
import { federationNoncesMigration } from './006-federation-nonces.ts';
import { auditConfigHistoryMigration } from './009-audit-config-history.ts';
import { inlineBlobsMigration } from './010-inline-blobs.ts';
import { byteOrderKeysMigration } from './011-byte-order-keys.ts';

/**
 * Every migration of the store database, in order. Names sort in application order; a
 * shipped migration never changes (add a new one).
 */
export const migrations: Readonly<Record<string, Migration>> = Object.freeze({
  '001-events': eventsMigration,
  '002-projections': projectionsMigration,
  '003-federation': federationMigration,
  '004-audit': auditMigration,
  '004b-event-digest': eventDigestMigration,
  '005-virtual-resolution': virtualResolutionMigration,
  '006-federation-nonces': federationNoncesMigration,
  '009-audit-config-history': auditConfigHistoryMigration,
  '010-inline-blobs': inlineBlobsMigration,
  '011-byte-order-keys': byteOrderKeysMigration,
});

/**
 * A digest of the migrations' names and code: a PGlite template built with one set of
 * migrations is never reused for another.
 */
export function migrationsHash(): string {
  const hash = createHash('sha256');
  for (const [name, migration] of Object.entries(migrations)) {
    hash.update(name).update('\0').update(migration.up.toString()).update('\0');
    hash.update(migration.down?.toString() ?? '').update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

export interface MigrateOptions {
  /** Schema holding Kysely's migration bookkeeping tables; default: the search_path's first. */
  readonly schema?: string;
}

/** Brings the database to the latest migration; throws STRATA_ERR_STORE_UNAVAILABLE on failure. */
export async function migrateToLatest(db: Kysely<any>, options: MigrateOptions = {}): Promise<void> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => ({ ...migrations }) },
    // Migration numbers are handed out per area (federation 003, audit 004, …) and land in any
    // order: a database that ran 004 before 003 existed still takes 003.
    allowUnorderedMigrations: true,
    ...(options.schema === undefined ? {} : { migrationTableSchema: options.schema }),
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error !== undefined) {
    const failed = results?.find((result) => result.status === 'Error')?.migrationName;
    throw new StrataError(
      'STRATA_ERR_STORE_UNAVAILABLE',
      `store migration ${failed ?? ''} failed: ${error instanceof Error ? error.message : String(error)}`,
      { migration: failed },
      { cause: error },
    );
  }
}
