import { isStrataError, StrataError } from '@strata/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { parseArtifactAddress } from '../artifacts/artifact-address.ts';
import { enforcePatterns, pathFilterOf } from '../artifacts/artifact-decider.ts';
import type { ArtifactService } from '../artifacts/artifact-service.ts';
import type { MetadataCache } from '../artifacts/hot-caches.ts';
import { errorResponses } from '../http-errors.ts';
import type { ArtifactReader, DownloadCounter, FileItem, FolderItem } from '../ports.ts';
import type { FederationHooks } from '../ports.ts';
import type { BlobStore } from '@strata/store';
import { baseUrl, requestMeta } from '../request-meta.ts';
import { REMOTE_CACHE_SUFFIX } from '../virtual/repository-content.ts';
import type { RepositoryContent } from '../virtual/repository-content.ts';
import type { ListOptions, RepositoryConfig, TreeItem } from '../ports.ts';
import type { SmartRemoteService } from '../smart-remote/smart-remote-service.ts';
import { parsePropertyAssignments, parsePropertyNames, rawQueryParameter } from './properties-syntax.ts';
import type { PointInTimeReads } from '../audit/point-in-time.ts';

export interface StorageRoutesOptions {
  readonly service: ArtifactService;
  readonly cache: MetadataCache;
  readonly artifacts: ArtifactReader;
  readonly downloads: DownloadCounter;
  readonly listEntriesMax: number;
  readonly now: () => number;
  readonly content: RepositoryContent;
  /** Federated repositories: file info says whether the binary has arrived. */
  readonly federation?: Pick<FederationHooks, 'isFederated'>;
  readonly blobs?: Pick<BlobStore, 'stat'>;
  /** `asOf=` reads (issue 8); without it `asOf` is refused. */
  readonly pointInTime?: PointInTimeReads;
  /** Smart remotes: remote download statistics, origin absence, the origin's folder items. */
  readonly smartRemote?: Pick<SmartRemoteService, 'fileExtras' | 'remoteChildren' | 'remoteFileList' | 'remoteDownloadStats'>;
}

const PREFIX = '/artifactory/api/storage/';
const flag = { type: 'string', pattern: '^(0|1|true|false)?$' } as const;

const querystring = {
  type: 'object',
  properties: {
    properties: { type: 'string' },
    recursive: flag,
    list: { type: 'string' },
    deep: flag,
    depth: { type: 'string', pattern: '^[0-9]{0,4}$' },
    listFolders: flag,
    mdTimestamps: flag,
    includeRootPath: flag,
    stats: { type: 'string' },
    asOf: { type: 'string', maxLength: 64 },
  },
} as const;

const params = { type: 'object', properties: { repo: { type: 'string' }, '*': { type: 'string' } } } as const;

/** The list query as a smart remote passes it on to its origin. */
function remoteListOptions(query: Record<string, string | undefined>): { deep: boolean; depth?: number; listFolders: boolean } {
  const deep = isOn(query.deep, false);
  const depth = query.depth === undefined || query.depth === '' ? undefined : Number(query.depth);
  return { deep, listFolders: isOn(query.listFolders, false), ...(deep && depth !== undefined && Number.isSafeInteger(depth) && depth > 0 ? { depth } : {}) };
}

function isOn(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  return value === '1' || value === 'true';
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function has(request: FastifyRequest, name: string): boolean {
  return Object.hasOwn(request.query as object, name);
}

/** `/api/storage/{repo}/{path}`: item info, properties, listings and download statistics. */
export const storageRoutes: FastifyPluginAsync<StorageRoutesOptions> = async (app, options) => {
  const { service, cache, artifacts, downloads, content } = options;

  /** The item a storage request names (today, or `asOf` a point in time). */
  async function lookup(request: FastifyRequest) {
    const address = parseArtifactAddress(request.url, PREFIX);
    const { repo, path } = address;
    const config = await cache.repository(repo);
    // `{remote}-cache` is guarded by the remote's permissions.
    const guarded = config === undefined && repo.endsWith(REMOTE_CACHE_SUFFIX) ? repo.slice(0, -REMOTE_CACHE_SUFFIX.length) : repo;
    app.accessControl.authorize(request.principal, { repo: guarded, path, action: 'read' });
    const asOf = (request.query as Record<string, string | undefined>).asOf;
    if (asOf !== undefined) return lookupAsOf(request, repo, path, asOf);
    return lookupIn(request, repo, path, config, content, artifacts);
  }

  /**
   * The item `path` names in `repo` over the given readers (today's, or a point in time's).
   * A virtual answers with the first member that stores or caches it (no upstream fetch);
   * a folder lists every member's folder merged. A remote's `-cache` alias answers for its
   * cache.
   */
  async function lookupIn(request: FastifyRequest, repo: string, path: string, config: RepositoryConfig | undefined, resolver: RepositoryContent, reader: ArtifactReader, asOf?: string) {
    const when = asOf === undefined ? '' : ` as of ${asOf}`;
    if (config === undefined || config.rclass === 'virtual') {
      const addressed = await resolver.address(repo);
      const found = await resolver.item(repo, path, request.principal);
      if (found === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Unable to find item '${repo}:${path}'${when}`);
      const folderRepos = found.folderRepos;
      // The file (or a folder's first holder) is shown under the repository that holds it.
      const shownRepo = addressed.config.rclass === 'virtual' && found.item.kind === 'file' ? found.repo : repo;
      return {
        repo: shownRepo,
        sourceRepo: found.repo,
        path,
        item: found.item,
        config: addressed.config,
        list: (listPath: string, listOptions: ListOptions) => resolver.list(folderRepos, listPath, listOptions),
        properties: () => reader.properties(found.repo, path),
      };
    }
    enforcePatterns(repo, config, path);
    const item = await reader.getItem(repo, path);
    if (item === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Unable to find item '${repo}:${path}'${when}`);
    const list = async (listPath: string, listOptions: ListOptions): Promise<TreeItem[]> => visible(repo, config, await reader.list(repo, listPath, listOptions));
    return { repo, sourceRepo: repo, path, item, config, list, properties: () => reader.properties(repo, path) };
  }

  /**
   * The item as it was at `asOf` (an ISO-8601 time or a position): each repository's stream
   * folded up to it — a virtual's own configuration then, its members then, their trees then.
   */
  async function lookupAsOf(request: FastifyRequest, repo: string, path: string, asOf: string) {
    if (options.pointInTime === undefined) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'point-in-time reads are not available on this server');
    const then = await options.pointInTime.catalogueFor(repo, asOf);
    return lookupIn(request, repo, path, await then.repository(repo), content.at(then), then, asOf);
  }

  /** Files the repository's patterns refuse are not shown (folders are, files below may be visible). */
  function visible<T extends { kind: string; path: string }>(_repo: string, config: Readonly<Record<string, unknown>>, entries: readonly T[]): T[] {
    const filter = pathFilterOf(config);
    return entries.filter((entry) => entry.kind === 'folder' || filter.refusal(entry.path) === undefined);
  }

  const storageUri = (request: FastifyRequest, repo: string, path: string) => `${baseUrl(request)}/api/storage/${repo}${path === '' ? '' : `/${path}`}`;

  function fileInfo(request: FastifyRequest, repo: string, file: FileItem) {
    const checksums = { sha1: file.sha1, md5: file.md5, sha256: file.sha256 };
    return {
      repo,
      path: `/${file.path}`,
      created: iso(file.created),
      createdBy: file.createdBy,
      lastModified: iso(file.lastModified),
      modifiedBy: file.modifiedBy,
      lastUpdated: iso(file.lastModified),
      downloadUri: `${baseUrl(request)}/${repo}/${file.path}`,
      mimeType: file.mimeType,
      size: String(file.size),
      checksums,
      originalChecksums: checksums,
      uri: storageUri(request, repo, file.path),
    };
  }

  async function folderInfo(request: FastifyRequest, repo: string, folder: FolderItem, list: (path: string, options: ListOptions) => Promise<TreeItem[]>) {
    const children = await list(folder.path, { deep: false, includeFolders: true, limit: options.listEntriesMax });
    const prefixLength = folder.path === '' ? 0 : folder.path.length + 1;
    return {
      repo,
      path: `/${folder.path}`,
      created: iso(folder.created),
      createdBy: folder.createdBy,
      lastModified: iso(folder.lastModified),
      modifiedBy: folder.modifiedBy,
      lastUpdated: iso(folder.lastModified),
      children: children.map((child) => ({ uri: `/${child.path.slice(prefixLength)}`, folder: child.kind === 'folder' })),
      uri: storageUri(request, repo, folder.path),
    };
  }

  async function get(request: FastifyRequest, reply: FastifyReply) {
    const query = request.query as Record<string, string | undefined>;
    let found: Awaited<ReturnType<typeof lookup>>;
    try {
      found = await lookup(request);
    } catch (error) {
      if (!isStrataError(error, 'STRATA_ERR_ARTIFACT_NOT_FOUND')) throw error;
      if (has(request, 'list')) {
        const originList = await originOnlyList(request);
        if (originList === undefined) throw error;
        return reply.type('application/vnd.org.jfrog.artifactory.storage.FileList+json').send(originList);
      }
      const originOnly = await originOnlyFolder(request);
      if (originOnly === undefined) throw error;
      return reply.type('application/vnd.org.jfrog.artifactory.storage.FolderInfo+json').send(originOnly);
    }
    const { repo, path, item, list, properties: readProperties, config } = found;
    const uri = storageUri(request, repo, path);
    if (has(request, 'properties')) {
      const names = parsePropertyNames(rawQueryParameter(request.url, 'properties') ?? '');
      const properties: Record<string, readonly string[]> = {};
      for (const [key, values] of Object.entries(await readProperties())) if (names.length === 0 || names.includes(key)) properties[key] = values;
      if (Object.keys(properties).length === 0) throw new StrataError('STRATA_ERR_HTTP_NOT_FOUND', 'No properties could be found.');
      return reply.type('application/vnd.org.jfrog.artifactory.storage.ItemProperties+json').send({ uri, properties });
    }
    if (has(request, 'stats')) {
      if (item.kind !== 'file') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'statistics are kept for files only');
      const stats = await downloads.get(repo, path);
      const remoteStats = await options.smartRemote?.remoteDownloadStats(repo, path);
      return reply.type('application/vnd.org.jfrog.artifactory.storage.StatsInfo+json').send({
        uri,
        downloadCount: stats?.downloadCount ?? 0,
        lastDownloaded: stats?.lastDownloaded ?? 0,
        lastDownloadedBy: stats?.lastDownloadedBy ?? '',
        remoteDownloadCount: remoteStats?.remoteDownloadCount ?? 0,
        remoteLastDownloaded: remoteStats?.remoteLastDownloaded ?? 0,
        ...(remoteStats === undefined ? {} : { remoteLastDownloadedBy: remoteStats.remoteLastDownloadedBy }),
      });
    }
    if (has(request, 'list')) {
      if (item.kind !== 'folder') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `'${repo}:${path}' is a file: list a folder`);
      const deep = isOn(query.deep, false);
      const depth = query.depth === undefined || query.depth === '' ? undefined : Number(query.depth);
      const entries = await list(path, {
        deep,
        ...(deep && depth !== undefined && depth > 0 ? { depth } : {}),
        includeFolders: isOn(query.listFolders, false),
        limit: options.listEntriesMax,
      });
      const prefixLength = path === '' ? 0 : path.length + 1;
      const files: { uri: string; size: number; lastModified: string; folder: boolean; sha1?: string; sha2?: string }[] = entries.map((entry) =>
        entry.kind === 'file'
          ? { uri: `/${entry.path.slice(prefixLength)}`, size: entry.size, lastModified: iso(entry.lastModified), folder: false, sha1: entry.sha1, sha2: entry.sha256 }
          : { uri: `/${entry.path.slice(prefixLength)}`, size: -1, lastModified: iso(entry.lastModified), folder: true },
      );
      if (config.rclass === 'remote' && options.smartRemote !== undefined) {
        // listRemoteFolderItems: the origin's entries are listed too (what the cache holds wins), nothing is cached.
        const remote = await options.smartRemote.remoteFileList(config as RepositoryConfig, path, { ...remoteListOptions(query), entriesMax: options.listEntriesMax });
        if (remote !== undefined) {
          const shown = new Set(files.map((entry) => entry.uri));
          for (const entry of remote) if (!shown.has(entry.uri) && files.length < options.listEntriesMax) files.push(entry);
          files.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
        }
      }
      if (isOn(query.includeRootPath, false)) files.unshift({ uri: '/', size: -1, lastModified: iso(item.lastModified), folder: true });
      return reply.type('application/vnd.org.jfrog.artifactory.storage.FileList+json').send({ uri, created: iso(options.now()), files });
    }
    if (item.kind === 'file') {
      const info: Record<string, unknown> = fileInfo(request, repo, item);
      if (config.rclass === 'remote' && options.smartRemote !== undefined) Object.assign(info, await options.smartRemote.fileExtras(config as RepositoryConfig, path));
      if (options.federation?.isFederated(repo) && options.blobs !== undefined) {
        // Strata's addition: the entry arrived from a member, its binary may not have yet.
        info['binaryArrived'] = item.size === 0 || (await options.blobs.stat(item.sha256)) !== undefined;
      }
      return reply.type('application/vnd.org.jfrog.artifactory.storage.FileInfo+json').send(info);
    }
    const folder = await folderInfo(request, repo, item, list);
    if (config.rclass === 'remote' && options.smartRemote !== undefined) {
      // listRemoteFolderItems: the origin's items are shown too, nothing is cached.
      const remote = await options.smartRemote.remoteChildren(config as RepositoryConfig, path);
      if (remote !== undefined) {
        const shown = new Set(folder.children.map((child) => child.uri));
        for (const child of remote) if (!shown.has(child.uri)) folder.children.push(child);
        folder.children.sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
      }
    }
    return reply.type('application/vnd.org.jfrog.artifactory.storage.FolderInfo+json').send(folder);
  }

  /** The File List of a smart remote's folder that only its origin has (listRemoteFolderItems), or undefined. */
  async function originOnlyList(request: FastifyRequest) {
    if (options.smartRemote === undefined) return undefined;
    const { repo, path } = parseArtifactAddress(request.url, PREFIX);
    const config = await cache.repository(repo);
    if (config?.rclass !== 'remote') return undefined;
    const query = request.query as Record<string, string | undefined>;
    const files = await options.smartRemote.remoteFileList(config, path, { ...remoteListOptions(query), entriesMax: options.listEntriesMax });
    if (files === undefined) return undefined;
    return { uri: storageUri(request, repo, path), created: iso(options.now()), files: [...files].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0)) };
  }

  /** A folder of a smart remote that only its origin has (listRemoteFolderItems), or undefined. */
  async function originOnlyFolder(request: FastifyRequest) {
    if (options.smartRemote === undefined) return undefined;
    const { repo, path } = parseArtifactAddress(request.url, PREFIX);
    const config = await cache.repository(repo);
    if (config?.rclass !== 'remote' || has(request, 'stats') || has(request, 'properties') || has(request, 'list')) return undefined;
    const children = await options.smartRemote.remoteChildren(config, path);
    if (children === undefined) return undefined;
    const now = iso(options.now());
    return { repo, path: `/${path}`, created: now, lastModified: now, lastUpdated: now, children, uri: storageUri(request, repo, path) };
  }

  function propertiesTarget(request: FastifyRequest) {
    const address = parseArtifactAddress(request.url, PREFIX);
    app.accessControl.authorize(request.principal, { repo: address.repo, path: address.path, action: 'annotate' });
    const text = rawQueryParameter(request.url, 'properties');
    if (text === undefined || text === '') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'the properties parameter is required');
    const recursive = isOn((request.query as Record<string, string | undefined>).recursive, true);
    return { ...address, text, recursive };
  }

  const jsonResponses = { 200: { type: 'object', additionalProperties: true }, ...errorResponses } as const;
  for (const url of ['/api/storage/:repo', '/api/storage/:repo/*']) {
    app.get(url, { schema: { params, querystring, response: jsonResponses } }, get);

    app.put(url, { schema: { params, querystring, response: { 204: { type: 'null' }, ...errorResponses } } }, async (request, reply) => {
      const target = propertiesTarget(request);
      await service.setProperties(target.repo, target.path, parsePropertyAssignments(target.text), target.recursive, requestMeta(request));
      return reply.code(204).send();
    });

    app.delete(url, { schema: { params, querystring, response: { 204: { type: 'null' }, ...errorResponses } } }, async (request, reply) => {
      const target = propertiesTarget(request);
      await service.removeProperties(target.repo, target.path, parsePropertyNames(target.text), target.recursive, requestMeta(request));
      return reply.code(204).send();
    });
  }

  // PATCH /api/metadata/{repo}/{path} {"props": {"k": "v" | ["v1","v2"], "gone": null}}
  app.patch(
    '/api/metadata/*',
    {
      schema: {
        params,
        querystring: { type: 'object', properties: { recursive: flag } },
        body: {
          type: 'object',
          properties: { props: { type: 'object', additionalProperties: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }, { type: 'null' }] } } },
          required: ['props'],
        },
        response: { 200: { type: 'string' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { repo, path } = parseArtifactAddress(request.url, '/artifactory/api/metadata/');
      app.accessControl.authorize(request.principal, { repo, path, action: 'annotate' });
      const props = (request.body as { props: Record<string, string | string[] | null> }).props;
      const recursive = isOn((request.query as Record<string, string | undefined>).recursive, false);
      const set: Record<string, string[]> = {};
      const removed: string[] = [];
      for (const [key, value] of Object.entries(props)) {
        if (value === null) removed.push(key);
        else set[key] = Array.isArray(value) ? value : value.split(',');
      }
      const meta = requestMeta(request);
      if (Object.keys(set).length > 0) await service.setProperties(repo, path, set, recursive, meta);
      if (removed.length > 0) await service.removeProperties(repo, path, removed, recursive, meta);
      return reply.type('text/plain').send('');
    },
  );
};
