import { sql, type Kysely, type Migration } from 'kysely';

/**
 * The key columns that 001 and 002 left in the database's collation take COLLATE "C", as
 * every later key column does: event ids, stream names, origins and event types, the
 * stream table's key, checkpoint names and the artifacts' sha256. Their order does not
 * change (byte order is code-point order for UTF-8, which is what the C.UTF-8 locale sorts
 * by), but PostgreSQL compares "C" text with memcmp and sorts it by abbreviated keys, where
 * a libc locale costs a strcoll call per comparison: a rebuild's `artifacts_sha256` build
 * took 1.42 s instead of 2.12 s (docs/benchmarks.md). The columns keep their type, so the
 * tables are not rewritten; their indexes are rebuilt.
 */
export const byteOrderKeysMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await collate(db, 'C');
  },
  async down(db: Kysely<any>): Promise<void> {
    await collate(db, 'default');
  },
};

async function collate(db: Kysely<any>, collation: 'C' | 'default'): Promise<void> {
  const c = sql.id(collation);
  await sql`
    alter table events
      alter column id type text collate ${c},
      alter column stream type text collate ${c},
      alter column origin type text collate ${c},
      alter column type type text collate ${c}`.execute(db);
  await sql`alter table streams alter column stream type text collate ${c}`.execute(db);
  await sql`alter table projection_checkpoints alter column name type text collate ${c}`.execute(db);
  await sql`alter table artifacts alter column sha256 type text collate ${c}`.execute(db);
}
