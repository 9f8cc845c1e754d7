import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { ArtifactTreeProjection, openEventStore, RepositoryConfigProjection } from '@strata/store';
import type { OpenedEventStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { buildAppOnStore } from './support/sql-app.ts';

const ttlMs = 1_000;

function publishDocument(version: string): Record<string, unknown> {
  const tarball = gzipSync(Buffer.from(`demo ${version}`));
  return {
    name: 'demo',
    'dist-tags': { latest: version },
    versions: { [version]: { name: 'demo', version, dist: { shasum: createHash('sha1').update(tarball).digest('hex') } } },
    _attachments: { [`demo-${version}.tgz`]: { data: tarball.toString('base64'), length: tarball.length } },
  };
}

type Packument = { versions: Record<string, { deprecated?: string }> };

/**
 * A packument is cached for metadataCacheTtlMs: what another server writes to the same
 * database shows once the TTL has passed, and this server's own writes at once.
 */
describe('npm packuments cached per package, two servers on one database', () => {
  let opened: OpenedEventStore;
  let now = 1_700_000_000_000;
  let a: FastifyInstance;
  let b: FastifyInstance;

  beforeAll(async () => {
    opened = await openEventStore({ projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    const blobs = new MemoryBlobStore();
    a = await buildAppOnStore(opened, blobs, { siteId: 'site-shared', clock: { now: () => now }, limits: { metadataCacheTtlMs: ttlMs } });
    b = await buildAppOnStore(opened, blobs, { siteId: 'site-shared' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await opened?.close();
  });

  const packument = async (app: FastifyInstance) => (await app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/demo' })).json() as Packument;

  it("shows another server's deprecation and publish after the TTL, and its own publish at once", async () => {
    expect((await a.inject({ method: 'PUT', url: '/artifactory/api/repositories/npm', payload: { rclass: 'local', packageType: 'npm' } })).statusCode).toBe(200);
    for (const version of ['1.0.0', '1.1.0']) expect((await a.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/demo', payload: publishDocument(version) })).statusCode).toBe(201);
    expect(Object.keys((await packument(a)).versions)).toEqual(['1.0.0', '1.1.0']);

    // Server B deprecates 1.0.0 (the document npm deprecate sends) and publishes 1.2.0.
    const current = await packument(b);
    const deprecated = { name: 'demo', versions: { ...current.versions, '1.0.0': { ...current.versions['1.0.0'], deprecated: 'use 1.1' } } };
    expect((await b.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/demo/-rev/1', payload: deprecated })).statusCode).toBeLessThan(300);
    expect((await b.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/demo', payload: publishDocument('1.2.0') })).statusCode).toBe(201);

    now += ttlMs;
    const later = await packument(a);
    expect(Object.keys(later.versions)).toEqual(['1.0.0', '1.1.0', '1.2.0']);
    expect(later.versions['1.0.0']!.deprecated).toBe('use 1.1');

    // A's own publish drops what it remembered of the package: visible at once, the clock unmoved.
    expect((await a.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/demo', payload: publishDocument('1.3.0') })).statusCode).toBe(201);
    const own = await packument(a);
    expect(Object.keys(own.versions)).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0']);
    expect(own.versions['1.0.0']!.deprecated).toBe('use 1.1');
  });

  it("extends its packument on its own publish to exactly what a recomputation gives, and recomputes when another server wrote in between", async () => {
    const lean = (version: string, tag = 'latest') => {
      const document = publishDocument(version) as { name: string; versions: Record<string, Record<string, unknown>>; _attachments: Record<string, unknown>; 'dist-tags': Record<string, string> };
      const tarball = Object.values(document._attachments)[0];
      return { ...document, name: 'lean', 'dist-tags': { [tag]: version }, versions: { [version]: { ...document.versions[version], name: 'lean' } }, _attachments: { [`lean-${version}.tgz`]: tarball } };
    };
    const get = async (app: FastifyInstance, abbreviated = false) => {
      const response = await app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/lean', headers: { host: 'registry.test', ...(abbreviated ? { accept: 'application/vnd.npm.install-v1+json' } : {}) } });
      expect(response.statusCode).toBe(200);
      return response.body;
    };
    // A third server on the same database computes from scratch every time (TTL 0): the reference.
    const fresh = await buildAppOnStore(opened, new MemoryBlobStore(), { siteId: 'site-shared', limits: { metadataCacheTtlMs: 0 } });
    try {
      for (const version of ['1.0.0', '1.1.0']) expect((await a.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/lean', payload: lean(version) })).statusCode).toBe(201);
      expect(await get(a)).toBe(await get(fresh));
      // Past the TTL with nothing written since: served as it was (the repository's revision says so).
      now += ttlMs;
      expect(await get(a)).toBe(await get(fresh));

      // A's own publishes (one with another tag) extend what it has; the result is byte-identical to a recomputation.
      for (const [version, tag] of [['1.2.0', 'latest'], ['2.0.0-beta.1', 'beta']] as const) {
        expect((await a.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/lean', payload: lean(version, tag) })).statusCode).toBe(201);
        await new Promise((resolve) => setTimeout(resolve, 50)); // the extension runs after the answer
        expect(await get(a)).toBe(await get(fresh));
        expect(await get(a, true)).toBe(await get(fresh, true));
      }

      // B writes to the repository, then A publishes: A cannot extend (an event of B's lies in between) and recomputes.
      expect((await b.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/lean', payload: lean('1.3.0') })).statusCode).toBe(201);
      expect((await a.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/lean', payload: lean('1.4.0') })).statusCode).toBe(201);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const afterBoth = await get(a);
      expect(Object.keys((JSON.parse(afterBoth) as Packument).versions)).toEqual(['1.0.0', '1.1.0', '1.2.0', '1.3.0', '1.4.0', '2.0.0-beta.1']);
      expect(afterBoth).toBe(await get(fresh));

      // B writes again; within A's TTL A may still serve what it had, after it A sees B's write.
      expect((await b.inject({ method: 'PUT', url: '/artifactory/api/npm/npm/lean', payload: lean('1.5.0') })).statusCode).toBe(201);
      now += ttlMs;
      expect(Object.keys((JSON.parse(await get(a)) as Packument).versions)).toContain('1.5.0');
      expect(await get(a)).toBe(await get(fresh));
    } finally {
      await fresh.close();
    }
  });
});
