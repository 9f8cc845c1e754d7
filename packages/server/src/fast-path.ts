import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { infoEnabled, requestCompletedLine } from './request-logging.ts';

/**
 * Answers a request without fastify, or declines it (returns false, having written nothing
 * and changed nothing) so that fastify's routing, hooks and error rendering handle it. A
 * handler answers synchronously, from what is in memory, only requests whose answer it can
 * give exactly as the fastify route would.
 */
export type FastRequestHandler = (request: IncomingMessage, response: ServerResponse, requestId: () => string) => FastAnswer | undefined;

/** What a fast handler answered, for the request log line. */
export interface FastAnswer {
  readonly statusCode: number;
}

/**
 * The hot paths in front of fastify (docs/benchmarks.md, "Server HTTP"): a cached 1 KiB
 * download through fastify's request/reply machinery, hooks and logger cost three times a
 * hello-world route; written straight to the socket with the same headers and the same log
 * line it costs little more. Installed as the server's request listener, ahead of fastify's
 * own; once the server closes, every request goes to fastify (which answers 503).
 */
export class FastPath {
  readonly #handlers: FastRequestHandler[] = [];
  #closing = false;

  add(handler: FastRequestHandler): void {
    this.#handlers.push(handler);
  }

  /** Puts this in front of `app`'s request listener; requests the handlers decline go on to fastify. */
  install(app: FastifyInstance, newId: () => string, idHeader: string): void {
    const server = app.server;
    const listeners = server.listeners('request') as ((request: IncomingMessage, response: ServerResponse) => void)[];
    if (listeners.length !== 1) throw new Error(`expected fastify's one request listener, found ${listeners.length}`);
    const fastify = listeners[0]!;
    server.removeListener('request', fastify);
    const handlers = this.#handlers;
    const log = app.log;
    server.on('request', (request: IncomingMessage, response: ServerResponse) => {
      if (this.#closing || handlers.length === 0) return fastify(request, response);
      const startedAt = performance.now();
      let id: string | undefined;
      const requestId = () => {
        if (id !== undefined) return id;
        const sent = request.headers[idHeader];
        return (id = typeof sent === 'string' && sent !== '' ? sent : newId());
      };
      for (const handler of handlers) {
        const answer = handler(request, response, requestId);
        if (answer !== undefined) {
          writeRequestLine(log, requestId(), request, answer.statusCode, performance.now() - startedAt);
          return;
        }
      }
      fastify(request, response);
    });
    app.addHook('preClose', async () => {
      this.#closing = true;
    });
  }
}

function writeRequestLine(log: FastifyBaseLogger, requestId: string, request: IncomingMessage, statusCode: number, elapsedMs: number): void {
  if (!infoEnabled(log)) return;
  requestCompletedLine(log, requestId, request.method ?? '', request.url ?? '', statusCode, elapsedMs);
}
