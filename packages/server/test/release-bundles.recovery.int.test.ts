import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DISTRIBUTION_STREAM } from '@strata/core';
import type { NewEvent } from '@strata/core';
import { ArtifactTreeProjection, openEventStore, RepositoryConfigProjection } from '@strata/store';
import type { OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildAppOnStore } from './support/sql-app.ts';

/**
 * An edge that stopped after its commit point (ReleaseBundleReceived appended, binaries
 * stored) but before the files were placed: the next start rolls the publish forward.
 */
describe('a release bundle received but not published when the edge stopped', () => {
  let opened: OpenedEventStore | undefined;
  let app: FastifyInstance | undefined;
  afterAll(async () => {
    await app?.close();
    await opened?.close();
  });

  it('is published at the next start, its files at their keys and paths', async () => {
    opened = await openEventStore({ projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    const blobs = new MemoryBlobStore();
    const bytes = Buffer.from('rolled forward');
    const lease = await blobs.put(Readable.from([bytes]));
    lease.release();
    const digest = (algorithm: string) => createHash(algorithm).update(bytes).digest('hex');
    const manifest = {
      formatVersion: 1,
      name: 'app',
      version: '2.0',
      description: '',
      created: 1_700_000_000_000,
      createdBy: 'admin',
      sourceSite: 'site-source',
      signingKey: { alias: 'strata-site-source', fingerprint: `SHA256:${'A'.repeat(43)}=` },
      repositories: [{ key: 'libs', packageType: 'Generic' }],
      artifacts: [{ repo: 'libs', path: 'app/2.0/app.bin', sha256: digest('sha256'), sha1: digest('sha1'), md5: digest('md5'), size: bytes.length, mimeType: 'application/octet-stream', properties: { k: ['v'] } }],
    };
    const received: NewEvent = {
      id: 'received-1',
      origin: 'site-edge',
      originSeq: 1,
      hlc: { wall: 1_700_000_000_100, logical: 0 },
      meta: { actor: 'admin' },
      type: 'ReleaseBundleReceived',
      data: { manifest, signature: `${'A'.repeat(86)}==`, distributionId: 'distribution-0001' },
    };
    await opened.store.append(DISTRIBUTION_STREAM, [received], { expectedRevision: 'no_stream' });

    app = await buildAppOnStore(opened, blobs, { siteId: 'site-edge', edge: true });
    const file = await app.inject({ method: 'GET', url: '/artifactory/libs/app/2.0/app.bin' });
    expect(file.statusCode).toBe(200);
    expect(file.body).toBe('rolled forward');
    expect((await app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/app/2.0/app.bin?properties' })).json()).toMatchObject({ properties: { k: ['v'] } });
    expect((await app.inject({ method: 'GET', url: '/artifactory/api/release/bundles/app/2.0' })).json()).toMatchObject({ status: 'COMPLETED', kind: 'received' });
    // Still read-only for users.
    expect((await app.inject({ method: 'PUT', url: '/artifactory/libs/app/2.0/other.bin', payload: 'x', headers: { 'content-type': 'application/octet-stream' } })).statusCode).toBe(403);
  });
});
