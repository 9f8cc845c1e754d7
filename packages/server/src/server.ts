import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HybridLogicalClock, isRepositoryClass, StrataError } from '@strata/core';
import type { Clock, HlcStamp, RepositoryClass } from '@strata/core';
import {
  ArtifactTreeProjection,
  ArtifactTreeQueries,
  FsBlobStore,
  InlineBlobStaging,
  InlineBlobStore,
  openEventStore,
  RepositoryConfigProjection,
  RepositoryQueries,
  SqlEventAudit,
  SqlBlobRetention,
  blobTrashPeriodMsDefault,
  VirtualResolutionProjection,
} from '@strata/store';
import type { PgliteThread, StoreDatabase } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import hyperid from 'hyperid';
import { deployTrace } from './deploy-trace.ts';
import { buildApp } from './app.ts';
import { bufferedLogDestination } from './request-logging.ts';
import { collectBlobGarbage } from './audit/blob-collection.ts';
import { authPlugin, ScryptPasswordHasher, SecurityService } from './auth/index.ts';
import { BatchingDownloadCounter } from './download-counter.ts';
import type { ServerLimits } from './ports.ts';
import { ProjectionReaders } from './projection-readers.ts';
import { SqlDownloadStatsSink } from './sql-download-stats.ts';
import { SqlCurationBlockLog } from './curation/sql-curation-block-log.ts';
import { sqlRepositoryStreamSeed } from './repositories/repository-stream-seed.ts';
import { sqlTreeShapeQuery } from './artifacts/tree-shape-lookups.ts';
import { FederationService } from './federation/federation-service.ts';
import { checkFederationSecret, PendingBinariesProjection } from '@strata/federation';
import type { DistributionService } from './distribution/distribution-service.ts';
import { loadOrCreateSigningKey } from './distribution/signing-keys.ts';
import { SqlDistributionTransactionStore } from './distribution/transaction-store.ts';
import { ensureSmartRemoteTables, SqlRemoteDownloadStatsStore, SqlSmartRemoteStatsQueue } from './smart-remote/smart-remote-stores.ts';

export interface ServerSettings {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly siteId: string | undefined;
  readonly adminPassword: string | undefined;
  readonly logLevel: string;
  readonly limits?: Partial<ServerLimits>;
  /** How often unreferenced blobs are collected (in this process: leases are per process); 0 = never. */
  readonly blobGcIntervalMs?: number;
  /** How long the binary of a deleted or overwritten artifact stays after it (issue 8); default 7 days. */
  readonly blobTrashPeriodMs?: number;
  /** This site's public base URL (e.g. http://host:8081): how federation members address it. */
  readonly baseUrl?: string | undefined;
  /** The shared secret of the federation (STRATA_FEDERATION_TOKEN); federation is off without it. */
  readonly federationToken?: string | undefined;
  /** How often members exchange version vectors even when nothing is known to be missing. */
  readonly federationAntiEntropyIntervalMs?: number | undefined;
  /** Cap of the retry backoff towards a member that is down. */
  readonly federationRetryDelayMaxMs?: number | undefined;
  /** Test-only endpoint that cuts links (POST /api/federation/test/block). */
  readonly federationTestHooks?: boolean | undefined;
  /** Binaries up to this size travel inside a push (STRATA_FEDERATION_INLINE_BINARY_MAX_BYTES; 0: none; default 64 KiB). */
  readonly federationInlineBinaryBytesMax?: number | undefined;
  /**
   * Deploys up to this size keep their blob in the SQL database, written with the deploy's
   * event (STRATA_INLINE_BLOB_MAX_BYTES; 0: every blob is a file; default 64 KiB;
   * docs/storage.md, "Inline blobs").
   */
  readonly inlineBlobBytesMax?: number | undefined;
  /** Edge-node mode (`--edge`, STRATA_EDGE=true): docs/edge.md. */
  readonly edge?: boolean;
  /** How often smart remotes report queued downloads to their origins (STRATA_SMART_REMOTE_STATS_INTERVAL_MS). */
  readonly smartRemoteStatsFlushIntervalMs?: number;
  /**
   * PGlite only: where its SQL runs (STRATA_PGLITE_THREAD). `worker` (default): a worker
   * thread, deploys ×1.7 on the main thread's rate; `main`: in the server's thread
   * (docs/storage.md, "PGlite in a worker thread").
   */
  readonly pgliteThread?: PgliteThread | undefined;
}

export const blobGcIntervalMsDefault = 6 * 60 * 60 * 1000;

export interface RunningServer {
  readonly app: FastifyInstance;
  /** The bound address, e.g. http://127.0.0.1:8081. */
  readonly url: string;
  readonly siteId: string;
  /** Stops accepting connections, finishes in-flight requests, flushes counters, closes the stores. */
  close(): Promise<void>;
}

const SITE_ID_FILE = 'site-id';
/** Lifetime of the token `npm login` obtains (npm keeps it in .npmrc). */
const npmLoginTokenSeconds = 30 * 24 * 3_600;

/** The site id: from settings, else the one kept in the data dir, else a new one kept there. */
async function resolveSiteId(dataDir: string, configured: string | undefined): Promise<string> {
  if (configured !== undefined) return configured;
  const file = join(dataDir, SITE_ID_FILE);
  try {
    const stored = (await readFile(file, 'utf8')).trim();
    if (stored !== '') return stored;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const siteId = `site-${randomBytes(6).toString('hex')}`;
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, `${siteId}\n`, { flag: 'wx' });
  await rename(temporary, file);
  return siteId;
}

async function newestStamp(db: Kysely<StoreDatabase>): Promise<HlcStamp> {
  // The most recent appends (by position, an index scan) hold the newest local stamps.
  const result = await sql<{ wall: string | number; logical: number }>`
    select hlc_wall as wall, hlc_logical as logical
      from (select hlc_wall, hlc_logical from events order by position desc limit 1000) recent
     order by hlc_wall desc, hlc_logical desc limit 1`.execute(db);
  const row = result.rows[0];
  const wall = Number(row?.wall ?? 0);
  const logical = Number(row?.logical ?? 0);
  return Number.isSafeInteger(wall) && wall > 0 ? { wall, logical } : { wall: 0, logical: 0 };
}

/** Production wiring of `strata serve`: stores in the data dir (or PostgreSQL), auth, HTTP. */
export async function startServer(settings: ServerSettings): Promise<RunningServer> {
  await mkdir(settings.dataDir, { recursive: true });
  const siteId = await resolveSiteId(settings.dataDir, settings.siteId);
  const clock: Clock = { now: () => Date.now() };
  const newId = hyperid({ urlSafe: true });

  // Log lines are JSON on stdout, written in blocks of about 4 KiB (each line within a second).
  const logDestination = bufferedLogDestination(process.stdout);
  // A new PGlite database has no admin yet: the given password is hashed now, while the
  // process is small, not on top of PGlite's start-up (a hash holds 32 MiB while it runs;
  // docs/benchmarks.md, "Server HTTP": the server's peak resident memory).
  const passwordHasher = new ScryptPasswordHasher();
  const newPglite = settings.databaseUrl === undefined && !existsSync(join(settings.dataDir, 'pg', 'PG_VERSION'));
  const adminPasswordHash = newPglite && settings.adminPassword !== undefined ? passwordHasher.hash(settings.adminPassword) : undefined;
  adminPasswordHash?.catch(() => undefined); // awaited (and its failure seen) by ensureAdmin
  // Small deploys' blobs are staged in memory and written by the append of their event.
  const inlineBlobs = new InlineBlobStaging();
  const opened = await openEventStore({
    // A server keeps its pool's connections open while idle: a new one is a cold backend
    // (open-event-store.ts), which made the first history page after 10 s idle ~140 ms slower.
    ...(settings.databaseUrl === undefined ? { dataDir: settings.dataDir, pgliteThread: settings.pgliteThread ?? 'worker' } : { databaseUrl: settings.databaseUrl, poolKeepsIdleConnections: true }),
    ...(deployTrace === undefined ? {} : { onAppendSend: deployTrace.appendSend }),
    projections: [
      new ArtifactTreeProjection(),
      new RepositoryConfigProjection(),
      new VirtualResolutionProjection(),
      // Binaries of received deploys still to fetch, recorded in the append transaction.
      ...(settings.federationToken === undefined ? [] : [new PendingBinariesProjection(siteId)]),
    ],
    store: { siteId, appendWrites: [inlineBlobs] },
  });
  const eventStore = opened.store;
  // Start the clock after the newest stamp already stored, so a physical clock that went back
  // while the server was down never stamps a new event below an old one (LWW would ignore it).
  const hlc = new HybridLogicalClock({ clock, initial: await newestStamp(opened.db) });
  const blobStore = new InlineBlobStore({
    // On PGlite the events are not fsynced (DESIGN §6): fsyncing the blobs they name buys nothing.
    files: new FsBlobStore({ root: settings.dataDir, clock, syncWrites: settings.databaseUrl !== undefined }),
    db: opened.db,
    staging: inlineBlobs,
    clock,
    ...(settings.inlineBlobBytesMax === undefined ? {} : { inlineBytesMax: settings.inlineBlobBytesMax }),
  });
  const treeQueries = new ArtifactTreeQueries(opened.db);
  const repositoryQueries = new RepositoryQueries(opened.db);
  const readers = new ProjectionReaders(treeQueries, repositoryQueries);
  const repositoryStreamSeed = sqlRepositoryStreamSeed({ db: opened.db, eventStore, repositories: repositoryQueries, siteId });
  const statsSink = new SqlDownloadStatsSink(opened.db);
  await statsSink.ensureSchema();
  const downloads = new BatchingDownloadCounter(statsSink);
  const curationBlocks = new SqlCurationBlockLog(opened.db);
  await curationBlocks.ensureSchema();

  const security = new SecurityService({ eventStore, siteId, stamp: () => hlc.now(), newId, clock, passwordHasher });
  const generatedPassword = await security.ensureAdmin(settings.adminPassword, adminPasswordHash);
  // "ANY LOCAL" / "ANY REMOTE" permission targets ask a repository's class synchronously.
  const repositoryClasses = new Map<string, RepositoryClass>();
  const reloadRepositoryClasses = async () => {
    const repositories = await readers.list();
    repositoryClasses.clear();
    for (const repo of repositories) if (isRepositoryClass(repo.rclass)) repositoryClasses.set(repo.key, repo.rclass);
  };
  await reloadRepositoryClasses();
  security.setRepositoryClassResolver((key) => repositoryClasses.get(key));

  let federation: FederationService | undefined;
  if (settings.federationToken !== undefined) {
    checkFederationSecret(settings.federationToken);
    const listenHost = settings.host === '0.0.0.0' || settings.host === '::' ? '127.0.0.1' : settings.host;
    if (settings.baseUrl === undefined && settings.port === 0) {
      throw new StrataError('STRATA_ERR_FEDERATION_NOT_CONFIGURED', 'federation needs this site\'s public base URL (STRATA_BASE_URL / --base-url) when the port is chosen at random');
    }
    federation = new FederationService({
      siteId,
      settings: {
        secret: settings.federationToken,
        baseUrl: settings.baseUrl ?? `http://${listenHost}:${settings.port}`,
        ...(settings.federationAntiEntropyIntervalMs === undefined ? {} : { antiEntropyIntervalMs: settings.federationAntiEntropyIntervalMs }),
        ...(settings.federationRetryDelayMaxMs === undefined ? {} : { retryDelayMaxMs: settings.federationRetryDelayMaxMs }),
        testHooks: settings.federationTestHooks === true,
        ...(settings.federationInlineBinaryBytesMax === undefined ? {} : { inlineBinaryBytesMax: settings.federationInlineBinaryBytesMax }),
      },
      eventStore,
      db: opened.db,
      blobs: blobStore,
      hlc,
      clock,
      repositories: readers,
    });
  }

  const signingKey = await loadOrCreateSigningKey(settings.dataDir, `strata-${siteId}`);
  await ensureSmartRemoteTables(opened.db);
  const distributionTransactions = new SqlDistributionTransactionStore(opened.db);
  await distributionTransactions.ensureSchema();
  let distribution: DistributionService | undefined;
  const app = await buildApp({
    ...(federation === undefined ? {} : { federation }),
    eventStore,
    signingKey,
    distributionTransactions,
    edge: settings.edge === true,
    smartRemoteQueue: new SqlSmartRemoteStatsQueue(opened.db),
    remoteDownloadStats: new SqlRemoteDownloadStatsStore(opened.db),
    ...(settings.smartRemoteStatsFlushIntervalMs === undefined ? {} : { smartRemoteLimits: { statsFlushIntervalMs: settings.smartRemoteStatsFlushIntervalMs } }),
    onServices: (services) => (distribution = services.distribution),
    blobStore,
    repositories: readers,
    artifacts: readers,
    downloads,
    curationBlocks,
    clock,
    hlc,
    siteId,
    newId,
    clientLogin: {
      async login(username, password, meta) {
        const principal = await security.authenticate({ authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` });
        const issued = await security.issueToken(
          { principal, ...(meta.requestId === undefined ? {} : { requestId: meta.requestId }), ...(meta.clientAddress === undefined ? {} : { clientAddress: meta.clientAddress }) },
          // The token acts with the user's own rights, an administrator's included.
          { description: 'npm login', expiresInSeconds: npmLoginTokenSeconds, scope: principal.admin ? 'applied-permissions/admin' : 'applied-permissions/user' },
        );
        return issued.accessToken;
      },
    },
    registerAuth: async (root) => {
      await root.register(authPlugin, { security });
    },
    storage: {
      storageType: 'file-system',
      storageDirectory: join(settings.dataDir, 'blobs'),
      async statFs() {
        const stats = await statfs(settings.dataDir);
        return { totalBytes: stats.blocks * stats.bsize, freeBytes: stats.bavail * stats.bsize };
      },
    },
    logger: { level: settings.logLevel, stream: logDestination },
    repositoryStreamSeed,
    audit: new SqlEventAudit(opened.db, { copyOut: opened.copyOut }),
    treeShapeQuery: sqlTreeShapeQuery(opened.db, opened.hotRead),
    checksDuringAppend: settings.databaseUrl !== undefined,
    checksInAppend: true,
    onRepositoryChange: () => {
      reloadRepositoryClasses().catch((error: unknown) => app.log.error({ err: error }, 'reloading repository classes failed'));
    },
    // On PGlite, rounds wait up to 2 ms for deploys still writing their blob. 10 ms was chosen
    // while PGlite's SQL ran on the main thread (rounds 2-3 times larger, deploys/s about
    // double); with PGlite in its worker thread 2 ms measured ahead of 0, 5 and 10 ms
    // (docs/benchmarks.md, "Server HTTP", put4). On PostgreSQL the wait measured no better than none.
    limits: { roundLingerMs: settings.databaseUrl === undefined ? 2 : 0, ...settings.limits },
  });
  // Blobs no present artifact references (deleted content, deploys whose append failed) are
  // collected periodically; the store's grace period and leases protect deploys in flight.
  let collecting: Promise<void> | undefined;
  // Binaries of deleted artifacts stay for the trash period (history downloads), then go as events.
  const retention = new SqlBlobRetention(opened.db, { trashPeriodMs: settings.blobTrashPeriodMs ?? blobTrashPeriodMsDefault, clock });
  const gcIntervalMs = settings.blobGcIntervalMs ?? blobGcIntervalMsDefault;
  const gcTimer =
    gcIntervalMs > 0
      ? setInterval(() => {
          collecting ??= collectBlobGarbage({
            blobStore,
            retention,
            // Binaries named by a release bundle stay, even when their artifacts were deleted.
            isReferencedElsewhere: async (sha256) => (await distribution?.referencesBlob(sha256)) ?? false,
            recordCollected: (repo, path, sha256) => app.recordBinaryCollected(repo, path, sha256),
          })
            .then(
              ({ removed, failed }) => {
                app.log.info({ removed: removed.length, failed: failed.length }, 'blob garbage collected');
                for (const { sha256, error } of failed) app.log.error({ err: error, sha256 }, 'recording a collected binary failed; the blob stays');
              },
              (error: unknown) => app.log.error({ err: error }, 'blob garbage collection failed'),
            )
            .finally(() => (collecting = undefined));
        }, gcIntervalMs)
      : undefined;
  gcTimer?.unref();
  app.addHook('onClose', async () => {
    federation?.close();
    if (gcTimer !== undefined) clearInterval(gcTimer);
    await collecting;
    await downloads.close();
    await opened.close();
    logDestination.close();
  });
  // Federated repositories resume before the first request: streams indexed, cursors loaded,
  // a vector exchange with every member queued.
  await federation?.start();
  const url = await app.listen({ port: settings.port, host: settings.host });
  if (federation !== undefined) app.log.info({ baseUrl: federation.directory.ownBaseUrl }, 'federation enabled');
  app.log.info({ siteId, edge: settings.edge === true, dataDir: settings.dataDir, database: settings.databaseUrl === undefined ? 'pglite' : 'postgresql' }, 'strata started');
  if (generatedPassword !== undefined) {
    // Printed once, at the first start, on stdout where the operator sees it.
    process.stdout.write(`\nstrata: created the built-in user 'admin' with password: ${generatedPassword}\nstrata: change it, or set STRATA_ADMIN_PASSWORD before the first start.\n\n`);
  }
  return {
    app,
    url,
    siteId,
    close: () => app.close(),
  };
}
