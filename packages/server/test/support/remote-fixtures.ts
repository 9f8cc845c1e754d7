import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import type { Server as TcpServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HybridLogicalClock } from '@strata/core';
import { FsBlobStore } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import hyperid from 'hyperid';
import { request } from 'undici';
import { buildApp } from '../../src/app.ts';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../../src/download-counter.ts';
import type { ServerLimits } from '../../src/ports.ts';
import { FakeEventStore, FakeProjections } from './fake-projections.ts';
import { registerPermissiveAuth } from './permissive-auth.ts';

export const sha = (algorithm: string, data: Buffer | string) => createHash(algorithm).update(data).digest('hex');

/** A Strata app on a real loopback socket, real blob files, in-memory events. */
export interface ListeningApp {
  readonly app: FastifyInstance;
  readonly url: string;
  readonly store: FakeEventStore;
  close(): Promise<void>;
}

export async function listeningApp(limits: Partial<ServerLimits> = {}, projections: FakeProjections = new FakeProjections()): Promise<ListeningApp> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-remote-'));
  const store = new FakeEventStore(projections);
  const clock = { now: () => Date.now() };
  const app = await buildApp({
    eventStore: store,
    blobStore: new FsBlobStore({ root: dir, clock }),
    repositories: projections,
    artifacts: projections,
    downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
    clock,
    hlc: new HybridLogicalClock({ clock }),
    siteId: 'site-remote-test',
    newId: hyperid({ urlSafe: true }),
    registerAuth: registerPermissiveAuth,
    limits: { metadataCacheTtlMs: 0, ...limits },
  });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    app,
    url: `${url}/artifactory`,
    store,
    async close() {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface Fetched {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json(): { errors: [{ status: number; message: string }] } & Record<string, unknown>;
}

/** One HTTP request; the whole body read (a cut connection rejects). */
export async function fetchBytes(url: string, init: { method?: 'GET' | 'PUT' | 'DELETE' | 'HEAD' | 'POST'; body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Fetched> {
  const response = await request(url, { method: init.method ?? 'GET', ...(init.body === undefined ? {} : { body: init.body }), headers: init.headers ?? {} });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

export async function putJson(url: string, body: unknown, method: 'PUT' | 'POST' = 'PUT'): Promise<Fetched> {
  return fetchBytes(url, { method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
}

export type UpstreamHandler = (request: IncomingMessage, response: ServerResponse) => void | Promise<void>;

/**
 * A plain static HTTP server on loopback: files by path (with optional extra headers), a
 * request counter per path, and per-path custom handlers for the upstreams that misbehave.
 */
export class StaticUpstream {
  readonly files = new Map<string, { body: Buffer; headers?: Record<string, string> }>();
  readonly handlers = new Map<string, UpstreamHandler>();
  readonly hits = new Map<string, number>();
  requiredAuth: string | undefined;
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  hitsOf(path: string): number {
    return this.hits.get(path) ?? 0;
  }

  async start(port = 0): Promise<void> {
    this.#server = createServer((request, response) => {
      const path = decodeURIComponent((request.url ?? '/').split('?')[0] ?? '/');
      this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
      if (this.requiredAuth !== undefined && request.headers.authorization !== this.requiredAuth) {
        response.writeHead(401, { 'www-authenticate': 'Basic realm="up"' }).end('unauthorized');
        return;
      }
      const handler = this.handlers.get(path);
      if (handler !== undefined) {
        void Promise.resolve(handler(request, response)).catch(() => response.destroy());
        return;
      }
      const file = this.files.get(path);
      if (file === undefined) {
        response.writeHead(404).end('not found');
        return;
      }
      const etag = `"${sha('sha1', file.body)}"`;
      if (request.headers['if-none-match'] === etag) {
        response.writeHead(304).end();
        return;
      }
      response.writeHead(200, { 'content-length': file.body.length, etag, ...file.headers }).end(file.body);
    });
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.#server!.listen(port, '127.0.0.1', resolve));
    const address = this.#server.address();
    this.port = typeof address === 'object' && address !== null ? address.port : 0;
  }

  async stop(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }
}

/** A TCP server that answers every connection with `reply` (raw bytes) and closes. */
export async function rawUpstream(reply: string | Buffer): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: TcpServer = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end(reply));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A loopback port nothing listens on. */
export async function deadPort(): Promise<number> {
  const probe = createTcpServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const address = probe.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}
