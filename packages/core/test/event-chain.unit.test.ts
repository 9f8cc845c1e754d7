import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeEventData,
  encodeMeta,
  encodeValidatedEventParts,
  eventDigest,
  eventDigestHeader,
  originPrevOf,
  siteChainLink,
  validateNewEvent,
  type ChainedEnvelope,
} from '../src/index.ts';
import { arbitraryEventId, arbitraryHlcStamp, arbitraryNewEvent, arbitrarySiteId } from './arbitraries.ts';

/** The digests as the chain's documentation defines them, by a streaming Hash (the layout the SQL verifier rebuilds). */
const referenceEventDigest = (envelope: ChainedEnvelope, data: Uint8Array, meta: Uint8Array) =>
  createHash('sha256').update(eventDigestHeader(envelope, data.byteLength)).update(data).update(meta).digest();
const referenceSiteChainLink = (prev: Uint8Array, stream: string, revision: number, digest: Uint8Array) =>
  createHash('sha256').update(prev).update(`${stream}\n${revision}\n`).update(digest).digest();

const arbitraryBytes = (maxLength: number) => fc.uint8Array({ maxLength });
const arbitraryLink = fc.uint8Array({ minLength: 32, maxLength: 32 });
// Stream names are restricted to ASCII by validation; any text still digests as its UTF-8.
const arbitraryStream = fc.oneof(fc.stringMatching(/^repo-[a-z0-9._-]{1,20}$/), fc.string({ unit: 'grapheme', maxLength: 20 }));

describe('event chain digests', () => {
  it('an event digest is sha256 of its header, data and meta, whatever their sizes and characters', () => {
    fc.assert(
      fc.property(
        fc.record({ stream: arbitraryStream, id: arbitraryEventId, origin: arbitrarySiteId, originSeq: fc.nat(), hlc: arbitraryHlcStamp, type: fc.constantFrom('ArtifactDeployed', 'FolderDeleted') }),
        arbitraryBytes(5000),
        arbitraryBytes(300),
        (envelope, data, meta) => {
          expect(eventDigest(envelope, data, meta).equals(referenceEventDigest(envelope, data, meta))).toBe(true);
        },
      ),
    );
  });

  it('a site-chain link is sha256 of the previous link, "stream\\nrevision\\n" and the digest', () => {
    fc.assert(
      fc.property(arbitraryLink, arbitraryStream, fc.nat(), arbitraryLink, (prev, stream, revision, digest) => {
        expect(siteChainLink(prev, stream, revision, digest).equals(referenceSiteChainLink(prev, stream, revision, digest))).toBe(true);
      }),
    );
  });

  it('the data and meta of a validated event encode as encodeEventData and encodeMeta encode them', () => {
    fc.assert(
      fc.property(arbitraryNewEvent(), (event) => {
        const valid = validateNewEvent(event);
        const parts = encodeValidatedEventParts(valid);
        expect(Buffer.from(parts.data).equals(Buffer.from(encodeEventData(valid.type, valid.data)))).toBe(true);
        expect(Buffer.from(parts.meta).equals(Buffer.from(encodeMeta(valid.meta)))).toBe(true);
      }),
    );
  });
});

describe('originPrevOf', () => {
  const reference = (value: unknown) => (typeof value === 'string' && /^[0-9a-f]{64}$/.test(value) ? Buffer.from(value, 'hex') : undefined);
  const hexChar = fc.constantFrom(...'0123456789abcdefABCDEFgz/:`G '.split(''));

  it('parses a link exactly as /^[0-9a-f]{64}$/ and Buffer.from(hex) do, and refuses everything else', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          arbitraryLink.map((link) => Buffer.from(link).toString('hex')),
          fc.array(hexChar, { minLength: 62, maxLength: 66 }).map((chars) => chars.join('')),
          fc.string({ maxLength: 70 }),
          fc.constantFrom(undefined, null, 42, {}, 'a'.repeat(64), 'A'.repeat(64)),
        ),
        (value) => {
          const parsed = originPrevOf({ originPrev: value });
          const expected = reference(value);
          if (expected === undefined) expect(parsed).toBeUndefined();
          else expect(Buffer.from(parsed!).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
