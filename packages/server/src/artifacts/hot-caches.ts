import type { BlobStore } from '@strata/store';
import type { RepositoryConfig, RepositoryReader, TreeItem, ArtifactReader } from '../ports.ts';

/**
 * Bounded in-memory caches for the download hot path (DESIGN §6): small blobs by sha256
 * (immutable, so never stale) and resolved metadata by repo/path (invalidated by this
 * server's writes, and expiring after a TTL because other servers may write too).
 */
export class BlobCache {
  readonly #store: BlobStore;
  readonly #entryBytesMax: number;
  readonly #totalBytesMax: number;
  readonly #entries = new Map<string, Buffer>();
  #totalBytes = 0;

  constructor(store: BlobStore, entryBytesMax: number, totalBytesMax: number) {
    this.#store = store;
    this.#entryBytesMax = entryBytesMax;
    this.#totalBytesMax = totalBytesMax;
  }

  cacheable(size: number): boolean {
    return size <= this.#entryBytesMax && this.#totalBytesMax > 0;
  }

  /** The cached bytes of `sha256`, without reading the store on a miss. */
  peek(sha256: string): Buffer | undefined {
    const hit = this.#entries.get(sha256);
    if (hit !== undefined) {
      this.#entries.delete(sha256);
      this.#entries.set(sha256, hit);
    }
    return hit;
  }

  async get(sha256: string): Promise<Buffer> {
    const hit = this.#entries.get(sha256);
    if (hit !== undefined) {
      this.#entries.delete(sha256);
      this.#entries.set(sha256, hit);
      return hit;
    }
    const bytes = await this.#store.read(sha256);
    if (bytes.length <= this.#entryBytesMax && !this.#entries.has(sha256)) {
      this.#entries.set(sha256, bytes);
      this.#totalBytes += bytes.length;
      // Bounded: each iteration removes one entry.
      while (this.#totalBytes > this.#totalBytesMax && this.#entries.size > 0) {
        const [oldestKey, oldest] = this.#entries.entries().next().value as [string, Buffer];
        this.#entries.delete(oldestKey);
        this.#totalBytes -= oldest.length;
      }
    }
    return bytes;
  }
}

interface Cached<T> {
  readonly value: T;
  readonly expiresAt: number;
}

export class TtlCache<T> {
  readonly #entries = new Map<string, Cached<T>>();
  readonly #entriesMax: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(entriesMax: number, ttlMs: number, now: () => number) {
    this.#entriesMax = entriesMax;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(key: string): T | undefined {
    const hit = this.#entries.get(key);
    if (hit === undefined) return undefined;
    if (hit.expiresAt <= this.#now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return hit.value;
  }

  set(key: string, value: T): void {
    if (this.#ttlMs <= 0 || this.#entriesMax <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { value, expiresAt: this.#now() + this.#ttlMs });
    if (this.#entries.size > this.#entriesMax) {
      const oldest = this.#entries.keys().next().value;
      if (oldest !== undefined) this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  get size(): number {
    return this.#entries.size;
  }

  deleteWhere(predicate: (key: string) => boolean): void {
    for (const key of [...this.#entries.keys()]) if (predicate(key)) this.#entries.delete(key);
  }
}

/** Read-through caches of repository configs and files for downloads. */
export class MetadataCache {
  readonly #repositories: RepositoryReader;
  readonly #artifacts: ArtifactReader;
  readonly #configs: TtlCache<RepositoryConfig | null>;
  readonly #files: TtlCache<TreeItem>;
  /**
   * Paths found absent: a virtual asks several members for each path, and every member but
   * one misses; without this each miss is a projection query per request.
   */
  readonly #misses: TtlCache<true>;

  constructor(repositories: RepositoryReader, artifacts: ArtifactReader, options: { entriesMax: number; ttlMs: number; now: () => number }) {
    this.#repositories = repositories;
    this.#artifacts = artifacts;
    this.#configs = new TtlCache(1_000, options.ttlMs, options.now);
    this.#files = new TtlCache(options.entriesMax, options.ttlMs, options.now);
    this.#misses = new TtlCache(options.entriesMax, options.ttlMs, options.now);
  }

  async repository(key: string): Promise<RepositoryConfig | undefined> {
    const hit = this.#configs.get(key);
    if (hit !== undefined) return hit ?? undefined;
    const config = await this.#repositories.get(key);
    this.#configs.set(key, config ?? null);
    return config;
  }

  /** A cached repository configuration (null: cached as absent); undefined when not cached. */
  peekRepository(key: string): RepositoryConfig | null | undefined {
    return this.#configs.get(key);
  }

  /** A cached file; undefined when not cached (nothing is read). */
  peekItem(repo: string, path: string): TreeItem | undefined {
    return this.#files.get(`${repo}\0${path}`);
  }

  /** Files only are cached (folders change whenever something below them does). */
  async item(repo: string, path: string): Promise<TreeItem | undefined> {
    const cacheKey = `${repo}\0${path}`;
    const hit = this.#files.get(cacheKey);
    if (hit !== undefined) return hit;
    if (this.#misses.get(cacheKey) === true) return undefined;
    const item = await this.#artifacts.getItem(repo, path);
    if (item?.kind === 'file') this.#files.set(cacheKey, item);
    else if (item === undefined) this.#misses.set(cacheKey, true);
    return item;
  }

  invalidateRepository(key: string): void {
    this.#configs.delete(key);
    this.#files.deleteWhere((cacheKey) => cacheKey.startsWith(`${key}\0`));
    this.#misses.deleteWhere((cacheKey) => cacheKey.startsWith(`${key}\0`));
  }

  invalidateItem(repo: string, path: string): void {
    // Called for every event a member receives (a catch-up: thousands a second), mostly while
    // nothing is cached: no keys made to delete nothing.
    if (this.#files.size > 0) this.#files.delete(`${repo}\0${path}`);
    if (this.#misses.size === 0) return;
    // The path and every folder above it now exist.
    this.#misses.delete(`${repo}\0${path}`);
    this.#misses.delete(`${repo}\0`);
    for (let slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) this.#misses.delete(`${repo}\0${path.slice(0, slash)}`);
  }

  invalidateFolder(repo: string, prefix: string): void {
    if (prefix === '') {
      this.#files.deleteWhere((cacheKey) => cacheKey.startsWith(`${repo}\0`));
      this.#misses.deleteWhere((cacheKey) => cacheKey.startsWith(`${repo}\0`));
      return;
    }
    this.#files.deleteWhere((cacheKey) => cacheKey === `${repo}\0${prefix}` || cacheKey.startsWith(`${repo}\0${prefix}/`));
    // Recursive property changes and copies into a folder create items below it.
    this.#misses.deleteWhere((cacheKey) => cacheKey.startsWith(`${repo}\0`));
  }
}
