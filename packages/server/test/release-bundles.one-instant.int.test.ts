import { ArtifactTreeProjection, openEventStore, RepositoryConfigProjection } from '@strata/store';
import type { EventStore, OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { ephemeralSigningKey } from '../src/distribution/signing-keys.ts';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildAppOnStore } from './support/sql-app.ts';

/**
 * A source and an edge (real SQL stores on PGlite, the edge listening on loopback) and a
 * bundle spread over three repositories. The edge's store is observed: right before and right
 * after every append the edge makes, a reader lists the three repositories through the edge's
 * HTTP API. Whatever order and grouping the publish uses, every one of those reads must show
 * all of the bundle or none of it — a publish that appended one repository before another
 * would be caught between the two appends, every time.
 */
const REPOS = ['rel-a', 'rel-b', 'rel-c'];
const PER_REPO = 5;

describe('a release bundle over three repositories is published at one instant', () => {
  const stores: OpenedEventStore[] = [];
  const apps: FastifyInstance[] = [];
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const store of stores) await store.close();
  });

  it('no read made between the edge\'s appends shows part of it', async () => {
    const projections = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    const sourceStore = await openEventStore({ projections: projections() });
    const edgeStore = await openEventStore({ projections: projections() });
    stores.push(sourceStore, edgeStore);
    const source = await buildAppOnStore(sourceStore, new MemoryBlobStore(), { siteId: 'site-source', signingKey: ephemeralSigningKey('strata-site-source') });
    apps.push(source);

    let edge: FastifyInstance | undefined;
    const observations: number[][] = [];
    const observe = async () => {
      if (edge === undefined) return;
      const counts: number[] = [];
      for (const repo of REPOS) {
        const listed = await edge.inject({ method: 'GET', url: `/artifactory/api/storage/${repo}/app?list&deep=1` });
        counts.push(listed.statusCode === 404 ? 0 : (listed.json() as { files: unknown[] }).files.length);
      }
      observations.push(counts);
    };
    const inner = edgeStore.store;
    const observed: EventStore = {
      append: async (...args) => {
        await observe();
        const result = await inner.append(...args);
        await observe();
        return result;
      },
      appendMany: async (...args) => {
        await observe();
        const result = await inner.appendMany(...args);
        await observe();
        return result;
      },
      readStream: (...args) => inner.readStream(...args),
      streamRevision: (...args) => inner.streamRevision(...args),
      readAll: (...args) => inner.readAll(...args),
      subscribe: (...args) => inner.subscribe(...args),
      close: () => inner.close(),
    };
    edge = await buildAppOnStore(edgeStore, new MemoryBlobStore(), { siteId: 'site-edge', edge: true, eventStore: observed });
    apps.push(edge);
    await edge.listen({ port: 0, host: '127.0.0.1' });
    const address = edge.server.address();
    const edgeUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/artifactory`;

    const key = (await source.inject({ method: 'GET', url: '/artifactory/api/security/keys/public' })).json() as { alias: string; publicKey: string };
    expect((await edge.inject({ method: 'PUT', url: '/artifactory/api/security/keys/trusted', payload: key })).statusCode).toBe(201);
    const artifacts: { repo: string; path: string }[] = [];
    for (const repo of REPOS) {
      expect((await source.inject({ method: 'PUT', url: `/artifactory/api/repositories/${repo}`, payload: { rclass: 'local' } })).statusCode).toBe(200);
      for (let index = 0; index < PER_REPO; index++) {
        const path = `app/f-${index}.bin`;
        expect((await source.inject({ method: 'PUT', url: `/artifactory/${repo}/${path}`, payload: `${repo} ${index}`, headers: { 'content-type': 'application/octet-stream' } })).statusCode).toBe(201);
        artifacts.push({ repo, path });
      }
    }
    expect((await source.inject({ method: 'POST', url: '/artifactory/api/release/bundles', payload: { name: 'app', version: '1.0', artifacts } })).statusCode).toBe(201);
    observations.length = 0;
    const distributed = await source.inject({ method: 'POST', url: '/artifactory/api/release/distribute/app/1.0', payload: { targets: [{ url: edgeUrl, username: 'admin', password: 'x' }] } });
    expect((distributed.json() as { results: { status: string; message?: string }[] }).results[0]).toMatchObject({ status: 'COMPLETED' });
    await observe();

    expect(observations.at(0)).toEqual([0, 0, 0]);
    expect(observations.at(-1)).toEqual([PER_REPO, PER_REPO, PER_REPO]);
    for (const counts of observations) expect(counts, JSON.stringify(observations)).toSatisfy((seen: number[]) => seen.every((count) => count === 0) || seen.every((count) => count === PER_REPO));
  });
});
