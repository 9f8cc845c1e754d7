import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  PeerRequestVerifier,
  isVerifiedPeer,
  newNonce,
  replySignature,
  signPeerRequest,
  verifyReplySignature,
  checkFederationSecret,
  type RequestToSign,
} from '../src/index.ts';

const SECRET = 'federation-secret-for-unit-tests';
const NOW = 1_800_000_000_000;

function signed(overrides: Partial<RequestToSign> = {}) {
  const request: RequestToSign = {
    method: 'POST',
    path: '/artifactory/api/federation/push',
    body: new Uint8Array([1, 2, 3, 4]),
    siteId: 'site-b',
    baseUrl: 'http://127.0.0.1:9002',
    timestampMs: NOW,
    nonce: newNonce(),
    ...overrides,
  };
  return { request, headers: signPeerRequest(SECRET, request) as unknown as Record<string, string> };
}

const verifier = (now = NOW) => new PeerRequestVerifier({ secret: SECRET, now: () => now });

describe('signed peer requests', () => {
  it('a request signed with the shared secret is accepted once and names its sender', () => {
    const { request, headers } = signed();
    const check = verifier();
    const verified = check.verify(request.method, request.path, headers, request.body);
    expect(isVerifiedPeer(verified) && verified).toMatchObject({ siteId: 'site-b', baseUrl: 'http://127.0.0.1:9002', clockOffsetMs: 0 });
    // the same request again is a replay
    const replayed = check.verify(request.method, request.path, headers, request.body);
    expect(isVerifiedPeer(replayed)).toBe(false);
    expect(!isVerifiedPeer(replayed) && replayed).toMatchObject({ authentic: true, message: expect.stringMatching(/replayed/) });
  });

  it('any change of the body, method, path or a signed header is refused (property)', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 256 }),
        fc.nat(),
        fc.constantFrom('body', 'method', 'path', 'site', 'base', 'timestamp', 'secret'),
        (body, position, what) => {
          const { request, headers } = signed({ body });
          const tampered = { ...headers };
          let method = request.method;
          let path = request.path;
          let sentBody = body;
          switch (what) {
            case 'body':
              sentBody = Uint8Array.from(body, (byte, index) => (index === position % body.length ? byte ^ 0x01 : byte));
              break;
            case 'method':
              method = 'PUT';
              break;
            case 'path':
              path = '/artifactory/api/federation/push?x=1';
              break;
            case 'site':
              tampered['x-strata-federation-site'] = 'site-c';
              break;
            case 'base':
              tampered['x-strata-federation-base-url'] = 'http://127.0.0.1:9003';
              break;
            case 'timestamp':
              tampered['x-strata-federation-timestamp'] = String(NOW + 1);
              break;
            case 'secret': {
              const other = signPeerRequest('another-secret-of-enough-bytes', request) as unknown as Record<string, string>;
              tampered['x-strata-federation-signature'] = other['x-strata-federation-signature']!;
              break;
            }
          }
          const verified = verifier().verify(method, path, tampered, sentBody);
          expect(isVerifiedPeer(verified)).toBe(false);
          expect(!isVerifiedPeer(verified) && verified.authentic).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses unsigned and malformed headers without throwing (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom('x-strata-federation-site', 'x-strata-federation-base-url', 'x-strata-federation-timestamp', 'x-strata-federation-nonce', 'x-strata-federation-signature'), fc.string()), (headers) => {
        expect(isVerifiedPeer(verifier().verify('POST', '/p', headers, new Uint8Array()))).toBe(false);
      }),
    );
  });

  it('refuses a timestamp outside the window either way, as an authentic request', () => {
    const stale = signed({ timestampMs: NOW - 10 * 60_000 });
    const ahead = signed({ timestampMs: NOW + 3 * 365 * 24 * 3_600_000 });
    for (const { request, headers } of [stale, ahead]) {
      const verified = verifier().verify(request.method, request.path, headers, request.body);
      expect(!isVerifiedPeer(verified) && verified).toMatchObject({ authentic: true, claimedSiteId: 'site-b', message: expect.stringMatching(/timestamp/) });
    }
    const inside = signed({ timestampMs: NOW - 60_000 });
    expect(isVerifiedPeer(verifier().verify(inside.request.method, inside.request.path, inside.headers, inside.request.body))).toBe(true);
  });

  it('a reply signature binds the reply to the request nonce and status', () => {
    const nonce = newNonce();
    const body = new TextEncoder().encode('{"kind":"ack"}');
    const signature = replySignature(SECRET, nonce, 200, body);
    expect(verifyReplySignature(SECRET, nonce, 200, body, signature)).toBe(true);
    expect(verifyReplySignature(SECRET, newNonce(), 200, body, signature)).toBe(false);
    expect(verifyReplySignature(SECRET, nonce, 409, body, signature)).toBe(false);
    expect(verifyReplySignature(SECRET, nonce, 200, new TextEncoder().encode('{"kind":"ack "}'), signature)).toBe(false);
    expect(verifyReplySignature('another-secret-of-enough-bytes', nonce, 200, body, signature)).toBe(false);
    expect(verifyReplySignature(SECRET, nonce, 200, body, null)).toBe(false);
  });

  it('refuses a secret shorter than 16 bytes', () => {
    expect(() => checkFederationSecret('short')).toThrow(/at least 16 bytes/);
    expect(() => checkFederationSecret(SECRET)).not.toThrow();
  });
});
