import { StrataError } from '@strata/core';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, interceptors, request } from 'undici';
import type { Dispatcher } from 'undici';

/**
 * HTTP to a remote repository's upstream, on undici. Every failure becomes a StrataError
 * the HTTP layer renders in Artifactory's shape: 504 for timeouts, 502 for the rest.
 */
export interface UpstreamRequest {
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** Headers timeout and body inactivity timeout (Artifactory's socketTimeoutMillis). */
  readonly timeoutMs: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable & { dump(): Promise<void> };
}

export const upstreamRedirectionsMax = 5;

/** Whether an error means the upstream could not be reached at all (so it is assumed offline). */
export function isConnectFailure(error: unknown): boolean {
  const cause = error instanceof StrataError ? (error.cause as unknown) : error;
  if (cause instanceof undiciErrors.ConnectTimeoutError) return true;
  const code = (cause as { code?: unknown } | null)?.code;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH';
}

/** Translates an undici / socket error (before or during the body) into our catalogue. */
export function upstreamFailure(url: string, error: unknown, phase: 'headers' | 'body'): StrataError {
  if (error instanceof StrataError) return error;
  const where = phase === 'body' ? 'while sending the body' : 'before answering';
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return new StrataError('STRATA_ERR_REMOTE_TIMEOUT', `upstream ${url} timed out ${where}`, undefined, { cause: error });
  }
  if (error instanceof undiciErrors.HTTPParserError) {
    return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} sent an invalid HTTP response`, undefined, { cause: error });
  }
  if (error instanceof undiciErrors.ResponseContentLengthMismatchError) {
    return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} sent a body that does not match its Content-Length`, undefined, { cause: error });
  }
  const code = (error as { code?: unknown } | null)?.code;
  const detail = error instanceof Error ? error.message : String(error);
  if (/redirect/i.test(detail)) {
    return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} redirected in a loop or more than ${upstreamRedirectionsMax} times`, undefined, { cause: error });
  }
  if (isConnectFailure(error)) return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} is unreachable (${String(code ?? detail)})`, undefined, { cause: error });
  return new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `upstream ${url} failed ${where}: ${detail}`, undefined, { cause: error });
}

export class UpstreamClient {
  readonly #dispatcher: Dispatcher;

  constructor(options: { connectTimeoutMs?: number; dispatcher?: Dispatcher } = {}) {
    this.#dispatcher =
      options.dispatcher ??
      new Agent({ connect: { timeout: options.connectTimeoutMs ?? 10_000 }, keepAliveTimeout: 4_000 }).compose(
        interceptors.redirect({ maxRedirections: upstreamRedirectionsMax }),
      );
  }

  /** GET; resolves once the status and headers arrived. Throws 502/504 StrataErrors. */
  async get(options: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': 'strata-remote', ...options.headers };
    if (options.username !== undefined && options.username !== '') {
      headers.authorization = `Basic ${Buffer.from(`${options.username}:${options.password ?? ''}`).toString('base64')}`;
    }
    try {
      const response = await request(options.url, {
        method: 'GET',
        headers,
        dispatcher: this.#dispatcher,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      return { status: response.statusCode, headers: response.headers, body: response.body as unknown as UpstreamResponse['body'] };
    } catch (error) {
      throw upstreamFailure(options.url, error, 'headers');
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }
}
