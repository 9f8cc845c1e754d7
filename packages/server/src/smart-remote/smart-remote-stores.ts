import { sql } from 'kysely';
import type { Kysely } from 'kysely';

/** One download served from a smart remote's cache, waiting to be reported to the origin. */
export interface QueuedDownload {
  /** The smart remote repository (here). */
  readonly repo: string;
  readonly path: string;
  readonly downloadedBy: string;
  /** Epoch ms. */
  readonly downloadedAt: number;
}

/**
 * The durable queue of downloads to report (DESIGN §3: downloads are counters, not events).
 * An entry is removed only after the origin acknowledged it, so a crash or an unreachable
 * origin delays the report, never loses it (a report may be repeated after a crash between
 * the origin's answer and the removal).
 */
export interface SmartRemoteStatsQueue {
  add(download: QueuedDownload): Promise<void>;
  /** The oldest entries, at most `limit`. */
  take(limit: number): Promise<readonly { readonly id: string; readonly download: QueuedDownload }[]>;
  remove(ids: readonly string[]): Promise<void>;
}

export interface RemoteDownloadStats {
  readonly remoteDownloadCount: number;
  readonly remoteLastDownloaded: number;
  readonly remoteLastDownloadedBy: string;
}

/** A batch entry reported by a smart remote: downloads of one path. */
export interface ReportedDownloads {
  readonly path: string;
  readonly count: number;
  readonly lastDownloaded: number;
  readonly lastDownloadedBy: string;
}

/** The origin's counters of downloads its smart remotes served from their caches. */
export interface RemoteDownloadStatsStore {
  add(repo: string, downloads: readonly ReportedDownloads[]): Promise<void>;
  get(repo: string, path: string): Promise<RemoteDownloadStats | undefined>;
}

export class MemorySmartRemoteStatsQueue implements SmartRemoteStatsQueue {
  readonly #entries = new Map<string, QueuedDownload>();
  #next = 0;
  async add(download: QueuedDownload): Promise<void> {
    this.#entries.set(String(++this.#next), download);
  }
  async take(limit: number) {
    return [...this.#entries].slice(0, limit).map(([id, download]) => ({ id, download }));
  }
  async remove(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.#entries.delete(id);
  }
}

export class MemoryRemoteDownloadStatsStore implements RemoteDownloadStatsStore {
  readonly #stats = new Map<string, RemoteDownloadStats>();
  async add(repo: string, downloads: readonly ReportedDownloads[]): Promise<void> {
    for (const download of downloads) {
      const key = `${repo}\0${download.path}`;
      const current = this.#stats.get(key);
      const newer = current === undefined || download.lastDownloaded >= current.remoteLastDownloaded;
      this.#stats.set(key, {
        remoteDownloadCount: (current?.remoteDownloadCount ?? 0) + download.count,
        remoteLastDownloaded: newer ? download.lastDownloaded : current.remoteLastDownloaded,
        remoteLastDownloadedBy: newer ? download.lastDownloadedBy : current.remoteLastDownloadedBy,
      });
    }
  }
  async get(repo: string, path: string): Promise<RemoteDownloadStats | undefined> {
    return this.#stats.get(`${repo}\0${path}`);
  }
}

/** Creates the server-owned tables of smart remotes, idempotently (PostgreSQL and PGlite alike, as sql-download-stats.ts). */
export async function ensureSmartRemoteTables(db: Kysely<any>): Promise<void> {
  await sql`
    create table if not exists server_smart_remote_stats_queue (
      id bigserial primary key,
      repo text collate "C" not null,
      path text collate "C" not null,
      downloaded_by text not null,
      downloaded_at bigint not null
    )`.execute(db);
  await sql`
    create table if not exists server_remote_download_stats (
      repo text collate "C" not null,
      path text collate "C" not null,
      remote_download_count bigint not null,
      remote_last_downloaded bigint not null,
      remote_last_downloaded_by text not null,
      primary key (repo, path)
    )`.execute(db);
}

export class SqlSmartRemoteStatsQueue implements SmartRemoteStatsQueue {
  // The table is the server's own, outside the store's typed schema.
  readonly #db: Kysely<any>;
  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async add(download: QueuedDownload): Promise<void> {
    await sql`insert into server_smart_remote_stats_queue (repo, path, downloaded_by, downloaded_at)
              values (${download.repo}, ${download.path}, ${download.downloadedBy}, ${download.downloadedAt})`.execute(this.#db);
  }

  async take(limit: number) {
    const result = await sql<{ id: string; repo: string; path: string; downloaded_by: string; downloaded_at: string }>`
      select id, repo, path, downloaded_by, downloaded_at from server_smart_remote_stats_queue order by id limit ${limit}`.execute(this.#db);
    return result.rows.map((row) => ({
      id: String(row.id),
      download: { repo: row.repo, path: row.path, downloadedBy: row.downloaded_by, downloadedAt: Number(row.downloaded_at) },
    }));
  }

  async remove(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await sql`delete from server_smart_remote_stats_queue where id = any(${ids.map(Number)}::bigint[])`.execute(this.#db);
  }
}

export class SqlRemoteDownloadStatsStore implements RemoteDownloadStatsStore {
  readonly #db: Kysely<any>;
  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async add(repo: string, downloads: readonly ReportedDownloads[]): Promise<void> {
    if (downloads.length === 0) return;
    await sql`
      insert into server_remote_download_stats (repo, path, remote_download_count, remote_last_downloaded, remote_last_downloaded_by)
      select ${repo}, * from unnest(${downloads.map((b) => b.path)}::text[], ${downloads.map((b) => b.count)}::bigint[],
                                    ${downloads.map((b) => b.lastDownloaded)}::bigint[], ${downloads.map((b) => b.lastDownloadedBy)}::text[])
      on conflict (repo, path) do update set
        remote_download_count = server_remote_download_stats.remote_download_count + excluded.remote_download_count,
        remote_last_downloaded = greatest(server_remote_download_stats.remote_last_downloaded, excluded.remote_last_downloaded),
        remote_last_downloaded_by = case when excluded.remote_last_downloaded >= server_remote_download_stats.remote_last_downloaded
                                         then excluded.remote_last_downloaded_by else server_remote_download_stats.remote_last_downloaded_by end`.execute(this.#db);
  }

  async get(repo: string, path: string): Promise<RemoteDownloadStats | undefined> {
    const result = await sql<{ remote_download_count: string; remote_last_downloaded: string; remote_last_downloaded_by: string }>`
      select remote_download_count, remote_last_downloaded, remote_last_downloaded_by from server_remote_download_stats where repo = ${repo} and path = ${path}`.execute(this.#db);
    const row = result.rows[0];
    if (row === undefined) return undefined;
    return { remoteDownloadCount: Number(row.remote_download_count), remoteLastDownloaded: Number(row.remote_last_downloaded), remoteLastDownloadedBy: row.remote_last_downloaded_by };
  }
}
