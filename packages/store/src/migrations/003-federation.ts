import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Federation's durable state (issue 4), on PostgreSQL and PGlite alike:
 * - `federation_cursors`: per (federated repository, peer site) the version vector the peer
 *   acknowledged — the outbox cursor, saved before the next batch is sent, so a restarted
 *   (or killed) site neither resends what was acknowledged nor skips anything;
 * - `federation_peers`: which site id answers at which public base URL (learned from signed
 *   requests and identity lookups), so member urls resolve to peers after a restart;
 * - `federation_pending_binaries`: binaries referenced by received deploys that this site
 *   has not fetched yet (pulled in the background, counted in the status).
 */
export const federationMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`
      create table federation_cursors (
        repo_key text collate "C" not null,
        peer_id text collate "C" not null,
        vector text not null,
        primary key (repo_key, peer_id)
      )`.execute(db);
    await sql`
      create table federation_peers (
        base_url text collate "C" primary key,
        site_id text collate "C" not null
      )`.execute(db);
    await sql`
      create table federation_pending_binaries (
        sha256 text collate "C" not null,
        repo_key text collate "C" not null,
        origin text collate "C" not null,
        primary key (sha256, repo_key)
      )`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table federation_pending_binaries`.execute(db);
    await sql`drop table federation_peers`.execute(db);
    await sql`drop table federation_cursors`.execute(db);
  },
};
