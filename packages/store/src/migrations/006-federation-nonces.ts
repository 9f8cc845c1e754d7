import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Replay protection that survives a restart (issue 4, "replays of old batches"): the nonce of
 * every accepted signed push, kept until its request timestamp has left the signature's
 * window (±5 min), so a push replayed to a site that restarted meanwhile is refused like one
 * replayed to a site that kept running. PostgreSQL and PGlite alike.
 */
export const federationNoncesMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`
      create table federation_nonces (
        nonce text collate "C" primary key,
        expires_at_ms bigint not null
      )`.execute(db);
    await sql`create index federation_nonces_expiry on federation_nonces (expires_at_ms)`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table federation_nonces`.execute(db);
  },
};
