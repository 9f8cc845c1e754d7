import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFederationReply,
  decodeFederationRequest,
  encodeFederationReply,
  encodeFederationRequest,
  isFederationError,
  validateFederationRequest,
  type FederationReply,
} from '../src/index.ts';
import { eventOf, push } from './federation-test-kit.ts';

const T0 = 1_700_000_000_000;

describe('federation messages', () => {
  it('a push request survives the wire form unchanged (events through the core codec)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 20 }), fc.boolean(), (count, fullSync) => {
        const request = { ...push('site-a', Array.from({ length: count }, (_, index) => eventOf('site-a', index + 1, T0 + index)), { 'site-a': count }), fullSync };
        expect(decodeFederationRequest(encodeFederationRequest(request), { eventsMax: 64 })).toEqual(request);
      }),
    );
  });

  it('replies survive the wire form unchanged', () => {
    const replies: FederationReply[] = [
      { kind: 'ack', vector: { a: 3, b: 1 }, appended: 2, duplicates: 1 },
      { kind: 'refused', reason: 'clock-ahead', message: 'too far ahead', vector: {}, offsetMs: 9000 },
      { kind: 'refused', reason: 'not-member', message: 'no', vector: null, offsetMs: null },
    ];
    for (const reply of replies) expect(decodeFederationReply(encodeFederationReply(reply))).toEqual(reply);
  });

  it('refuses truncated bytes, oversized batches, unknown fields and bad vectors as MALFORMED', () => {
    const bytes = encodeFederationRequest(push('a', [eventOf('a', 1, T0), eventOf('a', 2, T0)]));
    const malformed = (run: () => unknown): void => {
      try {
        run();
        expect.unreachable('accepted');
      } catch (error) {
        expect(isFederationError(error, 'STRATA_ERR_FEDERATION_MALFORMED')).toBe(true);
      }
    };
    for (let length = 0; length < bytes.byteLength; length += 7) malformed(() => decodeFederationRequest(bytes.subarray(0, length), { eventsMax: 64 }));
    malformed(() => decodeFederationRequest(bytes, { eventsMax: 1 }));
    malformed(() => validateFederationRequest({ ...push('a', []), extra: 1 }, { eventsMax: 64 }));
    malformed(() => validateFederationRequest({ ...push('a', []), vector: { a: -1 } }, { eventsMax: 64 }));
    malformed(() => validateFederationRequest({ ...push('a', []), vector: { 'not a site': 1 } }, { eventsMax: 64 }));
    malformed(() => validateFederationRequest({ ...push('a', []), from: '' }, { eventsMax: 64 }));
    malformed(() => decodeFederationReply(new TextEncoder().encode('{"kind":"ack"}')));
  });

  it('never throws anything but a STRATA_ERR_FEDERATION_MALFORMED error on arbitrary input', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          validateFederationRequest(value, { eventsMax: 8 });
        } catch (error) {
          expect(isFederationError(error, 'STRATA_ERR_FEDERATION_MALFORMED')).toBe(true);
        }
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeFederationRequest(bytes, { eventsMax: 8 });
        } catch (error) {
          expect(isFederationError(error, 'STRATA_ERR_FEDERATION_MALFORMED')).toBe(true);
        }
      }),
    );
  });
});
