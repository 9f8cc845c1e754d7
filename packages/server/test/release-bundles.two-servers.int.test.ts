import { ArtifactTreeProjection, openEventStore, RepositoryConfigProjection } from '@strata/store';
import type { OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralSigningKey } from '../src/distribution/signing-keys.ts';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildAppOnStore } from './support/sql-app.ts';

/**
 * Two servers of one site over one database (one PGlite store shared in-process): a bundle
 * created through one is seen, and stays immutable, through the other, although each folds
 * the distribution stream in its own memory.
 */
describe('release bundles on two servers sharing one database', () => {
  let opened: OpenedEventStore;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    opened = await openEventStore({ projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    const blobs = new MemoryBlobStore();
    const signingKey = ephemeralSigningKey('strata-site-shared');
    for (let i = 0; i < 2; i++) apps.push(await buildAppOnStore(opened, blobs, { siteId: 'site-shared', signingKey }));
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await opened?.close();
  });

  it('shows a bundle created through one server through the other, and refuses to create it again there', async () => {
    const [a, b] = apps as [FastifyInstance, FastifyInstance];
    expect((await a.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } })).statusCode).toBe(200);
    expect((await a.inject({ method: 'PUT', url: '/artifactory/libs/x/app.bin', payload: 'app', headers: { 'content-type': 'application/octet-stream' } })).statusCode).toBe(201);
    // b folds the (empty) distribution stream before a writes to it.
    expect((await b.inject({ method: 'GET', url: '/artifactory/api/release/bundles' })).json()).toEqual({ bundles: [] });
    const body = { name: 'app', version: '1', artifacts: [{ repo: 'libs', path: 'x/app.bin' }] };
    expect((await a.inject({ method: 'POST', url: '/artifactory/api/release/bundles', payload: body })).statusCode).toBe(201);
    const listed = (await b.inject({ method: 'GET', url: '/artifactory/api/release/bundles' })).json() as { bundles: { name: string }[] };
    expect(listed.bundles.map((bundle) => bundle.name)).toEqual(['app']);
    expect((await b.inject({ method: 'POST', url: '/artifactory/api/release/bundles', payload: body })).statusCode).toBe(409);
  });
});
