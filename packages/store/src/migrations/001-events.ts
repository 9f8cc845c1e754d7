import { sql, type Kysely, type Migration } from 'kysely';

/**
 * The event log and the per-stream revision table (DESIGN §3, §6). The same SQL runs on
 * PostgreSQL and PGlite. Every row is stamped with the id of the transaction that wrote it,
 * so that readers can stop below the oldest transaction still running and never skip a row
 * committed late by a concurrent writer; the global order is (transaction_id, position).
 */
export const eventsMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`
      create table events (
        position bigint generated always as identity primary key,
        transaction_id xid8 not null default pg_current_xact_id(),
        id text unique not null,
        stream text not null,
        revision integer not null,
        origin text not null,
        origin_seq integer not null,
        hlc_wall bigint not null,
        hlc_logical integer not null,
        type text not null,
        data bytea not null,
        meta bytea not null,
        unique (stream, revision)
      )`.execute(db);
    await sql`create index events_transaction_id_position on events (transaction_id, position)`.execute(db);
    // revision is -1 while a stream row exists (locked by an append) but holds no event yet.
    await sql`create table streams (stream text primary key, revision integer not null)`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table streams`.execute(db);
    await sql`drop table events`.execute(db);
  },
};
