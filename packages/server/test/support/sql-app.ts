import { HybridLogicalClock } from '@strata/core';
import type { BlobStore, OpenedEventStore } from '@strata/store';
import {
  ArtifactTreeProjection,
  ArtifactTreeQueries,
  InlineBlobStaging,
  InlineBlobStore,
  openEventStore,
  RepositoryConfigProjection,
  RepositoryQueries,
  SqlEventAudit,
  VirtualResolutionProjection,
} from '@strata/store';
import type { FastifyInstance } from 'fastify';
import hyperid from 'hyperid';
import pg from 'pg';
import { afterAll } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { sqlTreeShapeQuery } from '../../src/artifacts/tree-shape-lookups.ts';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../../src/download-counter.ts';
import type { AppDeps } from '../../src/ports.ts';
import { ProjectionReaders } from '../../src/projection-readers.ts';
import { SqlDownloadStatsSink } from '../../src/sql-download-stats.ts';
import { registerPermissiveAuth } from './permissive-auth.ts';

export interface SqlApp {
  readonly app: FastifyInstance;
  readonly opened: OpenedEventStore;
  /** The blob store the app uses: the one given, or (with `inlineBlobBytesMax`) an InlineBlobStore over it. */
  readonly blobs: BlobStore;
  close(): Promise<void>;
}

/** The app on the real SQL event store and projections (in-memory PGlite or DATABASE_URL + schema). */
export async function buildSqlApp(
  files: BlobStore,
  options: {
    databaseUrl?: string;
    schema?: string;
    siteId?: string;
    metadataCacheTtlMs?: number;
    /** Deploys up to this size keep their blob in the database (as `strata serve` does); undefined: files only. */
    inlineBlobBytesMax?: number;
    clock?: { now(): number };
    /** Checks in the append transaction (AppendDeps.checksInAppend); default true, as `strata serve` wires it. */
    checksInAppend?: boolean;
  } = {},
): Promise<SqlApp> {
  const staging = options.inlineBlobBytesMax === undefined ? undefined : new InlineBlobStaging();
  const opened = await openEventStore({
    ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
    ...(options.schema === undefined ? {} : { schema: options.schema }),
    projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection()],
    store: { siteId: options.siteId ?? 'site-int', ...(staging === undefined ? {} : { appendWrites: [staging] }) },
  });
  const blobStore =
    staging === undefined
      ? files
      : new InlineBlobStore({ files, db: opened.db, staging, inlineBytesMax: options.inlineBlobBytesMax!, ...(options.clock === undefined ? {} : { clock: options.clock }) });
  const sink = new SqlDownloadStatsSink(opened.db);
  await sink.ensureSchema();
  const downloads = new BatchingDownloadCounter(sink, { flushIntervalMs: 0 });
  const app = await buildAppOnStore(opened, blobStore, {
    downloads,
    siteId: options.siteId ?? 'site-int',
    audit: new SqlEventAudit(opened.db, { copyOut: opened.copyOut }),
    limits: { metadataCacheTtlMs: options.metadataCacheTtlMs ?? 0 },
    // As `strata serve` wires it: on PostgreSQL the tree-shape checks run during the append.
    checksDuringAppend: options.databaseUrl !== undefined,
    checksInAppend: options.checksInAppend ?? true,
  });
  return {
    app,
    opened,
    blobs: blobStore,
    async close() {
      await app.close();
      await downloads.close();
      await opened.close();
    },
  };
}

/**
 * An app over an already opened SQL store, reading its projections; several apps may share one
 * store (servers of one site). Defaults: permissive auth, in-memory download counts, no
 * metadata cache, site `site-int`; `deps` overrides any of them.
 */
export function buildAppOnStore(opened: OpenedEventStore, blobStore: BlobStore, deps: Partial<AppDeps> = {}): Promise<FastifyInstance> {
  const readers = new ProjectionReaders(new ArtifactTreeQueries(opened.db), new RepositoryQueries(opened.db));
  const clock = { now: () => Date.now() };
  return buildApp({
    eventStore: opened.store,
    blobStore,
    repositories: readers,
    artifacts: readers,
    downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
    clock,
    hlc: new HybridLogicalClock({ clock }),
    siteId: 'site-int',
    newId: hyperid({ urlSafe: true }),
    registerAuth: registerPermissiveAuth,
    // As `strata serve` wires it: tree-shape and publish lookups in one statement per batch.
    treeShapeQuery: sqlTreeShapeQuery(opened.db, opened.hotRead),
    limits: { metadataCacheTtlMs: 0 },
    ...deps,
  });
}

export interface SqlAppBackend {
  readonly name: 'pglite' | 'postgres';
  /** buildSqlApp's database options: in-memory PGlite, or DATABASE_URL with a schema of its own per call. */
  options(): { databaseUrl?: string; schema?: string };
}

/**
 * The backends a test file runs on: PGlite always, PostgreSQL when DATABASE_URL is set (else
 * says so, naming `what`). Each PostgreSQL call gets its own schema, `schemaPrefix`_pid_n,
 * dropped after the file's tests.
 */
export function sqlAppBackends(what: string, schemaPrefix: string): readonly SqlAppBackend[] {
  const databaseUrl = process.env['DATABASE_URL'];
  const backends: SqlAppBackend[] = [{ name: 'pglite', options: () => ({}) }];
  if (databaseUrl === undefined) {
    console.log(`${what}: DATABASE_URL is not set, PostgreSQL backend skipped`);
    return backends;
  }
  const schemas: string[] = [];
  backends.push({
    name: 'postgres',
    options() {
      const schema = `${schemaPrefix}_${process.pid}_${schemas.length}`;
      schemas.push(schema);
      return { databaseUrl, schema };
    },
  });
  afterAll(async () => {
    if (schemas.length === 0) return;
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
    await client.end();
  });
  return backends;
}
