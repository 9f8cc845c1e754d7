import type { FastifyInstance } from 'fastify';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authPlugin } from '../src/auth/index.ts';
import { ADMIN_PASSWORD, adminAuth, basic, securityFixture } from './auth-support.ts';
import { buildUnitApp } from './support/unit-app.ts';

interface LogLine {
  readonly level: number;
  readonly time: number;
  readonly msg: string;
  readonly reqId?: string;
  readonly method?: string;
  readonly url?: string;
  readonly statusCode?: number;
  readonly responseTimeMs?: number;
}

/**
 * Downloads of files held in the hot caches are answered in front of fastify (fast-path.ts).
 * Over a real loopback socket: the answer is the one the fastify route gives (headers, body,
 * download count, log line), and everything the fast path does not answer exactly still
 * reaches the route.
 */
describe('cached downloads answered in front of fastify', () => {
  let app: FastifyInstance;
  let base: string;
  const lines: LogLine[] = [];
  /** Requests that went through fastify's hooks (the fast path runs none). */
  let throughFastify = 0;
  const text = 'hello, fast path\n';
  const binary = Buffer.from(Array.from({ length: 1024 }, (_, index) => index % 251));

  beforeAll(async () => {
    const { security } = securityFixture();
    await security.ensureAdmin(ADMIN_PASSWORD);
    ({ app } = await buildUnitApp(
      { metadataCacheTtlMs: 60_000 },
      { level: 'info', stream: { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) } },
      async (root) => {
        // Counted before authentication, so that refused requests count too.
        root.addHook('onRequest', async () => {
          throughFastify++;
        });
        await root.register(authPlugin, { security });
      },
    ));
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    const created = await fetch(`${base}/artifactory/api/repositories/libs`, {
      method: 'PUT',
      headers: { ...adminAuth(), 'content-type': 'application/json' },
      body: JSON.stringify({ rclass: 'local', packageType: 'generic', excludesPattern: 'secret/**' }),
    });
    expect(created.status).toBe(200);
    for (const [path, body] of [['docs/readme.txt', text], ['bin/one.bin', binary], ['secret/x.txt', 'no']] as const) {
      const deployed = await fetch(`${base}/artifactory/libs/${path}`, { method: 'PUT', headers: adminAuth(), body });
      expect(deployed.status).toBe(path.startsWith('secret/') ? 403 : 201);
    }
  });

  afterAll(async () => {
    await app?.close();
  });

  const headersOf = (response: Response) => {
    const headers = Object.fromEntries(response.headers.entries());
    delete headers.date;
    return headers;
  };

  async function viaFastify<T>(request: () => Promise<T>): Promise<{ result: T; hooks: number }> {
    const before = throughFastify;
    const result = await request();
    return { result, hooks: throughFastify - before };
  }

  it('answers a cached file with the headers and body the route gives, without fastify', async () => {
    for (const path of ['docs/readme.txt', 'bin/one.bin']) {
      // The first download fills the caches (through the route); the query keeps the next one on the route.
      const routed = await fetch(`${base}/artifactory/libs/${path}?through=route`, { headers: adminAuth() });
      const fast = await viaFastify(() => fetch(`${base}/artifactory/libs/${path}`, { headers: adminAuth() }));
      expect(fast.hooks).toBe(0);
      expect(fast.result.status).toBe(200);
      expect(headersOf(fast.result)).toEqual(headersOf(routed));
      expect(Buffer.from(await fast.result.arrayBuffer())).toEqual(Buffer.from(await routed.arrayBuffer()));
      const routedHead = await fetch(`${base}/artifactory/libs/${path}?through=route`, { method: 'HEAD', headers: adminAuth() });
      const fastHead = await viaFastify(() => fetch(`${base}/artifactory/libs/${path}`, { method: 'HEAD', headers: adminAuth() }));
      expect(fastHead.hooks).toBe(0);
      expect(headersOf(fastHead.result)).toEqual(headersOf(routedHead));
      expect(await fastHead.result.text()).toBe('');
    }
    const readme = await fetch(`${base}/artifactory/libs/docs/readme.txt`, { headers: adminAuth() });
    expect(readme.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await readme.text()).toBe(text);
  });

  it('counts its downloads (HEAD not) and writes the one request line with the id the client sent', async () => {
    const stats = async () => ((await (await fetch(`${base}/artifactory/api/storage/libs/bin/one.bin?stats`, { headers: adminAuth() })).json()) as { downloadCount: number }).downloadCount;
    const before = await stats();
    const fast = await viaFastify(async () => {
      await fetch(`${base}/artifactory/libs/bin/one.bin`, { headers: { ...adminAuth(), 'x-request-id': 'fast-1' } });
      await fetch(`${base}/artifactory/libs/bin/one.bin`, { headers: adminAuth() });
      await fetch(`${base}/artifactory/libs/bin/one.bin`, { method: 'HEAD', headers: adminAuth() });
    });
    expect(fast.hooks).toBe(0);
    expect(await stats()).toBe(before + 2);
    const line = lines.find((candidate) => candidate.reqId === 'fast-1');
    expect(line).toEqual({
      level: 30,
      time: expect.any(Number),
      pid: process.pid,
      hostname: expect.any(String),
      reqId: 'fast-1',
      method: 'GET',
      url: '/artifactory/libs/bin/one.bin',
      statusCode: 200,
      responseTimeMs: expect.any(Number),
      msg: 'request completed',
    });
    // Generated ids differ per request.
    const generated = lines.filter((candidate) => candidate.url === '/artifactory/libs/bin/one.bin' && candidate.reqId !== 'fast-1').slice(-2);
    expect(generated[0]?.reqId).not.toBe(generated[1]?.reqId);
  });

  it('leaves to the route what it cannot answer exactly: bad or missing credentials, ranges, conditionals, refusals, misses', async () => {
    const url = `${base}/artifactory/libs/bin/one.bin`;
    const wrong = await viaFastify(() => fetch(url, { headers: basic('admin', 'not-the-password') }));
    expect(wrong.hooks).toBe(1);
    expect(wrong.result.status).toBe(401);
    expect(wrong.result.headers.get('www-authenticate')).toBe('Basic realm="Artifactory Realm"');
    const anonymous = await viaFastify(() => fetch(url));
    expect(anonymous.hooks).toBe(1);
    expect(anonymous.result.status).toBe(401);
    const ranged = await viaFastify(() => fetch(url, { headers: { ...adminAuth(), range: 'bytes=0-9' } }));
    expect(ranged.hooks).toBe(1);
    expect(ranged.result.status).toBe(206);
    expect(Buffer.from(await ranged.result.arrayBuffer())).toEqual(binary.subarray(0, 10));
    const etag = (await fetch(url, { headers: adminAuth() })).headers.get('etag')!;
    const conditional = await viaFastify(() => fetch(url, { headers: { ...adminAuth(), 'if-none-match': etag } }));
    expect(conditional.hooks).toBe(1);
    expect(conditional.result.status).toBe(304);
    const missing = await viaFastify(() => fetch(`${base}/artifactory/libs/bin/none.bin`, { headers: adminAuth() }));
    expect(missing.hooks).toBe(1);
    expect(missing.result.status).toBe(404);
    const encoded = await viaFastify(() => fetch(`${base}/artifactory/libs/bin/%2e%2e%2fone.bin`, { headers: adminAuth() }));
    expect(encoded.hooks).toBe(1);
    expect(encoded.result.status).toBe(400);
    const api = await viaFastify(() => fetch(`${base}/artifactory/api/system/ping`, { headers: adminAuth() }));
    expect(api.hooks).toBe(1);
    expect(await api.result.text()).toBe('OK');
  });

  it('stops answering a file once it is deleted or its repository excludes it', async () => {
    const url = `${base}/artifactory/libs/docs/readme.txt`;
    expect((await viaFastify(() => fetch(url, { headers: adminAuth() }))).hooks).toBe(0);
    const updated = await fetch(`${base}/artifactory/api/repositories/libs`, {
      method: 'POST',
      headers: { ...adminAuth(), 'content-type': 'application/json' },
      body: JSON.stringify({ excludesPattern: 'docs/**' }),
    });
    expect(updated.status).toBe(200);
    const excluded = await fetch(url, { headers: adminAuth() });
    expect(excluded.status).toBe(403);
    await fetch(`${base}/artifactory/api/repositories/libs`, {
      method: 'POST',
      headers: { ...adminAuth(), 'content-type': 'application/json' },
      body: JSON.stringify({ excludesPattern: '' }),
    });
    expect((await fetch(url, { headers: adminAuth() })).status).toBe(200);
    expect((await fetch(url, { method: 'DELETE', headers: adminAuth() })).status).toBe(204);
    const gone = await viaFastify(() => fetch(url, { headers: adminAuth() }));
    expect(gone.hooks).toBe(1);
    expect(gone.result.status).toBe(404);
  });

  it('answers 503, not the file, to a download asked after close began (in-flight handlers finish first)', async () => {
    expect((await fetch(`${base}/artifactory/libs/bin/one.bin`, { headers: adminAuth() })).status).toBe(200);
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    const authorization = adminAuth().authorization;
    // A deploy whose body has not all arrived: its handler is in flight when close begins.
    socket.write(`PUT /artifactory/libs/late/file.bin HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\nContent-Length: 6\r\n\r\nabc`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    let closeReturned = false;
    const closing = app.close().then(() => (closeReturned = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closeReturned).toBe(false);
    // The rest of the deploy, and a download of a cached file pipelined behind it.
    socket.write(`def` + `GET /artifactory/libs/bin/one.bin HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\n\r\n`);
    await closing;
    await ended;
    const statuses = [...received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((match) => Number(match[1]));
    expect(statuses).toEqual([201, 503]);
  });
});
