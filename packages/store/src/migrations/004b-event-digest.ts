import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Each event's digest (core's event-chain.ts) stored beside it (issue 8), so that the
 * verifier checks every event's content against its digest in one parallel scan and walks
 * the chains over narrow rows (links and digests, not data). Events stored before are
 * digested here, by the same SQL the verifier uses.
 */
export const eventDigestMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`alter table events add column digest bytea`.execute(db);
    await sql`update events set digest = sha256(convert_to(stream || E'\\n' || id || E'\\n' || origin || E'\\n' || origin_seq || E'\\n' || hlc_wall || E'\\n' || hlc_logical || E'\\n' || type || E'\\n' || octet_length(data) || E'\\n', 'UTF8') || data || meta)`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`alter table events drop column digest`.execute(db);
  },
};
