import { isStrataError, StrataError, virtualResolutionOrder, virtualResolutionSteps, virtualNestingDepthMax } from '@strata/core';
import type { Checksums, EventMeta, ResolutionStep } from '@strata/core';
import type { AccessControl, Principal } from '../auth/access-control.ts';
import { enforcePatterns } from '../artifacts/artifact-decider.ts';
import type { MetadataCache } from '../artifacts/hot-caches.ts';
import type { CurationService } from '../curation/curation-service.ts';
import type { ArtifactReader, FileItem, ListOptions, RepositoryConfig, TreeItem } from '../ports.ts';
import type { RemoteAnswer, RemoteProxy } from '../remote/remote-proxy.ts';
import { repositoryNotFound } from '../repositories/repository-decider.ts';
import { mavenRepositoryHandles, mavenVersionKindOf } from '../formats/maven/maven-layout.ts';

/** The suffix that addresses a remote repository's cache only: `/artifactory/{remote}-cache/{path}`. */
export const REMOTE_CACHE_SUFFIX = '-cache';

/** The configuration and item lookups resolution reads (the live MetadataCache, or a point in time). */
export type RepositoryLookups = Pick<MetadataCache, 'repository' | 'item'>;

/** A repository as a request names it: the configuration, and whether only a remote's cache was asked. */
export interface AddressedRepository {
  readonly config: RepositoryConfig;
  /** `{remote}-cache`: serve the cache only, never upstream. */
  readonly cacheOnly: boolean;
}

/**
 * What resolving a path found:
 * - `file`: a stored or cached file in repository `repo` (serve it from the blob store);
 * - `stream`: a remote file being fetched now (see RemoteAnswer);
 * - `folder`: a folder in each of `repos` (a virtual merges their listings, first wins).
 */
export type Resolved =
  | { readonly kind: 'file'; readonly repo: string; readonly item: FileItem }
  | ({ readonly repo: string } & Extract<RemoteAnswer, { kind: 'stream' }>)
  | { readonly kind: 'folder'; readonly repos: readonly string[]; readonly path: string };

export interface ResolveOptions {
  readonly principal: Principal;
  readonly meta: EventMeta;
  /** Go upstream on a miss (downloads); false for the storage API (stored and cached content only). */
  readonly fetchRemote: boolean;
  /**
   * The request comes from another repository manager (a smart remote: Artifactory or Strata
   * user agent). Through a virtual it gets remote content only from caches unless the virtual
   * sets `artifactoryRequestsCanRetrieveRemoteArtifacts`.
   */
  readonly fromRepositoryManager?: boolean;
  /** Package coordinates the caller (a package format) knows, for curation package rules. */
  readonly packageCoordinates?: { readonly name: string; readonly version?: string };
  /** Checksums a package format knows for a remote's path (from its index): a fetch must match them. */
  readonly expectedChecksums?: (remoteKey: string, path: string) => Partial<Checksums> | undefined;
}

/**
 * Reads through every kind of repository: local and federated (stored content), remote (the
 * caching proxy, `-cache` for the cache alone) and virtual (its members in resolution order,
 * core's virtualResolutionSteps). This is the interface package formats build on:
 * `address` → `steps` → `ask` one member at a time, or `resolve` for the whole walk.
 */
export class RepositoryContent {
  readonly #cache: RepositoryLookups;
  readonly #artifacts: ArtifactReader;
  readonly #remote: RemoteProxy;
  readonly #curation: CurationService;
  readonly #accessControl: () => AccessControl;

  constructor(options: { cache: RepositoryLookups; artifacts: ArtifactReader; remote: RemoteProxy; curation: CurationService; accessControl: () => AccessControl }) {
    this.#cache = options.cache;
    this.#artifacts = options.artifacts;
    this.#remote = options.remote;
    this.#curation = options.curation;
    this.#accessControl = options.accessControl;
  }

  /**
   * The same resolution over other readers: repositories as they were at a point in time
   * (`asOf`, issue 8). Only the stored-content reads (`address`, `steps`, `order`, `item`,
   * `list`) make sense there; `ask` and `resolve` would still reach today's remotes.
   */
  at(readers: RepositoryLookups & ArtifactReader): RepositoryContent {
    return new RepositoryContent({ cache: readers, artifacts: readers, remote: this.#remote, curation: this.#curation, accessControl: this.#accessControl });
  }

  /** The repository a request names, including the `{remote}-cache` alias (a real key wins). 404 if none. */
  async address(key: string): Promise<AddressedRepository> {
    const config = await this.#cache.repository(key);
    if (config !== undefined) return { config, cacheOnly: false };
    if (key.endsWith(REMOTE_CACHE_SUFFIX)) {
      const remote = await this.#cache.repository(key.slice(0, -REMOTE_CACHE_SUFFIX.length));
      if (remote?.rclass === 'remote') return { config: remote, cacheOnly: true };
    }
    throw repositoryNotFound(key);
  }

  /** Every configuration a virtual reaches (for the pure resolution functions), loaded with bounded depth. */
  async #closure(virtualKey: string): Promise<Map<string, RepositoryConfig>> {
    const configs = new Map<string, RepositoryConfig>();
    let frontier = [virtualKey];
    for (let depth = 0; frontier.length > 0 && depth <= virtualNestingDepthMax + 1; depth++) {
      const next: string[] = [];
      const loaded = await Promise.all(frontier.filter((key) => !configs.has(key)).map(async (key) => [key, await this.#cache.repository(key)] as const));
      for (const [key, config] of loaded) {
        if (config === undefined || configs.has(key)) continue;
        configs.set(key, config);
        if (config.rclass === 'virtual' && Array.isArray(config.repositories)) {
          for (const member of config.repositories) if (typeof member === 'string' && !configs.has(member)) next.push(member);
        }
      }
      frontier = next;
    }
    return configs;
  }

  /** The ordered steps resolving `path` through a virtual (patterns applied; '' = any path). */
  async steps(virtualKey: string, path = ''): Promise<ResolutionStep<RepositoryConfig>[]> {
    const configs = await this.#closure(virtualKey);
    const steps = virtualResolutionSteps(virtualKey, (key) => configs.get(key), path);
    // A Maven virtual does not ask a member for a version kind it does not handle
    // (handleReleases / handleSnapshots), whatever that member holds.
    const kind = configs.get(virtualKey)?.packageType === 'maven' ? mavenVersionKindOf(path) : undefined;
    if (kind === undefined) return steps;
    return steps.filter((step) => step.repository.packageType !== 'maven' || mavenRepositoryHandles(step.repository, kind));
  }

  /** The effective resolution order of a virtual: each member key once. */
  async order(virtualKey: string): Promise<string[]> {
    const configs = await this.#closure(virtualKey);
    return virtualResolutionOrder(virtualKey, (key) => configs.get(key));
  }

  /** Curation for a path served by a remote repository (403 and a recorded block, or nothing). */
  async enforceCuration(remote: RepositoryConfig, path: string, options: ResolveOptions, requestedRepo: string, cached?: FileItem): Promise<void> {
    await this.#curation.enforce({
      repo: remote.key,
      path,
      packageType: remote.packageType,
      ...(options.packageCoordinates === undefined ? {} : { packageCoordinates: options.packageCoordinates }),
      ...(cached === undefined ? {} : { properties: () => this.#artifacts.properties(remote.key, path) }),
      actor: options.principal.name,
      requestedRepo,
    });
  }

  /**
   * Asks one member: stored content, a remote's cache, or a remote (upstream on a miss when
   * `fetchRemote`). Undefined when it does not have the path. Throws 403 when curation blocks
   * it, 502/504 when the upstream fails.
   */
  async ask(step: { readonly key: string; readonly mode: 'stored' | 'cache' | 'remote'; readonly repository: RepositoryConfig }, path: string, options: ResolveOptions, requestedRepo = step.key): Promise<Resolved | undefined> {
    const { key, mode, repository } = step;
    if (mode === 'stored') {
      const item = await this.#cache.item(key, path);
      if (item === undefined) return undefined;
      return item.kind === 'file' ? { kind: 'file', repo: key, item } : { kind: 'folder', repos: [key], path };
    }
    const cachedAnswer = await this.#remote.cached(key, path);
    if (cachedAnswer.kind === 'folder') return { kind: 'folder', repos: [key], path };
    if (path !== '') await this.enforceCuration(repository, path, options, requestedRepo, cachedAnswer.kind === 'file' ? cachedAnswer.item : undefined);
    if (mode === 'cache' || !options.fetchRemote) return cachedAnswer.kind === 'file' ? { kind: 'file', repo: key, item: cachedAnswer.item } : undefined;
    const answer = await this.#remote.get(repository, path, options.meta, options.expectedChecksums?.(key, path));
    switch (answer.kind) {
      case 'file':
        return { kind: 'file', repo: key, item: answer.item };
      case 'stream':
        return { ...answer, repo: key };
      case 'folder':
        return { kind: 'folder', repos: [key], path };
      case 'missing':
        return undefined;
    }
  }

  /**
   * Resolves a path of any repository (the key as the request names it). Throws 404 when
   * nothing has it, 403 when curation blocked it and no later member had it, 502/504 for a
   * failing upstream (in a virtual: only members with hardFail; others count as misses).
   */
  async resolve(requestedKey: string, path: string, options: ResolveOptions): Promise<Resolved> {
    const { config, cacheOnly } = await this.address(requestedKey);
    enforcePatterns(requestedKey, config, path);
    const notFound = () => new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${requestedKey}:${path}'`);
    if (config.rclass !== 'virtual') {
      // A Maven remote neither fetches nor serves a version kind it does not handle.
      const kind = config.rclass === 'remote' && config.packageType === 'maven' ? mavenVersionKindOf(path) : undefined;
      if (kind !== undefined && !mavenRepositoryHandles(config, kind)) throw notFound();
      const mode = config.rclass === 'remote' ? (cacheOnly ? 'cache' : 'remote') : 'stored';
      const found = await this.ask({ key: config.key, mode, repository: config }, path, options, requestedKey);
      if (found === undefined) throw notFound();
      return found;
    }
    const access = this.#accessControl();
    const memberOptions: ResolveOptions =
      options.fromRepositoryManager === true && config.artifactoryRequestsCanRetrieveRemoteArtifacts !== true ? { ...options, fetchRemote: false } : options;
    let blocked: StrataError | undefined;
    const blockedRepos = new Set<string>();
    const folders: string[] = [];
    for (const step of await this.steps(config.key, path)) {
      // Resolution skips members the caller may not read (seed: "security privileges").
      if (blockedRepos.has(step.key) || !access.isAllowed(options.principal, { repo: step.key, path, action: 'read' })) continue;
      let found: Resolved | undefined;
      try {
        found = await this.ask(step, path, memberOptions, requestedKey);
      } catch (error) {
        if (isStrataError(error, 'STRATA_ERR_CURATION_BLOCKED')) {
          // Seed: a 403 is remembered and returned only if no later member resolves the path.
          blocked ??= error;
          blockedRepos.add(step.key);
          continue;
        }
        if (step.mode === 'remote' && step.repository.hardFail !== true && isStrataError(error) && error.status >= 500) continue;
        throw error;
      }
      if (found === undefined) continue;
      if (found.kind === 'folder') {
        if (!folders.includes(step.key)) folders.push(step.key);
        continue;
      }
      if (folders.length > 0) {
        // A folder in an earlier member wins over a file of the same path later.
        if (found.kind === 'stream') found.body.destroy();
        break;
      }
      return found;
    }
    if (folders.length > 0) return { kind: 'folder', repos: folders, path };
    if (blocked !== undefined) throw blocked;
    throw notFound();
  }

  /**
   * The stored or cached item of a path (no upstream): for the storage API. For a virtual,
   * the first member that has it; `repos` lists every member holding a folder there.
   */
  async item(requestedKey: string, path: string, principal: Principal): Promise<{ repo: string; item: TreeItem; folderRepos: readonly string[] } | undefined> {
    const { config } = await this.address(requestedKey);
    enforcePatterns(requestedKey, config, path);
    if (config.rclass !== 'virtual') {
      const item = await this.#artifacts.getItem(config.key, path);
      return item === undefined ? undefined : { repo: config.key, item, folderRepos: item.kind === 'folder' ? [config.key] : [] };
    }
    const access = this.#accessControl();
    let first: { repo: string; item: TreeItem } | undefined;
    const folderRepos: string[] = [];
    for (const step of await this.steps(config.key, path)) {
      if (step.mode === 'remote' || !access.isAllowed(principal, { repo: step.key, path, action: 'read' })) continue;
      const item = await this.#artifacts.getItem(step.key, path);
      if (item === undefined) continue;
      if (first === undefined) first = { repo: step.key, item };
      if (item.kind === 'folder' && first.item.kind === 'folder' && !folderRepos.includes(step.key)) folderRepos.push(step.key);
    }
    return first === undefined ? undefined : { ...first, folderRepos };
  }

  /**
   * A folder's listing merged over `repos` (in order): the first repository that has a path
   * wins it; entries each repository's patterns refuse are left out.
   */
  async list(repos: readonly string[], path: string, options: ListOptions): Promise<TreeItem[]> {
    const merged = new Map<string, TreeItem>();
    for (const repo of repos) {
      const config = await this.#cache.repository(repo);
      if (config === undefined) continue;
      const entries = await this.#artifacts.list(repo, path, options);
      for (const entry of entries) {
        if (merged.has(entry.path)) continue;
        if (entry.kind === 'file') {
          try {
            enforcePatterns(repo, config, entry.path);
          } catch {
            continue;
          }
        }
        merged.set(entry.path, entry);
        if (merged.size >= options.limit) break;
      }
      if (merged.size >= options.limit) break;
    }
    return [...merged.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }
}
