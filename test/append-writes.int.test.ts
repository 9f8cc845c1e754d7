/**
 * `AppendOptions.writes` (event-store.ts): statements that commit in the transaction of the
 * append that carries them — only when that append writes new events. The federation server
 * records a push's nonce this way (federation.md, "Circle of trust"). On PGlite and
 * PostgreSQL (when DATABASE_URL is set); the memory store ignores them.
 */
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent, type StreamEvent } from '@strata/core';
import type { AppendWrites } from '@strata/store';
import { auditBackends } from './support/audit-backends.ts';

const { backends, drop } = await auditBackends({ name: 'appendwrites', siteId: 'site-a' });
afterAll(drop);

const STREAM = repositoryStream('writes');

let sequence = 0;
function deploy(path: string): NewEvent {
  sequence++;
  return {
    id: `writes-${sequence}`,
    origin: 'site-b',
    originSeq: sequence,
    hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
    meta: { actor: 'alice' },
    type: 'ArtifactDeployed',
    data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'text/plain', properties: {} },
  } as NewEvent;
}

/** A write noting `note` and the ids of the events it was given. */
function noting(note: string, seen: StreamEvent[][]): AppendWrites {
  return {
    statements(events) {
      seen.push([...events]);
      return [sql`insert into append_writes_notes (note, ids) values (${note}, ${events.map((event) => event.id).join(',')})`];
    },
  };
}

describe.each(backends.filter((backend) => backend.name !== 'memory'))('append writes on $name', (backend) => {
  it('commit with the append that writes new events, get only its events, and are not sent by an append of duplicates or a refused one', async () => {
    const harness = await backend.open();
    try {
      const db = harness.db!;
      await sql`create table append_writes_notes (note text primary key, ids text not null)`.execute(db);
      const notes = async () =>
        Object.fromEntries((await sql<{ note: string; ids: string }>`select note, ids from append_writes_notes order by note`.execute(db)).rows.map((row) => [row.note, row.ids]));
      const store = harness.store;
      const seen: StreamEvent[][] = [];

      const first = [deploy('one'), deploy('two')];
      await store.append(STREAM, first, { expectedRevision: 'no_stream', writes: noting('first', seen) });
      expect(await notes()).toEqual({ first: first.map((event) => event.id).join(',') });

      // only duplicates: nothing new written, so no writes
      const again = await store.append(STREAM, first, { expectedRevision: 'any', writes: noting('duplicates', seen) });
      expect(again.appendedCount).toBe(0);
      // a duplicate and a new event: the writes get the new event only
      const third = deploy('three');
      await store.append(STREAM, [first[1]!, third], { expectedRevision: 1, writes: noting('mixed', seen) });
      // refused (wrong expected revision): nothing stored, no writes
      await expect(store.append(STREAM, [deploy('four')], { expectedRevision: 0, writes: noting('refused', seen) })).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT' });
      expect(await notes()).toEqual({ first: first.map((event) => event.id).join(','), mixed: third.id });

      // Appends committed together (the store groups concurrent appends in one transaction):
      // each one's writes go with it, a refused one's not at all.
      const [fifth, sixth] = [deploy('five'), deploy('six')];
      const outcomes = await Promise.allSettled([
        store.append(STREAM, [fifth], { expectedRevision: 'any', writes: noting('grouped-ok', seen) }),
        store.append(repositoryStream('other'), [sixth], { expectedRevision: 7, writes: noting('grouped-refused', seen) }),
        store.append(repositoryStream('third'), [deploy('seven')], { expectedRevision: 'no_stream' }),
      ]);
      expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await notes()).toEqual({ first: first.map((event) => event.id).join(','), 'grouped-ok': fifth.id, mixed: third.id });
      expect(seen.map((events) => events.map((event) => event.id))).toContainEqual([fifth.id]);
      expect((await store.readStream(STREAM)).map((event) => event.id)).toEqual([...first, third, fifth].map((event) => event.id));
    } finally {
      await harness.close();
    }
  });

  it('a failing write rolls the append back: neither the events nor the write are stored', async () => {
    const harness = await backend.open();
    try {
      const db = harness.db!;
      await sql`create table append_writes_once (note text primary key)`.execute(db);
      await sql`insert into append_writes_once (note) values ('taken')`.execute(db);
      const stream = repositoryStream('rollback');
      const failing: AppendWrites = { statements: () => [sql`insert into append_writes_once (note) values ('taken')`] };
      await expect(harness.store.append(stream, [deploy('x')], { expectedRevision: 'no_stream', writes: failing })).rejects.toThrow();
      expect(await harness.store.readStream(stream)).toEqual([]);
      await harness.store.append(stream, [deploy('y')], { expectedRevision: 'no_stream' });
      expect((await harness.store.readStream(stream)).length).toBe(1);
    } finally {
      await harness.close();
    }
  });
});
