/**
 * PeerTransport over HTTP (DESIGN §5): a push is `POST {peer}/artifactory/api/federation/push`
 * with the wire form of federation-messages.ts as body (a JSON header and the msgpack event
 * batch), signed with the federation's shared secret (peer-request-signing.ts). The reply is
 * accepted only with a valid reply signature bound to the request's nonce.
 */
import { federationError } from './federation-errors.ts';
import {
  type FederationAttachment,
  type FederationReply,
  type FederationRequest,
  decodeFederationReply,
  encodeFederationRequest,
  prepareWireEncodings,
  validateFederationReply,
} from './federation-messages.ts';
import { newNonce, signPeerRequest, verifyReplySignature, FEDERATION_HEADERS } from './peer-request-signing.ts';
import type { NewEvent } from '@strata/core';
import type { PeerSendOptions, PeerTransport } from './ports.ts';

export const FEDERATION_API_PATH = '/artifactory/api/federation';
export const FEDERATION_PUSH_PATH = `${FEDERATION_API_PATH}/push`;
export const FEDERATION_IDENTITY_PATH = `${FEDERATION_API_PATH}/identity`;
export const FEDERATION_BLOB_PATH = `${FEDERATION_API_PATH}/blob`;
/** Several binaries per request (blob-batch.ts). */
export const FEDERATION_BLOBS_PATH = `${FEDERATION_API_PATH}/blobs`;
export const FEDERATION_CONTENT_TYPE = 'application/x-strata-federation';
/** Reply bodies larger than this are refused (replies are small JSON). */
const replyBytesMax = 1024 * 1024;

export interface SignedPeerClientOptions {
  readonly secret: string;
  /** This site's id and public base URL, sent (signed) with every request. */
  readonly siteId: string;
  readonly baseUrl: string;
  readonly now: () => number;
  /** Test hook: requests to a base URL for which this returns true fail as unreachable. */
  readonly isBlocked?: (baseUrl: string) => boolean;
}

export interface SignedResponse {
  readonly status: number;
  readonly body: Uint8Array;
  /** Whether the reply carried a valid signature for this request. */
  readonly authentic: boolean;
}

/** Signed requests to peers: pushes, identity lookups, blob fetches. */
export class SignedPeerClient {
  readonly #options: SignedPeerClientOptions;

  constructor(options: SignedPeerClientOptions) {
    this.#options = options;
  }

  get siteId(): string {
    return this.#options.siteId;
  }

  #check(baseUrl: string): void {
    if (this.#options.isBlocked?.(baseUrl)) throw federationError('STRATA_ERR_FEDERATION_PEER_UNAVAILABLE', `link to ${baseUrl} is blocked (test hook)`);
  }

  #headers(method: string, path: string, body: Uint8Array): { headers: Record<string, string>; nonce: string } {
    const nonce = newNonce();
    const signed = signPeerRequest(this.#options.secret, {
      method,
      path,
      body,
      siteId: this.#options.siteId,
      baseUrl: this.#options.baseUrl,
      timestampMs: Math.floor(this.#options.now()),
      nonce,
    });
    return { headers: { ...signed }, nonce };
  }

  /** A signed request whose (small) reply is read whole and its signature checked. */
  async request(baseUrl: string, method: 'GET' | 'POST', path: string, body: Uint8Array, signal: AbortSignal, bytesMax = replyBytesMax): Promise<SignedResponse> {
    this.#check(baseUrl);
    const { headers, nonce } = this.#headers(method, path, body);
    if (method === 'POST') headers['content-type'] = FEDERATION_CONTENT_TYPE;
    const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(method === 'POST' ? { body } : {}), signal });
    const declared = Number(response.headers.get('content-length') ?? '0');
    if (declared > bytesMax) {
      await response.body?.cancel();
      throw federationError('STRATA_ERR_FEDERATION_MALFORMED', `reply of ${declared} bytes is larger than ${bytesMax}`);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (bytes.byteLength > bytesMax) throw federationError('STRATA_ERR_FEDERATION_MALFORMED', `reply larger than ${bytesMax} bytes`);
    const authentic = verifyReplySignature(this.#options.secret, nonce, response.status, bytes, response.headers.get(FEDERATION_HEADERS.signature));
    return { status: response.status, body: bytes, authentic };
  }

  /** A signed GET whose body is streamed to the caller (blobs: verified by their sha256, not by a signature). */
  async stream(baseUrl: string, path: string, signal: AbortSignal): Promise<Response> {
    this.#check(baseUrl);
    const { headers } = this.#headers('GET', path, new Uint8Array());
    return fetch(`${baseUrl}${path}`, { method: 'GET', headers, signal });
  }
}

export interface HttpPeerTransportOptions {
  readonly client: SignedPeerClient;
  /** The public base URL of a peer site (undefined: not known yet). */
  readonly baseUrlOf: (peerId: string) => string | undefined;
  /** Binaries to send inside a push (small ones the receiver lacks), read when it is sent. */
  readonly attachmentsFor?: (request: FederationRequest) => Promise<readonly FederationAttachment[]>;
}

function errorMessageOf(body: Uint8Array): string {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(body)) as { errors?: { message?: unknown }[] };
    const message = parsed.errors?.[0]?.message;
    if (typeof message === 'string') return message.slice(0, 500);
  } catch {
    // not JSON
  }
  return '';
}

export class HttpPeerTransport implements PeerTransport {
  readonly #client: SignedPeerClient;
  readonly #baseUrlOf: (peerId: string) => string | undefined;
  readonly #attachmentsFor: HttpPeerTransportOptions['attachmentsFor'];
  /** Sends between their start and their request's encoding. */
  #encodesPending = 0;
  /** Events offered by `prepare`, not encoded yet. */
  #prepared: readonly NewEvent[] | undefined;

  constructor(options: HttpPeerTransportOptions) {
    this.#client = options.client;
    this.#baseUrlOf = options.baseUrlOf;
    this.#attachmentsFor = options.attachmentsFor;
  }

  /**
   * Encodes the events offered by `prepare` once the sends started before have encoded their
   * own requests (the one that goes now is never held up by the one that goes next), on a
   * later turn of the event loop; only the latest offer is kept.
   */
  prepare(events: readonly NewEvent[]): void {
    const idle = this.#prepared === undefined;
    this.#prepared = events;
    if (idle && this.#encodesPending === 0) setImmediate(() => this.#encodePrepared());
  }

  #encodePrepared(): void {
    const events = this.#prepared;
    if (events === undefined || this.#encodesPending > 0) return;
    this.#prepared = undefined;
    try {
      prepareWireEncodings(events);
    } catch {
      // An event that cannot be encoded fails its own send, with its error, when it goes.
    }
  }

  async send(peerId: string, request: FederationRequest, { signal }: PeerSendOptions): Promise<FederationReply> {
    const baseUrl = this.#baseUrlOf(peerId);
    if (baseUrl === undefined) throw federationError('STRATA_ERR_FEDERATION_PEER_UNAVAILABLE', `no address known for site ${peerId}`);
    let body: Uint8Array;
    this.#encodesPending++;
    try {
      const attachments = (await this.#attachmentsFor?.(request)) ?? [];
      body = encodeFederationRequest(request, attachments);
    } finally {
      this.#encodesPending--;
      if (this.#encodesPending === 0 && this.#prepared !== undefined) setImmediate(() => this.#encodePrepared());
    }
    const response = await this.#client.request(baseUrl, 'POST', FEDERATION_PUSH_PATH, body, signal);
    if (!response.authentic) {
      const detail = errorMessageOf(response.body);
      throw federationError(
        'STRATA_ERR_FEDERATION_UNAUTHENTICATED',
        `HTTP ${response.status} from ${baseUrl} without a valid reply signature${detail === '' ? '' : `: ${detail}`}`,
      );
    }
    if (response.status === 200) return decodeFederationReply(response.body);
    // Refusals come in Artifactory's error shape with the protocol reply alongside.
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder().decode(response.body));
    } catch {
      throw federationError('STRATA_ERR_FEDERATION_MALFORMED', `HTTP ${response.status} from ${baseUrl}: reply is not JSON`);
    }
    const reply = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['federation'] : undefined;
    if (reply === undefined) throw federationError('STRATA_ERR_FEDERATION_PEER_UNAVAILABLE', `HTTP ${response.status} from ${baseUrl}: ${errorMessageOf(response.body)}`);
    return validateFederationReply(reply);
  }
}
