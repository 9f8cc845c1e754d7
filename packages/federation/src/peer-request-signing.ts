/**
 * The circle of trust (issue 4 item 2): every request between the sites of a federation is
 * signed with their shared secret (STRATA_FEDERATION_TOKEN), and so is every reply the sender
 * acts on. A request is refused — before its body is decoded or anything in it applied — when
 * the signature does not match, when its timestamp is stale or far ahead, or when its nonce
 * was seen before (a replayed batch).
 *
 * Request signature: HMAC-SHA256(secret, "strata-federation-v1\n" + METHOD + "\n" + path +
 * "\n" + timestamp + "\n" + nonce + "\n" + siteId + "\n" + baseUrl + "\n" + hex(sha256(body))).
 * Reply signature: HMAC-SHA256(secret, "strata-federation-reply-v1\n" + request nonce + "\n" +
 * status + "\n" + hex(sha256(body))) — bound to the request, so an old reply cannot be replayed
 * to a new request.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { federationError } from './federation-errors.ts';

export const FEDERATION_HEADERS = {
  site: 'x-strata-federation-site',
  baseUrl: 'x-strata-federation-base-url',
  timestamp: 'x-strata-federation-timestamp',
  nonce: 'x-strata-federation-nonce',
  signature: 'x-strata-federation-signature',
} as const;

/** A request timestamp further than this from the receiver's clock (either way) is refused. */
export const defaultRequestSkewMsMax = 5 * 60_000;
/** Nonces remembered at most (oldest dropped first; they also expire with the skew window). */
export const defaultNoncesRememberedMax = 200_000;
/** A secret shorter than this is refused at start: HMAC keys should not be guessable. */
export const federationSecretBytesMin = 16;

const NONCE_PATTERN = /^[0-9a-f]{32}$/;
const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;
const TIMESTAMP_PATTERN = /^[0-9]{1,16}$/;
const SITE_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const baseUrlLengthMax = 2048;

export interface SignedRequestHeaders {
  readonly [FEDERATION_HEADERS.site]: string;
  readonly [FEDERATION_HEADERS.baseUrl]: string;
  readonly [FEDERATION_HEADERS.timestamp]: string;
  readonly [FEDERATION_HEADERS.nonce]: string;
  readonly [FEDERATION_HEADERS.signature]: string;
}

export interface RequestToSign {
  readonly method: string;
  /** Path and query as sent (e.g. /artifactory/api/federation/push). */
  readonly path: string;
  readonly body: Uint8Array;
  /** The sender's site id and public base URL. */
  readonly siteId: string;
  readonly baseUrl: string;
  readonly timestampMs: number;
  /** 16 random bytes, hex. */
  readonly nonce: string;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function newNonce(): string {
  return randomBytes(16).toString('hex');
}

function requestSignature(secret: string, request: Omit<RequestToSign, 'body'> & { bodyDigest: string }): string {
  const text = [
    'strata-federation-v1',
    request.method.toUpperCase(),
    request.path,
    String(request.timestampMs),
    request.nonce,
    request.siteId,
    request.baseUrl,
    request.bodyDigest,
  ].join('\n');
  return createHmac('sha256', secret).update(text).digest('hex');
}

/** The headers that authenticate `request` with the shared secret. */
export function signPeerRequest(secret: string, request: RequestToSign): SignedRequestHeaders {
  return {
    [FEDERATION_HEADERS.site]: request.siteId,
    [FEDERATION_HEADERS.baseUrl]: request.baseUrl,
    [FEDERATION_HEADERS.timestamp]: String(request.timestampMs),
    [FEDERATION_HEADERS.nonce]: request.nonce,
    [FEDERATION_HEADERS.signature]: requestSignature(secret, { ...request, bodyDigest: sha256Hex(request.body) }),
  };
}

export function replySignature(secret: string, requestNonce: string, status: number, body: Uint8Array): string {
  return createHmac('sha256', secret).update(`strata-federation-reply-v1\n${requestNonce}\n${status}\n${sha256Hex(body)}`).digest('hex');
}

function sameHex(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

/** Whether a reply really comes from a holder of the secret, answering this very request. */
export function verifyReplySignature(secret: string, requestNonce: string, status: number, body: Uint8Array, signature: string | null): boolean {
  if (signature === null || !SIGNATURE_PATTERN.test(signature)) return false;
  return sameHex(signature, replySignature(secret, requestNonce, status, body));
}

export interface VerifiedPeer {
  readonly siteId: string;
  readonly baseUrl: string;
  readonly nonce: string;
  /** The sender's clock minus ours at receipt (includes the one-way delay). */
  readonly clockOffsetMs: number;
}

/** Why a request was refused; `authentic` says whether the signature itself was valid (who sent it is then known). */
export interface PeerRequestRefusal {
  readonly authentic: boolean;
  readonly claimedSiteId: string | undefined;
  readonly message: string;
}

export interface PeerRequestVerifierOptions {
  readonly secret: string;
  readonly now: () => number;
  readonly requestSkewMsMax?: number;
  readonly noncesRememberedMax?: number;
}

type HeaderBag = Readonly<Record<string, string | string[] | undefined>>;

function single(headers: HeaderBag, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * Checks signed requests: signature first (constant time), then the timestamp window, then
 * the nonce (each nonce is accepted once while its timestamp is inside the window, so a
 * replayed request is refused; older ones fail the window).
 */
export class PeerRequestVerifier {
  readonly #secret: string;
  readonly #now: () => number;
  readonly #skewMsMax: number;
  readonly #noncesMax: number;
  /** nonce → timestamp, in insertion order (a Map keeps it), for expiry. */
  readonly #nonces = new Map<string, number>();

  constructor(options: PeerRequestVerifierOptions) {
    this.#secret = options.secret;
    this.#now = options.now;
    this.#skewMsMax = options.requestSkewMsMax ?? defaultRequestSkewMsMax;
    this.#noncesMax = options.noncesRememberedMax ?? defaultNoncesRememberedMax;
  }

  /** The authenticated sender, or a refusal (never throws). */
  verify(method: string, path: string, headers: HeaderBag, body: Uint8Array): VerifiedPeer | PeerRequestRefusal {
    const siteId = single(headers, FEDERATION_HEADERS.site);
    const baseUrl = single(headers, FEDERATION_HEADERS.baseUrl);
    const timestamp = single(headers, FEDERATION_HEADERS.timestamp);
    const nonce = single(headers, FEDERATION_HEADERS.nonce);
    const signature = single(headers, FEDERATION_HEADERS.signature);
    const claimedSiteId = siteId !== undefined && SITE_PATTERN.test(siteId) ? siteId : undefined;
    const refuse = (message: string, authentic = false): PeerRequestRefusal => ({ authentic, claimedSiteId, message });
    if (siteId === undefined || baseUrl === undefined || timestamp === undefined || nonce === undefined || signature === undefined) {
      return refuse('the request is not signed (federation headers missing)');
    }
    if (claimedSiteId === undefined || baseUrl.length > baseUrlLengthMax || !TIMESTAMP_PATTERN.test(timestamp) || !NONCE_PATTERN.test(nonce) || !SIGNATURE_PATTERN.test(signature)) {
      return refuse('malformed federation headers');
    }
    const timestampMs = Number(timestamp);
    const expected = requestSignature(this.#secret, { method, path, timestampMs, nonce, siteId, baseUrl, bodyDigest: sha256Hex(body) });
    if (!sameHex(signature, expected)) return refuse('bad signature: the request was altered or signed with another secret');
    const now = Math.floor(this.#now());
    const offsetMs = timestampMs - now;
    if (Math.abs(offsetMs) > this.#skewMsMax) {
      return refuse(`request timestamp is ${offsetMs} ms off this site's clock (at most ${this.#skewMsMax} ms either way)`, true);
    }
    this.#expire(now);
    if (this.#nonces.has(nonce)) return refuse('replayed request: this nonce was already used', true);
    this.#nonces.set(nonce, timestampMs);
    return { siteId, baseUrl, nonce, clockOffsetMs: offsetMs };
  }

  #expire(now: number): void {
    for (const [nonce, timestampMs] of this.#nonces) {
      if (this.#nonces.size <= this.#noncesMax && timestampMs >= now - this.#skewMsMax) break;
      this.#nonces.delete(nonce);
    }
  }
}

export function isVerifiedPeer(value: VerifiedPeer | PeerRequestRefusal): value is VerifiedPeer {
  return 'nonce' in value;
}

/** Refuses an unusable secret at start (empty or too short). */
export function checkFederationSecret(secret: string): void {
  if (Buffer.byteLength(secret) < federationSecretBytesMin) {
    throw federationError('STRATA_ERR_FEDERATION_NOT_CONFIGURED', `STRATA_FEDERATION_TOKEN must be at least ${federationSecretBytesMin} bytes long`);
  }
}
