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

/** Downloads of one path waiting to be reported: how many since the last acknowledged report, and the latest. */
export interface PendingDownloads {
  readonly repo: string;
  readonly path: string;
  readonly count: number;
  readonly lastDownloaded: number;
  readonly lastDownloadedBy: string;
}

/**
 * The durable queue of downloads to report (DESIGN §3: downloads are counters, not events).
 * Downloads of one path are kept as one entry (a count and the latest download), so the
 * queue holds at most one entry per cached path however long the origin stays unreachable.
 * An acknowledged report subtracts what it reported: downloads that arrived while it was in
 * flight stay queued. So a crash or an unreachable origin delays the report, never loses it
 * (a report may be repeated after a crash between the origin's answer and the subtraction).
 */
export interface SmartRemoteStatsQueue {
  add(download: QueuedDownload): Promise<void>;
  /** Repositories with queued downloads. */
  repositories(): Promise<readonly string[]>;
  /** A repository's entries, first queued first, at most `limit`. */
  take(repo: string, limit: number): Promise<readonly PendingDownloads[]>;
  /** The origin acknowledged these: subtract their counts; an entry at zero is removed. */
  acknowledge(reported: readonly PendingDownloads[]): Promise<void>;
  /** Drops a repository's entries (it is gone or no longer reports). */
  discard(repo: string): Promise<void>;
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
  /** By repository, then path; a Map keeps first-queued order. */
  readonly #entries = new Map<string, Map<string, PendingDownloads>>();
  async add(download: QueuedDownload): Promise<void> {
    let paths = this.#entries.get(download.repo);
    if (paths === undefined) this.#entries.set(download.repo, (paths = new Map()));
    paths.set(download.path, mergeDownload(paths.get(download.path), download));
  }
  async repositories(): Promise<readonly string[]> {
    return [...this.#entries.keys()];
  }
  async take(repo: string, limit: number): Promise<readonly PendingDownloads[]> {
    return [...(this.#entries.get(repo)?.values() ?? [])].slice(0, limit);
  }
  async acknowledge(reported: readonly PendingDownloads[]): Promise<void> {
    for (const entry of reported) {
      const paths = this.#entries.get(entry.repo);
      const current = paths?.get(entry.path);
      if (paths === undefined || current === undefined) continue;
      if (current.count <= entry.count) paths.delete(entry.path);
      else paths.set(entry.path, { ...current, count: current.count - entry.count });
      if (paths.size === 0) this.#entries.delete(entry.repo);
    }
  }
  async discard(repo: string): Promise<void> {
    this.#entries.delete(repo);
  }
}

/** One more download of a path: the count grows, the latest download wins (ties: the later call). */
function mergeDownload(current: PendingDownloads | undefined, download: QueuedDownload): PendingDownloads {
  const newer = current === undefined || download.downloadedAt >= current.lastDownloaded;
  return {
    repo: download.repo,
    path: download.path,
    count: (current?.count ?? 0) + 1,
    lastDownloaded: newer ? download.downloadedAt : current.lastDownloaded,
    lastDownloadedBy: newer ? download.downloadedBy : current.lastDownloadedBy,
  };
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

/**
 * The upsert's merge into `server_smart_remote_stats_pending as p`: counts add up, the latest
 * download wins (ties: the incoming one), as `mergeDownload` does in memory.
 */
const mergePending = sql`on conflict (repo, path) do update set count = p.count + excluded.count,
  last_downloaded_by = case when excluded.last_downloaded >= p.last_downloaded then excluded.last_downloaded_by else p.last_downloaded_by end,
  last_downloaded = greatest(p.last_downloaded, excluded.last_downloaded)`;

/**
 * Creates the server-owned tables of smart remotes, idempotently (PostgreSQL and PGlite alike,
 * as sql-download-stats.ts). A queue of one row per download (`server_smart_remote_stats_queue`,
 * before 2026-12-06) is folded into the per-path table and dropped, in one transaction.
 */
export async function ensureSmartRemoteTables(db: Kysely<any>): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await sql`
      create table if not exists server_smart_remote_stats_pending (
        repo text collate "C" not null,
        path text collate "C" not null,
        count bigint not null,
        last_downloaded bigint not null,
        last_downloaded_by text not null,
        queued bigserial not null,
        primary key (repo, path)
      )`.execute(tx);
    await sql`create index if not exists server_smart_remote_stats_pending_queued on server_smart_remote_stats_pending (repo, queued)`.execute(tx);
    const legacy = await sql<{ present: boolean }>`select to_regclass('server_smart_remote_stats_queue') is not null as present`.execute(tx);
    if (legacy.rows[0]?.present === true) {
      await sql`
        insert into server_smart_remote_stats_pending as p (repo, path, count, last_downloaded, last_downloaded_by)
        select distinct on (repo, path) repo, path, count(*) over (partition by repo, path), downloaded_at, downloaded_by
        from server_smart_remote_stats_queue order by repo, path, downloaded_at desc, id desc
        ${mergePending}`.execute(tx);
      await sql`drop table server_smart_remote_stats_queue`.execute(tx);
    }
    await sql`
      create table if not exists server_remote_download_stats (
        repo text collate "C" not null,
        path text collate "C" not null,
        remote_download_count bigint not null,
        remote_last_downloaded bigint not null,
        remote_last_downloaded_by text not null,
        primary key (repo, path)
      )`.execute(tx);
  });
}

export class SqlSmartRemoteStatsQueue implements SmartRemoteStatsQueue {
  // The table is the server's own, outside the store's typed schema.
  readonly #db: Kysely<any>;
  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async add(download: QueuedDownload): Promise<void> {
    await sql`
      insert into server_smart_remote_stats_pending as p (repo, path, count, last_downloaded, last_downloaded_by)
      values (${download.repo}, ${download.path}, 1, ${download.downloadedAt}, ${download.downloadedBy})
      ${mergePending}`.execute(this.#db);
  }

  async repositories(): Promise<readonly string[]> {
    const result = await sql<{ repo: string }>`select distinct repo from server_smart_remote_stats_pending order by repo`.execute(this.#db);
    return result.rows.map((row) => row.repo);
  }

  async take(repo: string, limit: number): Promise<readonly PendingDownloads[]> {
    const result = await sql<{ path: string; count: string; last_downloaded: string; last_downloaded_by: string }>`
      select path, count, last_downloaded, last_downloaded_by from server_smart_remote_stats_pending
      where repo = ${repo} order by queued limit ${limit}`.execute(this.#db);
    return result.rows.map((row) => ({
      repo,
      path: row.path,
      count: Number(row.count),
      lastDownloaded: Number(row.last_downloaded),
      lastDownloadedBy: row.last_downloaded_by,
    }));
  }

  async acknowledge(reported: readonly PendingDownloads[]): Promise<void> {
    if (reported.length === 0) return;
    const repos = reported.map((entry) => entry.repo);
    const paths = reported.map((entry) => entry.path);
    const counts = reported.map((entry) => entry.count);
    await this.#db.transaction().execute(async (tx) => {
      await sql`
        update server_smart_remote_stats_pending p set count = p.count - r.count
        from unnest(${repos}::text[], ${paths}::text[], ${counts}::bigint[]) as r(repo, path, count)
        where p.repo = r.repo and p.path = r.path`.execute(tx);
      await sql`
        delete from server_smart_remote_stats_pending p
        using unnest(${repos}::text[], ${paths}::text[]) as r(repo, path)
        where p.repo = r.repo and p.path = r.path and p.count <= 0`.execute(tx);
    });
  }

  async discard(repo: string): Promise<void> {
    await sql`delete from server_smart_remote_stats_pending where repo = ${repo}`.execute(this.#db);
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
