import { repositoryStream, StrataError } from '@strata/core';
import type { Checksums, EventMeta } from '@strata/core';
import type { BlobLease, BlobStore } from '@strata/store';
import { PassThrough } from 'node:stream';
import type { MetadataCache } from '../artifacts/hot-caches.ts';
import { BoundedLru } from '../auth/bounded-lru.ts';
import { mimeTypeFor } from '../artifacts/mime-types.ts';
import type { FileItem, RepositoryConfig } from '../ports.ts';
import { repositoryNotFound } from '../repositories/repository-decider.ts';
import type { RepositoryStreamState } from '../repositories/repository-stream.ts';
import type { StreamWriter } from '../stream-writer.ts';
import { isConnectFailure, upstreamFailure } from './upstream-client.ts';
import type { UpstreamClient, UpstreamResponse } from './upstream-client.ts';

/**
 * What a remote repository answers for a path:
 * - `file`: a cached file (serve it from the blob store);
 * - `stream`: a file being fetched right now, streamed to this client while it is stored;
 *   `body` errors (the client's connection is cut) if the fetch fails after it started,
 *   and the cache then keeps nothing. `done` settles once the file is cached (or not);
 * - `folder`: a folder of the cache;
 * - `missing`: neither cached nor upstream (404).
 */
export type RemoteAnswer =
  | { readonly kind: 'file'; readonly item: FileItem }
  | {
      readonly kind: 'stream';
      readonly path: string;
      readonly mimeType: string;
      /** From the upstream's Content-Length, when it sent one. */
      readonly size: number | undefined;
      readonly checksums: Partial<Checksums>;
      readonly body: PassThrough;
      readonly done: Promise<FileItem | undefined>;
      /** False for `storeArtifactsLocally: false`: streamed through, verified, never cached (`done` yields undefined). */
      readonly storing: boolean;
    }
  | { readonly kind: 'folder' }
  | { readonly kind: 'missing'; readonly reason: string };

export interface RemoteProxyOptions {
  readonly streams: StreamWriter<RepositoryStreamState>;
  readonly blobs: BlobStore;
  readonly cache: MetadataCache;
  readonly upstream: UpstreamClient;
  readonly now: () => number;
  /**
   * A fetch answers the client only once this many bytes arrived (or the whole file): a
   * failure before that is a clean 502/504; after it the response is streamed and a failure
   * cuts the connection (the cache keeps nothing either way).
   */
  readonly streamHoldbackBytes: number;
  /** Bound on remembered upstream 404s and revalidation times. */
  readonly rememberedEntriesMax: number;
  readonly uploadBytesMax: number;
}

function numberField(config: RepositoryConfig, field: string, fallback: number): number {
  const value = config[field];
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : fallback;
}

function headerText(headers: UpstreamResponse['headers'], name: string): string | undefined {
  const value = headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return typeof text === 'string' && text.trim() !== '' ? text.trim() : undefined;
}

const HEX = { sha256: /^[0-9a-f]{64}$/, sha1: /^[0-9a-f]{40}$/, md5: /^[0-9a-f]{32}$/ } as const;

/** Checksums an upstream declares in X-Checksum-* headers (Artifactory, Strata, Nexus send them). */
export function declaredUpstreamChecksums(headers: UpstreamResponse['headers']): Partial<Checksums> {
  const declared: { sha256?: string; sha1?: string; md5?: string } = {};
  const sha256 = headerText(headers, 'x-checksum-sha256')?.toLowerCase();
  const sha1 = headerText(headers, 'x-checksum-sha1')?.toLowerCase();
  const md5 = (headerText(headers, 'x-checksum-md5') ?? headerText(headers, 'x-checksum'))?.toLowerCase();
  if (sha256 !== undefined && HEX.sha256.test(sha256)) declared.sha256 = sha256;
  if (sha1 !== undefined && HEX.sha1.test(sha1)) declared.sha1 = sha1;
  if (md5 !== undefined && HEX.md5.test(md5)) declared.md5 = md5;
  return declared;
}

const CHECKSUM_SIDECARS = ['.sha1', '.sha256', '.md5', '.sha512', '.asc'] as const;

/** The upstream URL of a path: the remote's url joined with the path, segments encoded. */
export function upstreamUrl(base: string, path: string): string {
  const trimmed = base.endsWith('/') ? base.slice(0, -1) : base;
  return `${trimmed}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

interface Flight {
  readonly done: Promise<FileItem | undefined>;
}

/**
 * The caching proxy behind every remote repository. Fetches on demand only, never ahead;
 * one upstream fetch per repository path at a time (concurrent misses wait for it and are
 * served from the cache); remembers upstream 404s for missedRetrievalCachePeriodSecs;
 * treats an unreachable upstream as offline for assumedOfflinePeriodSecs; revalidates a
 * cached file older than retrievalCachePeriodSecs (If-None-Match) and serves the cached copy
 * when the upstream is down unless hardFail. In-memory state is per process.
 */
export class RemoteProxy {
  readonly #options: RemoteProxyOptions;
  readonly #flights = new Map<string, Flight>();
  readonly #missed: BoundedLru<string, number>;
  readonly #revalidated: BoundedLru<string, number>;
  readonly #offlineUntil = new Map<string, number>();
  /** Upstream fetches started (tests and the benchmark count single-flight with it). */
  upstreamFetches = 0;

  constructor(options: RemoteProxyOptions) {
    this.#options = options;
    this.#missed = new BoundedLru<string, number>(options.rememberedEntriesMax);
    this.#revalidated = new BoundedLru<string, number>(options.rememberedEntriesMax);
  }

  /** Forgets what this process remembered about a repository (after a config change or cache delete). */
  forget(repo: string, prefix = ''): void {
    const start = `${repo}\0${prefix}`;
    const under = (key: string) => prefix === '' ? key.startsWith(`${repo}\0`) : key === start || key.startsWith(`${start}/`);
    this.#missed.deleteWhere(under);
    this.#revalidated.deleteWhere(under);
    if (prefix === '') this.#offlineUntil.delete(repo);
  }

  /** The cached item (file or folder) of a remote, never asking upstream. */
  async cached(repo: string, path: string): Promise<RemoteAnswer> {
    const item = await this.#options.cache.item(repo, path);
    if (item === undefined) return { kind: 'missing', reason: `'${repo}:${path}' is not cached` };
    return item.kind === 'file' ? { kind: 'file', item } : { kind: 'folder' };
  }

  /**
   * Serves `path` of the remote repository `config`: from the cache, or fetched upstream.
   * `expected`: checksums the caller knows from elsewhere (a package index); a fetched file
   * must match them as it must match the upstream's X-Checksum headers.
   */
  async get(config: RepositoryConfig, path: string, meta: EventMeta, expected: Partial<Checksums> = {}): Promise<RemoteAnswer> {
    const repo = config.key;
    const cached = await this.#options.cache.item(repo, path);
    if (cached?.kind === 'folder') return { kind: 'folder' };
    const key = `${repo}\0${path}`;
    const now = this.#options.now();
    if (cached !== undefined) {
      const checkedAt = Math.max(cached.lastModified, this.#revalidated.peek(key) ?? 0);
      const periodMs = numberField(config, 'retrievalCachePeriodSecs', 7_200) * 1000;
      if (config.offline === true || now - checkedAt < periodMs || this.#assumedOffline(repo, now)) return { kind: 'file', item: cached };
    } else {
      if (config.offline === true) return { kind: 'missing', reason: `'${repo}:${path}' is not cached and the remote repository is offline` };
      const missedUntil = this.#missed.peek(key);
      if (missedUntil !== undefined && missedUntil > now) return { kind: 'missing', reason: `'${path}' was not found upstream (remembered for missedRetrievalCachePeriodSecs)` };
      if (this.#assumedOffline(repo, now)) {
        throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `remote repository '${repo}' is assumed offline after a failed connection; retrying after assumedOfflinePeriodSecs`);
      }
    }
    if (path === '') return { kind: 'missing', reason: 'the root of a remote repository is not fetched' };
    const existing = config.storeArtifactsLocally === false ? undefined : this.#flights.get(key);
    if (existing !== undefined) {
      // Single flight: wait for the fetch in progress, then serve what it cached.
      const item = await existing.done;
      return item === undefined ? { kind: 'missing', reason: `'${path}' was not found upstream` } : { kind: 'file', item };
    }
    return this.#fetch(config, path, key, cached, expected);
  }

  #assumedOffline(repo: string, now: number): boolean {
    const until = this.#offlineUntil.get(repo);
    return until !== undefined && until > now;
  }

  #fetch(config: RepositoryConfig, path: string, key: string, stale: FileItem | undefined, expected: Partial<Checksums>): Promise<RemoteAnswer> {
    let settleDone!: (item: FileItem | undefined) => void;
    let failDone!: (error: unknown) => void;
    const done = new Promise<FileItem | undefined>((resolve, reject) => {
      settleDone = resolve;
      failDone = reject;
    });
    done.catch(() => undefined);
    // A remote that does not store has nothing to share: each request fetches for itself.
    const flight = { done };
    if (config.storeArtifactsLocally !== false) this.#flights.set(key, flight);
    const answer = this.#run(config, path, key, stale, done, expected);
    answer.then(
      (result) => {
        if (result.kind === 'stream') result.done.then(settleDone, failDone);
        else settleDone(result.kind === 'file' ? result.item : undefined);
      },
      failDone,
    );
    const land = () => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
    };
    void done.then(land, land);
    return answer;
  }

  async #run(config: RepositoryConfig, path: string, key: string, stale: FileItem | undefined, done: Promise<FileItem | undefined>, expected: Partial<Checksums>): Promise<RemoteAnswer> {
    const repo = config.key;
    const url = upstreamUrl(String(config.url), path);
    const timeoutMs = numberField(config, 'socketTimeoutMillis', 15_000) || 15_000;
    const credentials = {
      ...(typeof config.username === 'string' ? { username: config.username } : {}),
      ...(typeof config.password === 'string' ? { password: config.password } : {}),
    };
    this.upstreamFetches++;
    let response: UpstreamResponse;
    try {
      response = await this.#options.upstream.get({
        url,
        timeoutMs,
        ...credentials,
        ...(stale === undefined ? {} : { headers: { 'if-none-match': `"${stale.sha1}"`, 'if-modified-since': new Date(stale.lastModified).toUTCString() } }),
      });
    } catch (error) {
      if (isConnectFailure(error)) {
        const periodMs = numberField(config, 'assumedOfflinePeriodSecs', 300) * 1000;
        if (periodMs > 0) this.#offlineUntil.set(repo, this.#options.now() + periodMs);
      }
      if (stale !== undefined && config.hardFail !== true) return { kind: 'file', item: stale };
      throw error;
    }
    this.#offlineUntil.delete(repo);
    if (response.status === 304 && stale !== undefined) {
      await response.body.dump();
      this.#revalidated.set(key, this.#options.now());
      return { kind: 'file', item: stale };
    }
    if (response.status === 404 || response.status === 410) {
      await response.body.dump();
      if (stale !== undefined) return { kind: 'file', item: stale };
      const periodMs = numberField(config, 'missedRetrievalCachePeriodSecs', 1_800) * 1000;
      if (periodMs > 0) this.#missed.set(key, this.#options.now() + periodMs);
      return { kind: 'missing', reason: `'${path}' was not found upstream (${url})` };
    }
    if (response.status === 403) {
      await response.body.dump().catch(() => undefined);
      // An upstream Artifactory/Strata whose own curation blocks the artifact answers 403: the
      // block travels on (seed: "one smart repository linked to a curated remote" → 403).
      throw new StrataError('STRATA_ERR_CURATION_BLOCKED', `upstream ${url} refused '${path}' with 403 (blocked upstream)`);
    }
    if (response.status !== 200) {
      await response.body.dump().catch(() => undefined);
      if (response.status === 401) throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} refused the remote repository's credentials (401)`);
      if (stale !== undefined && config.hardFail !== true && response.status >= 500) return { kind: 'file', item: stale };
      const why = response.status >= 300 && response.status < 400 ? `redirected more than allowed (last status ${response.status})` : `answered ${response.status}`;
      throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} ${why}`);
    }
    const contentType = headerText(response.headers, 'content-type') ?? '';
    if (/^text\/html\b/i.test(contentType) && !/\.html?$/i.test(path)) {
      // An upstream folder index (Artifactory, Strata, nginx autoindex): never cached as a file.
      await response.body.dump().catch(() => undefined);
      if (stale !== undefined) return { kind: 'file', item: stale };
      return { kind: 'missing', reason: `'${path}' is a folder upstream (${url} answered an HTML index)` };
    }
    return this.#cacheBody(config, path, key, url, response, done, timeoutMs, credentials, expected);
  }

  /** Stores the body while (past the holdback) streaming it to the client; verifies; records the event. */
  async #cacheBody(
    config: RepositoryConfig,
    path: string,
    key: string,
    url: string,
    response: UpstreamResponse,
    done: Promise<FileItem | undefined>,
    timeoutMs: number,
    credentials: { username?: string; password?: string },
    expected: Partial<Checksums>,
  ): Promise<RemoteAnswer> {
    const repo = config.key;
    const storing = config.storeArtifactsLocally !== false;
    const lengthText = headerText(response.headers, 'content-length');
    const declaredSize = lengthText !== undefined && /^\d+$/.test(lengthText) ? Number(lengthText) : undefined;
    const declared = { ...declaredUpstreamChecksums(response.headers), ...expected };
    const mimeType = mimeTypeFor(path);
    // Without a checksum header, the sidecar (.sha1) is asked in parallel, where one may exist.
    const sidecar =
      Object.keys(declared).length === 0 && !CHECKSUM_SIDECARS.some((suffix) => path.endsWith(suffix))
        ? this.#sidecarSha1(`${url}.sha1`, timeoutMs, credentials)
        : Promise.resolve(undefined);

    const holdback = this.#options.streamHoldbackBytes;
    let committed = false;
    let client: PassThrough | undefined;
    let held: Buffer | undefined;
    const buffered: Buffer[] = [];
    let bufferedBytes = 0;
    let resolveFirst!: (answer: RemoteAnswer) => void;
    let rejectFirst!: (error: unknown) => void;
    const first = new Promise<RemoteAnswer>((resolve, reject) => {
      resolveFirst = resolve;
      rejectFirst = reject;
    });

    const writeToClient = async (chunk: Buffer): Promise<void> => {
      if (client === undefined || client.destroyed) return;
      if (client.write(chunk)) return;
      const body = client;
      await new Promise<void>((resolve) => {
        const resume = () => {
          body.off('drain', resume);
          body.off('close', resume);
          resolve();
        };
        body.once('drain', resume);
        body.once('close', resume);
      });
    };
    const onChunk = async (chunk: Buffer): Promise<void> => {
      if (!committed) {
        buffered.push(chunk);
        bufferedBytes += chunk.length;
        if (bufferedBytes <= holdback) return;
        committed = true;
        client = new PassThrough({ highWaterMark: 256 * 1024 });
        // A client that goes away does not stop the cache fill.
        client.on('error', () => undefined);
        resolveFirst({ kind: 'stream', path, mimeType, size: declaredSize, checksums: declared, body: client, done, storing });
        held = buffered.pop();
        for (const part of buffered.splice(0)) await writeToClient(part);
        return;
      }
      // The last chunk is held back until the file is verified, so a client never receives a
      // complete-looking body the cache refused.
      if (held !== undefined) await writeToClient(held);
      held = chunk;
    };
    async function* tap(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        await onChunk(chunk);
        yield chunk;
      }
    }

    const work = (async (): Promise<FileItem | undefined> => {
      let lease: BlobLease;
      try {
        lease = await this.#options.blobs.put(tap(response.body), {
          expected: declared,
          ...(declaredSize === undefined ? {} : { expectedSize: declaredSize }),
          sizeBytesMax: this.#options.uploadBytesMax,
        });
      } catch (error) {
        response.body.destroy();
        throw this.#bodyFailure(url, error);
      }
      try {
        if (declaredSize !== undefined && lease.size !== declaredSize) {
          throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} sent ${lease.size} bytes but declared Content-Length ${declaredSize}`);
        }
        const sidecarSha1 = await sidecar;
        if (sidecarSha1 !== undefined && sidecarSha1 !== lease.sha1) {
          throw new StrataError('STRATA_ERR_REMOTE_CHECKSUM_MISMATCH', `upstream ${url} content has sha1 ${lease.sha1} but its .sha1 sidecar says ${sidecarSha1}: not cached`);
        }
        if (!storing) return undefined;
        await this.#options.streams.execute(repositoryStream(repo), {}, (state) => {
          if (state.config === undefined) throw repositoryNotFound(repo);
          if (state.config.rclass !== 'remote') throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `repository '${repo}' is no longer a remote repository`);
          return {
            events: [
              {
                type: 'RemoteArtifactCached',
                data: { path, sha256: lease.sha256, sha1: lease.sha1, md5: lease.md5, size: lease.size, mimeType, properties: {}, remoteUrl: url },
              },
            ],
            result: undefined,
          };
        });
      } finally {
        lease.release();
      }
      this.#options.cache.invalidateItem(repo, path);
      this.#missed.delete(key);
      this.#revalidated.delete(key);
      const item = await this.#options.cache.item(repo, path);
      if (item?.kind !== 'file') throw new StrataError('STRATA_ERR_INVARIANT', `'${repo}:${path}' was cached but cannot be read back`);
      return item;
    })();

    work.then(
      async (item) => {
        if (!committed) {
          if (item === undefined && !storing) {
            // Verified, not stored: the held bytes are the whole answer.
            const body = new PassThrough();
            body.end(Buffer.concat(buffered));
            resolveFirst({ kind: 'stream', path, mimeType, size: bufferedBytes, checksums: declared, body, done: work, storing });
            return;
          }
          resolveFirst(item === undefined ? { kind: 'missing', reason: 'not cached' } : { kind: 'file', item });
          return;
        }
        if (held !== undefined) await writeToClient(held);
        client?.end();
      },
      (error: unknown) => {
        if (!committed) rejectFirst(error);
        else client?.destroy(error instanceof Error ? error : new Error(String(error)));
      },
    );
    // `done` (followers, the stream answer) settles with the work itself.
    work.then(
      () => undefined,
      () => undefined,
    );
    const answer = await first;
    if (answer.kind === 'stream') return { ...answer, done: work };
    return answer;
  }

  #bodyFailure(url: string, error: unknown): StrataError {
    if (error instanceof StrataError) {
      if (error.code === 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH') {
        return new StrataError('STRATA_ERR_REMOTE_CHECKSUM_MISMATCH', `upstream ${url} content does not match its declared checksums (X-Checksum headers or the package index): not cached (${error.message})`, undefined, { cause: error });
      }
      if (error.code === 'STRATA_ERR_BLOB_INCOMPLETE') {
        return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} ended the body before its Content-Length: not cached`, undefined, { cause: error });
      }
      if (error.code === 'STRATA_ERR_BLOB_TOO_LARGE') {
        return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} sent more than the ${this.#options.uploadBytesMax}-byte limit: not cached`, undefined, { cause: error });
      }
      return error;
    }
    return upstreamFailure(url, error, 'body');
  }

  /** The sha1 a `.sha1` sidecar declares, or undefined (absent, unreadable, upstream trouble). */
  async #sidecarSha1(url: string, timeoutMs: number, credentials: { username?: string; password?: string }): Promise<string | undefined> {
    try {
      const response = await this.#options.upstream.get({ url, timeoutMs, ...credentials });
      if (response.status !== 200) {
        await response.body.dump();
        return undefined;
      }
      let text = '';
      for await (const chunk of response.body) {
        text += (chunk as Buffer).toString('latin1');
        if (text.length > 1024) break;
      }
      response.body.destroy();
      const token = text.trim().split(/\s+/)[0]?.toLowerCase() ?? '';
      return HEX.sha1.test(token) ? token : undefined;
    } catch {
      return undefined;
    }
  }
}
