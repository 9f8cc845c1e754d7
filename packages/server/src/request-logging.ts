import { LogController } from 'fastify';
import pino from 'pino';
import type { FastifyBaseLogger, FastifyReply, FastifyRequest, FastifyServerOptions } from 'fastify';

/**
 * Per-request logging at a cost the 1 KiB download hot path can bear (docs/benchmarks.md,
 * "Server HTTP"): one line per request, written when the response completes —
 * `{"reqId":…,"method":…,"url":…,"statusCode":…,"responseTimeMs":…,"msg":"request completed"}`
 * (fastify's default is two lines, `incoming request` and `request completed`) — and errors
 * in fastify's usual lines. The request id is the `x-request-id` header when the client sent
 * one, else a generated id; it is in every line a request logs.
 */
export class RequestLogController extends LogController {
  override incomingRequest(): void {
    // One line per request: the completion line below carries the method and url.
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    // Written through the server's logger with the id as a field, so that a request that logs
    // nothing else never builds its child logger (see lazyRequestLoggers).
    const log = request.server.log;
    if (error) {
      const line = { reqId: request.id, method: request.method, url: request.url, statusCode: reply.statusCode, responseTimeMs: Math.round(reply.elapsedTime * 10) / 10 };
      log.error({ ...line, err: error }, 'request errored');
    } else if (infoEnabled(log)) {
      requestCompletedLine(log, String(request.id), request.method, request.url, reply.statusCode, reply.elapsedTime);
    }
  }
}

/** pino's internals the request line is written with (pino.symbols; stable since pino 5). */
interface PinoInternals {
  readonly [pino.symbols.lsCacheSym]?: Readonly<Record<number, string>>;
  readonly [pino.symbols.timeSym]?: () => string;
  readonly [pino.symbols.chindingsSym]?: string;
  readonly [pino.symbols.streamSym]?: { write(line: string): unknown };
  readonly [pino.symbols.mixinSym]?: unknown;
  readonly [pino.symbols.hooksSym]?: { readonly logMethod?: unknown; readonly streamWrite?: unknown };
  readonly [pino.symbols.formattersSym]?: { readonly log?: (object: object) => object };
  readonly [pino.symbols.messageKeySym]?: string;
  readonly [msgPrefixSym]?: string;
}

const infoLevel = 30;
/** In pino.symbols at run time, not in its type declarations. */
const msgPrefixSym: unique symbol = (pino.symbols as unknown as { msgPrefixSym: symbol }).msgPrefixSym as never;

/** Whether `log` writes `info` lines (pino's isLevelEnabled; loggers without it: yes). */
export function infoEnabled(log: FastifyBaseLogger): boolean {
  const check = (log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean }).isLevelEnabled;
  return check === undefined ? true : check.call(log, 'info');
}

/**
 * Writes the request completion line
 * `{"level":30,"time":…,"pid":…,"hostname":…,"reqId":…,"method":…,"url":…,"statusCode":…,"responseTimeMs":…,"msg":"request completed"}`
 * — the line `log.info({reqId, method, url, statusCode, responseTimeMs}, 'request completed')`
 * writes — put together directly when `log` is a plain pino logger (no mixin, hooks or log
 * formatter; the request id, method and url JSON-escaped), through pino otherwise. On the
 * download hot path this is one string and one write instead of pino's generic
 * serialisation (docs/benchmarks.md, "Server HTTP"). The caller checks that `info` is enabled.
 */
export function requestCompletedLine(log: FastifyBaseLogger, reqId: string, method: string, url: string, statusCode: number, elapsedMs: number): void {
  const responseTimeMs = Math.round(elapsedMs * 10) / 10;
  const internals = log as unknown as PinoInternals;
  const prefix = internals[pino.symbols.lsCacheSym]?.[infoLevel];
  const time = internals[pino.symbols.timeSym];
  const chindings = internals[pino.symbols.chindingsSym];
  const stream = internals[pino.symbols.streamSym];
  const hooks = internals[pino.symbols.hooksSym];
  const plain =
    prefix !== undefined &&
    time !== undefined &&
    chindings !== undefined &&
    stream !== undefined &&
    internals[pino.symbols.mixinSym] == null &&
    hooks?.logMethod == null &&
    hooks?.streamWrite == null &&
    internals[pino.symbols.formattersSym]?.log === undefined &&
    internals[pino.symbols.messageKeySym] === 'msg' &&
    !internals[msgPrefixSym];
  if (!plain) {
    log.info({ reqId, method, url, statusCode, responseTimeMs }, 'request completed');
    return;
  }
  stream.write(
    `${prefix}${time()}${chindings},"reqId":${jsonString(reqId)},"method":${jsonString(method)},"url":${jsonString(url)},"statusCode":${statusCode},"responseTimeMs":${responseTimeMs},"msg":"request completed"}\n`,
  );
}

/** JSON string of ids, methods and urls: quoted as is when nothing needs escaping (the usual case). */
function jsonString(text: string): string {
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || code === 0x22 || code === 0x5c || code > 0x7e) return JSON.stringify(text);
  }
  return `"${text}"`;
}

type Bindings = Parameters<FastifyBaseLogger['child']>[0];
type ChildOptions = NonNullable<Parameters<FastifyBaseLogger['child']>[1]>;

/** A request's logger: the pino child is made by the first line logged through it. */
class LazyChildLogger {
  #child: FastifyBaseLogger | undefined;
  readonly #parent: FastifyBaseLogger;
  readonly #bindings: Bindings;
  readonly #options: ChildOptions;

  constructor(parent: FastifyBaseLogger, bindings: Bindings, options: ChildOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  #real(): FastifyBaseLogger {
    return (this.#child ??= this.#parent.child(this.#bindings, this.#options));
  }

  get level(): string {
    return this.#child?.level ?? this.#options.level ?? this.#parent.level;
  }

  set level(level: string) {
    this.#real().level = level;
  }

  fatal(...args: Parameters<FastifyBaseLogger['fatal']>): void {
    this.#real().fatal(...args);
  }

  error(...args: Parameters<FastifyBaseLogger['error']>): void {
    this.#real().error(...args);
  }

  warn(...args: Parameters<FastifyBaseLogger['warn']>): void {
    this.#real().warn(...args);
  }

  info(...args: Parameters<FastifyBaseLogger['info']>): void {
    this.#real().info(...args);
  }

  debug(...args: Parameters<FastifyBaseLogger['debug']>): void {
    this.#real().debug(...args);
  }

  trace(...args: Parameters<FastifyBaseLogger['trace']>): void {
    this.#real().trace(...args);
  }

  silent(...args: Parameters<FastifyBaseLogger['silent']>): void {
    this.#real().silent(...args);
  }

  child(...args: Parameters<FastifyBaseLogger['child']>): FastifyBaseLogger {
    return this.#real().child(...args);
  }
}

/**
 * fastify makes a child logger (`reqId` bound) for every request, and pino builds a child's
 * bindings eagerly. Most requests never log through theirs (their one line is written by
 * RequestLogController), so the child is made the first time a request logs.
 */
export const lazyRequestLoggers: NonNullable<FastifyServerOptions['childLoggerFactory']> = (logger, bindings, options) =>
  new LazyChildLogger(logger, bindings, options) as unknown as FastifyBaseLogger;

/** Where `strata serve` writes its log lines; close() writes what is still held. */
export interface LogDestination extends pino.DestinationStream {
  close(): void;
}

/** How long a log line may wait in the buffer of bufferedLogDestination. */
export const logFlushIntervalMs = 1_000;

/**
 * Log lines to `output` (stdout) in blocks: one write per ~4 KiB of lines, and at least
 * every logFlushIntervalMs, at close and at process exit. On a terminal every line is
 * written at once. Written synchronously (no threadpool round trip per write). A kill -9
 * loses at most the last second of log lines; never a write's durability.
 */
export function bufferedLogDestination(output: { readonly fd: number; readonly isTTY?: boolean }): LogDestination {
  const stream = pino.destination({ fd: output.fd, sync: true, minLength: output.isTTY === true ? 0 : 4096 });
  const flush = () => {
    try {
      stream.flushSync();
    } catch {
      // stdout gone (EPIPE): nothing left to write to.
    }
  };
  const timer = setInterval(flush, logFlushIntervalMs);
  timer.unref();
  process.once('exit', flush);
  let closed = false;
  return {
    write(line: string) {
      stream.write(line);
      // After close (the server's last lines), nothing flushes later: write through.
      if (closed) flush();
    },
    close() {
      closed = true;
      clearInterval(timer);
      process.off('exit', flush);
      flush();
    },
  };
}
