import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Small blobs kept in the SQL database (docs/storage.md, "Inline blobs"): a deploy's blob up
 * to the inline threshold is inserted in the same transaction as the event that references
 * it, so the deploy costs no file fsync. Content-addressed like the files: one row per
 * sha256, written once (`on conflict do nothing`), removed only by blob GC. `stored_at_ms`
 * (epoch ms) is the row's age for GC's grace period, as a file's mtime is. The bytes are
 * stored uncompressed out of line (`external`): artifacts are mostly compressed already.
 */
export const inlineBlobsMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`
      create table inline_blobs (
        sha256 text collate "C" primary key,
        bytes bytea not null,
        stored_at_ms bigint not null
      )`.execute(db);
    await sql`alter table inline_blobs alter column bytes set storage external`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table inline_blobs`.execute(db);
  },
};
