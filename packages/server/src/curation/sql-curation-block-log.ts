import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { CurationBlock, CurationBlockLog } from './curation-service.ts';

interface BlockRow {
  at: string | number;
  actor: string;
  repo: string;
  path: string;
  policy: string;
  reason: string;
  requested_repo: string;
  package_name: string | null;
  package_version: string | null;
}

/**
 * Curation blocks in a server-owned side table (as frequent as requests: not events).
 * Created idempotently at start on PostgreSQL and PGlite alike; rows beyond `rowsMax` are
 * trimmed now and then, oldest first.
 */
export class SqlCurationBlockLog implements CurationBlockLog {
  // The table is the server's own, outside the store's typed schema.
  readonly #db: Kysely<any>;
  readonly #rowsMax: number;
  #sinceTrim = 0;

  constructor(db: Kysely<any>, options: { rowsMax?: number } = {}) {
    this.#db = db;
    this.#rowsMax = options.rowsMax ?? 1_000_000;
  }

  async ensureSchema(): Promise<void> {
    await sql`
      create table if not exists server_curation_blocks (
        id bigserial primary key,
        at bigint not null,
        actor text not null,
        repo text collate "C" not null,
        path text collate "C" not null,
        policy text collate "C" not null,
        reason text not null,
        requested_repo text not null,
        package_name text,
        package_version text
      )`.execute(this.#db);
  }

  async record(block: CurationBlock): Promise<void> {
    await sql`
      insert into server_curation_blocks (at, actor, repo, path, policy, reason, requested_repo, package_name, package_version)
      values (${block.at}, ${block.actor}, ${block.repo}, ${block.path}, ${block.policy}, ${block.reason}, ${block.requestedRepo},
              ${block.packageName ?? null}, ${block.packageVersion ?? null})`.execute(this.#db);
    if (++this.#sinceTrim >= 1_000) {
      this.#sinceTrim = 0;
      await sql`delete from server_curation_blocks where id <= (select max(id) from server_curation_blocks) - ${this.#rowsMax}`.execute(this.#db);
    }
  }

  async list(options: { limit: number; repo?: string; policy?: string }): Promise<readonly CurationBlock[]> {
    const result = await sql<BlockRow>`
      select at, actor, repo, path, policy, reason, requested_repo, package_name, package_version
        from server_curation_blocks
       where (${options.repo ?? null}::text is null or repo = ${options.repo ?? null})
         and (${options.policy ?? null}::text is null or policy = ${options.policy ?? null})
       order by id desc
       limit ${options.limit}`.execute(this.#db);
    return result.rows.map((row) => ({
      at: Number(row.at),
      actor: row.actor,
      repo: row.repo,
      path: row.path,
      policy: row.policy,
      reason: row.reason,
      requestedRepo: row.requested_repo,
      ...(row.package_name === null ? {} : { packageName: row.package_name }),
      ...(row.package_version === null ? {} : { packageVersion: row.package_version }),
    }));
  }
}
