import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeFederationPush,
  decodeFederationPushInSlices,
  decodeFederationReply,
  decodeFederationRequest,
  encodeFederationReply,
  encodeFederationRequest,
  isFederationError,
  prepareWireEncodings,
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

  it('binaries attached to a push survive the wire form (fast-check), and every attachment must be named by a deploy of the batch', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 6 }), (contents) => {
        const events = contents.map((_, index) => eventOf('site-a', index + 1, T0 + index));
        const attachments = contents.map((bytes, index) => ({ sha256: (events[index]!.data as { sha256: string }).sha256, bytes }));
        const decoded = decodeFederationPush(encodeFederationRequest(push('site-a', events), attachments), { eventsMax: 64 });
        expect(decoded.request).toEqual(push('site-a', events));
        expect(decoded.attachments.map((attachment) => [attachment.sha256, [...attachment.bytes]])).toEqual(attachments.map((attachment) => [attachment.sha256, [...attachment.bytes]]));
      }),
    );
    const stray = encodeFederationRequest(push('a', [eventOf('a', 1, T0)]), [{ sha256: 'f'.repeat(64), bytes: new Uint8Array([1]) }]);
    expect(() => decodeFederationPush(stray, { eventsMax: 64 })).toThrow(/named by no deploy/);
    const attached = encodeFederationRequest(push('a', [eventOf('a', 1, T0)]), [{ sha256: 'a'.repeat(64), bytes: new Uint8Array([1, 2, 3]) }]);
    for (let cut = 1; cut <= 3; cut++) expect(() => decodeFederationPush(attached.subarray(0, attached.byteLength - cut), { eventsMax: 64 })).toThrow(/out of range|malformed|attachments/);
  });

  it('a push of events a store recorded carries their new-event fields, the same bytes in every push of them', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 20 }), (count) => {
        const events = Array.from({ length: count }, (_, index) => eventOf('site-a', index + 1, T0 + index));
        const recorded = events.map((event, index) => ({ ...event, stream: 'repo-libs', revision: index, position: BigInt(100 + index) }));
        const first = encodeFederationRequest(push('site-a', recorded));
        // Encoded once per event object (and not validated again): another member's push of them is the same bytes.
        expect(Buffer.from(encodeFederationRequest(push('site-a', recorded)))).toEqual(Buffer.from(first));
        expect(Buffer.from(first)).toEqual(Buffer.from(encodeFederationRequest(push('site-a', events))));
        expect(decodeFederationRequest(first, { eventsMax: 64 })).toEqual(push('site-a', events));
      }),
      { numRuns: 30 },
    );
  });

  it('events prepared for the wire are pushed as the same bytes, also after more events than the encodings kept went through', () => {
    const recordedOf = (events: readonly ReturnType<typeof eventOf>[], from: number) =>
      events.map((event, index) => ({ ...event, stream: 'repo-libs', revision: from + index, position: BigInt(1_000 + from + index) }));
    const events = Array.from({ length: 40 }, (_, index) => eventOf('site-a', index + 1, T0 + index));
    const expected = Buffer.from(encodeFederationRequest(push('site-a', events)));
    const recorded = recordedOf(events, 0);
    prepareWireEncodings(recorded);
    expect(Buffer.from(encodeFederationRequest(push('site-a', recorded)))).toEqual(expected);
    // More distinct events than the encodings kept (16,384): the oldest go, and are encoded again when pushed.
    const others = Array.from({ length: 17_000 }, (_, index) => ({ ...recorded[index % 40]!, revision: 100 + index }));
    prepareWireEncodings(others);
    expect(Buffer.from(encodeFederationRequest(push('site-a', recorded)))).toEqual(expected);
    expect(decodeFederationRequest(encodeFederationRequest(push('site-a', others.slice(-40))), { eventsMax: 64 })).toEqual(push('site-a', events));
    // An event that cannot be encoded throws here as its push would.
    expect(() => prepareWireEncodings([{ ...events[0]!, originSeq: -1 }])).toThrow();
  });

  it("the origin's commit times travel with a push (fast-check), one per event, null where unknown", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.option(fc.integer({ min: 0, max: 2 ** 45 }), { nil: null })), { minLength: 1, maxLength: 20 }),
        (entries) => {
          // Another origin's events (forwarded) carry no commit time.
          const events = entries.map(([own], index) => eventOf(own ? 'site-a' : 'site-b', index + 1, T0 + index));
          const committedAtMs = entries.map(([own, time]) => (own ? time : null));
          const request = { ...push('site-a', events), committedAtMs };
          expect(decodeFederationRequest(encodeFederationRequest(request), { eventsMax: 64 })).toEqual(request);
          expect(validateFederationRequest(request, { eventsMax: 64 })).toEqual(request);
        },
      ),
    );
  });

  it("refuses a push's commit times as MALFORMED when they do not match its events, are not times, or are given for another origin's event", () => {
    const events = [eventOf('a', 1, T0), eventOf('a', 2, T0), eventOf('b', 1, T0)];
    const bad: unknown[] = [
      [T0, T0], // one entry short
      [T0, T0, null, T0], // one too many
      [T0, -1, null],
      [T0, 1.5, null],
      [T0, Number.MAX_SAFE_INTEGER + 2, null],
      [T0, '1700000000000', null],
      [T0, T0, T0], // a time for b's event, in a push from a
      { 0: T0, 1: T0, 2: null },
      null,
    ];
    for (const committedAtMs of bad) {
      const request = { ...push('a', events), committedAtMs };
      for (const attempt of [() => validateFederationRequest(request, { eventsMax: 64 }), () => decodeFederationRequest(encodeFederationRequest(request as never), { eventsMax: 64 })]) {
        try {
          attempt();
          expect.unreachable(`accepted committedAtMs ${JSON.stringify(committedAtMs)}`);
        } catch (error) {
          expect(isFederationError(error, 'STRATA_ERR_FEDERATION_MALFORMED')).toBe(true);
        }
      }
    }
    // Absent is fine (an older origin, or nothing known): the push is as it was.
    expect(validateFederationRequest(push('a', events), { eventsMax: 64 })).toEqual(push('a', events));
  });

  it('a push decoded in slices, pausing between them, is the push decoded at once, and is refused as it is (fast-check)', async () => {
    const outcome = (run: () => unknown) => {
      try {
        return { request: run() };
      } catch (error) {
        return { code: (error as { code?: string }).code, message: (error as Error).message };
      }
    };
    const outcomeAsync = async (run: () => Promise<unknown>) => {
      try {
        return { request: await run() };
      } catch (error) {
        return { code: (error as { code?: string }).code, message: (error as Error).message };
      }
    };
    // 1,200 events: three slices of at most 500, two pauses between them.
    const events = Array.from({ length: 1_200 }, (_, index) => eventOf('site-a', index + 1, T0 + index));
    const whole = encodeFederationRequest(push('site-a', events), [{ sha256: (events[0]!.data as { sha256: string }).sha256, bytes: new Uint8Array([1, 2]) }]);
    let pauses = 0;
    const pause = async () => {
      pauses++;
    };
    const sliced = await decodeFederationPushInSlices(whole, { eventsMax: 2_000 }, pause);
    expect(pauses).toBe(2);
    expect(sliced.request).toEqual(decodeFederationPush(whole, { eventsMax: 2_000 }).request);
    expect(sliced.attachments.map((attachment) => [...attachment.bytes])).toEqual([[1, 2]]);
    // Any bytes (a valid push with one byte changed, or cut short, or oversized): the same push or the same refusal.
    const small = encodeFederationRequest(push('site-a', events.slice(0, 3)));
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: small.byteLength - 1 }), fc.integer({ min: 0, max: 255 }), fc.nat({ max: small.byteLength }), fc.integer({ min: 1, max: 4 }), async (at, byte, cut, eventsMax) => {
        const bytes = Uint8Array.from(small);
        bytes[at] = byte;
        for (const candidate of [bytes, small.subarray(0, cut)]) {
          const expected = outcome(() => decodeFederationPush(candidate, { eventsMax }).request);
          const actual = await outcomeAsync(async () => (await decodeFederationPushInSlices(candidate, { eventsMax }, pause)).request);
          expect(actual).toEqual(expected);
        }
      }),
      { numRuns: 200 },
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
