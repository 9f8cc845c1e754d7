import { StrataError } from '@strata/core';
import { BoundedLru } from '../../auth/bounded-lru.ts';
import type { RepositoryConfig } from '../../ports.ts';
import type { UpstreamClient, UpstreamResponse } from '../../remote/upstream-client.ts';
import { distributionCoordinates, SIMPLE_JSON } from './pypi-model.ts';
import { parseProjectListHtml, parseProjectListJson, parseProjectPageHtml, parseProjectPageJson, pathUnderBase } from './pypi-upstream-page.ts';
import type { UpstreamIndexFile } from './pypi-upstream-page.ts';

/** A file of an upstream project page, at its path in the remote repository. */
export interface RemoteDistribution {
  /** Where the remote repository serves it (`/api/pypi/{remote}/packages/{path}`), relative to its url. */
  readonly path: string;
  readonly file: UpstreamIndexFile;
}

/** Whether curation blocks a file of a remote (nothing recorded): blocked versions are left out of pages. */
export type PypiCurationFilter = (remoteKey: string, path: string, coordinates: { name: string; version: string } | undefined) => Promise<boolean>;

/** Largest upstream index page read (pypi.org's root list is about 30 MB of HTML). */
const upstreamPageBytesMax = 64 * 1024 * 1024;
/** Upstream pages are re-read at least this often, whatever the remote's retrievalCachePeriodSecs. */
const upstreamPageTtlMsMax = 10 * 60 * 1000;
const ACCEPT = `${SIMPLE_JSON}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1`;

interface CachedPage<T> {
  readonly value: T | undefined;
  readonly expiresAt: number;
}

/**
 * The simple index of a PyPI remote repository's upstream (pypi.org, devpi, Artifactory,
 * another Strata). Pages are read from `{pyPIRegistryUrl or url}/{pyPIRepositorySuffix or
 * simple}/{project}/`, JSON (PEP 691) preferred, HTML (PEP 503) understood; file URLs below the
 * remote's `url` become paths of the remote, which the generic remote proxy fetches and caches.
 * Files elsewhere are left out (they could not be fetched through the remote).
 *
 * Pages are kept in memory for the remote's retrievalCachePeriodSecs (at most 10 minutes) and
 * served stale when the upstream fails (not with hardFail) or the remote is offline: they are
 * upstream state, not events. The sha256 each page gives is remembered per path, so a file
 * fetched later is verified against it.
 */
export class PypiRemoteIndex {
  readonly #upstream: UpstreamClient;
  readonly #now: () => number;
  readonly #pages: BoundedLru<string, CachedPage<RemoteDistribution[]>>;
  readonly #lists: BoundedLru<string, CachedPage<string[]>>;
  readonly #sha256: BoundedLru<string, string>;
  readonly #blocked: PypiCurationFilter;

  constructor(options: { upstream: UpstreamClient; now: () => number; pagesCachedMax: number; blocked: PypiCurationFilter }) {
    this.#upstream = options.upstream;
    this.#now = options.now;
    this.#pages = new BoundedLru(options.pagesCachedMax);
    this.#lists = new BoundedLru(16);
    this.#sha256 = new BoundedLru(options.pagesCachedMax * 64);
    this.#blocked = options.blocked;
  }

  /** The sha256 the upstream index gave for a path of a remote (undefined when no page read said). */
  expectedSha256(remoteKey: string, path: string): string | undefined {
    return this.#sha256.peek(`${remoteKey}\0${path}`);
  }

  /**
   * The files of `project` (normalised) at the remote's upstream, undefined when it has none.
   * Versions curation blocks at this remote are left out.
   */
  async files(config: RepositoryConfig, project: string): Promise<RemoteDistribution[] | undefined> {
    const url = `${registryBase(config)}/${encodeURIComponent(project)}/`;
    // Keyed by the upstream's addresses too: a remote whose url changes reads its new upstream.
    const files = await this.#cached(this.#pages, `${config.key}\0${url}\0${String(config.url)}`, config, async () => {
      const page = await this.#read(config, url);
      if (page === undefined) return undefined;
      const pageFiles = page.json ? parseProjectPageJson(page.text, url) : parseProjectPageHtml(page.text, url);
      const distributions: RemoteDistribution[] = [];
      const seen = new Set<string>();
      for (const file of pageFiles) {
        const path = pathUnderBase(file.url, String(config.url));
        // The path must end in the file's name: pip names a download by its URL, the index by the name.
        if (path === undefined || seen.has(file.fileName) || path.slice(path.lastIndexOf('/') + 1) !== file.fileName) continue;
        seen.add(file.fileName);
        distributions.push({ path, file });
      }
      return distributions;
    });
    if (files === undefined) return undefined;
    const visible: RemoteDistribution[] = [];
    for (const distribution of files) {
      if (distribution.file.sha256 !== undefined) this.#sha256.set(`${config.key}\0${distribution.path}`, distribution.file.sha256);
      if (!(await this.#blocked(config.key, distribution.path, distributionCoordinates(distribution.file.fileName)))) visible.push(distribution);
    }
    return visible;
  }

  /** The normalised project names the upstream lists ([] when it lists none). */
  async projects(config: RepositoryConfig): Promise<string[]> {
    const url = `${registryBase(config)}/`;
    const names = await this.#cached(this.#lists, `${config.key}\0${url}`, config, async () => {
      const page = await this.#read(config, url);
      if (page === undefined) return undefined;
      return page.json ? parseProjectListJson(page.text) : parseProjectListHtml(page.text);
    });
    return names ?? [];
  }

  /**
   * A page from the memory when fresh; else read (kept for the remote's retrievalCachePeriodSecs).
   * Offline, or failing upstream without hardFail: the last page read, however old, or nothing.
   */
  async #cached<T>(pages: BoundedLru<string, CachedPage<T>>, key: string, config: RepositoryConfig, read: () => Promise<T | undefined>): Promise<T | undefined> {
    const hit = pages.get(key);
    if (config.offline === true) return hit?.value;
    if (hit !== undefined && hit.expiresAt > this.#now()) return hit.value;
    let value: T | undefined;
    try {
      value = await read();
    } catch (error) {
      if (hit !== undefined && config.hardFail !== true) return hit.value;
      throw error;
    }
    const ttlMs = Math.min(upstreamPageTtlMsMax, (typeof config.retrievalCachePeriodSecs === 'number' ? config.retrievalCachePeriodSecs : 600) * 1000);
    pages.set(key, { value, expiresAt: this.#now() + ttlMs });
    return value;
  }

  /** GET of an index page: its text and whether it is PEP 691 JSON; undefined for 404/410. */
  async #read(config: RepositoryConfig, url: string): Promise<{ text: string; json: boolean } | undefined> {
    const response = await this.#upstream.get({
      url,
      timeoutMs: typeof config.socketTimeoutMillis === 'number' && config.socketTimeoutMillis > 0 ? config.socketTimeoutMillis : 15_000,
      headers: { accept: ACCEPT },
      ...(typeof config.username === 'string' ? { username: config.username } : {}),
      ...(typeof config.password === 'string' ? { password: config.password } : {}),
    });
    if (response.status === 404 || response.status === 410) {
      await response.body.dump();
      return undefined;
    }
    if (response.status !== 200) {
      await response.body.dump().catch(() => undefined);
      throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} answered ${response.status}`);
    }
    const text = await bodyText(response, url);
    const contentType = String(response.headers['content-type'] ?? '').toLowerCase();
    return { text, json: contentType.startsWith(SIMPLE_JSON) || (contentType.startsWith('application/json') && text.trimStart().startsWith('{')) };
  }
}

/** The upstream's simple index root: `{pyPIRegistryUrl or url}/{pyPIRepositorySuffix or 'simple'}`. */
function registryBase(config: RepositoryConfig): string {
  const registry = typeof config.pyPIRegistryUrl === 'string' && config.pyPIRegistryUrl !== '' ? config.pyPIRegistryUrl : String(config.url);
  const suffix = typeof config.pyPIRepositorySuffix === 'string' ? config.pyPIRepositorySuffix.replace(/^\/+|\/+$/g, '') : 'simple';
  const base = registry.replace(/\/+$/, '');
  return suffix === '' ? base : `${base}/${suffix}`;
}

async function bodyText(response: UpstreamResponse, url: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += (chunk as Buffer).length;
    if (size > upstreamPageBytesMax) {
      response.body.destroy();
      throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} sent an index page larger than ${upstreamPageBytesMax} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
