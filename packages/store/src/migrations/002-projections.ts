import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Projection tables (artifact tree, properties, repository configuration, checkpoints).
 * The same SQL runs on PostgreSQL and PGlite. Ordered text uses COLLATE "C" so that SQL
 * order and range scans agree with JavaScript's string order.
 */
export const projectionsMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`
      create table artifacts (
        repo text collate "C" not null,
        path text collate "C" not null,
        parent text collate "C" not null,
        name text collate "C" not null,
        present boolean not null,
        sha256 text,
        sha1 text,
        md5 text,
        size bigint,
        mime_type text,
        remote_url text,
        created_at bigint,
        created_by text,
        modified_at bigint,
        modified_by text,
        content_wall bigint,
        content_logical integer,
        content_origin text collate "C",
        content_id text collate "C",
        first_wall bigint,
        first_logical integer,
        first_origin text collate "C",
        first_id text collate "C",
        first_actor text,
        tombstone_wall bigint,
        tombstone_logical integer,
        tombstone_origin text collate "C",
        primary key (repo, path)
      )`.execute(db);
    // Children of a folder, and the files of a listing, are present rows only.
    await sql`create index artifacts_present_parent on artifacts (repo, parent, name) where present`.execute(db);
    // Blob garbage collection and checksum search.
    await sql`create index artifacts_sha256 on artifacts (sha256) where present`.execute(db);
    await sql`
      create table folder_tombstones (
        repo text collate "C" not null,
        prefix text collate "C" not null,
        wall bigint not null,
        logical integer not null,
        origin text collate "C" not null,
        primary key (repo, prefix)
      )`.execute(db);
    await sql`
      create table artifact_properties (
        repo text collate "C" not null,
        path text collate "C" not null,
        key text collate "C" not null,
        removed boolean not null,
        wall bigint not null,
        logical integer not null,
        origin text collate "C" not null,
        event_id text collate "C",
        values jsonb not null,
        primary key (repo, path, key)
      )`.execute(db);
    await sql`
      create table repositories (
        key text collate "C" primary key,
        key_identity text collate "C" not null,
        exists boolean not null,
        rclass text,
        config jsonb not null,
        fields jsonb not null,
        created_at bigint,
        modified_at bigint,
        created_wall bigint,
        created_logical integer,
        created_origin text collate "C",
        created_id text collate "C",
        deleted_wall bigint,
        deleted_logical integer,
        deleted_origin text collate "C"
      )`.execute(db);
    await sql`create index repositories_key_identity on repositories (key_identity)`.execute(db);
    await sql`
      create table projection_checkpoints (
        name text primary key,
        transaction_id bigint not null,
        position bigint not null,
        updated_at timestamptz not null default now()
      )`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    for (const table of ['projection_checkpoints', 'repositories', 'artifact_properties', 'folder_tombstones', 'artifacts']) {
      await sql`drop table if exists ${sql.table(table)}`.execute(db);
    }
  },
};
