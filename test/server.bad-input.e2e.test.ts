import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_AUTH, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

/** A request sent with its path exactly as written (no client-side normalisation). */
function rawRequest(server: SpawnedServer, method: string, path: string, body = ''): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers: { authorization: ADMIN_AUTH, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string, depth: number) => {
    if (depth > 8) return;
    for (const entry of await readdir(current, { withFileTypes: true }).catch(() => [])) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) await walk(full, depth + 1);
      else found.push(`${full}:${(await stat(full)).size}`);
    }
  };
  await walk(dir, 0);
  return found.sort();
}

describe('bad input over a real socket', () => {
  let dataDir: string;
  let server: SpawnedServer;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'strata-bad-input-'));
    server = await spawnServer({ dataDir });
    const create = await adminFetch(server, '/artifactory/api/repositories/bad', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"rclass":"local"}' });
    expect(create.status).toBe(200);
  });
  afterAll(async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each([
    ['/artifactory/bad/../../etc/passwd'],
    ['/artifactory/bad/a/../b.txt'],
    ['/artifactory/bad/./a.txt'],
    ['/artifactory/bad/%2e%2e%2fescape.txt'],
    ['/artifactory/bad/a%00.txt'],
    ['/artifactory/bad/a%5cb.txt'],
    ['/artifactory/bad//a.txt'],
  ])('refuses a deploy to %s with a 4xx in Artifactory shape', async (path) => {
    const response = await rawRequest(server, 'PUT', path, 'payload');
    expect(response.status, response.body).toBeGreaterThanOrEqual(400);
    expect(response.status).toBeLessThan(500);
    expect(JSON.parse(response.body).errors[0].status).toBe(response.status);
  });

  it('refuses invalid JSON configuration', async () => {
    const response = await adminFetch(server, '/artifactory/api/repositories/broken', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"rclass": "local",' });
    expect(response.status).toBe(400);
    expect((await adminFetch(server, '/artifactory/api/repositories/broken')).status).toBe(404);
  });

  it('leaves nothing behind when the client goes away mid-upload', async () => {
    const blobsBefore = await filesUnder(join(dataDir, 'blobs'));
    await new Promise<void>((resolve, reject) => {
      const socket = connect(server.port, '127.0.0.1', () => {
        socket.write(`PUT /artifactory/bad/partial.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${ADMIN_AUTH}\r\nContent-Length: 100000\r\n\r\n`);
        socket.write(Buffer.alloc(10_000, 7));
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 200);
      });
      socket.on('error', reject);
    });
    // Bounded wait for the server to notice the aborted upload and clean up.
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      if ((await filesUnder(join(dataDir, 'blobs'))).join() === blobsBefore.join()) break;
    }
    expect((await adminFetch(server, '/artifactory/bad/partial.bin')).status).toBe(404);
    expect(await filesUnder(join(dataDir, 'blobs'))).toEqual(blobsBefore);
    const list = await adminFetch(server, '/artifactory/api/storage/bad?list&deep=1');
    expect(list.status).toBe(200);
    expect(((await list.json()) as { files: unknown[] }).files).toEqual([]);
  });

  it('refuses a checksum mismatch with 409 and stores nothing', async () => {
    const blobsBefore = await filesUnder(join(dataDir, 'blobs'));
    const response = await adminFetch(server, '/artifactory/bad/mismatch.bin', { method: 'PUT', headers: { 'x-checksum-sha1': 'f'.repeat(40) }, body: 'content' });
    expect(response.status).toBe(409);
    expect((await adminFetch(server, '/artifactory/bad/mismatch.bin')).status).toBe(404);
    expect(await filesUnder(join(dataDir, 'blobs'))).toEqual(blobsBefore);
  });

  it('answers concurrent deploys of one path with 201s and one consistent result', async () => {
    const bodies = Array.from({ length: 12 }, (_, i) => `concurrent-${i}`);
    const statuses = await Promise.all(bodies.map(async (body) => (await adminFetch(server, '/artifactory/bad/same.txt', { method: 'PUT', body })).status));
    expect(statuses.every((status) => status === 201)).toBe(true);
    const download = await adminFetch(server, '/artifactory/bad/same.txt');
    expect(bodies).toContain(await download.text());
  });
});
