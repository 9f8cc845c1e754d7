import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Configuration changes in the history (issue 8): a repository's `RepositoryConfigChanged`
 * events are about its root (`events.target` = '', core's eventTargetPath), so the history
 * of every path shows who changed a virtual's members or a repository's patterns, and when.
 * Events stored before get their target here. Same SQL on PostgreSQL and PGlite. The target
 * is not part of an event's digest: the chains are unchanged.
 */
export const auditConfigHistoryMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`update events set target = '' where type = 'RepositoryConfigChanged' and target is null`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`update events set target = null where type = 'RepositoryConfigChanged'`.execute(db);
  },
};
