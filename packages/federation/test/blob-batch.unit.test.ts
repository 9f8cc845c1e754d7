import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { isStrataError } from '@strata/core';
import { describe, expect, it } from 'vitest';
import {
  blobBatchShasMax,
  decodeBlobBatchReply,
  decodeBlobBatchRequest,
  encodeBlobBatchReply,
  encodeBlobBatchRequest,
  isFederationError,
  type BlobBatchEntry,
} from '../src/index.ts';

const sha256Of = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString('hex'));

/** Entries of every status for distinct binaries (found ones named by the sha256 of their bytes). */
const entriesArbitrary = fc
  .array(
    fc.oneof(
      fc.uint8Array({ maxLength: 256 }).map((bytes): BlobBatchEntry => ({ sha256: sha256Of(bytes), status: 'found', bytes })),
      hex64.map((sha256): BlobBatchEntry => ({ sha256, status: 'missing' })),
      hex64.map((sha256): BlobBatchEntry => ({ sha256, status: 'deferred' })),
      fc.tuple(hex64, fc.integer({ min: 0, max: 2 ** 40 })).map(([sha256, size]): BlobBatchEntry => ({ sha256, status: 'too-large', size })),
    ),
    { minLength: 1, maxLength: 12 },
  )
  .map((entries) => entries.filter((entry, index) => entries.findIndex((other) => other.sha256 === entry.sha256) === index));

const plain = (entries: readonly BlobBatchEntry[]) => entries.map((entry) => (entry.status === 'found' ? { ...entry, bytes: [...entry.bytes] } : entry));

describe('blob batches (several binaries per request)', () => {
  it('a request and its reply survive the wire form unchanged (fast-check)', () => {
    fc.assert(
      fc.property(entriesArbitrary, (entries) => {
        const sha256s = entries.map((entry) => entry.sha256);
        expect(decodeBlobBatchRequest(encodeBlobBatchRequest(sha256s))).toEqual(sha256s);
        expect(plain(decodeBlobBatchReply(encodeBlobBatchReply(entries), sha256s))).toEqual(plain(entries));
      }),
    );
  });

  it('a reply whose bytes were changed anywhere is refused whole, never decoded into other bytes (fast-check)', () => {
    fc.assert(
      fc.property(
        entriesArbitrary.filter((entries) => entries.some((entry) => entry.status === 'found' && entry.bytes.byteLength > 0)),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (entries, at, flip) => {
          const sha256s = entries.map((entry) => entry.sha256);
          const wire = encodeBlobBatchReply(entries);
          const altered = new Uint8Array(wire);
          const index = at % altered.byteLength;
          altered[index] = altered[index]! ^ flip;
          let decoded: BlobBatchEntry[] | undefined;
          try {
            decoded = decodeBlobBatchReply(altered, sha256s);
          } catch (error) {
            expect(isStrataError(error, 'STRATA_ERR_FEDERATION_MALFORMED') || isStrataError(error, 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH')).toBe(true);
            return;
          }
          // A change that still decodes (e.g. inside a size's digits, or a status swapped for an
          // equivalent text) never yields bytes that do not hash to their sha256.
          for (const entry of decoded) if (entry.status === 'found') expect(sha256Of(entry.bytes)).toBe(entry.sha256);
        },
      ),
    );
  });

  it('refuses bytes that do not match their sha256 with STRATA_ERR_BLOB_CHECKSUM_MISMATCH, the whole reply', () => {
    const good = new TextEncoder().encode('good');
    const bad = new TextEncoder().encode('forged');
    const wire = encodeBlobBatchReply([
      { sha256: sha256Of(good), status: 'found', bytes: good },
      { sha256: sha256Of(new TextEncoder().encode('real')), status: 'found', bytes: bad },
    ]);
    expect(() => decodeBlobBatchReply(wire, [sha256Of(good), sha256Of(new TextEncoder().encode('real'))])).toThrow(
      expect.objectContaining({ code: 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH' }),
    );
  });

  it('refuses a reply that does not answer exactly what was asked, in order', () => {
    const one = new TextEncoder().encode('one');
    const wire = encodeBlobBatchReply([{ sha256: sha256Of(one), status: 'found', bytes: one }]);
    const other = 'a'.repeat(64);
    for (const requested of [[other], [sha256Of(one), other], []]) {
      expect(() => decodeBlobBatchReply(wire, requested)).toThrow(expect.objectContaining({ code: 'STRATA_ERR_FEDERATION_MALFORMED' }));
    }
    expect(() => decodeBlobBatchReply(wire.subarray(0, wire.byteLength - 1), [sha256Of(one)])).toThrow(expect.objectContaining({ code: 'STRATA_ERR_FEDERATION_MALFORMED' }));
    expect(() => decodeBlobBatchReply(new Uint8Array([...wire, 0]), [sha256Of(one)])).toThrow(expect.objectContaining({ code: 'STRATA_ERR_FEDERATION_MALFORMED' }));
  });

  it('refuses malformed requests with STRATA_ERR_FEDERATION_MALFORMED: too many, none, twice the same, not hex, not JSON, other fields', () => {
    const many = Array.from({ length: blobBatchShasMax + 1 }, (_, index) => index.toString(16).padStart(64, '0'));
    const bodies = [
      JSON.stringify({ sha256: many }),
      JSON.stringify({ sha256: [] }),
      JSON.stringify({ sha256: ['a'.repeat(64), 'a'.repeat(64)] }),
      JSON.stringify({ sha256: ['A'.repeat(64)] }),
      JSON.stringify({ sha256: ['../../etc/passwd'] }),
      JSON.stringify({ sha256: ['a'.repeat(64)], more: 1 }),
      JSON.stringify(['a'.repeat(64)]),
      '{"sha256":',
    ];
    for (const body of bodies) {
      let refused: unknown;
      try {
        decodeBlobBatchRequest(new TextEncoder().encode(body));
      } catch (error) {
        refused = error;
      }
      expect(isFederationError(refused, 'STRATA_ERR_FEDERATION_MALFORMED'), body.slice(0, 60)).toBe(true);
    }
    expect(() => encodeBlobBatchRequest(many)).toThrow(expect.objectContaining({ code: 'STRATA_ERR_FEDERATION_MALFORMED' }));
    expect(decodeBlobBatchRequest(encodeBlobBatchRequest(many.slice(0, blobBatchShasMax)))).toHaveLength(blobBatchShasMax);
  });
});
