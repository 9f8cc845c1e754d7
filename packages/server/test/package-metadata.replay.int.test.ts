import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { HybridLogicalClock } from '@strata/core';
import type { NewEvent, RecordedEvent } from '@strata/core';
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
import { storedZip } from './support/stored-zip.ts';

/**
 * Package metadata is a function of the repository's events: a second site that holds the
 * same events (here: a fresh store fed every stream of the first, streams in another order,
 * as federation or a replay would) serves byte-identical packuments, maven-metadata.xml and
 * PyPI pages, with no index of its own to rebuild.
 */
describe('package metadata after a replay of the events on another store', () => {
  const stores: OpenedEventStore[] = [];
  const apps: FastifyInstance[] = [];
  const blobs = new MemoryBlobStore();

  async function site(siteId: string): Promise<{ app: FastifyInstance; opened: OpenedEventStore }> {
    const opened = await openEventStore({ projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    stores.push(opened);
    const readers = new ProjectionReaders(new ArtifactTreeQueries(opened.db), new RepositoryQueries(opened.db));
    const clock = { now: () => Date.now() };
    const app = await buildApp({
      eventStore: opened.store,
      blobStore: blobs,
      repositories: readers,
      artifacts: readers,
      downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
      clock,
      hlc: new HybridLogicalClock({ clock }),
      siteId,
      newId: hyperid({ urlSafe: true }),
      registerAuth: registerPermissiveAuth,
      limits: { metadataCacheTtlMs: 0 },
    });
    apps.push(app);
    return { app, opened };
  }

  let a: FastifyInstance;
  let b: FastifyInstance;

  beforeAll(async () => {
    const first = await site('site-a');
    a = first.app;
    const ok = async (response: Promise<{ statusCode: number; body: string }>, status: number) => {
      const answered = await response;
      expect(answered.statusCode, answered.body).toBe(status);
    };
    for (const [key, packageType, extra] of [
      ['mvn', 'maven', { maxUniqueSnapshots: 2 }],
      ['npmjs', 'npm', {}],
      ['py', 'pypi', {}],
    ] as const) {
      await ok(a.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: { rclass: 'local', packageType, ...extra } }), 200);
    }
    // Maven: releases and three unique snapshot builds (the oldest removed by maxUniqueSnapshots).
    for (const version of ['1.0', '1.2', '1.10']) {
      await ok(a.inject({ method: 'PUT', url: `/artifactory/mvn/org/demo/lib/${version}/lib-${version}.jar`, payload: `jar ${version}` }), 201);
    }
    for (const build of [1, 2, 3]) {
      await ok(a.inject({ method: 'PUT', url: `/artifactory/mvn/org/demo/lib/2.0-SNAPSHOT/lib-2.0-20240101.00000${build}-${build}.jar`, payload: `snapshot ${build}` }), 201);
    }
    // npm: three versions, a tag, one version unpublished.
    for (const version of ['1.0.0', '1.1.0', '2.0.0']) {
      const tarball = gzipSync(Buffer.from(`demo ${version}`));
      const document = {
        name: 'demo',
        'dist-tags': { latest: version },
        versions: { [version]: { name: 'demo', version, dependencies: { x: '^1' }, dist: { shasum: createHash('sha1').update(tarball).digest('hex') } } },
        _attachments: { [`demo-${version}.tgz`]: { data: tarball.toString('base64'), length: tarball.length } },
      };
      await ok(a.inject({ method: 'PUT', url: '/artifactory/api/npm/npmjs/demo', payload: document }), 201);
    }
    await ok(a.inject({ method: 'PUT', url: '/artifactory/api/npm/npmjs/-/package/demo/dist-tags/stable', payload: '"1.0.0"', headers: { 'content-type': 'application/json' } }), 201);
    await ok(a.inject({ method: 'DELETE', url: '/artifactory/api/npm/npmjs/demo/-/demo-1.1.0.tgz/-rev/x' }), 200);
    // PyPI: one wheel, as twine sends it.
    const wheel = storedZip({ 'demo_pkg/__init__.py': '', 'demo_pkg-0.1.dist-info/METADATA': 'Metadata-Version: 2.1\nName: Demo_Pkg\nVersion: 0.1\n\n' });
    const boundary = 'strata-boundary';
    const field = (name: string, value: string) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const body = Buffer.concat([
      Buffer.from(
        field(':action', 'file_upload') +
          field('name', 'Demo_Pkg') +
          field('version', '0.1') +
          field('filetype', 'bdist_wheel') +
          field('requires_python', '>=3.9') +
          field('sha256_digest', createHash('sha256').update(wheel).digest('hex')) +
          `--${boundary}\r\nContent-Disposition: form-data; name="content"; filename="demo_pkg-0.1-py3-none-any.whl"\r\nContent-Type: application/octet-stream\r\n\r\n`,
      ),
      wheel,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    await ok(a.inject({ method: 'POST', url: '/artifactory/api/pypi/py', payload: body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }), 200);

    // The second site: every repository stream of the first, streams in reverse order.
    const second = await site('site-b');
    b = second.app;
    const { events } = await first.opened.store.readAll({ maxCount: 10_000 });
    const byStream = new Map<string, RecordedEvent[]>();
    for (const event of events) if (event.stream.startsWith('repo-')) (byStream.get(event.stream) ?? byStream.set(event.stream, []).get(event.stream)!).push(event);
    for (const [stream, streamEvents] of [...byStream.entries()].reverse()) {
      const copies = streamEvents.map(({ stream: _stream, revision: _revision, position: _position, ...event }) => event as NewEvent);
      await second.opened.store.append(stream, copies, { expectedRevision: 'no_stream' });
    }
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const opened of stores) await opened.close();
  });

  const same = async (url: string, headers: Record<string, string> = {}) => {
    const [left, right] = await Promise.all([a, b].map((app) => app.inject({ method: 'GET', url, headers: { host: 'registry.test', ...headers } })));
    expect(left!.statusCode, `${url}: ${left!.body}`).toBe(200);
    expect(right!.statusCode, url).toBe(200);
    expect(right!.body).toBe(left!.body);
    return left!.body;
  };

  it('serves identical maven-metadata.xml and sidecars', async () => {
    const artifact = await same('/artifactory/mvn/org/demo/lib/maven-metadata.xml');
    expect(artifact).toMatch(/<version>1\.0<\/version>\s*<version>1\.2<\/version>\s*<version>1\.10<\/version>\s*<version>2\.0-SNAPSHOT<\/version>/);
    const snapshot = await same('/artifactory/mvn/org/demo/lib/2.0-SNAPSHOT/maven-metadata.xml');
    expect(snapshot).toContain('<buildNumber>3</buildNumber>');
    await same('/artifactory/mvn/org/demo/lib/maven-metadata.xml.sha1');
    // maxUniqueSnapshots removed the first build with events: the replay removes it too.
    expect((await b.inject({ method: 'GET', url: '/artifactory/mvn/org/demo/lib/2.0-SNAPSHOT/lib-2.0-20240101.000001-1.jar' })).statusCode).toBe(404);
  });

  it('serves identical packuments, full and abbreviated', async () => {
    const full = JSON.parse(await same('/artifactory/api/npm/npmjs/demo')) as { versions: Record<string, unknown>; 'dist-tags': Record<string, string> };
    expect(Object.keys(full.versions)).toEqual(['1.0.0', '2.0.0']);
    expect(full['dist-tags']).toEqual({ latest: '2.0.0', stable: '1.0.0' });
    await same('/artifactory/api/npm/npmjs/demo', { accept: 'application/vnd.npm.install-v1+json' });
  });

  it('serves identical PyPI pages, HTML and JSON', async () => {
    expect(await same('/artifactory/api/pypi/py/simple/demo-pkg/')).toContain('data-requires-python="&#62;=3.9"');
    await same('/artifactory/api/pypi/py/simple/demo-pkg/', { accept: 'application/vnd.pypi.simple.v1+json' });
    await same('/artifactory/api/pypi/py/simple/');
  });
});
