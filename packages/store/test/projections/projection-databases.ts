/**
 * Databases for the projection tests: PGlite always, PostgreSQL when DATABASE_URL is set
 * (each run in a fresh schema, dropped afterwards). Both get migration 002-projections.
 */
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { projectionsMigration, type StoreDatabase } from '@strata/store';

export interface ProjectionDatabase {
  readonly name: string;
  readonly db: Kysely<StoreDatabase>;
  close(): Promise<void>;
}

/**
 * PGlite behind Kysely's PostgresDialect: a one-connection "pool" that hands out the same
 * client, queued, so a transaction owns it until it releases it.
 */
function pglitePool(pglite: PGlite) {
  let queue: Promise<void> = Promise.resolve();
  const client = {
    async query(text: string, params: unknown[] = []) {
      const result = await pglite.query(text, params);
      return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length, command: text.trim().split(/\s+/)[0]?.toUpperCase() ?? '' };
    },
    release() {},
  };
  return {
    async connect() {
      let release!: () => void;
      const previous = queue;
      queue = new Promise<void>((resolve) => (release = resolve));
      await previous;
      return { ...client, release };
    },
    async end() {},
  };
}

export async function openPgliteProjectionDatabase(): Promise<ProjectionDatabase> {
  const pglite = new PGlite();
  await pglite.waitReady;
  const db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool: pglitePool(pglite) as never }) });
  await projectionsMigration.up(db as Kysely<any>);
  return {
    name: 'pglite',
    db,
    async close() {
      await db.destroy();
      await pglite.close();
    },
  };
}

export async function openPostgresProjectionDatabase(url: string): Promise<ProjectionDatabase> {
  const schema = `proj_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const pool = new pg.Pool({ connectionString: url, max: 8, options: `-c search_path=${schema}` });
  const db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool }) });
  await projectionsMigration.up(db as Kysely<any>);
  return {
    name: 'postgres',
    db,
    async close() {
      await db.destroy();
      const cleanup = new pg.Client({ connectionString: url });
      await cleanup.connect();
      await cleanup.query(`drop schema ${schema} cascade`);
      await cleanup.end();
    },
  };
}

export const PROJECTION_BACKENDS: { name: string; open(): Promise<ProjectionDatabase> }[] = [
  { name: 'pglite', open: openPgliteProjectionDatabase },
  ...(process.env.DATABASE_URL ? [{ name: 'postgres', open: () => openPostgresProjectionDatabase(process.env.DATABASE_URL!) }] : []),
];
