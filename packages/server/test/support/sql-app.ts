import { HybridLogicalClock } from '@strata/core';
import type { BlobStore, OpenedEventStore } from '@strata/store';
import { ArtifactTreeProjection, ArtifactTreeQueries, openEventStore, RepositoryConfigProjection, RepositoryQueries, SqlEventAudit, VirtualResolutionProjection } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import hyperid from 'hyperid';
import { buildApp } from '../../src/app.ts';
import { BatchingDownloadCounter } from '../../src/download-counter.ts';
import { ProjectionReaders } from '../../src/projection-readers.ts';
import { SqlDownloadStatsSink } from '../../src/sql-download-stats.ts';
import { registerPermissiveAuth } from './permissive-auth.ts';

export interface SqlApp {
  readonly app: FastifyInstance;
  readonly opened: OpenedEventStore;
  close(): Promise<void>;
}

/** The app on the real SQL event store and projections (in-memory PGlite or DATABASE_URL + schema). */
export async function buildSqlApp(blobStore: BlobStore, options: { databaseUrl?: string; schema?: string; siteId?: string; metadataCacheTtlMs?: number } = {}): Promise<SqlApp> {
  const opened = await openEventStore({
    ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection()],
    store: { siteId: options.siteId ?? 'site-int' },
  });
  const readers = new ProjectionReaders(new ArtifactTreeQueries(opened.db), new RepositoryQueries(opened.db));
  const sink = new SqlDownloadStatsSink(opened.db);
  await sink.ensureSchema();
  const downloads = new BatchingDownloadCounter(sink, { flushIntervalMs: 0 });
  const clock = { now: () => Date.now() };
  const app = await buildApp({
    eventStore: opened.store,
    blobStore,
    repositories: readers,
    artifacts: readers,
    downloads,
    clock,
    hlc: new HybridLogicalClock({ clock }),
    siteId: options.siteId ?? 'site-int',
    newId: hyperid({ urlSafe: true }),
    registerAuth: registerPermissiveAuth,
    audit: new SqlEventAudit(opened.db),
    limits: { metadataCacheTtlMs: options.metadataCacheTtlMs ?? 0 },
  });
  return {
    app,
    opened,
    async close() {
      await app.close();
      await downloads.close();
      await opened.close();
    },
  };
}
