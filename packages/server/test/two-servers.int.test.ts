import { HybridLogicalClock } from '@strata/core';
import { ArtifactTreeProjection, ArtifactTreeQueries, openEventStore, RepositoryConfigProjection, RepositoryQueries } from '@strata/store';
import type { OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import hyperid from 'hyperid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../src/download-counter.ts';
import { ProjectionReaders } from '../src/projection-readers.ts';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { registerPermissiveAuth } from './support/permissive-auth.ts';

/**
 * Two servers of one site over one database (the PostgreSQL scale-out shape; here one PGlite
 * store shared in-process): each has its own in-memory stream snapshots, so their writes
 * conflict on expectedRevision and must re-read and retry.
 */
describe('two servers writing to one repository stream', () => {
  let opened: OpenedEventStore;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    opened = await openEventStore({ projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    const readers = new ProjectionReaders(new ArtifactTreeQueries(opened.db), new RepositoryQueries(opened.db));
    const blobs = new MemoryBlobStore();
    const clock = { now: () => Date.now() };
    for (let i = 0; i < 2; i++) {
      apps.push(
        await buildApp({
          eventStore: opened.store,
          blobStore: blobs,
          repositories: readers,
          artifacts: readers,
          downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
          clock,
          hlc: new HybridLogicalClock({ clock }),
          siteId: 'site-shared',
          newId: hyperid({ urlSafe: true }),
          registerAuth: registerPermissiveAuth,
          limits: { metadataCacheTtlMs: 0 },
        }),
      );
    }
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await opened?.close();
  });

  it('keeps every deploy, with gapless revisions and a gapless originSeq for the shared site', async () => {
    const [a, b] = apps as [FastifyInstance, FastifyInstance];
    expect((await a.inject({ method: 'PUT', url: '/artifactory/api/repositories/shared', payload: { rclass: 'local' } })).statusCode).toBe(200);
    const deploys = Array.from({ length: 40 }, (_, i) =>
      (i % 2 === 0 ? a : b).inject({ method: 'PUT', url: `/artifactory/shared/f${i}.txt`, payload: `body ${i}`, headers: { 'content-type': 'text/plain' } }),
    );
    const statuses = (await Promise.all(deploys)).map((response) => response.statusCode);
    expect(statuses.every((status) => status === 201)).toBe(true);
    const events = await opened.store.readStream('repo-shared');
    expect(events).toHaveLength(41);
    expect(events.map((event) => event.revision)).toEqual(Array.from({ length: 41 }, (_, i) => i));
    expect(events.map((event) => event.originSeq)).toEqual(Array.from({ length: 41 }, (_, i) => i + 1));
    const list = await b.inject({ method: 'GET', url: '/artifactory/api/storage/shared?list' });
    expect(list.json().files).toHaveLength(40);
  });

  it('sees a configuration change made through the other server before deciding a deploy', async () => {
    const [a, b] = apps as [FastifyInstance, FastifyInstance];
    // b has a cached snapshot of the stream; a changes the patterns.
    expect((await a.inject({ method: 'POST', url: '/artifactory/api/repositories/shared', payload: { excludesPattern: 'blocked/**' } })).statusCode).toBe(200);
    const refused = await b.inject({ method: 'PUT', url: '/artifactory/shared/blocked/x.txt', payload: 'x', headers: { 'content-type': 'text/plain' } });
    expect(refused.statusCode).toBe(403);
  });
});
