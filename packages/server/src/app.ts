import Fastify from 'fastify';
import { DISTRIBUTION_STREAM, repositoryStream } from '@strata/core';
import type { DomainEvent } from '@strata/core';
import type { FastifyInstance } from 'fastify';
import { ArtifactService } from './artifacts/artifact-service.ts';
import { artifactsRoutes } from './artifacts/artifacts-routes.ts';
import { BlobCache, MetadataCache } from './artifacts/hot-caches.ts';
import { readerTreeShapeQuery, TreeShapeLookups } from './artifacts/tree-shape-lookups.ts';
import { errorBody, installErrorRendering } from './http-errors.ts';
import { DEFAULT_LIMITS } from './ports.ts';
import type { AppDeps, ServerLimits } from './ports.ts';
import { repositoriesRoutes } from './repositories/repositories-routes.ts';
import { RepositoryService } from './repositories/repository-service.ts';
import { repositoryStreamFold } from './repositories/repository-stream.ts';
import { copyMoveRoutes } from './artifacts/copy-move-routes.ts';
import { storageInfoRoutes } from './storage/storage-info-routes.ts';
import { storageRoutes } from './storage/storage-routes.ts';
import { StreamWriter } from './stream-writer.ts';
import { lazyRequestLoggers, RequestLogController } from './request-logging.ts';
import { FastPath } from './fast-path.ts';
import { InFlightCounter } from './in-flight-counter.ts';
import { systemRoutes } from './system/system-routes.ts';
import { MavenFormat } from './formats/maven/maven-format.ts';
import { curationRoutes } from './curation/curation-routes.ts';
import { CurationService, MemoryCurationBlockLog } from './curation/curation-service.ts';
import { RemoteProxy } from './remote/remote-proxy.ts';
import { UpstreamClient } from './remote/upstream-client.ts';
import { RepositoryContent } from './virtual/repository-content.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Reads through local, remote and virtual repositories (docs/remote-virtual.md). */
    repositoryContent: RepositoryContent;
    /** Curation policies and the blocking hook package formats call. */
    curation: CurationService;
    remoteProxy: RemoteProxy;
    /** Records that a deleted artifact's binary was collected (issue 8: retention). */
    recordBinaryCollected(repo: string, path: string, sha256: string): Promise<void>;
  }
}
import { npmRoutes } from './formats/npm/npm-routes.ts';
import { NpmService } from './formats/npm/npm-service.ts';
import { historyRoutes } from './audit/history-routes.ts';
import { pypiRoutes } from './formats/pypi/pypi-routes.ts';
import { mavenPathCoordinates, npmPathCoordinates, pypiPathCoordinates } from './formats/package-coordinates.ts';
import { PypiRemoteIndex } from './formats/pypi/pypi-remote.ts';
import { PypiService } from './formats/pypi/pypi-service.ts';
import { distributionFold } from './distribution/distribution-ledger.ts';
import { distributionRoutes } from './distribution/distribution-routes.ts';
import { DEFAULT_DISTRIBUTION_LIMITS, DistributionService } from './distribution/distribution-service.ts';
import { EDGE_UPLOADS_REPOSITORY, EdgePolicy } from './distribution/edge-policy.ts';
import { ephemeralSigningKey } from './distribution/signing-keys.ts';
import { MemoryDistributionTransactionStore } from './distribution/transaction-store.ts';
import { PointInTimeReads } from './audit/point-in-time.ts';
import { smartRemoteRoutes } from './smart-remote/smart-remote-routes.ts';
import { DEFAULT_SMART_REMOTE_LIMITS, SmartRemoteService } from './smart-remote/smart-remote-service.ts';
import { MemoryRemoteDownloadStatsStore, MemorySmartRemoteStatsQueue } from './smart-remote/smart-remote-stores.ts';

export const ARTIFACTORY_PREFIX = '/artifactory';
export const STRATA_VERSION = '0.1.0';

/**
 * Builds the HTTP application from injected ports. Nothing here opens a store or a socket:
 * `strata serve` wires production ports, tests wire in-memory ones.
 */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...deps.limits };
  const app = Fastify({
    logger: deps.logger ?? false,
    genReqId: () => deps.newId(),
    requestIdHeader: 'x-request-id',
    // One log line per request, not fastify's two, and a request's child logger only made
    // when the request logs through it (request-logging.ts).
    logController: new RequestLogController(),
    ...(process.env.STRATA_X_LAZY === '0' ? {} : { childLoggerFactory: lazyRequestLoggers }),
    // Artifact paths are long; matrix parameters (`;k=v`) stay in the path.
    // (fastify 5 no longer treats ';' as a query delimiter by default.)
    routerOptions: { maxParamLength: 8_192 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    bodyLimit: 4 * 1024 * 1024,
    // Malformed URLs (bad percent-encoding) never reach a route: render them like every other error.
    frameworkErrors: (error, _request, reply) => {
      const status = error.statusCode ?? 400;
      const raw = reply as unknown as { code(status: number): { type(type: string): { send(body: string): void } } };
      raw.code(status).type('application/json; charset=utf-8').send(JSON.stringify(errorBody(status, error.message)));
    },
  });
  installErrorRendering(app);
  // Cached downloads answered in front of fastify (fast-path.ts); answered synchronously, so
  // never in flight at close. Installed first: its preClose hook (stop answering) runs
  // before the one below waits for the handlers in flight.
  const fastPath = new FastPath();
  fastPath.install(app, deps.newId, 'x-request-id');
  // Graceful close: a handler keeps running after its client went away (a deploy waits for
  // its append), and fastify's close only waits for open connections. Count every handler
  // until its promise settles; once closing, new requests get 503 and preClose waits until
  // the count is zero, so the stores (closed in onClose, after this) never vanish under a
  // handler.
  const handlersInFlight = new InFlightCounter();
  app.addHook('onRoute', (route) => {
    const handler = route.handler;
    route.handler = function trackedHandler(this: FastifyInstance, request, reply) {
      const result: unknown = handler.call(this, request, reply);
      if (result instanceof Promise) handlersInFlight.track(result);
      return result;
    } as typeof handler;
  });
  app.addHook('preClose', async () => handlersInFlight.drained());
  await deps.registerAuth(app);

  const now = () => deps.clock.now();
  const edgePolicy = new EdgePolicy(deps.edge === true);
  const repositoryStreams = new StreamWriter(deps.eventStore, repositoryStreamFold, {
    ...(edgePolicy.enabled ? { guard: (stream: string, events: readonly DomainEvent[]) => edgePolicy.checkEvents(stream, events) } : {}),
    siteId: deps.siteId,
    hlc: deps.hlc,
    newId: deps.newId,
    appendRetriesMax: limits.appendRetriesMax,
    roundLingerMs: limits.roundLingerMs,
    roundGatherMs: limits.roundGatherMs,
    checksDuringAppend: deps.checksDuringAppend === true,
    ...(deps.federation === undefined ? {} : { onAppended: deps.federation.localAppended.bind(deps.federation) }),
    ...(deps.repositoryStreamSeed === undefined
      ? {}
      : {
          seed: async (stream: string) => {
            const seed = await deps.repositoryStreamSeed?.(stream);
            return seed === undefined ? undefined : { revision: seed.revision, originSeq: seed.originSeq, state: { config: seed.config } };
          },
        }),
  });
  const metadataCache = new MetadataCache(deps.repositories, deps.artifacts, {
    entriesMax: limits.metadataCacheEntriesMax,
    ttlMs: limits.metadataCacheTtlMs,
    now,
  });
  const blobCache = new BlobCache(deps.blobStore, limits.blobCacheEntryBytesMax, limits.blobCacheBytesMax);
  const upstream = deps.upstream ?? new UpstreamClient();
  const remoteProxy = new RemoteProxy({
    streams: repositoryStreams,
    blobs: deps.blobStore,
    cache: metadataCache,
    upstream,
    now,
    streamHoldbackBytes: limits.remoteStreamHoldbackBytes,
    rememberedEntriesMax: limits.remoteRememberedEntriesMax,
    uploadBytesMax: limits.uploadBytesMax,
  });
  const curation = new CurationService({
    eventStore: deps.eventStore,
    blocks: deps.curationBlocks ?? new MemoryCurationBlockLog(),
    siteId: deps.siteId,
    stamp: () => deps.hlc.now(),
    newId: deps.newId,
    now,
    refreshIntervalMs: limits.curationRefreshIntervalMs,
    appendRetriesMax: limits.appendRetriesMax,
  });
  // Curation rules that name packages apply to files fetched through remotes of these formats.
  curation.registerPackageCoordinates('npm', npmPathCoordinates);
  curation.registerPackageCoordinates('pypi', pypiPathCoordinates);
  curation.registerPackageCoordinates('maven', mavenPathCoordinates);
  // The upstream simple indexes of PyPI remotes; versions curation blocks at a remote are left out of its pages.
  const pypiRemoteIndex = new PypiRemoteIndex({
    upstream,
    now,
    pagesCachedMax: limits.packagesCachedMax,
    blocked: (remoteKey, path, coordinates) => curation.wouldBlock({ repo: remoteKey, path, packageType: 'pypi', ...(coordinates === undefined ? {} : { packageCoordinates: coordinates }) }),
  });
  const repositoryContent = new RepositoryContent({ cache: metadataCache, artifacts: deps.artifacts, remote: remoteProxy, curation, accessControl: () => app.accessControl });
  // Shared with format plugins (npm, PyPI, Maven): read through virtual/remote repositories, curation hook.
  app.decorate('repositoryContent', repositoryContent);
  app.decorate('curation', curation);
  app.decorate('remoteProxy', remoteProxy);
  app.addHook('onClose', async () => {
    if (deps.upstream === undefined) await upstream.close();
  });
  const repositoryService = new RepositoryService(
    repositoryStreams,
    deps.repositories,
    (key) => {
      metadataCache.invalidateRepository(key);
      remoteProxy.forget(key);
      deps.onRepositoryChange?.(key);
    },
    deps.federation,
    edgePolicy,
  );
  // Events received from federation members were appended and projected by the federation
  // engine: drop what this process cached of them.
  deps.federation?.onRemoteAppended((repoKey, events) => {
    // Decisions on this stream (e.g. a configuration update's patch) must see these events.
    repositoryStreams.forget(repositoryStream(repoKey));
    let configChanged = false;
    for (const event of events) {
      if (event.type === 'ArtifactDeployed' || event.type === 'ArtifactDeleted') metadataCache.invalidateItem(repoKey, event.data.path);
      else if (event.type === 'FolderDeleted') metadataCache.invalidateFolder(repoKey, event.data.prefix);
      else if (event.type === 'RepositoryCreated' || event.type === 'RepositoryConfigChanged' || event.type === 'RepositoryDeleted') configChanged = true;
    }
    if (configChanged) {
      metadataCache.invalidateRepository(repoKey);
      deps.onRepositoryChange?.(repoKey);
    }
  });
  // One instance for deploys and npm publishes: their concurrent lookups share statements.
  // Two queries in flight where checks run beside the append (a pool: PostgreSQL), else one.
  const treeShapes = new TreeShapeLookups(deps.treeShapeQuery ?? readerTreeShapeQuery(deps.artifacts), { queriesInFlightMax: deps.checksDuringAppend === true ? 2 : 1 });
  const artifactService = new ArtifactService({
    streams: repositoryStreams,
    blobs: deps.blobStore,
    artifacts: deps.artifacts,
    treeShapes,
    cache: metadataCache,
    uploadBytesMax: limits.uploadBytesMax,
    bulkEntriesMax: limits.bulkEntriesMax,
    checkWritable: (repo) => edgePolicy.checkContentWrite(repo),
  });
  const distribution = new DistributionService({
    transactions: deps.distributionTransactions ?? new MemoryDistributionTransactionStore(),
    streams: new StreamWriter(deps.eventStore, distributionFold, {
      siteId: deps.siteId,
      hlc: deps.hlc,
      newId: deps.newId,
      appendRetriesMax: limits.appendRetriesMax,
    }),
    eventStore: deps.eventStore,
    appendAttemptsMax: limits.appendRetriesMax,
    repositoryStreams,
    repositoryService,
    repositories: deps.repositories,
    artifacts: deps.artifacts,
    blobs: deps.blobStore,
    cache: metadataCache,
    clock: deps.clock,
    newId: deps.newId,
    siteId: deps.siteId,
    signingKey: deps.signingKey ?? ephemeralSigningKey(`strata-${deps.siteId}`),
    limits: { ...DEFAULT_DISTRIBUTION_LIMITS, ...deps.distributionLimits },
    streamRevision: () => deps.eventStore.streamRevision(DISTRIBUTION_STREAM),
  });
  app.addHook('onClose', async () => distribution.close());
  deps.onServices?.({ distribution });

  await app.register(systemRoutes, {
    prefix: ARTIFACTORY_PREFIX,
    version: deps.version?.version ?? STRATA_VERSION,
    revision: deps.version?.revision ?? 'dev',
  });
  await app.register(repositoriesRoutes, { prefix: ARTIFACTORY_PREFIX, service: repositoryService, reader: deps.repositories, content: repositoryContent });
  await app.register(curationRoutes, { prefix: ARTIFACTORY_PREFIX, curation, repositories: deps.repositories, blocksListMax: limits.curationBlocksListMax });
  app.decorate('recordBinaryCollected', async (repo: string, path: string, sha256: string) => {
    await repositoryStreams.execute(repositoryStream(repo), { actor: 'strata:blob-gc' }, () => ({
      events: [{ type: 'ArtifactBinaryCollected' as const, data: { path, sha256 } }],
      result: undefined,
    }));
  });
  // asOf reads fold a repository's stream in memory: sixteen folded views are kept (a
  // virtual's read folds each member's), and a stream longer than two million events is refused.
  const pointInTime = new PointInTimeReads(deps.eventStore, { viewsCachedMax: 16, pointInTimeEventsMax: 2_000_000 });
  const smartRemote = new SmartRemoteService({
    queue: deps.smartRemoteQueue ?? new MemorySmartRemoteStatsQueue(),
    remoteStats: deps.remoteDownloadStats ?? new MemoryRemoteDownloadStatsStore(),
    repositories: deps.repositories,
    artifacts: deps.artifacts,
    cache: metadataCache,
    repositoryStreams,
    limits: { ...DEFAULT_SMART_REMOTE_LIMITS, ...deps.smartRemoteLimits },
    now,
    onError: (message, error) => app.log.warn({ err: error }, message),
  });
  smartRemote.start();
  app.addHook('onClose', async () => smartRemote.close());
  await app.register(smartRemoteRoutes, { prefix: ARTIFACTORY_PREFIX, service: smartRemote, content: repositoryContent });
  await app.register(artifactsRoutes, {
    smartRemote,
    prefix: ARTIFACTORY_PREFIX,
    pointInTime,
    service: artifactService,
    cache: metadataCache,
    blobCache,
    blobs: deps.blobStore,
    artifacts: deps.artifacts,
    downloads: deps.downloads,
    now,
    listEntriesMax: limits.listEntriesMax,
    uploadBytesMax: limits.uploadBytesMax,
    maven: new MavenFormat({ artifacts: deps.artifacts, blobs: deps.blobStore, service: artifactService, listEntriesMax: limits.listEntriesMax }),
    content: repositoryContent,
    remote: remoteProxy,
    fastPath,
    ...(deps.federation === undefined ? {} : { federation: deps.federation }),
  });
  await app.register(storageRoutes, {
    smartRemote,
    prefix: ARTIFACTORY_PREFIX,
    pointInTime,
    service: artifactService,
    cache: metadataCache,
    artifacts: deps.artifacts,
    downloads: deps.downloads,
    listEntriesMax: limits.listEntriesMax,
    now,
    content: repositoryContent,
    ...(deps.federation === undefined ? {} : { federation: deps.federation, blobs: deps.blobStore }),
  });
  const npmService = new NpmService({
    streams: repositoryStreams,
    blobs: deps.blobStore,
    artifacts: deps.artifacts,
    treeShapes,
    checksInAppend: deps.checksInAppend === true,
    cache: metadataCache,
    now,
    ttlMs: limits.metadataCacheTtlMs,
    packagesCachedMax: limits.packagesCachedMax,
    listEntriesMax: limits.listEntriesMax,
    upstream,
    curation,
    streamRevision: (stream) => deps.eventStore.streamRevision(stream),
  });
  await app.register(npmRoutes, {
    prefix: ARTIFACTORY_PREFIX,
    service: npmService,
    cache: metadataCache,
    blobCache,
    blobs: deps.blobStore,
    downloads: deps.downloads,
    now,
    publishBytesMax: limits.npmPublishBytesMax,
    content: repositoryContent,
    ...(deps.clientLogin === undefined ? {} : { login: deps.clientLogin }),
  });
  await app.register(pypiRoutes, {
    prefix: ARTIFACTORY_PREFIX,
    service: new PypiService({ streams: repositoryStreams, blobs: deps.blobStore, artifacts: deps.artifacts, cache: metadataCache, listEntriesMax: limits.listEntriesMax }),
    cache: metadataCache,
    blobCache,
    blobs: deps.blobStore,
    downloads: deps.downloads,
    now,
    uploadBytesMax: limits.uploadBytesMax,
    content: repositoryContent,
    remoteIndex: pypiRemoteIndex,
  });
  await app.register(copyMoveRoutes, { prefix: ARTIFACTORY_PREFIX, service: artifactService });
  if (deps.federation !== undefined) await app.register(deps.federation.routes, { prefix: ARTIFACTORY_PREFIX });
  await app.register(distributionRoutes, { prefix: ARTIFACTORY_PREFIX, service: distribution });
  await app.register(storageInfoRoutes, { prefix: ARTIFACTORY_PREFIX, repositories: deps.repositories, artifacts: deps.artifacts, storage: deps.storage });
  if (deps.audit !== undefined) {
    await app.register(historyRoutes, { prefix: ARTIFACTORY_PREFIX, audit: deps.audit, siteId: deps.siteId, historyPageEventsDefault: 1000, historyPageEventsMax: 10_000 });
  }
  if (edgePolicy.enabled && (await deps.repositories.get(EDGE_UPLOADS_REPOSITORY)) === undefined) {
    await repositoryService.create(
      EDGE_UPLOADS_REPOSITORY,
      { rclass: 'local', packageType: 'generic', description: 'The one repository of this edge node that accepts uploads' },
      { actor: '_system' },
    );
  }
  // Bundles recorded as received whose files were not all placed (a crash mid-publish).
  const recovered = await distribution.recover();
  if (recovered > 0) app.log.warn({ recovered }, 'release bundles published after a crash mid-publish');
  return app;
}
