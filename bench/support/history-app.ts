/**
 * The history bench's app: the route as test/support's SQL app builds it, on the bench's
 * store (permissive auth), with the audit of a checkout (`root`: that checkout's server and
 * store code). Used in the bench process (line (d)) and in a server process of its own
 * (line (e), history-server.ts).
 */
import { HybridLogicalClock } from '@strata/core';
import hyperid from 'hyperid';
import type { FastifyInstance } from 'fastify';
import { databaseUrl, type BenchDatabase } from './databases.ts';

/** What the history app needs of a database: a store, its Kysely and its binary COPY out. */
export type HistoryDatabase = Pick<BenchDatabase, 'store' | 'db' | 'copyOut' | 'close'>;

/**
 * The bench's schema opened by the checkout's own store code (`openEventStore` of `root`):
 * its pool, its COPY reader. A checkout's line then measures that checkout's code from the
 * connection up (before 2026-12-06 night every checkout read through the bench's own copyOut).
 */
export async function openCheckoutDatabase(root: string, schema: string, poolKeepsIdleConnections: boolean): Promise<HistoryDatabase> {
  const store = (await import(`${root}/packages/store/src/index.ts`)) as typeof import('@strata/store');
  const opened = await store.openEventStore({ databaseUrl, schema, projections: [], poolConnectionsMax: 4, poolKeepsIdleConnections, store: { siteId: 'site-a' } });
  return { store: opened.store as never, db: opened.db as never, copyOut: opened.copyOut as never, close: () => opened.close() };
}

/** The checkout's SqlEventAudit on the database (with its binary COPY). */
export async function checkoutAudit(root: string, database: HistoryDatabase): Promise<unknown> {
  const store = (await import(`${root}/packages/store/src/index.ts`)) as typeof import('@strata/store');
  return new store.SqlEventAudit(database.db as never, { copyOut: database.copyOut } as never);
}

/** Builds the checkout's app on `database` with `audit` and listens on a loopback port. */
export async function listenHistoryApp(root: string, database: HistoryDatabase, audit: unknown): Promise<FastifyInstance> {
  const server = (await import(`${root}/packages/server/src/index.ts`)) as typeof import('@strata/server');
  const store = (await import(`${root}/packages/store/src/index.ts`)) as typeof import('@strata/store');
  const { registerPermissiveAuth } = (await import(`${root}/packages/server/test/support/permissive-auth.ts`)) as typeof import('../../packages/server/test/support/permissive-auth.ts');
  const readers = new server.ProjectionReaders(new store.ArtifactTreeQueries(database.db as never), new store.RepositoryQueries(database.db as never));
  const clock = { now: () => Date.now() };
  const app = await server.buildApp({
    eventStore: database.store as never,
    blobStore: new store.FsBlobStore({ root: '/tmp/strata-bench-history-blobs' }),
    repositories: readers,
    artifacts: readers,
    downloads: new server.BatchingDownloadCounter(new server.MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
    clock,
    hlc: new HybridLogicalClock({ clock }),
    siteId: 'site-a',
    newId: hyperid({ urlSafe: true }),
    registerAuth: registerPermissiveAuth,
    audit: audit as never,
    limits: { metadataCacheTtlMs: 0 },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return app;
}
