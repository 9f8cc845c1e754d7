import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { deadPort, fetchBytes, listeningApp, putJson, rawUpstream, sha, StaticUpstream } from './support/remote-fixtures.ts';
import type { ListeningApp } from './support/remote-fixtures.ts';
import { FakeProjections } from './support/fake-projections.ts';
import type { Properties } from '@strata/core';
import type { ListOptions, RepositoryConfig, TreeItem } from '../src/ports.ts';

/** Counts every read of the projections (the download hot path should make none when warm). */
class CountingProjections extends FakeProjections {
  reads = 0;
  override get(key: string): Promise<RepositoryConfig | undefined> {
    this.reads++;
    return super.get(key);
  }
  override getItem(repo: string, path: string): Promise<TreeItem | undefined> {
    this.reads++;
    return super.getItem(repo, path);
  }
  override properties(repo: string, path: string): Promise<Properties> {
    this.reads++;
    return super.properties(repo, path);
  }
  override list(): Promise<readonly RepositoryConfig[]>;
  override list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]>;
  override list(repo?: string, path?: string, options?: ListOptions): Promise<readonly RepositoryConfig[] | readonly TreeItem[]> {
    this.reads++;
    return repo === undefined ? super.list() : super.list(repo, path ?? '', options ?? { deep: false, includeFolders: false, limit: 100_000 });
  }
}

describe('the warm download path through a virtual of five', () => {
  it('reads no projection per request once warm (4 local misses, then a remote cache hit)', async () => {
    const projections = new CountingProjections();
    const strata = await listeningApp({ metadataCacheTtlMs: 60_000 }, projections);
    const upstream = new StaticUpstream();
    await upstream.start();
    try {
      upstream.files.set('/files/pkg/1k.bin', { body: randomBytes(1024) });
      for (const key of ['l1', 'l2', 'l3', 'l4']) await putJson(`${strata.url}/api/repositories/${key}`, { rclass: 'local' });
      await putJson(`${strata.url}/api/repositories/up`, { rclass: 'remote', url: `${upstream.url}/files` });
      await putJson(`${strata.url}/api/repositories/five`, { rclass: 'virtual', repositories: ['l1', 'l2', 'l3', 'l4', 'up'] });
      expect((await fetchBytes(`${strata.url}/five/pkg/1k.bin`)).status).toBe(200);
      expect((await fetchBytes(`${strata.url}/five/pkg/1k.bin`)).status).toBe(200);
      const before = projections.reads;
      for (let i = 0; i < 20; i++) expect((await fetchBytes(`${strata.url}/five/pkg/1k.bin`)).status).toBe(200);
      expect(projections.reads - before).toBe(0);
      expect(upstream.hitsOf('/files/pkg/1k.bin')).toBe(1);
    } finally {
      await strata.close();
      await upstream.stop();
    }
  });
});

describe('remote repositories: a caching proxy of a plain static HTTP upstream', () => {
  let strata: ListeningApp;
  let upstream: StaticUpstream;
  const remote = (key: string, extra: Record<string, unknown> = {}) => putJson(`${strata.url}/api/repositories/${key}`, { rclass: 'remote', url: `${upstream.url}/files`, ...extra });
  const cachedEvents = () => strata.store.all.filter((event) => event.type === 'RemoteArtifactCached');

  beforeEach(async () => {
    strata = await listeningApp({ remoteStreamHoldbackBytes: 64 * 1024 });
    upstream = new StaticUpstream();
    await upstream.start();
  });
  afterEach(async () => {
    await strata.close();
    await upstream.stop();
  });

  it('lists the folders and files of the upstream folder index with listRemoteFolderItems, caching nothing', async () => {
    upstream.handlers.set('/files/org/', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end(
        '<html><body><h1>Index of /files/org/</h1><pre><a href="../">../</a>\n<a href="a/">a/</a>\n<a href="b%20c.txt">b c.txt</a>\n' +
          '<a href="?C=M;O=A">sort</a>\n<a href="http://elsewhere.example/x">x</a>\n<a href="/outside/y">y</a>\n<a href="a/deeper/z">z</a>\n' +
          `<a href="${upstream.url}/files/org/d.jar">d.jar</a></pre></body></html>`,
      );
    });
    expect((await remote('up', { listRemoteFolderItems: true })).status).toBe(200);
    const info = await fetchBytes(`${strata.url}/api/storage/up/org`);
    expect(info.status).toBe(200);
    const children = (JSON.parse(info.body.toString()) as { children: { uri: string; folder: boolean }[] }).children;
    expect(children).toEqual([
      { uri: '/a', folder: true },
      { uri: '/b c.txt', folder: false },
      { uri: '/d.jar', folder: false },
    ]);
    const index = await fetchBytes(`${strata.url}/up/org/`);
    expect(index.status).toBe(200);
    for (const name of ['a/', 'b c.txt', 'd.jar']) expect(index.body.toString()).toContain(`>${name}<`);
    expect(index.body.toString()).not.toContain('deeper');
    expect(cachedEvents()).toHaveLength(0);

    // Switched off, the same folder is unknown: only what was cached is listed.
    expect((await putJson(`${strata.url}/api/repositories/up`, { listRemoteFolderItems: false }, 'POST')).status).toBe(200);
    expect((await fetchBytes(`${strata.url}/api/storage/up/org`)).status).toBe(404);
  });

  it('fetches on demand only, caches with a RemoteArtifactCached event, then serves from the cache', async () => {
    const body = Buffer.from('hello from upstream');
    upstream.files.set('/files/org/a/1.0/a.txt', { body });
    expect((await remote('up')).status).toBe(200);
    // Proxy, not mirror: nothing fetched or cached at creation.
    expect(upstream.hits.size).toBe(0);
    expect((await fetchBytes(`${strata.url}/up-cache/org/a/1.0/a.txt`)).status).toBe(404);
    expect(upstream.hits.size).toBe(0);

    const first = await fetchBytes(`${strata.url}/up/org/a/1.0/a.txt`);
    expect(first.status).toBe(200);
    expect(first.body.equals(body)).toBe(true);
    expect(first.headers['x-checksum-sha256']).toBe(sha('sha256', body));
    expect(upstream.hitsOf('/files/org/a/1.0/a.txt')).toBe(1);
    expect(cachedEvents()).toHaveLength(1);
    expect(cachedEvents()[0]!.data).toMatchObject({ path: 'org/a/1.0/a.txt', sha256: sha('sha256', body), remoteUrl: `${upstream.url}/files/org/a/1.0/a.txt` });

    const second = await fetchBytes(`${strata.url}/up/org/a/1.0/a.txt`);
    expect(second.body.equals(body)).toBe(true);
    const cacheOnly = await fetchBytes(`${strata.url}/up-cache/org/a/1.0/a.txt`);
    expect(cacheOnly.status).toBe(200);
    expect(cacheOnly.body.equals(body)).toBe(true);
    expect(upstream.hitsOf('/files/org/a/1.0/a.txt')).toBe(1);
    const info = await fetchBytes(`${strata.url}/api/storage/up/org/a/1.0/a.txt`);
    expect(info.json()).toMatchObject({ repo: 'up', path: '/org/a/1.0/a.txt', size: String(body.length), checksums: { sha1: sha('sha1', body) } });
  });

  it('answers HEAD and Range on a miss from the cache once fetched', async () => {
    const body = randomBytes(300 * 1024);
    upstream.files.set('/files/h.bin', { body });
    upstream.files.set('/files/r.bin', { body });
    await remote('up');
    const head = await fetchBytes(`${strata.url}/up/h.bin`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(body.length));
    expect(head.headers['x-checksum-sha256']).toBe(sha('sha256', body));
    expect((await fetchBytes(`${strata.url}/up-cache/h.bin`)).status).toBe(200);
    const ranged = await fetchBytes(`${strata.url}/up/r.bin`, { headers: { range: 'bytes=100-199' } });
    expect(ranged.status).toBe(206);
    expect(ranged.body.equals(body.subarray(100, 200))).toBe(true);
  });

  it('remembers an upstream 404 for missedRetrievalCachePeriodSecs, and asks again when the period is 0', async () => {
    await remote('up');
    await remote('eager', { missedRetrievalCachePeriodSecs: 0 });
    for (let i = 0; i < 3; i++) expect((await fetchBytes(`${strata.url}/up/nope.txt`)).status).toBe(404);
    expect(upstream.hitsOf('/files/nope.txt')).toBe(1);
    for (let i = 0; i < 2; i++) {
      const missing = await fetchBytes(`${strata.url}/eager/nope.txt`);
      expect(missing.status).toBe(404);
      expect(missing.json().errors[0].status).toBe(404);
    }
    expect(upstream.hitsOf('/files/nope.txt')).toBe(3);
  });

  it('is deletable (then fetched again on the next request) but not deployable', async () => {
    upstream.files.set('/files/x.bin', { body: Buffer.from('x1') });
    await remote('up');
    expect((await fetchBytes(`${strata.url}/up/x.bin`)).body.toString()).toBe('x1');
    const deployCache = await fetchBytes(`${strata.url}/up-cache/y.bin`, { method: 'PUT', body: 'y' });
    expect(deployCache.status).toBe(405);
    expect(deployCache.json().errors[0].message).toMatch(/cached on demand, never deployed/);
    expect((await fetchBytes(`${strata.url}/up/y.bin`, { method: 'PUT', body: 'y' })).status).toBe(400);
    expect((await fetchBytes(`${strata.url}/up-cache/x.bin`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetchBytes(`${strata.url}/up-cache/x.bin`)).status).toBe(404);
    upstream.files.set('/files/x.bin', { body: Buffer.from('x2') });
    expect((await fetchBytes(`${strata.url}/up/x.bin`)).body.toString()).toBe('x2');
    expect(upstream.hitsOf('/files/x.bin')).toBe(2);
  });

  it('never caches an upstream folder index, and a folder request (trailing slash) never goes upstream', async () => {
    upstream.handlers.set('/files/org/lib', (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html><a href="a.jar">a.jar</a></html>');
    });
    upstream.files.set('/files/org/lib/a.jar', { body: Buffer.from('jar') });
    upstream.files.set('/files/page.html', { body: Buffer.from('<html/>'), headers: { 'content-type': 'text/html' } });
    await remote('up');
    const index = await fetchBytes(`${strata.url}/up/org/lib`);
    expect(index.status).toBe(404);
    expect(index.json().errors[0].status).toBe(404);
    expect((await fetchBytes(`${strata.url}/up/org/lib/a.jar`)).body.toString()).toBe('jar');
    expect((await fetchBytes(`${strata.url}/up/page.html`)).body.toString()).toBe('<html/>');
    const folder = await fetchBytes(`${strata.url}/up/org/other/`);
    expect(folder.status).toBe(404);
    expect(upstream.hitsOf('/files/org/other')).toBe(0);
    expect(cachedEvents().map((event) => event.data.path).sort()).toEqual(['org/lib/a.jar', 'page.html']);
  });

  it('lets a request from another repository manager through a virtual fetch remote content only with artifactoryRequestsCanRetrieveRemoteArtifacts', async () => {
    upstream.files.set('/files/a.txt', { body: Buffer.from('a') });
    upstream.files.set('/files/b.txt', { body: Buffer.from('b') });
    await remote('up');
    await putJson(`${strata.url}/api/repositories/closed`, { rclass: 'virtual', repositories: ['up'] });
    await putJson(`${strata.url}/api/repositories/open`, { rclass: 'virtual', repositories: ['up'], artifactoryRequestsCanRetrieveRemoteArtifacts: true });
    const asArtifactory = { 'user-agent': 'Artifactory/7.77.3' };
    expect((await fetchBytes(`${strata.url}/closed/a.txt`, { headers: asArtifactory })).status).toBe(404);
    expect(upstream.hitsOf('/files/a.txt')).toBe(0);
    expect((await fetchBytes(`${strata.url}/open/a.txt`, { headers: asArtifactory })).body.toString()).toBe('a');
    // Once cached, the closed virtual serves it too; a plain client fetches through either.
    expect((await fetchBytes(`${strata.url}/closed/a.txt`, { headers: asArtifactory })).body.toString()).toBe('a');
    expect((await fetchBytes(`${strata.url}/closed/b.txt`)).body.toString()).toBe('b');
  });

  it('storeArtifactsLocally: false streams through, verified, and keeps nothing (each request asks upstream)', async () => {
    const small = Buffer.from('pass-through');
    const large = randomBytes(200 * 1024);
    upstream.files.set('/files/s.txt', { body: small });
    upstream.files.set('/files/l.bin', { body: large });
    upstream.files.set('/files/lie.bin', { body: small, headers: { 'x-checksum-sha1': sha('sha1', 'x') } });
    await remote('through', { storeArtifactsLocally: false });
    for (let i = 0; i < 2; i++) {
      expect((await fetchBytes(`${strata.url}/through/s.txt`)).body.equals(small)).toBe(true);
      expect(sha('sha256', (await fetchBytes(`${strata.url}/through/l.bin`)).body)).toBe(sha('sha256', large));
    }
    expect(upstream.hitsOf('/files/s.txt')).toBe(2);
    expect(upstream.hitsOf('/files/l.bin')).toBe(2);
    const head = await fetchBytes(`${strata.url}/through/s.txt`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(small.length));
    expect((await fetchBytes(`${strata.url}/through/lie.bin`)).status).toBe(502);
    expect((await fetchBytes(`${strata.url}/through-cache/s.txt`)).status).toBe(404);
    expect(cachedEvents()).toHaveLength(0);
  });

  it('sends the configured username and password upstream', async () => {
    upstream.requiredAuth = `Basic ${Buffer.from('reader:s3cret').toString('base64')}`;
    upstream.files.set('/files/secret.txt', { body: Buffer.from('classified') });
    await remote('with-auth', { username: 'reader', password: 's3cret' });
    await remote('without-auth');
    expect((await fetchBytes(`${strata.url}/with-auth/secret.txt`)).body.toString()).toBe('classified');
    const refused = await fetchBytes(`${strata.url}/without-auth/secret.txt`);
    expect(refused.status).toBe(502);
    expect(refused.json().errors[0].message).toMatch(/credentials \(401\)/);
    // The password is never shown back.
    expect((await fetchBytes(`${strata.url}/api/repositories/with-auth`)).json().password).toBe('');
  });

  it('offline: serves the cache, never asks upstream, 404 for what is not cached', async () => {
    upstream.files.set('/files/c.txt', { body: Buffer.from('cached') });
    upstream.files.set('/files/d.txt', { body: Buffer.from('never') });
    await remote('up');
    await fetchBytes(`${strata.url}/up/c.txt`);
    await putJson(`${strata.url}/api/repositories/up`, { offline: true }, 'POST');
    expect((await fetchBytes(`${strata.url}/up/c.txt`)).body.toString()).toBe('cached');
    const miss = await fetchBytes(`${strata.url}/up/d.txt`);
    expect(miss.status).toBe(404);
    expect(upstream.hitsOf('/files/d.txt')).toBe(0);
  });

  it('revalidates a cached file older than retrievalCachePeriodSecs (304 keeps it) and serves it while the upstream is down unless hardFail', async () => {
    upstream.files.set('/files/meta.xml', { body: Buffer.from('<v1/>') });
    await remote('up', { retrievalCachePeriodSecs: 0, assumedOfflinePeriodSecs: 0 });
    expect((await fetchBytes(`${strata.url}/up/meta.xml`)).body.toString()).toBe('<v1/>');
    expect((await fetchBytes(`${strata.url}/up/meta.xml`)).body.toString()).toBe('<v1/>');
    expect(upstream.hitsOf('/files/meta.xml')).toBe(2);
    expect(cachedEvents()).toHaveLength(1);
    upstream.files.set('/files/meta.xml', { body: Buffer.from('<v2/>') });
    expect((await fetchBytes(`${strata.url}/up/meta.xml`)).body.toString()).toBe('<v2/>');
    expect(cachedEvents()).toHaveLength(2);

    await upstream.stop();
    expect((await fetchBytes(`${strata.url}/up/meta.xml`)).body.toString()).toBe('<v2/>');
    await putJson(`${strata.url}/api/repositories/up`, { hardFail: true }, 'POST');
    const failed = await fetchBytes(`${strata.url}/up/meta.xml`);
    expect(failed.status).toBe(502);
    expect(failed.json().errors[0].message).toMatch(/unreachable/);
  });

  it('assumes an unreachable upstream offline for assumedOfflinePeriodSecs (no connection attempts meanwhile)', async () => {
    const port = await deadPort();
    await putJson(`${strata.url}/api/repositories/dead`, { rclass: 'remote', url: `http://127.0.0.1:${port}/files`, assumedOfflinePeriodSecs: 300 });
    const first = await fetchBytes(`${strata.url}/dead/a.txt`);
    expect(first.status).toBe(502);
    expect(first.json().errors[0].message).toMatch(/unreachable \(ECONNREFUSED\)/);
    // The upstream comes back on the same port: within the period it is still not asked.
    const revived = new StaticUpstream();
    revived.files.set('/files/a.txt', { body: Buffer.from('back') });
    await revived.start(port);
    try {
      const second = await fetchBytes(`${strata.url}/dead/a.txt`);
      expect(second.status).toBe(502);
      expect(second.json().errors[0].message).toMatch(/assumed offline/);
      expect(revived.hitsOf('/files/a.txt')).toBe(0);
      // A configuration change forgets the assumption.
      await putJson(`${strata.url}/api/repositories/dead`, { assumedOfflinePeriodSecs: 0 }, 'POST');
      expect((await fetchBytes(`${strata.url}/dead/a.txt`)).body.toString()).toBe('back');
    } finally {
      await revived.stop();
    }
  });

  it('verifies X-Checksum headers and .sha1 sidecars: a mismatch is a 502, nothing is cached, the next request tries again', async () => {
    const body = Buffer.from('the real content');
    upstream.files.set('/files/lie-header.jar', { body, headers: { 'x-checksum-sha1': sha('sha1', 'something else') } });
    upstream.files.set('/files/lie-sidecar.jar', { body });
    upstream.files.set('/files/lie-sidecar.jar.sha1', { body: Buffer.from(`${sha('sha1', 'other')}  lie-sidecar.jar\n`) });
    upstream.files.set('/files/good-sidecar.jar', { body });
    upstream.files.set('/files/good-sidecar.jar.sha1', { body: Buffer.from(sha('sha1', body)) });
    await remote('up');
    for (const name of ['lie-header.jar', 'lie-sidecar.jar']) {
      for (let attempt = 1; attempt <= 2; attempt++) {
        const response = await fetchBytes(`${strata.url}/up/${name}`);
        expect(response.status).toBe(502);
        expect(response.json().errors[0].message).toMatch(/checksum|sidecar/i);
        expect((await fetchBytes(`${strata.url}/up-cache/${name}`)).status).toBe(404);
        expect(upstream.hitsOf(`/files/${name}`)).toBe(attempt);
      }
    }
    expect((await fetchBytes(`${strata.url}/up/good-sidecar.jar`)).body.equals(body)).toBe(true);
    expect(cachedEvents().map((event) => event.data.path)).toEqual(['good-sidecar.jar']);
  });

  it('answers bad upstreams with 502/504 in Artifactory shape, caches nothing and tries again next time', async () => {
    const cases: { name: string; status: number; message: RegExp; install: () => void }[] = [
      {
        name: 'short-body',
        status: 502,
        message: /Content-Length|failed while sending the body/,
        install: () =>
          upstream.handlers.set('/files/short-body', (_request, response) => {
            response.writeHead(200, { 'content-length': 1000 });
            response.write(Buffer.alloc(100, 1));
            setTimeout(() => response.socket?.destroy(), 20);
          }),
      },
      {
        name: 'dropped-mid-body',
        status: 502,
        message: /failed while sending the body|Content-Length/,
        install: () =>
          upstream.handlers.set('/files/dropped-mid-body', (_request, response) => {
            response.writeHead(200); // chunked
            response.write(Buffer.alloc(1000, 2));
            setTimeout(() => response.socket?.destroy(), 20);
          }),
      },
      {
        name: 'stalled-body',
        status: 504,
        message: /timed out while sending the body/,
        install: () =>
          upstream.handlers.set('/files/stalled-body', (_request, response) => {
            response.writeHead(200, { 'content-length': 1000 });
            response.write(Buffer.alloc(10, 3)); // and then nothing
          }),
      },
      {
        name: 'stalled-headers',
        status: 504,
        message: /timed out before answering/,
        install: () => upstream.handlers.set('/files/stalled-headers', () => undefined),
      },
      {
        name: 'redirect-loop',
        status: 502,
        message: /redirected in a loop|redirected more than allowed/,
        install: () =>
          upstream.handlers.set('/files/redirect-loop', (_request, response) => {
            response.writeHead(302, { location: '/files/redirect-loop' }).end();
          }),
      },
      {
        name: 'redirect-chain',
        status: 502,
        message: /redirected in a loop|redirected more than allowed/,
        install: () => {
          for (let hop = 0; hop < 10; hop++) {
            upstream.handlers.set(hop === 0 ? '/files/redirect-chain' : `/hop/${hop}`, (_request, response) => {
              response.writeHead(302, { location: `/hop/${hop + 1}` }).end();
            });
          }
        },
      },
      {
        name: 'server-error',
        status: 502,
        message: /answered 500/,
        install: () =>
          upstream.handlers.set('/files/server-error', (_request, response) => {
            response.writeHead(500).end('boom');
          }),
      },
    ];
    await remote('up', { socketTimeoutMillis: 400 });
    for (const c of cases) {
      c.install();
      for (let attempt = 1; attempt <= 2; attempt++) {
        const response = await fetchBytes(`${strata.url}/up/${c.name}`);
        expect({ name: c.name, status: response.status }).toEqual({ name: c.name, status: c.status });
        expect(response.json().errors[0]).toMatchObject({ status: c.status, message: expect.stringMatching(c.message) });
        expect((await fetchBytes(`${strata.url}/up-cache/${c.name}`)).status).toBe(404);
      }
      expect(upstream.hitsOf(`/files/${c.name}`)).toBeGreaterThanOrEqual(2);
      // Fixed upstream: the next request caches it.
      upstream.handlers.delete(`/files/${c.name}`);
      upstream.files.set(`/files/${c.name}`, { body: Buffer.from(`fixed ${c.name}`) });
      expect((await fetchBytes(`${strata.url}/up/${c.name}`)).body.toString()).toBe(`fixed ${c.name}`);
    }
    expect(cachedEvents()).toHaveLength(cases.length);
  });

  it('answers an upstream that speaks garbage instead of HTTP with a 502', async () => {
    const garbage = await rawUpstream('this is not HTTP at all\r\n\r\n');
    try {
      await putJson(`${strata.url}/api/repositories/liar`, { rclass: 'remote', url: `${garbage.url}/x`, assumedOfflinePeriodSecs: 0 });
      const response = await fetchBytes(`${strata.url}/liar/a.jar`);
      expect(response.status).toBe(502);
      expect(response.json().errors[0].message).toMatch(/upstream/);
      expect((await fetchBytes(`${strata.url}/liar-cache/a.jar`)).status).toBe(404);
    } finally {
      await garbage.close();
    }
  });

  it('streams a large file to the client while it is stored: the client gets bytes before the upstream finished', async () => {
    const part1 = randomBytes(512 * 1024);
    const part2 = randomBytes(512 * 1024);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    upstream.handlers.set('/files/big.bin', async (_request, response) => {
      response.writeHead(200, { 'content-length': part1.length + part2.length });
      response.write(part1);
      await released;
      response.end(part2);
    });
    await remote('up');
    const response = await request(`${strata.url}/up/big.bin`);
    expect(response.statusCode).toBe(200);
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of response.body) {
      chunks.push(chunk as Buffer);
      received += (chunk as Buffer).length;
      // Well past the holdback, with the upstream still holding back its second half.
      if (received >= 256 * 1024) release();
    }
    const all = Buffer.concat(chunks);
    expect(all.equals(Buffer.concat([part1, part2]))).toBe(true);
    const cached = await fetchBytes(`${strata.url}/up-cache/big.bin`);
    expect(sha('sha256', cached.body)).toBe(sha('sha256', all));
  });

  it('cuts a streamed response whose upstream fails after the holdback, and caches nothing', async () => {
    upstream.handlers.set('/files/breaks.bin', (_request, response) => {
      response.writeHead(200, { 'content-length': 4 * 1024 * 1024 });
      response.write(randomBytes(512 * 1024));
      setTimeout(() => response.socket?.destroy(), 50);
    });
    await remote('up');
    await expect(fetchBytes(`${strata.url}/up/breaks.bin`)).rejects.toThrow();
    expect((await fetchBytes(`${strata.url}/up-cache/breaks.bin`)).status).toBe(404);
    expect(cachedEvents()).toHaveLength(0);
  });

  it('64 concurrent clients asking for the same uncached 10 MiB file cause exactly one upstream fetch and all get identical bytes', async () => {
    const body = randomBytes(10 * 1024 * 1024);
    upstream.files.set('/files/ten.bin', { body });
    await remote('up');
    const responses = await Promise.all(Array.from({ length: 64 }, () => fetchBytes(`${strata.url}/up/ten.bin`)));
    expect(upstream.hitsOf('/files/ten.bin')).toBe(1);
    const expected = sha('sha256', body);
    for (const response of responses) {
      expect(response.status).toBe(200);
      expect(sha('sha256', response.body)).toBe(expected);
    }
    expect(cachedEvents()).toHaveLength(1);
  });
});
