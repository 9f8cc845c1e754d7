import { deployTrace } from '../deploy-trace.ts';
import { isStrataError, StrataError } from '@strata/core';
import type { Checksums } from '@strata/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, errorResponses } from '../http-errors.ts';
import type { ArtifactReader, DownloadCounter, FederationHooks, FileItem, RepositoryConfig } from '../ports.ts';
import { repositoryNotFound as notFound } from '../repositories/repository-decider.ts';
import { baseUrl, requestMeta } from '../request-meta.ts';
import { parseArtifactAddress } from './artifact-address.ts';
import type { ArtifactAddress } from './artifact-address.ts';
import { enforcePatterns, pathFilterOf } from './artifact-decider.ts';
import type { FastPath } from '../fast-path.ts';
import type { ArtifactService, DeployedArtifact } from './artifact-service.ts';
import type { BlobCache, MetadataCache } from './hot-caches.ts';
import type { BlobStore } from '@strata/store';
import type { PointInTimeReads } from '../audit/point-in-time.ts';
import type { MavenFormat } from '../formats/maven/maven-format.ts';
import { checksumBodyBytesMax } from '../formats/maven/maven-format.ts';
import type { RemoteProxy } from '../remote/remote-proxy.ts';
import { REMOTE_CACHE_SUFFIX } from '../virtual/repository-content.ts';
import type { SmartRemoteService } from '../smart-remote/smart-remote-service.ts';
import type { RepositoryContent, Resolved } from '../virtual/repository-content.ts';

export interface ArtifactsRoutesOptions {
  readonly service: ArtifactService;
  readonly cache: MetadataCache;
  readonly blobCache: BlobCache;
  readonly blobs: BlobStore;
  readonly artifacts: ArtifactReader;
  readonly downloads: DownloadCounter;
  readonly now: () => number;
  readonly listEntriesMax: number;
  readonly uploadBytesMax: number;
  /** Maven on the plain path of `packageType: maven` repositories (layout, computed metadata and sidecars). */
  readonly maven?: MavenFormat;
  readonly content: RepositoryContent;
  readonly remote: RemoteProxy;
  /** Federated repositories: a binary not arrived yet is fetched from a member on demand. */
  readonly federation?: Pick<FederationHooks, 'isFederated' | 'fetchMissingBinary'>;
  /** `?asOf=` downloads (issue 8): the file as it was then, while its binary is still stored. */
  readonly pointInTime?: PointInTimeReads;
  /** Smart remotes: downloads from a remote's cache report statistics and sync properties. */
  readonly smartRemote?: Pick<SmartRemoteService, 'served' | 'remoteChildren'>;
  /** Where the download of a file held in the hot caches is answered without fastify. */
  readonly fastPath?: FastPath;
}

/** Reads a small request body whole; a longer one is refused. */
async function smallBody(request: FastifyRequest, bytesMax: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request.raw) {
    size += (chunk as Buffer).length;
    if (size > bytesMax) throw new StrataError('STRATA_ERR_BLOB_TOO_LARGE', `this file may be at most ${bytesMax} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

const PREFIX = '/artifactory/';
/** Under /artifactory/api/ are the API routes, never a repository. */
const API_PREFIX = '/artifactory/api/';

const itemCreatedSchema = {
  type: 'object',
  properties: {
    repo: { type: 'string' },
    path: { type: 'string' },
    created: { type: 'string' },
    createdBy: { type: 'string' },
    downloadUri: { type: 'string' },
    mimeType: { type: 'string' },
    size: { type: 'string' },
    checksums: { $ref: 'strataChecksums#' },
    originalChecksums: { $ref: 'strataChecksums#' },
    uri: { type: 'string' },
  },
} as const;

const routeSchema = {
  params: {
    type: 'object',
    properties: { repo: { type: 'string' }, '*': { type: 'string' } },
  },
  headers: {
    type: 'object',
    properties: {
      'x-checksum-sha256': { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      'x-checksum-sha1': { type: 'string', pattern: '^[0-9a-fA-F]{40}$' },
      'x-checksum': { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
      'x-checksum-md5': { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
      'x-checksum-deploy': { type: 'string' },
      range: { type: 'string' },
      'if-none-match': { type: 'string' },
    },
  },
} as const;

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function declaredChecksums(request: FastifyRequest): Partial<Checksums> {
  const expected: { sha256?: string; sha1?: string; md5?: string } = {};
  const sha256 = header(request, 'x-checksum-sha256');
  const sha1 = header(request, 'x-checksum-sha1');
  const md5 = header(request, 'x-checksum') ?? header(request, 'x-checksum-md5');
  if (sha256 !== undefined) expected.sha256 = sha256.toLowerCase();
  if (sha1 !== undefined) expected.sha1 = sha1.toLowerCase();
  if (md5 !== undefined) expected.md5 = md5.toLowerCase();
  return expected;
}

export function itemCreated(base: string, deployed: DeployedArtifact, original: Partial<Checksums>) {
  const checksums = { sha1: deployed.sha1, md5: deployed.md5, sha256: deployed.sha256 };
  return {
    repo: deployed.repo,
    path: `/${deployed.path}`,
    created: new Date(deployed.createdAt).toISOString(),
    createdBy: deployed.createdBy,
    downloadUri: `${base}/${deployed.repo}/${deployed.path}`,
    mimeType: deployed.mimeType,
    size: String(deployed.size),
    checksums,
    originalChecksums: { ...checksums, ...original },
    uri: `${base}/api/storage/${deployed.repo}/${deployed.path}`,
  };
}

interface ByteRange {
  start: number;
  end: number;
}

/** One `bytes=` range (the only kind package clients send); undefined = serve everything. */
function parseRange(value: string | undefined, size: number): ByteRange | 'unsatisfiable' | undefined {
  if (value === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (match === null) return undefined;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return undefined;
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

function etagMatches(ifNoneMatch: string | undefined, sha1: string): boolean {
  if (ifNoneMatch === undefined) return false;
  return ifNoneMatch.split(',').some((tag) => {
    const bare = tag.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return bare === '*' || bare === sha1;
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A file's download headers, made once per item the metadata cache holds (hot downloads). */
const fileHeadersMade = new WeakMap<FileItem, Readonly<Record<string, string>>>();

function fileHeaders(file: FileItem): Readonly<Record<string, string>> {
  let headers = fileHeadersMade.get(file);
  if (headers === undefined) {
    headers = {
      ETag: file.sha1,
      'X-Checksum-Sha1': file.sha1,
      'X-Checksum-Sha256': file.sha256,
      'X-Checksum-Md5': file.md5,
      'X-Artifactory-Filename': encodeURIComponent(file.path.slice(file.path.lastIndexOf('/') + 1)),
      'Last-Modified': new Date(file.lastModified).toUTCString(),
      'Accept-Ranges': 'bytes',
    };
    fileHeadersMade.set(file, headers);
  }
  return headers;
}

/**
 * The response headers of a whole-file download of `file` (the ones sendFile sets through
 * fastify, in fastify's lower case, and the Content-Length), made once per cached item.
 */
const rawFileHeadersMade = new WeakMap<FileItem, readonly string[]>();

function rawFileHeaders(file: FileItem): readonly string[] {
  let raw = rawFileHeadersMade.get(file);
  if (raw === undefined) {
    const made: string[] = [];
    for (const [name, value] of Object.entries(fileHeaders(file))) made.push(name.toLowerCase(), value);
    made.push('content-type', file.mimeType || 'application/octet-stream', 'content-length', String(file.size));
    rawFileHeadersMade.set(file, made);
    raw = made;
  }
  return raw;
}

/** Request URLs already parsed by the fast download path (pure: never stale); bounded. */
class ParsedAddresses {
  readonly #entries = new Map<string, ArtifactAddress | null>();
  readonly #entriesMax: number;

  constructor(entriesMax: number) {
    this.#entriesMax = entriesMax;
  }

  /** The address of a download URL, or null when the fast path leaves the URL to fastify. */
  get(url: string): ArtifactAddress | null {
    let address = this.#entries.get(url);
    if (address !== undefined) return address;
    try {
      address = parseArtifactAddress(url, PREFIX);
      if (address.trailingSlash || address.path === '' || Object.keys(address.matrix).length > 0) address = null;
    } catch {
      address = null;
    }
    // Bounded: cleared when full (a URL costs one parse again).
    if (this.#entries.size >= this.#entriesMax) this.#entries.clear();
    this.#entries.set(url, address);
    return address;
  }
}

const answeredOk = Object.freeze({ statusCode: 200 });

/** Deploy (PUT), download (GET/HEAD) and delete on `/artifactory/{repo}/{path}`. */
export const artifactsRoutes: FastifyPluginAsync<ArtifactsRoutesOptions> = async (app, options) => {
  const { service, cache, blobCache, blobs, artifacts, downloads, content, remote } = options;
  app.addSchema({
    $id: 'strataChecksums',
    type: 'object',
    properties: { sha1: { type: 'string' }, md5: { type: 'string' }, sha256: { type: 'string' } },
  });
  /**
   * GET/HEAD of a whole file of a local repository whose metadata and bytes are in the hot
   * caches, with credentials the verification cache answers: written straight to the socket
   * (one writeHead and end, headers made once per cached file), without fastify's request,
   * reply and hooks. Anything else — a miss in a cache, a query, a range or conditional
   * request, credentials to verify, a refusal, another repository class — is left to the
   * route below, which answers the same request the same way.
   */
  const authenticate = app.authenticateHeaders;
  if (options.fastPath !== undefined && authenticate !== undefined) {
    const addresses = new ParsedAddresses(10_000);
    const federation = options.federation;
    options.fastPath.add((request, response) => {
      const method = request.method;
      if (method !== 'GET' && method !== 'HEAD') return undefined;
      const url = request.url ?? '';
      if (!url.startsWith(PREFIX) || url.startsWith(API_PREFIX) || url.includes('?')) return undefined;
      const headers = request.headers;
      if (headers.range !== undefined || headers['if-none-match'] !== undefined) return undefined;
      const address = addresses.get(url);
      if (address === null) return undefined;
      const { repo, path } = address;
      const config = cache.peekRepository(repo);
      if (config == null || config.rclass !== 'local' || federation?.isFederated(repo) === true) return undefined;
      const file = cache.peekItem(repo, path);
      if (file === undefined || file.kind !== 'file' || !blobCache.cacheable(file.size)) return undefined;
      if (pathFilterOf(config).refusal(path) !== undefined) return undefined;
      let principal;
      try {
        principal = authenticate(headers);
      } catch {
        return undefined;
      }
      if (principal instanceof Promise || !app.accessControl.isAllowed(principal, { repo, path, action: 'read' })) return undefined;
      const bytes = blobCache.peek(file.sha256);
      if (bytes === undefined) return undefined;
      if (method === 'GET') downloads.record(repo, file.path, principal.name, options.now());
      response.writeHead(200, rawFileHeaders(file) as string[]);
      response.end(method === 'HEAD' ? undefined : bytes);
      return answeredOk;
    });
  }

  // Deploy bodies are never parsed nor buffered: the handler streams request.raw to the blob store.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  async function deploy(request: FastifyRequest, reply: FastifyReply, requested: ArtifactAddress) {
    const trace = deployTrace?.deploy();
    if (trace !== undefined) reply.raw.once('finish', () => (trace.replied = performance.now()));
    const address = await deployTarget(requested);
    const { repo, path } = address;
    if (address.trailingSlash) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'deploy a file: folders exist implicitly');
    app.accessControl.authorize(request.principal, { repo, path, action: 'deploy' });
    await service.precheckDeploy(repo, path);
    const config = options.maven === undefined ? undefined : await cache.repository(repo);
    const plan = config?.packageType === 'maven' ? options.maven?.planDeploy(repo, config, path) : undefined;
    if (plan !== undefined && plan.kind !== 'artifact') {
      // Sidecars are checked, client metadata dropped: both are computed on read.
      const body = await smallBody(request, plan.kind === 'checksum' ? checksumBodyBytesMax : options.uploadBytesMax);
      if (plan.kind === 'checksum') await options.maven?.verifyChecksum(repo, plan, body);
      return reply.code(201).header('content-type', 'application/json').send({ repo, path: `/${path}`, uri: `${baseUrl(request)}/api/storage/${repo}/${path}` });
    }
    const deployRequest = {
      repo,
      path,
      properties: address.matrix,
      expected: declaredChecksums(request),
      meta: requestMeta(request),
      ...(plan?.verify === undefined ? {} : { verify: plan.verify }),
      ...(trace === undefined ? {} : { trace }),
    };
    let deployed: DeployedArtifact;
    if (header(request, 'x-checksum-deploy')?.toLowerCase() === 'true') {
      deployed = await service.deployByChecksum(deployRequest);
      request.raw.resume();
    } else {
      const lengthHeader = header(request, 'content-length');
      const declaredSize = lengthHeader === undefined ? undefined : Number(lengthHeader);
      if (declaredSize !== undefined && !Number.isSafeInteger(declaredSize)) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'invalid Content-Length');
      if (declaredSize !== undefined && declaredSize > options.uploadBytesMax) {
        throw new StrataError('STRATA_ERR_BLOB_TOO_LARGE', `an artifact may be at most ${options.uploadBytesMax} bytes`);
      }
      if (request.raw.complete) {
        // The whole body has arrived (a small deploy's usually has by now): the client can no
        // longer go away mid-upload, so no signal is needed (an AbortSignal costs ~4 µs to make).
        deployed = await service.deploy(deployRequest, request.raw, declaredSize);
      } else {
        const aborted = new AbortController();
        const onClose = () => {
          if (!request.raw.complete) aborted.abort(new StrataError('STRATA_ERR_BLOB_INCOMPLETE', 'the client went away mid-upload'));
        };
        request.raw.once('close', onClose);
        try {
          deployed = await service.deploy(deployRequest, request.raw, declaredSize, aborted.signal);
        } finally {
          request.raw.off('close', onClose);
        }
      }
    }
    if (plan !== undefined && config !== undefined) await options.maven?.afterDeploy(repo, config, plan.coordinates, deployRequest.meta);
    return reply
      .code(201)
      .header('content-type', 'application/vnd.org.jfrog.artifactory.storage.ItemCreated+json')
      .send(itemCreated(baseUrl(request), deployed, deployRequest.expected));
  }

  /**
   * Where a deploy lands: a virtual repository forwards it to its defaultDeploymentRepo (405
   * without one); a remote's cache takes none.
   */
  async function deployTarget(address: ArtifactAddress): Promise<ArtifactAddress> {
    const config = await cache.repository(address.repo);
    if (config === undefined) {
      const addressed = await content.address(address.repo);
      if (addressed.cacheOnly) throw new StrataError('STRATA_ERR_HTTP_METHOD_NOT_ALLOWED', `'${address.repo}' is the cache of remote repository '${addressed.config.key}': artifacts are cached on demand, never deployed`);
      throw notFound(address.repo);
    }
    if (config.rclass !== 'virtual') return address;
    enforcePatterns(address.repo, config, address.path);
    const target = config.defaultDeploymentRepo;
    if (typeof target !== 'string' || target === '') {
      throw new StrataError('STRATA_ERR_VIRTUAL_NO_DEPLOY_TARGET', `virtual repository '${address.repo}' has no default deployment repository (set defaultDeploymentRepo to a local member)`);
    }
    return { ...address, repo: target };
  }

  async function download(request: FastifyRequest, reply: FastifyReply, address: ArtifactAddress) {
    const { repo, path } = address;
    const config = await cache.repository(repo);
    // `{remote}-cache` is guarded by the remote's permissions.
    const guarded = config === undefined && repo.endsWith(REMOTE_CACHE_SUFFIX) ? repo.slice(0, -REMOTE_CACHE_SUFFIX.length) : repo;
    app.accessControl.authorize(request.principal, { repo: guarded, path, action: 'read' });
    const asOf = (request.query as Record<string, unknown> | undefined)?.asOf;
    if (typeof asOf === 'string') return downloadAsOf(request, reply, repo, path, asOf);
    if (config?.rclass === 'virtual' && config.packageType === 'maven' && options.maven !== undefined) {
      const computed = await options.maven.virtualComputed(content, app.accessControl, repo, path, { principal: request.principal, meta: requestMeta(request), fetchRemote: true });
      if (computed !== undefined) {
        reply.type(computed.contentType).header('Content-Length', computed.body.length);
        return reply.send(request.method === 'HEAD' ? undefined : computed.body);
      }
    }
    if (config === undefined || config.rclass === 'virtual' || config.rclass === 'remote') return downloadResolved(request, reply, address);
    enforcePatterns(repo, config, path);
    const item = await cache.item(repo, path);
    if (item === undefined && config.packageType === 'maven' && options.maven !== undefined) {
      const computed = await options.maven.computed(repo, path);
      if (computed !== undefined) {
        reply.type(computed.contentType).header('Content-Length', computed.body.length);
        return reply.send(request.method === 'HEAD' ? undefined : computed.body);
      }
    }
    if (item === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${path}'`);
    if (item.kind === 'folder') return folderIndex(request, reply, repo, path);
    return sendFile(request, reply, repo, item);
  }

  /** The file as it was at `asOf` (ISO-8601 time or position), while its binary is still stored. */
  async function downloadAsOf(request: FastifyRequest, reply: FastifyReply, repo: string, path: string, asOf: string) {
    if (options.pointInTime === undefined) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'point-in-time reads are not available on this server');
    if (asOf.length > 64) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'asOf is at most 64 characters');
    // Each repository as it was: a virtual's configuration and members then, their trees then.
    const then = await options.pointInTime.catalogueFor(repo, asOf);
    // Stored and cached content only: what a remote would have fetched then is not known.
    const found = await content.at(then).item(repo, path, request.principal);
    if (found === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${path}' as of ${asOf}`);
    const item = found.item;
    if (item.kind === 'folder') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `'${repo}:${path}' was a folder at ${asOf}: list it with /api/storage?list&asOf=`);
    if (item.size > 0 && (await blobs.stat(item.sha256)) === undefined) {
      throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `the binary '${repo}:${path}' had at ${asOf} is no longer stored (collected after the trash period; see its history)`);
    }
    return sendFile(request, reply, repo, item);
  }

  /** Downloads through a virtual or remote repository (or a remote's `-cache`). */
  async function downloadResolved(request: FastifyRequest, reply: FastifyReply, address: ArtifactAddress) {
    // Smart remotes report downloads served from the cache, not the fetch that filled it.
    const startedAt = options.now();
    const direct = options.smartRemote === undefined ? undefined : await cache.repository(address.repo);
    const cachedBefore = direct?.rclass === 'remote' ? (await cache.item(address.repo, address.path))?.kind === 'file' : undefined;
    let resolved: Resolved;
    try {
      resolved = await content.resolve(address.repo, address.path, {
        principal: request.principal,
        meta: requestMeta(request),
        // A request for a folder ('…/') is answered from what is stored and cached: a remote
        // never fetches (and caches) an upstream folder listing.
        fetchRemote: !address.trailingSlash,
        fromRepositoryManager: /^(Artifactory|strata-remote)\b/i.test(header(request, 'user-agent') ?? ''),
      });
    } catch (error) {
      // A smart remote with listRemoteFolderItems browses folders only its origin has.
      if (!isStrataError(error, 'STRATA_ERR_ARTIFACT_NOT_FOUND') || direct?.rclass !== 'remote' || (!address.trailingSlash && address.path !== '')) throw error;
      const originOnly = await options.smartRemote?.remoteChildren(direct, address.path);
      if (originOnly === undefined) throw error;
      return folderIndex(request, reply, address.repo, address.path, [], direct);
    }
    switch (resolved.kind) {
      case 'file':
        if (options.smartRemote !== undefined && request.method !== 'HEAD') {
          // Through a virtual the cache was not looked at first: an item cached before this request came from the cache.
          const fromCache = cachedBefore ?? resolved.item.created < startedAt;
          await options.smartRemote.served(resolved.repo, resolved.item, request.principal.name, fromCache);
        }
        return sendFile(request, reply, address.repo, resolved.item);
      case 'folder':
        return folderIndex(request, reply, address.repo, address.path, resolved.repos, direct?.rclass === 'remote' ? direct : undefined);
      case 'stream': {
        // A range, a conditional or a HEAD request waits for the file to be cached (the fetch
        // goes on without this client) and is then answered from the cache.
        if (resolved.storing && (request.method === 'HEAD' || header(request, 'range') !== undefined || header(request, 'if-none-match') !== undefined)) {
          resolved.body.destroy();
          const item = await resolved.done;
          if (item === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${address.repo}:${address.path}'`);
          return sendFile(request, reply, address.repo, item);
        }
        if (request.method !== 'HEAD') downloads.record(address.repo, resolved.path, request.principal.name, options.now());
        if (options.smartRemote !== undefined) {
          // Fetched from the origin just now: its properties are brought over once cached.
          const smartRemote = options.smartRemote;
          const user = request.principal.name;
          void resolved.done.then((item) => (item === undefined ? undefined : smartRemote.served(resolved.repo, item, user, false))).catch(() => undefined);
        }
        if (resolved.checksums.sha1 !== undefined) {
          reply.header('ETag', resolved.checksums.sha1);
          reply.header('X-Checksum-Sha1', resolved.checksums.sha1);
        }
        if (resolved.checksums.sha256 !== undefined) reply.header('X-Checksum-Sha256', resolved.checksums.sha256);
        if (resolved.checksums.md5 !== undefined) reply.header('X-Checksum-Md5', resolved.checksums.md5);
        reply.header('X-Artifactory-Filename', encodeURIComponent(resolved.path.slice(resolved.path.lastIndexOf('/') + 1)));
        if (resolved.size !== undefined) reply.header('Content-Length', resolved.size);
        reply.type(resolved.mimeType || 'application/octet-stream');
        if (request.method === 'HEAD') {
          // A remote that does not store: the headers of what it streamed, without the body.
          resolved.body.destroy();
          return reply.send();
        }
        return reply.send(resolved.body);
      }
    }
  }

  async function sendFile(request: FastifyRequest, reply: FastifyReply, repo: string, file: FileItem) {
    reply.headers(fileHeaders(file));
    if (etagMatches(header(request, 'if-none-match'), file.sha1)) return reply.code(304).send();
    const head = request.method === 'HEAD';
    if (!head) downloads.record(repo, file.path, request.principal.name, options.now());
    reply.type(file.mimeType || 'application/octet-stream');
    const range = parseRange(header(request, 'range'), file.size);
    if (range === 'unsatisfiable') {
      const message = `range not satisfiable for a ${file.size}-byte file`;
      return reply.code(416).header('Content-Range', `bytes */${file.size}`).type('application/json; charset=utf-8').send(JSON.stringify(errorBody(416, message)));
    }
    const start = range?.start ?? 0;
    const end = range?.end ?? file.size - 1;
    const length = file.size === 0 ? 0 : end - start + 1;
    if (range !== undefined) {
      reply.code(206);
      reply.header('Content-Range', `bytes ${start}-${end}/${file.size}`);
    }
    reply.header('Content-Length', length);
    if (head) return reply.send();
    const federation = options.federation;
    if (federation !== undefined && length > 0 && federation.isFederated(repo) && (await blobs.stat(file.sha256)) === undefined) {
      // The deploy arrived from a member before its binary: fetch it now instead of failing.
      if (!(await federation.fetchMissingBinary(repo, file.sha256, ''))) {
        throw new StrataError('STRATA_ERR_FEDERATION_PEER_UNAVAILABLE', `the binary of '${repo}:${file.path}' has not arrived from the federation members yet and none could provide it`);
      }
    }
    if (blobCache.cacheable(file.size)) {
      const bytes = await blobCache.get(file.sha256);
      return reply.send(range === undefined ? bytes : bytes.subarray(start, end + 1));
    }
    if (length === 0) return reply.send(Buffer.alloc(0));
    return reply.send(await blobs.createReadStream(file.sha256, { start, end }));
  }

  async function folderIndex(request: FastifyRequest, reply: FastifyReply, repo: string, path: string, members?: readonly string[], smartRemote?: RepositoryConfig) {
    if (request.method === 'HEAD') return reply.type('text/html').send();
    const listOptions = { deep: false, includeFolders: true, limit: options.listEntriesMax };
    const children = members === undefined ? await artifacts.list(repo, path, listOptions) : await content.list(members, path, listOptions);
    const names = children.map((child) => child.path.slice(child.path.lastIndexOf('/') + 1) + (child.kind === 'folder' ? '/' : ''));
    if (smartRemote !== undefined) {
      // listRemoteFolderItems: the origin's items too (nothing is cached by browsing).
      const shown = new Set(names);
      for (const child of (await options.smartRemote?.remoteChildren(smartRemote, path)) ?? []) {
        const name = child.uri.slice(1) + (child.folder ? '/' : '');
        if (!shown.has(name)) names.push(name);
      }
      names.sort();
    }
    const base = `${baseUrl(request)}/${repo}/${path === '' ? '' : `${path}/`}`;
    const lines = names.map((name) => `<a href="${escapeHtml(base + encodeURIComponent(name).replace(/%2F$/, '/'))}">${escapeHtml(name)}</a>`);
    return reply
      .type('text/html; charset=utf-8')
      .send(`<!DOCTYPE html>\n<html><head><title>Index of ${escapeHtml(`${repo}/${path}`)}</title></head><body><h1>Index of ${escapeHtml(`${repo}/${path}`)}</h1><pre>${lines.join('\n')}</pre></body></html>\n`);
  }

  async function remove(request: FastifyRequest, reply: FastifyReply, address: ArtifactAddress) {
    // `{remote}-cache/{path}` deletes from the remote's cache, like `{remote}/{path}`.
    const { config } = await content.address(address.repo);
    const repo = config.key;
    const { path } = address;
    app.accessControl.authorize(request.principal, { repo, path, action: 'delete' });
    await service.delete(repo, path, requestMeta(request));
    if (config.rclass === 'remote') remote.forget(repo, path);
    return reply.code(204).send();
  }

  // The repository root without a trailing slash: its index.
  app.route({
    method: ['GET', 'HEAD'],
    url: '/:repo',
    exposeHeadRoute: false,
    schema: { params: routeSchema.params, response: { ...errorResponses } },
    handler: async (request, reply) => download(request, reply, parseArtifactAddress(request.url, PREFIX)),
  });

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'DELETE'],
    url: '/:repo/*',
    exposeHeadRoute: false,
    schema: {
      ...routeSchema,
      response: {
        201: itemCreatedSchema,
        204: { type: 'null' },
        ...errorResponses,
      },
    },
    handler: async (request, reply) => {
      const address = parseArtifactAddress(request.url, PREFIX);
      switch (request.method) {
        case 'PUT':
          return deploy(request, reply, address);
        case 'DELETE':
          return remove(request, reply, address);
        default:
          return download(request, reply, address);
      }
    },
  });
};
