import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import type { DownloadStatsSink, PendingDownloads } from './download-counter.ts';
import type { DownloadStats } from './ports.ts';

/**
 * The download-counter side table (not events: DESIGN §3). Owned by the server; created
 * idempotently at start on PostgreSQL and PGlite alike.
 */
export class SqlDownloadStatsSink implements DownloadStatsSink {
  // The table is the server's own, outside the store's typed schema.
  readonly #db: Kysely<any>;

  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async ensureSchema(): Promise<void> {
    await sql`
      create table if not exists server_download_stats (
        repo text collate "C" not null,
        path text collate "C" not null,
        download_count bigint not null,
        last_downloaded bigint not null,
        last_downloaded_by text not null,
        primary key (repo, path)
      )`.execute(this.#db);
  }

  async add(batch: readonly PendingDownloads[]): Promise<void> {
    if (batch.length === 0) return;
    await sql`
      insert into server_download_stats (repo, path, download_count, last_downloaded, last_downloaded_by)
      select * from unnest(${batch.map((b) => b.repo)}::text[], ${batch.map((b) => b.path)}::text[], ${batch.map((b) => b.count)}::bigint[],
                           ${batch.map((b) => b.lastDownloaded)}::bigint[], ${batch.map((b) => b.lastDownloadedBy)}::text[])
      on conflict (repo, path) do update set
        download_count = server_download_stats.download_count + excluded.download_count,
        last_downloaded = greatest(server_download_stats.last_downloaded, excluded.last_downloaded),
        last_downloaded_by = case when excluded.last_downloaded >= server_download_stats.last_downloaded
                                  then excluded.last_downloaded_by else server_download_stats.last_downloaded_by end`.execute(this.#db);
  }

  async get(repo: string, path: string): Promise<DownloadStats | undefined> {
    const result = await sql<{ download_count: string; last_downloaded: string; last_downloaded_by: string }>`
      select download_count, last_downloaded, last_downloaded_by from server_download_stats where repo = ${repo} and path = ${path}`.execute(this.#db);
    const row = result.rows[0];
    if (row === undefined) return undefined;
    return { downloadCount: Number(row.download_count), lastDownloaded: Number(row.last_downloaded), lastDownloadedBy: row.last_downloaded_by };
  }
}
