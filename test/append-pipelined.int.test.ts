/**
 * Pipelined large batches on PostgreSQL (sql-event-store.ts, #startWriter): once a large batch's
 * Node work is done and only its database work is left, the next batch of the same stream is
 * built on the rows that one will leave and sent on another connection, where PostgreSQL holds
 * it on the stream's row lock until the batch ahead ends; its guess check then refuses it unless
 * the rows are exactly those. A batch ahead that fails leaves nothing of the one behind it: that
 * one is written again, on the stream as it is. Held here by an advisory lock the batch ahead
 * must take in its last round trip (its `writes`), so that the one behind is seen waiting.
 */
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import { ArtifactTreeProjection, openEventStore, SqlEventAudit, type AppendWrites, type OpenedEventStore } from '@strata/store';
import { dropTestSchemas, testSchema } from './event-store.backends.ts';

const databaseUrl = process.env['DATABASE_URL'];

afterAll(dropTestSchemas);

let sequence = 0;
const runId = `${process.pid.toString(36)}-${Date.now().toString(36)}`;
/** Events per append: two appends never share a batch (appendBatchEventsMax), each takes the COPY path (appendCopyEventsMin 100). */
const pageEvents = 150;

function page(prefix: string, firstOriginSeq: number): NewEvent[] {
  return Array.from(
    { length: pageEvents },
    (_, index) =>
      ({
        id: `ev-pipe-${runId}-${++sequence}`,
        origin: 'site-b',
        originSeq: firstOriginSeq + index,
        hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
        type: 'ArtifactDeployed',
        data: { path: `${prefix}/${index}`, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} },
        meta: { actor: 'tester' },
      }) as NewEvent,
  );
}

/** A store on `schema` that notes its append round trips ('commit', 'open', 'failed'). */
async function open(schema: string): Promise<{ opened: OpenedEventStore; sends: string[] }> {
  const sends: string[] = [];
  const opened = await openEventStore({
    databaseUrl: databaseUrl!,
    schema,
    poolConnectionsMax: 4,
    projections: [new ArtifactTreeProjection()],
    store: { siteId: 'site-a', appendBatchEventsMax: pageEvents },
    onAppendSend: (send) => sends.push(send.failed === true ? 'failed' : send.commit ? 'commit' : 'open'),
  });
  return { opened, sends };
}

/** Waits (bounded: 20 s) until `done()` holds. */
async function until(done: () => Promise<boolean>, what: string): Promise<void> {
  for (let waited = 0; !(await done()); waited += 10) {
    if (waited >= 20_000) throw new Error(`not within 20 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An append's writes that wait for the advisory lock `key` (held by the test), then fail when `fail`. */
function heldBy(key: number, fail: boolean): AppendWrites {
  return {
    statements: () => [sql`select pg_advisory_xact_lock(${key}::bigint)`, ...(fail ? [sql`select 'not a number'::int`] : [])],
  };
}

/** True once a backend of `schema`'s store waits for a row lock in a statement checking a guess (the batch behind). */
async function behindIsWaiting(client: pg.Client): Promise<boolean> {
  const rows = await client.query<{ n: string }>(
    `select count(*)::text as n from pg_stat_activity where wait_event_type = 'Lock' and wait_event in ('transactionid', 'tuple') and query like '%guessed%'`,
  );
  return rows.rows[0]!.n !== '0';
}

describe.skipIf(databaseUrl === undefined)('pipelined large batches (PostgreSQL)', () => {
  it('given a large batch whose commit is held, when the next large batch of the stream comes, then it is sent behind it and both commit: gapless, chained, projected', async () => {
    const schema = testSchema('pipe');
    const a = await open(schema);
    const holder = new pg.Client({ connectionString: databaseUrl });
    await holder.connect();
    const key = 7_000_000 + (process.pid % 100_000);
    try {
      // The store's last commit of the stream is known (what the batch behind is built on, like it).
      await a.opened.store.append('repo-p', page('warm', 1));
      await holder.query('select pg_advisory_lock($1::bigint)', [key]);
      const first = a.opened.store.append('repo-p', page('one', pageEvents + 1), { writes: heldBy(key, false) });
      const second = a.opened.store.append('repo-p', page('two', 2 * pageEvents + 1));
      await until(() => behindIsWaiting(holder), 'the second batch sent while the first is held');
      await holder.query('select pg_advisory_unlock($1::bigint)', [key]);
      const [one, two] = await Promise.all([first, second]);
      expect(one.nextRevision).toBe(2 * pageEvents - 1);
      expect(two.nextRevision).toBe(3 * pageEvents - 1);
      expect(two.events[0]!.revision).toBe(2 * pageEvents);
      expect(a.sends).not.toContain('failed');
      const events = await a.opened.store.readStream('repo-p', { maxCount: 10_000 });
      expect(events.map((event) => event.revision)).toEqual(Array.from({ length: 3 * pageEvents }, (_, index) => index));
      expect(events.map((event) => event.originSeq)).toEqual(Array.from({ length: 3 * pageEvents }, (_, index) => index + 1));
      const verified = await new SqlEventAudit(a.opened.db).verify();
      expect(verified.breaks).toEqual([]);
      expect(verified.events).toBe(3 * pageEvents);
      const files = await a.opened.db.selectFrom('artifacts').select('path').where('repo', '=', 'p').where('present', '=', true).execute();
      expect(files).toHaveLength(3 * pageEvents);
    } finally {
      await holder.end();
      await a.opened.close();
    }
  });

  it('given a large batch that fails after the next one was built on it, then nothing of that one is written on the state the failed batch never left: it is written again on the stream as it is', async () => {
    const schema = testSchema('pipe');
    const a = await open(schema);
    const holder = new pg.Client({ connectionString: databaseUrl });
    await holder.connect();
    const key = 7_100_000 + (process.pid % 100_000);
    try {
      await a.opened.store.append('repo-q', page('warm', 1));
      await holder.query('select pg_advisory_lock($1::bigint)', [key]);
      a.sends.length = 0;
      const failing = a.opened.store.append('repo-q', page('lost', pageEvents + 1), { writes: heldBy(key, true) });
      // Built on the failing batch's rows; its own expectation holds either way ('any').
      const behind = a.opened.store.append('repo-q', page('kept', 2 * pageEvents + 1));
      await until(() => behindIsWaiting(holder), 'the second batch sent while the first is held');
      await holder.query('select pg_advisory_unlock($1::bigint)', [key]);
      const [lost, kept] = await Promise.allSettled([failing, behind]);
      expect(lost.status).toBe('rejected');
      expect(kept.status).toBe('fulfilled');
      // The failed batch's last round trip, then the guess check of the batch built on it.
      expect(a.sends.filter((send) => send === 'failed')).toHaveLength(2);
      const result = (kept as PromiseFulfilledResult<Awaited<typeof behind>>).value;
      expect(result.events[0]!.revision).toBe(pageEvents);
      expect(result.nextRevision).toBe(2 * pageEvents - 1);
      const events = await a.opened.store.readStream('repo-q', { maxCount: 10_000 });
      expect(events.map((event) => event.revision)).toEqual(Array.from({ length: 2 * pageEvents }, (_, index) => index));
      expect(events.some((event) => (event.data as { path: string }).path.startsWith('lost/'))).toBe(false);
      const verified = await new SqlEventAudit(a.opened.db).verify();
      expect(verified.breaks).toEqual([]);
      expect(verified.events).toBe(2 * pageEvents);
      const files = await a.opened.db.selectFrom('artifacts').select('path').where('repo', '=', 'q').orderBy('path').execute();
      expect(files.map((row) => row.path.split('/')[0])).toEqual([...Array<string>(pageEvents).fill('kept'), ...Array<string>(pageEvents).fill('warm')]);
      // And the store goes on: the next large batch is built on what it wrote.
      const after = await a.opened.store.append('repo-q', page('after', 3 * pageEvents + 1));
      expect(after.nextRevision).toBe(3 * pageEvents - 1);
      expect((await new SqlEventAudit(a.opened.db).verify()).breaks).toEqual([]);
    } finally {
      await holder.end();
      await a.opened.close();
    }
  });
});
