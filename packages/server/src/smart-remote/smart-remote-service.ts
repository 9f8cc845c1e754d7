import { repositoryStream, StrataError } from '@strata/core';
import type { DomainEvent, Properties } from '@strata/core';
import type { MetadataCache } from '../artifacts/hot-caches.ts';
import type { ArtifactReader, FileItem, RepositoryConfig, RepositoryReader } from '../ports.ts';
import type { RepositoryStreamState } from '../repositories/repository-stream.ts';
import { runTrustedWrites } from '../stream-writer.ts';
import type { StreamWriter } from '../stream-writer.ts';
import { contentSynchronisationOf, smartRemoteOriginOf } from './smart-remote-model.ts';
import type { SmartRemoteOrigin } from './smart-remote-model.ts';
import type { RemoteDownloadStatsStore, ReportedDownloads, SmartRemoteStatsQueue } from './smart-remote-stores.ts';

export interface SmartRemoteLimits {
  /** How often queued downloads are reported to origins. */
  readonly statsFlushIntervalMs: number;
  /** Queue entries one report round takes. */
  readonly statsBatchMax: number;
  /** Each request to an origin (properties, absence, listing, report). */
  readonly originRequestTimeoutMs: number;
}

export const DEFAULT_SMART_REMOTE_LIMITS: SmartRemoteLimits = Object.freeze({
  statsFlushIntervalMs: 5_000,
  statsBatchMax: 1_000,
  originRequestTimeoutMs: 3_000,
});

export interface SmartRemoteServiceOptions {
  readonly queue: SmartRemoteStatsQueue;
  readonly remoteStats: RemoteDownloadStatsStore;
  readonly repositories: RepositoryReader;
  readonly artifacts: ArtifactReader;
  readonly cache: MetadataCache;
  readonly repositoryStreams: StreamWriter<RepositoryStreamState>;
  readonly limits: SmartRemoteLimits;
  readonly now: () => number;
  readonly onError: (message: string, error: unknown) => void;
  readonly fetch?: typeof fetch;
}

/** One entry of an origin's File List, as checked (see `remoteFileList`). */
export interface RemoteListEntry {
  readonly uri: string;
  readonly size: number;
  readonly lastModified: string;
  readonly folder: boolean;
  readonly sha1?: string;
  readonly sha2?: string;
}

/** A child of a folder as the storage API shows it. */
export interface FolderChild {
  readonly uri: string;
  readonly folder: boolean;
}

const SYNC_META = { actor: '_smart-remote' };

function samePropertyValues(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((value, index) => value === b[index]);
}

/**
 * The smart-remote side of a remote repository that points at another Strata/Artifactory
 * (seeds/smart-remote-repositories.txt), and the origin side that receives its statistics.
 *
 * - statistics: each download served from the cache is queued (durably); every
 *   `statsFlushIntervalMs` the queue is reported in batches to the origin's
 *   `POST /api/smart-remote/downloads`, and entries are removed only once acknowledged;
 * - properties: on each download from the cache, the origin's properties of the file are
 *   read and differences appended here (PropertiesSet / PropertiesRemoved events);
 * - listRemoteFolderItems: folder info shows the origin's children, nothing is cached;
 * - originAbsenceDetection: file info of a cached file says `originDeleted`.
 */
export class SmartRemoteService {
  readonly #options: SmartRemoteServiceOptions;
  readonly #fetch: typeof fetch;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<number> | undefined;

  constructor(options: SmartRemoteServiceOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
  }

  start(): void {
    if (this.#timer !== undefined || this.#options.limits.statsFlushIntervalMs <= 0) return;
    this.#timer = setInterval(() => {
      void this.flush().catch((error: unknown) => this.#options.onError('reporting smart remote statistics failed', error));
    }, this.#options.limits.statsFlushIntervalMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#flushing?.catch(() => undefined);
  }

  /** The origin of a remote configuration when it is a smart remote, else undefined. */
  #smart(config: RepositoryConfig | Readonly<Record<string, unknown>> | undefined): SmartRemoteOrigin | undefined {
    if (config?.rclass !== 'remote' || typeof config.url !== 'string') return undefined;
    if (!contentSynchronisationOf(config).enabled) return undefined;
    return smartRemoteOriginOf(config.url);
  }

  #headers(config: Readonly<Record<string, unknown>>): Record<string, string> {
    if (typeof config.username !== 'string' || config.username === '') return {};
    const password = typeof config.password === 'string' ? config.password : '';
    return { authorization: `Basic ${Buffer.from(`${config.username}:${password}`).toString('base64')}` };
  }

  async #originGet(config: Readonly<Record<string, unknown>>, url: string): Promise<Response> {
    return this.#fetch(url, { headers: this.#headers(config), signal: AbortSignal.timeout(this.#options.limits.originRequestTimeoutMs) });
  }

  #storageUrl(origin: SmartRemoteOrigin, path: string, query = ''): string {
    const encoded = path === '' ? '' : `/${path.split('/').map(encodeURIComponent).join('/')}`;
    return `${origin.baseUrl}/api/storage/${encodeURIComponent(origin.repo)}${encoded}${query}`;
  }

  /**
   * A file of remote repository `repo` was served (`fromCache`: from its cache, not fetched
   * just now). Queues the download for the origin's statistics and brings the origin's
   * property changes over, when those options are on. Never fails the download.
   */
  async served(repo: string, item: FileItem, user: string, fromCache: boolean): Promise<void> {
    // On every download through a remote: the cached config (a projection read per request held
    // a virtual of five at 0.04 × a local's rate on PGlite; see docs/benchmarks.md, issue 6).
    const config = await this.#options.cache.repository(repo);
    const origin = this.#smart(config);
    if (config === undefined || origin === undefined) return;
    const options = contentSynchronisationOf(config);
    if (fromCache && options.statistics.enabled) {
      await this.#options.queue
        .add({ repo, path: item.path, downloadedBy: user, downloadedAt: this.#options.now() })
        .catch((error: unknown) => this.#options.onError('queueing a smart remote download failed', error));
    }
    if (options.properties.enabled) {
      await this.syncProperties(config, origin, item.path).catch((error: unknown) => this.#options.onError('syncing properties from the origin failed', error));
    }
  }

  /** Reads the origin's properties of `path` and appends what differs here. */
  async syncProperties(config: RepositoryConfig, origin: SmartRemoteOrigin, path: string): Promise<void> {
    const response = await this.#originGet(config, this.#storageUrl(origin, path, '?properties'));
    let wanted: Properties;
    if (response.status === 200) {
      const body = (await response.json()) as { properties?: unknown };
      wanted = this.#parseProperties(body.properties);
    } else {
      const text = await response.text();
      // 404 "No properties could be found." is an existing file without properties; a file
      // missing at the origin leaves the cached properties as they are.
      if (response.status !== 404 || !/no properties/i.test(text)) return;
      wanted = {};
    }
    const repo = config.key;
    const current = await this.#options.artifacts.properties(repo, path);
    const changed: Record<string, readonly string[]> = {};
    for (const [key, values] of Object.entries(wanted)) if (!samePropertyValues(current[key], values)) changed[key] = values;
    const removed = Object.keys(current).filter((key) => !Object.hasOwn(wanted, key));
    if (Object.keys(changed).length === 0 && removed.length === 0) return;
    const events: DomainEvent[] = [];
    if (Object.keys(changed).length > 0) events.push({ type: 'PropertiesSet', data: { path, properties: changed } });
    if (removed.length > 0) events.push({ type: 'PropertiesRemoved', data: { path, keys: removed } });
    // On an edge node the repositories are read-only for users, not for what the origin says.
    await runTrustedWrites(() => this.#options.repositoryStreams.execute(repositoryStream(repo), SYNC_META, () => ({ events, result: undefined })));
    this.#options.cache.invalidateItem(repo, path);
  }

  #parseProperties(value: unknown): Properties {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return {};
    const properties: Record<string, readonly string[]> = {};
    for (const [key, values] of Object.entries(value)) {
      if (key === '' || key.length > 255 || key === '__proto__' || /[\u0000-\u001f]/.test(key)) continue;
      if (!Array.isArray(values)) continue;
      const strings = values.filter((entry): entry is string => typeof entry === 'string' && entry.length <= 4_000);
      properties[key] = strings;
    }
    return properties;
  }

  /** `{originDeleted}` for a cached file of a smart remote with origin absence detection on; {} otherwise. */
  async fileExtras(config: RepositoryConfig, path: string): Promise<Record<string, unknown>> {
    const origin = this.#smart(config);
    if (origin === undefined || !contentSynchronisationOf(config).source.originAbsenceDetection) return {};
    try {
      const response = await this.#originGet(config, this.#storageUrl(origin, path));
      await response.arrayBuffer();
      if (response.status === 404) return { originDeleted: true };
      if (response.status === 200) return { originDeleted: false };
    } catch (error) {
      this.#options.onError('asking the origin whether a file still exists failed', error);
    }
    // Unknown (origin unreachable or refusing): say nothing rather than guess.
    return {};
  }

  /**
   * The origin's children of a folder, for a smart remote with `listRemoteFolderItems`;
   * undefined when that option is off, the origin has no such folder, or it cannot be asked.
   */
  async remoteChildren(config: RepositoryConfig, path: string): Promise<readonly FolderChild[] | undefined> {
    if (config.rclass !== 'remote' || config.listRemoteFolderItems !== true || config.offline === true) return undefined;
    const origin = this.#smart(config);
    if (origin === undefined) return this.#htmlIndexChildren(config, path);
    try {
      const response = await this.#originGet(config, this.#storageUrl(origin, path));
      if (response.status !== 200) {
        await response.arrayBuffer();
        return undefined;
      }
      const body = (await response.json()) as { children?: unknown };
      if (!Array.isArray(body.children)) return undefined;
      return body.children
        .filter((child): child is { uri: string; folder?: unknown } => typeof child === 'object' && child !== null && typeof (child as { uri?: unknown }).uri === 'string')
        .filter((child) => /^\/[^/]+$/.test(child.uri) && child.uri !== '/..' && child.uri !== '/.')
        .map((child) => ({ uri: child.uri, folder: child.folder === true }));
    } catch (error) {
      this.#options.onError('listing the origin folder failed', error);
      return undefined;
    }
  }

  /**
   * The origin's file list of a folder (`?list`, Artifactory's File List), for a smart remote
   * with `listRemoteFolderItems`: each entry checked (a relative uri without `..`, a size, the
   * folder flag), at most `entriesMax`. Undefined when the option is off, the origin has no such
   * folder, or it cannot be asked. Nothing is cached.
   */
  async remoteFileList(
    config: RepositoryConfig,
    path: string,
    options: { readonly deep: boolean; readonly depth?: number; readonly listFolders: boolean; readonly entriesMax: number },
  ): Promise<readonly RemoteListEntry[] | undefined> {
    if (config.rclass !== 'remote' || config.listRemoteFolderItems !== true || config.offline === true) return undefined;
    const origin = this.#smart(config);
    if (origin === undefined) return undefined;
    const query = `?list&deep=${options.deep ? 1 : 0}&listFolders=${options.listFolders ? 1 : 0}${options.depth === undefined ? '' : `&depth=${options.depth}`}`;
    try {
      const response = await this.#originGet(config, this.#storageUrl(origin, path, query));
      if (response.status !== 200) {
        await response.arrayBuffer();
        return undefined;
      }
      const body = (await response.json()) as { files?: unknown };
      if (!Array.isArray(body.files)) return undefined;
      const entries: RemoteListEntry[] = [];
      for (const candidate of body.files as unknown[]) {
        if (entries.length >= options.entriesMax) break;
        if (typeof candidate !== 'object' || candidate === null) continue;
        const entry = candidate as Record<string, unknown>;
        const uri = entry.uri;
        if (typeof uri !== 'string' || !/^(\/[^/]+)+$/.test(uri) || uri.split('/').some((segment) => segment === '..' || segment === '.')) continue;
        const folder = entry.folder === true;
        const size = typeof entry.size === 'number' && Number.isSafeInteger(entry.size) ? entry.size : -1;
        const lastModified = typeof entry.lastModified === 'string' ? entry.lastModified : '';
        const hex = (value: unknown, length: number) => (typeof value === 'string' && value.length === length && /^[0-9a-f]+$/.test(value) ? value : undefined);
        const sha1 = folder ? undefined : hex(entry.sha1, 40);
        const sha2 = folder ? undefined : hex(entry.sha2, 64);
        entries.push({ uri, size: folder ? -1 : size, lastModified, folder, ...(sha1 === undefined ? {} : { sha1 }), ...(sha2 === undefined ? {} : { sha2 }) });
      }
      return entries;
    } catch (error) {
      this.#options.onError('listing the origin folder failed', error);
      return undefined;
    }
  }

  /**
   * A plain remote with `listRemoteFolderItems`: the children its upstream's HTML folder index
   * names (nginx/Apache autoindex, Artifactory, `python -m http.server` pages), as Artifactory
   * lists a generic remote. Undefined when the upstream has no such folder or cannot be asked.
   */
  async #htmlIndexChildren(config: RepositoryConfig, path: string): Promise<readonly FolderChild[] | undefined> {
    if (typeof config.url !== 'string') return undefined;
    const base = config.url.endsWith('/') ? config.url : `${config.url}/`;
    const folderUrl = new URL(path === '' ? '' : `${path.split('/').map(encodeURIComponent).join('/')}/`, base);
    try {
      const response = await this.#originGet(config, folderUrl.href);
      const type = response.headers.get('content-type') ?? '';
      if (response.status !== 200 || !/html/i.test(type)) {
        await response.arrayBuffer();
        return undefined;
      }
      const html = (await response.text()).slice(0, HTML_INDEX_CHARS_MAX);
      return htmlIndexChildren(html, folderUrl);
    } catch (error) {
      this.#options.onError('listing the upstream folder failed', error);
      return undefined;
    }
  }

  /** Reports queued downloads to their origins; returns how many downloads were acknowledged. */
  flush(): Promise<number> {
    this.#flushing ??= this.#flushOnce().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #flushOnce(): Promise<number> {
    const { queue } = this.#options;
    let acknowledged = 0;
    // Repository by repository: an origin that is down holds back its own repository's
    // report, never another's.
    for (const repo of await queue.repositories()) {
      const config = await this.#options.repositories.get(repo);
      const origin = this.#smart(config);
      if (config === undefined || origin === undefined || !contentSynchronisationOf(config).statistics.enabled) {
        // The repository is gone or no longer reports: these downloads are not owed to anyone.
        await queue.discard(repo);
        continue;
      }
      const taken = await queue.take(repo, this.#options.limits.statsBatchMax);
      if (taken.length === 0) continue;
      const downloads: ReportedDownloads[] = taken.map(({ path, count, lastDownloaded, lastDownloadedBy }) => ({ path, count, lastDownloaded, lastDownloadedBy }));
      try {
        const response = await this.#fetch(`${origin.baseUrl}/api/smart-remote/downloads`, {
          method: 'POST',
          headers: { ...this.#headers(config), 'content-type': 'application/json' },
          body: JSON.stringify({ repo: origin.repo, downloads }),
          signal: AbortSignal.timeout(this.#options.limits.originRequestTimeoutMs),
        });
        const text = await response.text();
        if (!response.ok) throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `origin ${origin.baseUrl} answered ${response.status} to a statistics report: ${text.slice(0, 300)}`);
      } catch (error) {
        // Kept in the queue: reported again at the next round.
        this.#options.onError(`reporting downloads of '${repo}' to its origin failed`, error);
        continue;
      }
      await queue.acknowledge(taken);
      for (const entry of taken) acknowledged += entry.count;
    }
    return acknowledged;
  }

  // Origin side -----------------------------------------------------------------------------

  async recordRemoteDownloads(repo: string, downloads: readonly ReportedDownloads[]): Promise<void> {
    await this.#options.remoteStats.add(repo, downloads);
  }

  async remoteDownloadStats(repo: string, path: string) {
    return this.#options.remoteStats.get(repo, path);
  }
}

export const reportedDownloadsMax = 10_000;

/** The body of `POST /api/smart-remote/downloads`, validated. */
export function validateDownloadsReport(value: unknown): { repo: string; downloads: ReportedDownloads[] } {
  const bad = (message: string): never => {
    throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', message);
  };
  if (typeof value !== 'object' || value === null) return bad('the report must be a JSON object');
  const body = value as { repo?: unknown; downloads?: unknown };
  if (typeof body.repo !== 'string' || body.repo === '') return bad('repo must be a repository key');
  if (!Array.isArray(body.downloads) || body.downloads.length > reportedDownloadsMax) return bad(`downloads must be an array of at most ${reportedDownloadsMax} entries`);
  const downloads = body.downloads.map((entry: unknown, index): ReportedDownloads => {
    const download = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>;
    const { path, count, lastDownloaded, lastDownloadedBy } = download;
    if (typeof path !== 'string' || path === '' || path.length > 8_192 || path.startsWith('/')) return bad(`downloads[${index}].path must be a file path`);
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 1) return bad(`downloads[${index}].count must be a positive integer`);
    if (typeof lastDownloaded !== 'number' || !Number.isSafeInteger(lastDownloaded) || lastDownloaded < 0) return bad(`downloads[${index}].lastDownloaded must be epoch milliseconds`);
    if (typeof lastDownloadedBy !== 'string' || lastDownloadedBy.length > 255) return bad(`downloads[${index}].lastDownloadedBy must be a user name`);
    return { path, count, lastDownloaded, lastDownloadedBy };
  });
  return { repo: body.repo, downloads };
}

/** Bound on the part of an upstream folder page that is read for links. */
const HTML_INDEX_CHARS_MAX = 4 * 1024 * 1024;

/**
 * The direct children of `folderUrl` that an HTML folder index links to: every `href` that,
 * resolved against the folder, names one segment below it (a trailing '/' marks a folder).
 * Links elsewhere (parent, sort links, other hosts, deeper paths) and unsafe names are dropped.
 */
export function htmlIndexChildren(html: string, folderUrl: URL): FolderChild[] {
  const children = new Map<string, boolean>();
  for (const match of html.matchAll(/<a\s[^>]*?href\s*=\s*(?:"([^"]*)"|'([^']*)')/gi)) {
    const href = (match[1] ?? match[2] ?? '').replace(/&amp;/g, '&');
    let target: URL;
    try {
      target = new URL(href, folderUrl);
    } catch {
      continue;
    }
    if (target.origin !== folderUrl.origin || target.search !== '' || !target.pathname.startsWith(folderUrl.pathname)) continue;
    const rest = target.pathname.slice(folderUrl.pathname.length);
    const folder = rest.endsWith('/');
    const segment = folder ? rest.slice(0, -1) : rest;
    if (segment === '' || segment.includes('/')) continue;
    let name: string;
    try {
      name = decodeURIComponent(segment);
    } catch {
      continue;
    }
    if (name === '.' || name === '..' || /[\/\\\u0000]/.test(name)) continue;
    children.set(name, folder || children.get(name) === true);
  }
  return [...children].map(([name, folder]) => ({ uri: `/${name}`, folder }));
}
