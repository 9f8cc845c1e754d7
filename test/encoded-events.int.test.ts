/**
 * Events encoded and digested before their append (encoded-events.ts: the federation engine
 * digests what it receives to check the origin chain, and the append takes those bytes instead
 * of computing them again) are stored exactly as the same events appended without, in appends
 * of other sizes (small ones, and batches as large as a received push): same
 * events, revisions, meta, digests and chain links (verify clean), same projection rows; a
 * refused append stores nothing. On memory, PGlite and PostgreSQL (when DATABASE_URL is set).
 */
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { CHAIN_GENESIS_HEX, decodeEventBatch, encodeEventBatch, repositoryStream, type NewEvent, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  MemoryEventStore,
  encodeAndDigestEvent,
  encodedEventOf,
  readArtifactTreeSnapshot,
  type EventStore,
} from '@strata/store';
import { auditBackends, type AuditHarness } from './support/audit-backends.ts';

const SITE = 'site-c';
const STREAM = repositoryStream('fed');

const { backends, drop } = await auditBackends({ name: 'encoded', siteId: SITE, projections: [new ArtifactTreeProjection()] });
afterAll(drop);

type Op = { kind: 'deploy'; path: number; sha: number } | { kind: 'delete'; path: number } | { kind: 'props'; path: number; value: number } | { kind: 'folder'; path: number };
const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deploy' as const), path: fc.nat(7), sha: fc.nat(3) }) },
  fc.record({ kind: fc.constant('delete' as const), path: fc.nat(7) }),
  fc.record({ kind: fc.constant('props' as const), path: fc.nat(7), value: fc.nat(3) }),
  fc.record({ kind: fc.constant('folder' as const), path: fc.nat(3) }),
);
const hex = (digit: number, length: number) => String(digit % 10).repeat(length);
const pathOf = (index: number) => `dir${index % 2}/sub${index % 3}/file-${index}.bin`;

/** What site-a produced (chained by its own store), as a receiver gets it: NewEvents. */
async function produce(ops: readonly Op[]): Promise<NewEvent[]> {
  const origin = new MemoryEventStore({ siteId: 'site-a' });
  try {
    let seq = 0;
    const event = (type: NewEvent['type'], data: Record<string, unknown>): NewEvent =>
      ({ id: `a-${++seq}`, origin: 'site-a', originSeq: seq, hlc: { wall: 1_700_000_000_000 + seq, logical: seq % 3 }, type, data, meta: { actor: 'alice' } }) as NewEvent;
    const events = [
      event('RepositoryCreated', { key: 'fed', config: { rclass: 'federated', packageType: 'generic' } }),
      ...ops.map((op) => {
        switch (op.kind) {
          case 'deploy':
            return event('ArtifactDeployed', { path: pathOf(op.path), sha256: hex(op.sha, 64), sha1: hex(op.sha, 40), md5: hex(op.sha, 32), size: op.sha, mimeType: 'application/octet-stream', properties: {} });
          case 'delete':
            return event('ArtifactDeleted', { path: pathOf(op.path) });
          case 'props':
            return event('PropertiesSet', { path: pathOf(op.path), properties: { team: [`t${op.value}`] } });
          case 'folder':
            return event('FolderDeleted', { prefix: `dir${op.path % 2}` });
        }
      }),
    ];
    const recorded = (await origin.append(STREAM, events)).events;
    return recorded.map(({ stream: _stream, revision: _revision, position: _position, ...rest }) => rest as NewEvent);
  } finally {
    await origin.close();
  }
}

async function storedRows(harness: AuditHarness): Promise<unknown[]> {
  const events = await harness.store.readStream(STREAM, { maxCount: 10_000 });
  const rows: unknown[] = events.map(({ position: _position, ...event }) => event);
  if (harness.db !== undefined) {
    const chained = await sql<{ id: string; digest: Buffer; prev_hash: Buffer; origin_prev: Buffer | null; target: string | null }>`
      select id, digest, prev_hash, origin_prev, target from events where stream = ${STREAM} order by revision`.execute(harness.db);
    rows.push(...chained.rows.map((row) => ({ ...row, digest: Buffer.from(row.digest).toString('hex'), prev_hash: Buffer.from(row.prev_hash).toString('hex'), origin_prev: row.origin_prev === null ? null : Buffer.from(row.origin_prev).toString('hex') })));
    rows.push(await readArtifactTreeSnapshot(harness.db));
  }
  return rows;
}

for (const backend of backends) {
  describe(`events encoded before their append, on ${backend.name}`, () => {
    it('are stored as the same events appended without (events, revisions, digests, chains, projections)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArbitrary, { minLength: 35, maxLength: 90, size: 'max' }),
          fc.array(fc.boolean(), { minLength: 7, maxLength: 7 }),
          fc.array(fc.integer({ min: 1, max: 15 }), { minLength: 1, maxLength: 6 }),
          fc.array(fc.integer({ min: 32, max: 91 }), { minLength: 1, maxLength: 3 }),
          async (ops, encodeFirst, cuts, bigCuts) => {
            const received = await produce(ops);
            // The same events through two stores: one plain, one with (some) encodings and
            // digests computed first, as the federation engine does.
            const plain = await backend.open();
            const encoded = await backend.open();
            try {
              const copies = received.map((event) => structuredClone(event));
              copies.forEach((event, index) => {
                if (encodeFirst[index % encodeFirst.length]) encodeAndDigestEvent(STREAM, event);
              });
              // Appended in small appends to one and in batches of 32 to 91 to the other.
              const appendInCuts = async (store: EventStore, events: readonly NewEvent[], sizes: readonly number[], smallest: number) => {
                let from = 0;
                for (const size of sizes) {
                  if (from >= events.length) break;
                  const to = Math.min(events.length, from + size);
                  await store.append(STREAM, events.slice(from, to));
                  from = to;
                }
                for (; from < events.length; from += smallest) await store.append(STREAM, events.slice(from, from + smallest));
              };
              await appendInCuts(plain.store, received, cuts, 15);
              await appendInCuts(encoded.store, copies, bigCuts, 91);
              expect(await storedRows(encoded)).toEqual(await storedRows(plain));
              expect((await encoded.audit.verify()).breaks).toEqual([]);
            } finally {
              await plain.close();
              await encoded.close();
            }
          },
        ),
        { numRuns: backend.name === 'memory' ? 25 : 4, endOnFailure: backend.name !== 'memory' },
      );
    });

    it('a refused append of encoded events stores nothing; a stream other than the one encoded for, or a local event the store chains, is digested again', async () => {
      const harness = await backend.open();
      try {
        const received = await produce([
          { kind: 'deploy', path: 1, sha: 1 },
          { kind: 'props', path: 1, value: 2 },
        ]);
        for (const event of received) encodeAndDigestEvent(STREAM, event);
        expect(encodedEventOf(received[0], STREAM)).toBeDefined();
        expect(encodedEventOf(received[0], repositoryStream('other'))).toBeUndefined();
        await expect(harness.store.append(STREAM, received, { expectedRevision: 5 })).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT' });
        expect(await harness.store.readStream(STREAM)).toEqual([]);
        await harness.store.append(STREAM, received, { expectedRevision: 'no_stream' });

        // Encoded for another stream: not taken.
        const elsewhere = {
          id: 'a-x1', origin: 'site-b', originSeq: 1, hlc: { wall: 1_700_000_001_000, logical: 0 }, type: 'PropertiesSet',
          data: { path: pathOf(1), properties: { k: ['v'] } }, meta: { actor: 'bob', originPrev: CHAIN_GENESIS_HEX },
        } as NewEvent;
        encodeAndDigestEvent(repositoryStream('other'), elsewhere);
        // This site's own event without an origin link: the store adds it, so meta (and the digest) change.
        const local = { id: 'c-1', origin: SITE, originSeq: 1, hlc: { wall: 1_700_000_002_000, logical: 0 }, type: 'ArtifactDeleted', data: { path: pathOf(1) }, meta: { actor: 'carol' } } as NewEvent;
        encodeAndDigestEvent(STREAM, local);
        const stored = (await harness.store.append(STREAM, [elsewhere, local])).events as RecordedEvent[];
        expect(stored[1]!.meta.originPrev).toMatch(/^[0-9a-f]{64}$/);
        expect((await harness.audit.verify()).breaks).toEqual([]);
      } finally {
        await harness.close();
      }
    });
  });
}

describe('encodeAndDigestEvent', () => {
  const event = {
    id: 'a-f1', origin: 'site-a', originSeq: 2, hlc: { wall: 1_700_000_003_000, logical: 1 }, type: 'PropertiesSet',
    data: { path: pathOf(2), properties: { k: ['v', 'w'] } }, meta: { actor: 'alice', originPrev: 'ab'.repeat(32) },
  } as NewEvent;

  it("takes a decoder's frozen event as it is, validates any other object (refusing an invalid one), and parses its origin link once", () => {
    const [decoded] = decodeEventBatch(encodeEventBatch([event]), { eventsMax: 1 });
    const fromDecoder = encodeAndDigestEvent(STREAM, decoded!);
    expect(fromDecoder.event).toBe(decoded);
    const plain = structuredClone(event);
    const fromPlain = encodeAndDigestEvent(STREAM, plain);
    expect(fromPlain.event).not.toBe(plain);
    expect(fromPlain.event).toEqual(plain);
    // The same bytes and digest either way; the link as originPrevOf reads it.
    expect(Buffer.from(fromDecoder.data)).toEqual(Buffer.from(fromPlain.data));
    expect(Buffer.from(fromDecoder.meta)).toEqual(Buffer.from(fromPlain.meta));
    expect(fromDecoder.digest.equals(fromPlain.digest)).toBe(true);
    expect(Buffer.from(fromDecoder.originPrev!).toString('hex')).toBe('ab'.repeat(32));
    expect(encodeAndDigestEvent(STREAM, { ...event, id: 'a-f2', meta: { actor: 'alice' } }).originPrev).toBeNull();
    expect(() => encodeAndDigestEvent(STREAM, { ...event, id: 'a-f3', originSeq: 0 })).toThrow(expect.objectContaining({ code: 'STRATA_ERR_EVENT_INVALID' }));
  });
});
