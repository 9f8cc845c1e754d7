import multipart from '@fastify/multipart';
import { isStrataError, StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { parseArtifactAddress } from '../../artifacts/artifact-address.ts';
import type { BlobCache, MetadataCache } from '../../artifacts/hot-caches.ts';
import { errorResponses } from '../../http-errors.ts';
import type { DownloadCounter } from '../../ports.ts';
import { repositoryNotFound } from '../../repositories/repository-decider.ts';
import { baseUrl, requestMeta } from '../../request-meta.ts';
import { CORE_METADATA_SUFFIX, normalizeName, projectListHtml, projectListJson, projectPageHtml, projectPageJson, SIMPLE_JSON, wantsJson } from './pypi-model.ts';
import type { PypiRemoteIndex } from './pypi-remote.ts';
import type { IndexedDistribution, PypiService, StoredUpload } from './pypi-service.ts';
import type { FileItem, RepositoryConfig } from '../../ports.ts';
import type { RepositoryContent } from '../../virtual/repository-content.ts';

export interface PypiRoutesOptions {
  readonly service: PypiService;
  readonly cache: MetadataCache;
  readonly blobCache: BlobCache;
  readonly blobs: BlobStore;
  readonly downloads: DownloadCounter;
  readonly now: () => number;
  readonly uploadBytesMax: number;
  /** Resolution through virtual repositories. */
  readonly content: RepositoryContent;
  /** The upstream simple indexes of remote repositories. */
  readonly remoteIndex: PypiRemoteIndex;
}

/** Form fields of one upload at most (twine sends about 30). */
const uploadFieldsMax = 200;

/** PyPI under `/artifactory/api/pypi/{repo}/`: the simple index for pip, uploads as twine sends them. */
export const pypiRoutes: FastifyPluginAsync<PypiRoutesOptions> = async (app, options) => {
  const { service, cache } = options;
  await app.register(multipart, { limits: { fileSize: options.uploadBytesMax, fields: uploadFieldsMax, files: 1, fieldSize: 1024 * 1024 } });

  async function pypiRepository(repo: string) {
    const config = await cache.repository(repo);
    if (config === undefined) throw repositoryNotFound(repo);
    if (config.packageType !== 'pypi') throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `repository '${repo}' is a ${config.packageType} repository, not pypi`);
    return config;
  }

  /**
   * Whose index pages `repo` merges: itself (local, remote), or the members of a virtual the
   * caller may read, in resolution order. A remote's cache step is left out: its upstream's
   * page lists what the cache holds.
   */
  async function indexMembers(request: FastifyRequest, repo: string, config: RepositoryConfig, path: string): Promise<{ kind: 'stored' | 'remote'; config: RepositoryConfig }[]> {
    if (config.rclass !== 'virtual') return [{ kind: config.rclass === 'remote' ? 'remote' : 'stored', config }];
    return (await options.content.steps(repo, path))
      .filter((step) => step.mode !== 'cache' && app.accessControl.isAllowed(request.principal, { repo: step.key, path, action: 'read' }))
      .map((step) => ({ kind: step.mode === 'remote' ? 'remote' : 'stored', config: step.repository }));
  }

  /**
   * A remote member's contribution: an upstream failure fails a remote itself, or a virtual
   * member with hardFail; any other virtual member that fails contributes nothing.
   */
  async function remotePart<T>(repo: string, member: RepositoryConfig, read: () => Promise<T>, fallback: T): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (member.key !== repo && member.hardFail !== true && isStrataError(error) && error.status >= 500) return fallback;
      throw error;
    }
  }

  function sendIndex(request: FastifyRequest, reply: FastifyReply, json: () => string, html: () => string) {
    reply.header('Vary', 'Accept');
    if (wantsJson(request.headers.accept)) return reply.type(SIMPLE_JSON).send(json());
    return reply.type('text/html; charset=utf-8').send(html());
  }

  type RepoParams = { Params: { repo: string } };
  type ProjectParams = { Params: { repo: string; project: string } };

  app.get<RepoParams>('/api/pypi/:repo/simple', { schema: { response: errorResponses } }, async (request, reply) => reply.redirect(`${request.url.split('?')[0]}/`, 301));
  app.get<RepoParams>('/api/pypi/:repo/simple/', { schema: { response: errorResponses } }, async (request, reply) => {
    const { repo } = request.params;
    app.accessControl.authorize(request.principal, { repo, path: '', action: 'read' });
    const config = await pypiRepository(repo);
    const members = await indexMembers(request, repo, config, '');
    const parts = await Promise.all(
      members.map((member) =>
        member.kind === 'stored' ? service.projects(member.config.key) : remotePart(repo, member.config, () => options.remoteIndex.projects(member.config), []),
      ),
    );
    const projects = [...new Set(parts.flat())].sort();
    return sendIndex(request, reply, () => projectListJson(projects), () => projectListHtml(projects));
  });
  app.get<ProjectParams>('/api/pypi/:repo/simple/:project', { schema: { response: errorResponses } }, async (request, reply) => reply.redirect(`${request.url.split('?')[0]}/`, 301));
  app.get<ProjectParams>('/api/pypi/:repo/simple/:project/', { schema: { response: errorResponses } }, async (request, reply) => {
    const { repo, project } = request.params;
    const normalized = normalizeName(project);
    if (normalized !== project) {
      // PEP 503: a client may ask with any spelling; the canonical URL is the normalised one.
      return reply.redirect(`${baseUrl(request)}/api/pypi/${encodeURIComponent(repo)}/simple/${encodeURIComponent(normalized)}/`, 301);
    }
    app.accessControl.authorize(request.principal, { repo, path: normalized, action: 'read' });
    const config = await pypiRepository(repo);
    // Through a virtual: every member's files, the first member that has a file name wins it.
    const members = await indexMembers(request, repo, config, normalized);
    const parts = await Promise.all(
      members.map(async (member): Promise<IndexedDistribution[]> => {
        if (member.kind === 'stored') return service.indexed(await service.distributions(member.config.key, normalized));
        const files = await remotePart(repo, member.config, () => options.remoteIndex.files(member.config, normalized), undefined);
        return (files ?? []).map(({ path, file }) => ({ path, ...file }));
      }),
    );
    const distributions: IndexedDistribution[] = [];
    const seen = new Set<string>();
    for (const distribution of parts.flat()) {
      if (seen.has(distribution.fileName)) continue;
      seen.add(distribution.fileName);
      distributions.push(distribution);
    }
    if (distributions.length === 0) throw new StrataError('STRATA_ERR_PACKAGE_NOT_FOUND', `project '${normalized}' is not in repository '${repo}'`);
    const files = service.indexFiles(distributions, `${baseUrl(request)}/api/pypi/${encodeURIComponent(repo)}/packages`);
    return sendIndex(request, reply, () => projectPageJson(normalized, files), () => projectPageHtml(normalized, files));
  });

  app.route<RepoParams>({
    method: ['GET', 'HEAD'],
    url: '/api/pypi/:repo/packages/*',
    exposeHeadRoute: false,
    schema: { response: errorResponses },
    handler: async (request, reply) => {
      // `/artifactory/api/pypi/{repo}/packages/{path}`, parsed like any artifact address.
      const address = parseArtifactAddress(request.url, '/artifactory/api/pypi/');
      const repo = address.repo;
      const path = address.path.slice('packages/'.length);
      app.accessControl.authorize(request.principal, { repo, path, action: 'read' });
      const config = await pypiRepository(repo);
      if (path.endsWith(`.whl${CORE_METADATA_SUFFIX}`)) return coreMetadata(request, reply, repo, config, path.slice(0, -CORE_METADATA_SUFFIX.length));
      let file: FileItem | undefined;
      if (config.rclass === 'virtual' || config.rclass === 'remote') {
        const resolved = await options.content.resolve(repo, path, {
          principal: request.principal,
          meta: requestMeta(request),
          fetchRemote: true,
          // A file of an upstream index is verified against the sha256 the index gave.
          expectedChecksums: (remoteKey, remotePath) => {
            const sha256 = options.remoteIndex.expectedSha256(remoteKey, remotePath);
            return sha256 === undefined ? undefined : { sha256 };
          },
        });
        if (resolved.kind === 'stream') {
          options.downloads.record(repo, path, request.principal.name, options.now());
          reply.type('application/octet-stream');
          if (resolved.size !== undefined) reply.header('Content-Length', resolved.size);
          return reply.send(resolved.body);
        }
        if (resolved.kind === 'file') file = resolved.item;
      } else {
        const item = await cache.item(repo, path);
        if (item?.kind === 'file') file = item;
      }
      if (file === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${path}'`);
      reply.header('ETag', file.sha1).header('X-Checksum-Sha256', file.sha256).header('Content-Length', file.size).type('application/octet-stream');
      if (request.method === 'HEAD') return reply.send();
      options.downloads.record(repo, path, request.principal.name, options.now());
      if (options.blobCache.cacheable(file.size)) return reply.send(await options.blobCache.get(file.sha256));
      return reply.send(await options.blobs.createReadStream(file.sha256));
    },
  });

  /**
   * PEP 658: a stored wheel's METADATA at `{wheel URL}.metadata`, so pip resolves without
   * downloading the wheel. Stored and cached wheels only (a remote's upstream is not asked).
   */
  async function coreMetadata(request: FastifyRequest, reply: FastifyReply, repo: string, config: RepositoryConfig, wheelPath: string) {
    let file: FileItem | undefined;
    if (config.rclass === 'virtual' || config.rclass === 'remote') {
      try {
        const resolved = await options.content.resolve(repo, wheelPath, { principal: request.principal, meta: requestMeta(request), fetchRemote: false });
        if (resolved.kind === 'file') file = resolved.item;
      } catch (error) {
        if (!isStrataError(error, 'STRATA_ERR_ARTIFACT_NOT_FOUND')) throw error;
      }
    } else {
      const item = await cache.item(repo, wheelPath);
      if (item?.kind === 'file') file = item;
    }
    let metadata: Buffer | undefined;
    try {
      metadata = file === undefined ? undefined : await service.coreMetadata(file);
    } catch (error) {
      // A stored wheel whose METADATA cannot be read has none to serve (pip then downloads the wheel).
      if (!isStrataError(error, 'STRATA_ERR_PACKAGE_INVALID')) throw error;
    }
    if (metadata === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find resource '${repo}:${wheelPath}${CORE_METADATA_SUFFIX}'`);
    reply.header('Content-Length', metadata.length).type('text/plain; charset=utf-8');
    return reply.send(request.method === 'HEAD' ? undefined : metadata);
  }

  const upload = async (request: FastifyRequest<RepoParams>, reply: FastifyReply) => {
    const requested = request.params.repo;
    // Authorised on the repository before the body is read; the exact path is checked again below.
    app.accessControl.authorize(request.principal, { repo: requested, path: '', action: 'deploy' });
    const config = await pypiRepository(requested);
    let repo = requested;
    if (config.rclass === 'virtual') {
      const target = config.defaultDeploymentRepo;
      if (typeof target !== 'string' || target === '') {
        throw new StrataError('STRATA_ERR_VIRTUAL_NO_DEPLOY_TARGET', `virtual repository '${requested}' has no default deployment repository (set defaultDeploymentRepo to a local member)`);
      }
      repo = target;
      app.accessControl.authorize(request.principal, { repo, path: '', action: 'deploy' });
    }
    if (!request.isMultipart()) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'an upload is multipart/form-data (as twine sends it)');
    const fields: Record<string, string> = {};
    let stored: { fileName: string; upload: StoredUpload } | undefined;
    try {
      for await (const part of request.parts()) {
        if (part.type === 'file') {
          if (part.fieldname !== 'content' || stored !== undefined) {
            part.file.resume();
            throw new StrataError('STRATA_ERR_PACKAGE_INVALID', "an upload carries exactly one file, in the field 'content'");
          }
          const fileName = part.filename;
          // Refuse early what the fields seen so far already rule out (twine sends them first).
          if (fields[':action'] !== undefined) service.checkUploadFields(fields, fileName);
          stored = { fileName, upload: await service.store(repo, part.file, options.uploadBytesMax) };
          if (part.file.truncated) throw new StrataError('STRATA_ERR_BLOB_TOO_LARGE', `an upload may be at most ${options.uploadBytesMax} bytes`);
        } else if (typeof part.value === 'string') {
          fields[part.fieldname] = part.value;
        }
      }
      if (stored === undefined) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', "an upload carries the distribution in the field 'content'");
      const { path } = service.checkUploadFields(fields, stored.fileName);
      app.accessControl.authorize(request.principal, { repo, path, action: 'deploy' });
      await service.upload(repo, fields, stored.fileName, stored.upload, requestMeta(request));
      return reply.code(200).type('text/plain; charset=utf-8').send('OK');
    } finally {
      stored?.upload.lease.release();
    }
  };
  app.post<RepoParams>('/api/pypi/:repo', { schema: { response: errorResponses } }, upload);
  app.post<RepoParams>('/api/pypi/:repo/', { schema: { response: errorResponses } }, upload);
};
