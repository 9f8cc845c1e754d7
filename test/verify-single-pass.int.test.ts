/**
 * `strata verify`'s single pass on PostgreSQL (the table copied out in ranges side by side,
 * the links compared in node, the exact statements only for streams whose chains are not
 * intact) against the exact statements alone: over random streams with a random tamper, both
 * report the same thing — the same breaks, counts and streams.
 */
import { sql, type Kysely } from 'kysely';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent } from '@strata/core';
import { MemoryEventStore, SqlEventAudit, openEventStore, type StoreDatabase } from '@strata/store';
import { freshPostgresDatabase } from './support/postgres-database.ts';

const postgres = await freshPostgresDatabase('strata_verify_single_pass');
afterAll(async () => postgres?.drop());

const SITE = 'site-a';
const PEER = 'site-b';

const TAMPERS = ['none', 'data', 'meta', 'digest', 'link', 'removed', 'removed-last', 'reordered', 'origin-link', 'origin-seq', 'duplicate-origin-seq'] as const;
type Tamper = (typeof TAMPERS)[number];

interface Scenario {
  /** Per stream: the origin of each event in append order (true: this site, false: received from the peer). */
  readonly streams: readonly (readonly boolean[])[];
  readonly tamper: Tamper;
  /** Which stream and which of its events the tamper hits (taken modulo their counts). */
  readonly streamPick: number;
  readonly eventPick: number;
  readonly otherPick: number;
}

const scenarios: fc.Arbitrary<Scenario> = fc.record({
  streams: fc.array(fc.array(fc.boolean(), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 3 }),
  tamper: fc.constantFrom(...TAMPERS),
  streamPick: fc.nat(),
  eventPick: fc.nat(),
  otherPick: fc.nat(),
});

let runs = 0;

async function tamperWith(db: Kysely<StoreDatabase>, stream: string, length: number, scenario: Scenario): Promise<void> {
  const revision = scenario.eventPick % length;
  const other = scenario.otherPick % length;
  const row = sql`stream = ${stream} and revision = ${revision}`;
  switch (scenario.tamper) {
    case 'none':
      return;
    case 'data':
      await sql`update events set data = data || '\\x01'::bytea where ${row}`.execute(db);
      return;
    case 'meta':
      await sql`update events set meta = meta || '\\x01'::bytea where ${row}`.execute(db);
      return;
    case 'digest':
      await sql`update events set digest = sha256(digest) where ${row}`.execute(db);
      return;
    case 'link':
      await sql`update events set prev_hash = sha256(prev_hash) where ${row}`.execute(db);
      return;
    case 'removed':
      await sql`delete from events where ${row}`.execute(db);
      return;
    case 'removed-last':
      await sql`delete from events where stream = ${stream} and revision = ${length - 1}`.execute(db);
      return;
    case 'reordered':
      // Two events swap their revisions (and so their places in the site chain).
      if (other === revision) return;
      await sql`update events set revision = -1 where ${row}`.execute(db);
      await sql`update events set revision = ${revision} where stream = ${stream} and revision = ${other}`.execute(db);
      await sql`update events set revision = ${other} where stream = ${stream} and revision = -1`.execute(db);
      return;
    case 'origin-link':
      // A forged origin link on an event that carries one (the column the chain is checked by).
      await sql`update events set origin_prev = sha256(origin_prev) where ${row} and origin_prev is not null`.execute(db);
      return;
    case 'origin-seq':
      await sql`update events set origin_seq = origin_seq + 1 where ${row}`.execute(db);
      return;
    case 'duplicate-origin-seq':
      // Another event of the same origin made to claim this one's originSeq, its digest and
      // the site chain's links after it recomputed as a careful forger would.
      await sql`update events set origin_seq = (select origin_seq from events where ${row}) where stream = ${stream} and revision = ${other} and origin = (select origin from events where ${row}) and revision <> ${revision}`.execute(db);
      await sql`update events set digest = sha256(convert_to(stream || E'\n' || id || E'\n' || origin || E'\n' || origin_seq || E'\n' || hlc_wall || E'\n' || hlc_logical || E'\n' || type || E'\n' || octet_length(data) || E'\n', 'UTF8') || data || meta) where stream = ${stream}`.execute(db);
      return;
  }
}

describe.skipIf(postgres === undefined)('strata verify on PostgreSQL, one pass in ranges', () => {
  it('reports exactly what the exact statements report, for random streams with a random tamper', async () => {
    const opened = await openEventStore({ databaseUrl: postgres!.url, schema: 'single_pass', store: { siteId: SITE } });
    try {
      const singlePass = new SqlEventAudit(opened.db, { verifyConnectionsMax: 3, copyOut: opened.copyOut });
      const statements = new SqlEventAudit(opened.db);
      await fc.assert(
        fc.asyncProperty(scenarios, async (scenario) => {
          const run = runs++;
          const peer = new MemoryEventStore({ siteId: PEER });
          const names: string[] = [];
          try {
            for (const [index, origins] of scenario.streams.entries()) {
              const stream = repositoryStream(`r${run}-${index}`);
              names.push(stream);
              let sequence = 0;
              for (const local of origins) {
                sequence++;
                const event = {
                  id: `e${run}-${index}-${sequence}`,
                  origin: local ? SITE : PEER,
                  originSeq: 0,
                  hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
                  type: 'PropertiesSet',
                  data: { path: `p/${sequence}`, properties: { k: [String(sequence)] } },
                  meta: { actor: 'alice' },
                } as unknown as NewEvent;
                if (local) {
                  const produced = await opened.store.append(stream, [{ ...event, originSeq: (await originSeqOf(opened.db, stream, SITE)) + 1 }]);
                  expect(produced.events).toHaveLength(1);
                } else {
                  // Produced by the peer (which adds its origin chain), received here as it is.
                  const produced = (await peer.append(stream, [{ ...event, originSeq: (await peer.readStream(stream)).length + 1 }])).events[0]!;
                  const { stream: _stream, revision: _revision, position: _position, ...received } = produced;
                  await opened.store.append(stream, [received as NewEvent]);
                }
              }
            }
            const target = names[scenario.streamPick % names.length]!;
            await tamperWith(opened.db, target, scenario.streams[scenario.streamPick % names.length]!.length, scenario);
            const exact = await statements.verify();
            const found = await singlePass.verify();
            expect({ ...found, elapsedMs: 0 }).toEqual({ ...exact, elapsedMs: 0 });
            const one = await singlePass.verify({ stream: target });
            expect({ ...one, elapsedMs: 0 }).toEqual({ ...(await statements.verify({ stream: target })), elapsedMs: 0 });
            if (scenario.tamper === 'none') expect(one.breaks).toEqual([]);
          } finally {
            await peer.close();
          }
        }),
        { numRuns: 60 },
      );
    } finally {
      await opened.close();
    }
  });
});

async function originSeqOf(db: Kysely<StoreDatabase>, stream: string, origin: string): Promise<number> {
  const found = await sql<{ seq: number | null }>`select max(origin_seq) as seq from events where stream = ${stream} and origin = ${origin}`.execute(db);
  return Number(found.rows[0]?.seq ?? 0);
}
