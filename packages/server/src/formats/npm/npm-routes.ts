import { StrataError } from '@strata/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { BlobStore } from '@strata/store';
import type { BlobCache, MetadataCache } from '../../artifacts/hot-caches.ts';
import { errorResponses } from '../../http-errors.ts';
import type { ClientLogin, DownloadCounter, FileItem } from '../../ports.ts';
import { repositoryNotFound } from '../../repositories/repository-decider.ts';
import { baseUrl, requestMeta } from '../../request-meta.ts';
import type { NpmMember, NpmService, RenderedPackument } from './npm-service.ts';
import type { RepositoryConfig } from '../../ports.ts';
import type { RepositoryContent } from '../../virtual/repository-content.ts';

export interface NpmRoutesOptions {
  readonly service: NpmService;
  readonly cache: MetadataCache;
  readonly blobCache: BlobCache;
  readonly blobs: BlobStore;
  readonly downloads: DownloadCounter;
  readonly now: () => number;
  /** Largest publish document (JSON with base64 tarballs). */
  readonly publishBytesMax: number;
  /** Exchanges a password for a token (`npm login`); absent → login is refused. */
  readonly login?: ClientLogin;
  /** Resolution through virtual repositories. */
  readonly content: RepositoryContent;
}

const ROUTE_PREFIX = '/artifactory/api/npm/';
const ABBREVIATED = 'application/vnd.npm.install-v1+json';

/** A request below `/api/npm/{repo}/`, split into the package name and what follows it. */
type NpmAddress =
  | { readonly kind: 'root' }
  | { readonly kind: 'special'; readonly segments: readonly string[] }
  | { readonly kind: 'package'; readonly name: string; readonly rest: readonly string[] };

function decode(segment: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(segment);
  } catch {
    throw new StrataError('STRATA_ERR_PATH_INVALID', 'malformed percent-encoding in path');
  }
  if (decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0') || decoded === '.' || decoded === '..') {
    throw new StrataError('STRATA_ERR_PATH_INVALID', `invalid path segment '${decoded}'`);
  }
  return decoded;
}

function parseNpmUrl(rawUrl: string): { repo: string; address: NpmAddress } {
  const queryAt = rawUrl.indexOf('?');
  const path = (queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt)).slice(ROUTE_PREFIX.length);
  const slash = path.indexOf('/');
  const repo = decode(slash < 0 ? path : path.slice(0, slash));
  const rest = slash < 0 ? '' : path.slice(slash + 1);
  if (rest === '') return { repo, address: { kind: 'root' } };
  // Scoped names travel as `@scope%2fname` (or `@scope/name`).
  // Scoped names also arrive with the '@' encoded (`%40scope/name`, as proxies send them).
  const segments = rest.replace(/^%40/, '@').replace(/^(@[^/]+)%2[fF]/, '$1/').replace(/^-\/package\/(@[^/]+)%2[fF]/, '-/package/$1/').split('/');
  if (segments.some((segment, index) => segment === '' && index < segments.length - 1)) throw new StrataError('STRATA_ERR_PATH_INVALID', "empty segment ('//') in path");
  if (segments[segments.length - 1] === '') segments.pop();
  if (segments[0] === '-') return { repo, address: { kind: 'special', segments: segments.slice(1).map(decode) } };
  const scoped = segments[0]!.startsWith('@');
  const nameSegments = segments.slice(0, scoped ? 2 : 1).map(decode);
  if (nameSegments.length < (scoped ? 2 : 1)) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'a scoped package name is @scope/name');
  return { repo, address: { kind: 'package', name: nameSegments.join('/'), rest: segments.slice(scoped ? 2 : 1).map(decode) } };
}

/** A scoped name inside `-/package/{name}/…` also travels as one `@scope%2fname` segment. */
function nameAndRest(segments: readonly string[]): { name: string; rest: readonly string[] } {
  if (segments[0]?.startsWith('@') === true && !segments[0].includes('/') && segments.length > 1 && segments[1] !== 'dist-tags') {
    return { name: `${segments[0]}/${segments[1]}`, rest: segments.slice(2) };
  }
  return { name: segments[0] ?? '', rest: segments.slice(1) };
}

/** The npm registry API of `packageType: npm` repositories under `/artifactory/api/npm/{repo}/`. */
export const npmRoutes: FastifyPluginAsync<NpmRoutesOptions> = async (app, options) => {
  const { service, cache } = options;

  async function npmRepository(repo: string) {
    const config = await cache.repository(repo);
    if (config === undefined) throw repositoryNotFound(repo);
    if (config.packageType !== 'npm') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `repository '${repo}' is a ${config.packageType} repository, not npm`);
    return config;
  }

  /** Where a write to `repo` lands: a virtual forwards it to its defaultDeploymentRepo. */
  function writeTarget(repo: string, config: RepositoryConfig): string {
    if (config.rclass !== 'virtual') return repo;
    const target = config.defaultDeploymentRepo;
    if (typeof target !== 'string' || target === '') {
      throw new StrataError('STRATA_ERR_VIRTUAL_NO_DEPLOY_TARGET', `virtual repository '${repo}' has no default deployment repository (set defaultDeploymentRepo to a local member)`);
    }
    return target;
  }

  /** The packument as `repo` serves it: computed for a local repository, merged over its members for a virtual. */
  async function packumentOf(request: FastifyRequest, repo: string, config: RepositoryConfig, name: string, abbreviated: boolean): Promise<RenderedPackument | undefined> {
    const tarballBase = `${baseUrl(request)}/api/npm/${repo}`;
    if (config.rclass === 'remote') return service.remotePackument(config, name, tarballBase, abbreviated);
    if (config.rclass !== 'virtual') return service.packument(repo, name, tarballBase, abbreviated);
    // A remote appears twice in a virtual's steps (its cache, then the upstream): its upstream
    // packument already lists what its cache holds, so the cache steps are left out.
    const members: NpmMember[] = [];
    for (const step of await options.content.steps(repo, name)) {
      if (step.mode === 'cache' || !app.accessControl.isAllowed(request.principal, { repo: step.key, path: name, action: 'read' })) continue;
      members.push({ kind: step.mode === 'remote' ? 'remote' : 'stored', config: step.repository });
    }
    return service.virtualPackument(repo, members, name, tarballBase, abbreviated);
  }

  function json(reply: FastifyReply, status: number, body: unknown) {
    return reply.code(status).type('application/json').send(JSON.stringify(body));
  }

  async function getPackument(request: FastifyRequest, reply: FastifyReply, repo: string, name: string) {
    app.accessControl.authorize(request.principal, { repo, path: name, action: 'read' });
    const config = await npmRepository(repo);
    const accept = request.headers.accept ?? '';
    const abbreviated = accept.includes(ABBREVIATED) && (request.query as Record<string, unknown>).write === undefined;
    const rendered = await packumentOf(request, repo, config, name, abbreviated);
    if (rendered === undefined) throw new StrataError('STRATA_ERR_PACKAGE_NOT_FOUND', `package '${name}' is not in repository '${repo}'`);
    reply.header('ETag', rendered.etag);
    if (request.headers['if-none-match'] === rendered.etag) return reply.code(304).send();
    return reply
      .code(200)
      .type(abbreviated ? ABBREVIATED : 'application/json')
      .send(request.method === 'HEAD' ? undefined : rendered.body);
  }

  async function getTarball(request: FastifyRequest, reply: FastifyReply, repo: string, name: string, fileName: string) {
    const path = `${name}/-/${fileName}`;
    app.accessControl.authorize(request.principal, { repo, path, action: 'read' });
    const config = await npmRepository(repo);
    if (config.rclass === 'virtual' || config.rclass === 'remote') {
      const resolved = await options.content.resolve(repo, path, { principal: request.principal, meta: requestMeta(request), fetchRemote: true });
      if (resolved.kind === 'folder') throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${path}'`);
      if (resolved.kind === 'stream') {
        reply.type('application/octet-stream');
        if (resolved.size !== undefined) reply.header('Content-Length', resolved.size);
        options.downloads.record(repo, path, request.principal.name, options.now());
        return reply.send(resolved.body);
      }
      return sendTarball(request, reply, repo, path, resolved.item);
    }
    const file = await service.tarball(repo, name, fileName);
    if (file === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${path}'`);
    return sendTarball(request, reply, repo, path, file);
  }

  async function sendTarball(request: FastifyRequest, reply: FastifyReply, repo: string, path: string, file: FileItem) {
    reply.header('ETag', file.sha1).header('X-Checksum-Sha1', file.sha1).header('X-Checksum-Sha256', file.sha256);
    reply.type('application/octet-stream').header('Content-Length', file.size);
    if (request.method === 'HEAD') return reply.send();
    options.downloads.record(repo, path, request.principal.name, options.now());
    if (options.blobCache.cacheable(file.size)) return reply.send(await options.blobCache.get(file.sha256));
    return reply.send(await options.blobs.createReadStream(file.sha256));
  }

  async function special(request: FastifyRequest, reply: FastifyReply, repo: string, segments: readonly string[]) {
    const [first, ...rest] = segments;
    if (first === 'whoami' && rest.length === 0 && request.method === 'GET') {
      if (request.principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED', 'not logged in');
      return json(reply, 200, { username: request.principal.name });
    }
    if (first === 'ping' && rest.length === 0) return json(reply, 200, {});
    if (first === 'user' && rest.length === 1 && rest[0]!.startsWith('org.couchdb.user:') && request.method === 'PUT') {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const name = typeof body.name === 'string' ? body.name : rest[0]!.slice('org.couchdb.user:'.length);
      if (typeof body.password !== 'string' || name === '') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'npm login sends a name and a password');
      if (options.login === undefined) throw new StrataError('STRATA_ERR_HTTP_NOT_FOUND', 'login is not available on this server');
      const token = await options.login.login(name, body.password, requestMeta(request));
      return json(reply, 201, { ok: true, id: `org.couchdb.user:${name}`, rev: '1', token });
    }
    if (first === 'package' && rest.length > 0) {
      const { name, rest: after } = nameAndRest(rest);
      if (after[0] !== 'dist-tags' || after.length > 2) throw new StrataError('STRATA_ERR_HTTP_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`);
      const tag = after[1];
      if (request.method === 'GET' && tag === undefined) {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'read' });
        const config = await npmRepository(repo);
        const rendered = await packumentOf(request, repo, config, name, true);
        const tags = rendered === undefined ? undefined : (JSON.parse(rendered.body) as { 'dist-tags': Record<string, string> })['dist-tags'];
        if (tags === undefined) throw new StrataError('STRATA_ERR_PACKAGE_NOT_FOUND', `package '${name}' is not in repository '${repo}'`);
        return json(reply, 200, tags);
      }
      if (tag !== undefined && (request.method === 'PUT' || request.method === 'POST')) {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'deploy' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'deploy' });
        await service.setDistTag(target, name, tag, request.body, requestMeta(request));
        return json(reply, 201, { ok: true });
      }
      if (tag !== undefined && request.method === 'DELETE') {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'deploy' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'deploy' });
        await service.removeDistTag(target, name, tag, requestMeta(request));
        return json(reply, 200, { ok: true });
      }
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') app.accessControl.authorize(request.principal, { repo, path: segments.join('/'), action: 'deploy' });
    throw new StrataError('STRATA_ERR_HTTP_NOT_FOUND', `no route for ${request.method} ${request.url.split('?')[0]}`);
  }

  async function handle(request: FastifyRequest, reply: FastifyReply) {
    const { repo, address } = parseNpmUrl(request.url);
    if (address.kind === 'root') {
      await npmRepository(repo);
      return json(reply, 200, {});
    }
    if (address.kind === 'special') return special(request, reply, repo, address.segments);
    const { name, rest } = address;
    const method = request.method;
    if (rest.length === 0) {
      if (method === 'GET' || method === 'HEAD') return getPackument(request, reply, repo, name);
      if (method === 'PUT') {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'deploy' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'deploy' });
        await service.publish(target, name, request.body, requestMeta(request));
        return json(reply, 201, { ok: true, id: name, success: true });
      }
    }
    if (rest[0] === '-rev' && rest.length === 2) {
      if (method === 'PUT') {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'delete' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'delete' });
        await service.update(target, name, request.body, requestMeta(request));
        return json(reply, 201, { ok: true, id: name });
      }
      if (method === 'DELETE') {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'delete' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'delete' });
        await service.unpublishAll(target, name, requestMeta(request));
        return json(reply, 200, { ok: true, id: name });
      }
    }
    if (rest[0] === '-' && rest.length >= 2) {
      const revAt = rest.indexOf('-rev');
      const fileSegments = revAt < 0 ? rest.slice(1) : rest.slice(1, revAt);
      // Artifactory's form `name/-/@scope/name-1.0.0.tgz` names the file by its last segment.
      const fileName = fileSegments[fileSegments.length - 1]!;
      if (!fileName.endsWith('.tgz')) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `no tarball '${fileName}'`);
      if ((method === 'GET' || method === 'HEAD') && revAt < 0) return getTarball(request, reply, repo, name, fileName);
      if (method === 'DELETE') {
        app.accessControl.authorize(request.principal, { repo, path: name, action: 'delete' });
        const target = writeTarget(repo, await npmRepository(repo));
        if (target !== repo) app.accessControl.authorize(request.principal, { repo: target, path: name, action: 'delete' });
        await service.deleteTarball(target, name, fileName, requestMeta(request));
        return json(reply, 200, { ok: true });
      }
    }
    if (rest.length === 1 && (method === 'GET' || method === 'HEAD')) {
      // GET /{name}/{version|tag}: one version's manifest.
      app.accessControl.authorize(request.principal, { repo, path: name, action: 'read' });
      const rendered = await packumentOf(request, repo, await npmRepository(repo), name, false);
      const packument = rendered === undefined ? undefined : (JSON.parse(rendered.body) as { versions: Record<string, unknown>; 'dist-tags': Record<string, string> });
      const wanted = rest[0]!;
      const manifest = packument?.versions[packument['dist-tags'][wanted] ?? wanted];
      if (manifest === undefined) throw new StrataError('STRATA_ERR_PACKAGE_NOT_FOUND', `version '${wanted}' of '${name}' is not in repository '${repo}'`);
      return json(reply, 200, manifest);
    }
    // A write nobody may do answers 401/403 before it answers "no such route".
    if (method !== 'GET' && method !== 'HEAD') app.accessControl.authorize(request.principal, { repo, path: name, action: 'deploy' });
    throw new StrataError('STRATA_ERR_HTTP_NOT_FOUND', `no route for ${method} ${request.url.split('?')[0]}`);
  }

  app.route({
    method: ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'],
    url: '/api/npm/:repo/*',
    exposeHeadRoute: false,
    bodyLimit: options.publishBytesMax,
    schema: { response: { ...errorResponses } },
    handler: handle,
  });
  app.route({
    method: ['GET', 'HEAD'],
    url: '/api/npm/:repo',
    exposeHeadRoute: false,
    schema: { response: { ...errorResponses } },
    handler: handle,
  });
};
