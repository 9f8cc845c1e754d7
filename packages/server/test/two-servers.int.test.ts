import { ArtifactTreeProjection, openEventStore, RepositoryConfigProjection, RepositoryQueries } from '@strata/store';
import type { EventStore, OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { sqlRepositoryStreamSeed } from '../src/repositories/repository-stream-seed.ts';
import { buildAppOnStore } from './support/sql-app.ts';

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
    const blobs = new MemoryBlobStore();
    for (let i = 0; i < 2; i++) apps.push(await buildAppOnStore(opened, blobs, { siteId: 'site-shared' }));
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

  it('a server that starts later seeds its write state from the projections and continues originSeq without reading the stream', async () => {
    let streamReads = 0;
    const store = opened.store;
    const countingStore: EventStore = {
      append: (...args) => store.append(...args),
      appendMany: (...args) => store.appendMany(...args),
      readStream: async (...args) => {
        streamReads += 1;
        return store.readStream(...args);
      },
      streamRevision: (...args) => store.streamRevision(...args),
      readAll: (...args) => store.readAll(...args),
      subscribe: (...args) => store.subscribe(...args),
      close: () => store.close(),
    };
    const late = await buildAppOnStore(opened, new MemoryBlobStore(), {
      eventStore: countingStore,
      siteId: 'site-shared',
      repositoryStreamSeed: sqlRepositoryStreamSeed({ db: opened.db, eventStore: opened.store, repositories: new RepositoryQueries(opened.db), siteId: 'site-shared' }),
    });
    apps.push(late);
    const before = await opened.store.readStream('repo-shared');
    expect((await late.inject({ method: 'PUT', url: '/artifactory/shared/late.txt', payload: 'late', headers: { 'content-type': 'text/plain' } })).statusCode).toBe(201);
    const after = await opened.store.readStream('repo-shared');
    expect(after).toHaveLength(before.length + 1);
    expect(after.at(-1)?.originSeq).toBe(before.at(-1)!.originSeq + 1);
    // Seeded: the new server read at most the events after the seed, never the whole stream from revision 0.
    expect(streamReads).toBeLessThanOrEqual(1);
  });

  it('sees a configuration change made through the other server before deciding a deploy', async () => {
    const [a, b] = apps as [FastifyInstance, FastifyInstance];
    // b has a cached snapshot of the stream; a changes the patterns.
    expect((await a.inject({ method: 'POST', url: '/artifactory/api/repositories/shared', payload: { excludesPattern: 'blocked/**' } })).statusCode).toBe(200);
    const refused = await b.inject({ method: 'PUT', url: '/artifactory/shared/blocked/x.txt', payload: 'x', headers: { 'content-type': 'text/plain' } });
    expect(refused.statusCode).toBe(403);
  });
});
