import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, adminFetch, freePort, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

type ErrorBody = { errors: [{ status: number; message: string }] };
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');

/**
 * Two `strata serve` processes: "upstream" holds a local repository; "proxy" has a remote of
 * it (with credentials), a local, a plain static HTTP server that is slow, one that lies about
 * checksums, one that is dead, and a virtual over them.
 */
describe('remote and virtual repositories between two strata processes and plain HTTP upstreams', () => {
  let upstreamDir: string;
  let proxyDir: string;
  let upstream: SpawnedServer;
  let proxy: SpawnedServer;
  let statics: Server;
  let staticUrl: string;
  const staticHits = new Map<string, number>();
  const big = randomBytes(3 * 1024 * 1024);

  const json = (body: unknown) => ({ method: 'PUT', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

  beforeAll(async () => {
    upstreamDir = await mkdtemp(join(tmpdir(), 'strata-upstream-'));
    proxyDir = await mkdtemp(join(tmpdir(), 'strata-proxy-'));
    statics = createServer((request, response) => {
      const path = request.url ?? '/';
      staticHits.set(path, (staticHits.get(path) ?? 0) + 1);
      if (path === '/slow/lib/slow.txt') {
        setTimeout(() => response.writeHead(200, { 'content-length': 4 }).end('slow'), 300);
      } else if (path === '/liar/lib/lie.txt') {
        response.writeHead(200, { 'x-checksum-sha1': sha1('not this'), 'content-length': 3 }).end('lie');
      } else {
        response.writeHead(404).end();
      }
    });
    const port = await freePort();
    await new Promise<void>((resolve) => statics.listen(port, '127.0.0.1', resolve));
    staticUrl = `http://127.0.0.1:${port}`;
    [upstream, proxy] = await Promise.all([spawnServer({ dataDir: upstreamDir }), spawnServer({ dataDir: proxyDir })]);

    expect((await adminFetch(upstream, '/artifactory/api/repositories/libs-local', json({ rclass: 'local' }))).status).toBe(200);
    expect((await adminFetch(upstream, '/artifactory/libs-local/org/big.bin', { method: 'PUT', body: big })).status).toBe(201);
    expect((await adminFetch(upstream, '/artifactory/libs-local/org/shared.txt', { method: 'PUT', body: 'from upstream' })).status).toBe(201);

    const dead = await freePort();
    const repos: [string, Record<string, unknown>][] = [
      ['proxy-local', { rclass: 'local' }],
      ['upstream-remote', { rclass: 'remote', url: `${upstream.url}/artifactory/libs-local`, username: 'admin', password: ADMIN_PASSWORD }],
      ['slow-remote', { rclass: 'remote', url: `${staticUrl}/slow`, socketTimeoutMillis: 5_000 }],
      ['liar-remote', { rclass: 'remote', url: `${staticUrl}/liar`, hardFail: true }],
      ['dead-remote', { rclass: 'remote', url: `http://127.0.0.1:${dead}/x` }],
      ['inner', { rclass: 'virtual', repositories: ['dead-remote', 'slow-remote'] }],
      ['all', { rclass: 'virtual', repositories: ['upstream-remote', 'inner', 'proxy-local', 'liar-remote'], defaultDeploymentRepo: 'proxy-local' }],
    ];
    for (const [key, body] of repos) expect((await adminFetch(proxy, `/artifactory/api/repositories/${key}`, json(body))).status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([upstream?.kill(), proxy?.kill()]);
    await new Promise<void>((resolve) => statics?.close(() => resolve()));
    await rm(upstreamDir, { recursive: true, force: true });
    await rm(proxyDir, { recursive: true, force: true });
  });

  it('shows the flattened order, locals first, and deploys through the virtual to its default deployment repository', async () => {
    const config = (await (await adminFetch(proxy, '/artifactory/api/repositories/all')).json()) as { resolvedRepositories: string[] };
    expect(config.resolvedRepositories).toEqual(['proxy-local', 'upstream-remote', 'dead-remote', 'slow-remote', 'liar-remote']);
    const deployed = await adminFetch(proxy, '/artifactory/all/org/shared.txt', { method: 'PUT', body: 'from proxy-local' });
    expect(deployed.status).toBe(201);
    expect(((await deployed.json()) as { repo: string }).repo).toBe('proxy-local');
    // Locals first: the local copy wins over the upstream's.
    expect(await (await adminFetch(proxy, '/artifactory/all/org/shared.txt')).text()).toBe('from proxy-local');
  });

  it('fetches from the other strata through the virtual, with its checksums, and serves it from the cache afterwards', async () => {
    const response = await adminFetch(proxy, '/artifactory/all/org/big.bin');
    expect(response.status).toBe(200);
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(sha256(bytes)).toBe(sha256(big));
    const info = (await (await adminFetch(proxy, '/artifactory/api/storage/upstream-remote-cache/org/big.bin')).json()) as { checksums: { sha256: string } };
    expect(info.checksums.sha256).toBe(sha256(big));
    const list = (await (await adminFetch(proxy, '/artifactory/api/storage/all/org?list&deep=1')).json()) as { files: { uri: string }[] };
    expect(list.files.map((file: { uri: string }) => file.uri)).toEqual(['/big.bin', '/shared.txt']);
  });

  it('resolves through a slow upstream in a nested virtual, skipping the dead one, and fails hard on the one that lies', async () => {
    const slow = await adminFetch(proxy, '/artifactory/all/lib/slow.txt');
    expect(slow.status).toBe(200);
    expect(await slow.text()).toBe('slow');
    const lie = await adminFetch(proxy, '/artifactory/all/lib/lie.txt');
    expect(lie.status).toBe(502);
    expect(((await lie.json()) as ErrorBody).errors[0].message).toMatch(/checksum/i);
    expect((await adminFetch(proxy, '/artifactory/liar-remote-cache/lib/lie.txt')).status).toBe(404);
    expect((await adminFetch(proxy, '/artifactory/all/lib/absent.txt')).status).toBe(404);
    expect(staticHits.get('/slow/lib/slow.txt')).toBe(1);
  });

  it('keeps serving the cache when the upstream strata is gone, also after the proxy is killed and restarted', async () => {
    await upstream.kill();
    await proxy.kill();
    proxy = await spawnServer({ dataDir: proxyDir });
    const response = await adminFetch(proxy, '/artifactory/all/org/big.bin');
    expect(response.status).toBe(200);
    expect(sha256(Buffer.from(await response.arrayBuffer()))).toBe(sha256(big));
    const missing = await adminFetch(proxy, '/artifactory/upstream-remote/org/never-fetched.bin');
    expect(missing.status).toBe(502);
    expect(((await missing.json()) as ErrorBody).errors[0]).toMatchObject({ status: 502, message: expect.stringMatching(/unreachable/) });
  }, 60_000);
});
