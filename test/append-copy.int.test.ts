/**
 * A large append batch (a receiver catching up: `appendCopyEventsMin`) goes into `events` by
 * one binary COPY instead of an INSERT of unnested arrays. The two paths must store the same
 * thing: random batches (redeliveries mixed with new events, stamps out of order, deletes,
 * folder deletes, property edits, configuration edits, events of this site and of others)
 * appended to a store that always copies and to one that never does give the same events
 * (every column but the position, in the same order), the same streams rows, the same
 * projection rows (artifact tree, repositories, virtual resolution, pending binaries), and
 * both verify clean. A refused batch stores nothing on either path. On PGlite and PostgreSQL
 * (when DATABASE_URL is set).
 */
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent } from '@strata/core';
import { PendingBinariesProjection } from '@strata/federation';
import { ArtifactTreeProjection, RepositoryConfigProjection, VirtualResolutionProjection, readArtifactTreeSnapshot } from '@strata/store';
import { auditBackends, type AuditBackend, type AuditHarness } from './support/audit-backends.ts';

const SITE = 'site-c';
const KEY = 'fed';
const STREAM = repositoryStream(KEY);
const ALWAYS = { appendCopyEventsMin: 1 };
const NEVER = { appendCopyEventsMin: Number.MAX_SAFE_INTEGER };

const { backends, drop } = await auditBackends({
  name: 'append_copy',
  siteId: SITE,
  projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection(), new PendingBinariesProjection(SITE)],
  pgliteMainThread: true,
});
afterAll(drop);
const sqlBackends = backends.filter((backend) => backend.name !== 'memory');

type Op =
  | { kind: 'deploy'; path: number; sha: number }
  | { kind: 'delete'; path: number }
  | { kind: 'props'; path: number; value: number }
  | { kind: 'unprops'; path: number }
  | { kind: 'folder'; path: number }
  | { kind: 'config'; value: number };
const opArbitrary: fc.Arbitrary<{ op: Op; origin: number; wall: number; logical: number }> = fc.record({
  op: fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('deploy' as const), path: fc.nat(9), sha: fc.nat(3) }) },
    fc.record({ kind: fc.constant('delete' as const), path: fc.nat(9) }),
    fc.record({ kind: fc.constant('props' as const), path: fc.nat(9), value: fc.nat(3) }),
    fc.record({ kind: fc.constant('unprops' as const), path: fc.nat(9) }),
    fc.record({ kind: fc.constant('folder' as const), path: fc.nat(3) }),
    fc.record({ kind: fc.constant('config' as const), value: fc.nat(3) }),
  ),
  // This site's own events (the store adds their origin chain) and two peers'.
  origin: fc.nat(2),
  // Stamps from a small space, out of arrival order, often tied.
  wall: fc.integer({ min: 0, max: 40 }),
  logical: fc.nat(2),
});
const hex = (digit: number, length: number) => String(digit % 10).repeat(length);
const pathOf = (index: number) => `dir${index % 2}/sub${index % 3}/file-${index}.bin`;

function eventsOf(ops: readonly { op: Op; origin: number; wall: number; logical: number }[]): NewEvent[] {
  const seqs = [0, 0, 0];
  const make = (origin: number, wall: number, logical: number, type: NewEvent['type'], data: Record<string, unknown>): NewEvent => {
    const site = ['site-a', 'site-b', SITE][origin]!;
    const seq = ++seqs[origin]!;
    return { id: `${site}-${seq}`, origin: site, originSeq: seq, hlc: { wall: 1_700_000_000_000 + wall, logical }, type, data, meta: { actor: `actor-${origin}` } } as NewEvent;
  };
  return [
    make(0, 0, 0, 'RepositoryCreated', { key: KEY, config: { rclass: 'federated', packageType: 'generic' } }),
    ...ops.map(({ op, origin, wall, logical }) => {
      switch (op.kind) {
        case 'deploy':
          return make(origin, wall, logical, 'ArtifactDeployed', {
            path: pathOf(op.path), sha256: hex(op.sha, 64), sha1: hex(op.sha, 40), md5: hex(op.sha, 32), size: op.sha, mimeType: 'application/octet-stream',
            properties: op.sha % 2 === 0 ? {} : { build: [`b${op.sha}`] },
          });
        case 'delete':
          return make(origin, wall, logical, 'ArtifactDeleted', { path: pathOf(op.path) });
        case 'props':
          return make(origin, wall, logical, 'PropertiesSet', { path: pathOf(op.path), properties: { team: [`t${op.value}`], 'quote"d\\key': ["it's"] } });
        case 'unprops':
          return make(origin, wall, logical, 'PropertiesRemoved', { path: pathOf(op.path), keys: ['team'] });
        case 'folder':
          return make(origin, wall, logical, 'FolderDeleted', { prefix: `dir${op.path % 2}` });
        case 'config':
          return make(origin, wall, logical, 'RepositoryConfigChanged', { key: KEY, patch: { description: `edit ${op.value}` } });
      }
    }),
  ];
}

/** Everything an append writes, in the order of the global order (positions themselves differ). */
async function storedState(harness: AuditHarness): Promise<unknown> {
  const db = harness.db!;
  const hexOf = (bytes: Uint8Array | null) => (bytes === null ? null : Buffer.from(bytes).toString('hex'));
  const events = await sql<Record<string, unknown>>`
    select id, stream, revision, origin, origin_seq, hlc_wall::text as hlc_wall, hlc_logical, type, data, meta, target, prev_hash, origin_prev, digest
    from events order by transaction_id, position`.execute(db);
  const byRevision = await sql<{ id: string }>`select id from events order by stream, revision`.execute(db);
  const streams = await sql<Record<string, unknown>>`select stream, revision, chain, origin_chain, origin_chain_origin from streams order by stream`.execute(db);
  const repositories = await sql<Record<string, unknown>>`select * from repositories order by key`.execute(db);
  const orders = await sql<Record<string, unknown>>`select * from virtual_resolution_orders order by virtual_key`.execute(db);
  const pending = await sql<Record<string, unknown>>`select * from federation_pending_binaries order by sha256, repo_key`.execute(db);
  const bytes = (row: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(row).map(([column, value]) => [column, value instanceof Uint8Array ? hexOf(value) : value]));
  return {
    events: events.rows.map(bytes),
    // Within the stream, the global order is the revision order on both paths.
    revisionOrder: byRevision.rows.map((row) => row.id),
    streams: streams.rows.map(bytes),
    tree: await readArtifactTreeSnapshot(db),
    repositories: repositories.rows,
    orders: orders.rows,
    pending: pending.rows,
  };
}

/**
 * Appends `events` to `store` in batches cut at `cuts`; a batch after the first also carries
 * `redelivered[i]` events of earlier batches again (skipped as duplicates).
 */
async function deliver(harness: AuditHarness, events: readonly NewEvent[], cuts: readonly number[], redelivered: readonly number[]): Promise<void> {
  let from = 0;
  for (let batch = 0; from < events.length; batch++) {
    const to = Math.min(events.length, from + (cuts[batch % cuts.length] ?? 50));
    const again = from === 0 ? [] : events.slice(Math.max(0, from - (redelivered[batch % redelivered.length] ?? 0)), from);
    await harness.store.append(STREAM, [...again, ...events.slice(from, to)]);
    from = to;
  }
}

async function both<T>(backend: AuditBackend, work: (copying: AuditHarness, inserting: AuditHarness) => Promise<T>): Promise<T> {
  const copying = await backend.open(ALWAYS);
  const inserting = await backend.open(NEVER);
  try {
    return await work(copying, inserting);
  } finally {
    await copying.close();
    await inserting.close();
  }
}

for (const backend of sqlBackends) {
  describe(`large append batches by COPY, on ${backend.name}`, () => {
    it('store the same events, streams, projections and chains as the INSERT of the same batches', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(opArbitrary, { minLength: 20, maxLength: 260, size: 'max' }),
          fc.array(fc.integer({ min: 1, max: 140 }), { minLength: 1, maxLength: 5 }),
          fc.array(fc.nat(6), { minLength: 1, maxLength: 4 }),
          async (ops, cuts, redelivered) => {
            const events = eventsOf(ops);
            await both(backend, async (copying, inserting) => {
              await deliver(copying, events.map((event) => structuredClone(event)), cuts, redelivered);
              await deliver(inserting, events.map((event) => structuredClone(event)), cuts, redelivered);
              const copied = await storedState(copying);
              expect(copied).toEqual(await storedState(inserting));
              expect((copied as { events: unknown[] }).events).toHaveLength(events.length);
              expect((await copying.audit.verify()).breaks).toEqual([]);
            });
          },
        ),
        { numRuns: backend.name.startsWith('pglite') ? 4 : 6, endOnFailure: true },
      );
    });

    it('a refused batch stores nothing on either path', async () => {
      await both(backend, async (copying, inserting) => {
        const events = eventsOf(Array.from({ length: 150 }, (_, index) => ({ op: { kind: 'deploy' as const, path: index % 10, sha: index % 4 }, origin: index % 3, wall: index, logical: 0 })));
        for (const harness of [copying, inserting]) {
          await harness.store.append(repositoryStream('other'), [{ ...events[5]!, data: { path: 'x.bin', sha256: hex(1, 64), sha1: hex(1, 40), md5: hex(1, 32), size: 1, mimeType: 'text/plain', properties: {} } } as NewEvent]);
          // An id held by another stream, and a failed expectation: refused whole.
          await expect(harness.store.append(STREAM, events)).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_DUPLICATE_EVENT' });
          await expect(harness.store.append(STREAM, events.slice(6), { expectedRevision: 3 })).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT' });
          expect(await harness.store.readStream(STREAM)).toEqual([]);
          const appended = await harness.store.append(STREAM, events.slice(6), { expectedRevision: 'no_stream' });
          expect(appended.appendedCount).toBe(events.length - 6);
          // The same batch again: every event a duplicate, nothing written twice.
          expect((await harness.store.append(STREAM, events.slice(6))).appendedCount).toBe(0);
        }
        expect(await storedState(copying)).toEqual(await storedState(inserting));
      });
    });
  });
}
