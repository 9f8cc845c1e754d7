/**
 * One-round-trip appends on PostgreSQL (SqlEventStoreOptions.appendOneRoundTrip, on by default
 * there): a batch whose first round trip the store can tell in advance — the stream's row as its
 * own last commit left it, no stored ids, nothing for the projections to load — goes in one round
 * trip whose SQL checks that guess before writing. When the guess does not hold (another store
 * wrote the stream, a redelivered id, a path the projection already holds), nothing of that
 * round trip is written and the batch goes in two round trips as before: same events, same
 * revisions, same chains, same projection rows.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { StrataError, type NewEvent } from '@strata/core';
import { ArtifactTreeProjection, openEventStore, SqlEventAudit, type OpenedEventStore } from '@strata/store';
import { deferred, dropTestSchemas, testSchema } from './event-store.backends.ts';

const databaseUrl = process.env['DATABASE_URL'];

afterAll(dropTestSchemas);

let sequence = 0;
const runId = `${process.pid.toString(36)}-${Date.now().toString(36)}`;

function deployed(path: string, originSeq: number, id = `ev-1rt-${runId}-${++sequence}`): NewEvent {
  return {
    id,
    origin: 'site-a',
    originSeq,
    hlc: { wall: 1_700_000_000_000 + ++sequence, logical: 0 },
    type: 'ArtifactDeployed',
    data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} },
    meta: { actor: 'tester' },
  } as NewEvent;
}

/** A store on `schema` that counts its append round trips (and which of them committed). */
async function open(schema: string): Promise<{ opened: OpenedEventStore; sends: string[] }> {
  /** Per round trip: 'commit' (it committed), 'open' (the transaction goes on), 'failed'. */
  const sends: string[] = [];
  const opened = await openEventStore({
    databaseUrl: databaseUrl!,
    schema,
    poolConnectionsMax: 3,
    projections: [new ArtifactTreeProjection()],
    store: { siteId: 'site-a' },
    onAppendSend: (send) => sends.push(send.failed === true ? 'failed' : send.commit ? 'commit' : 'open'),
  });
  return { opened, sends };
}

/**
 * Waits (bounded: 10 s) until `done()` holds: a round trip is sent when the event loop gets to
 * it, later than any fixed sleep on a busy machine.
 */
async function until(done: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    if (waited >= 10_000) throw new Error(`not within 10 s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe.skipIf(databaseUrl === undefined)('one-round-trip appends (PostgreSQL)', () => {
  it('given a check still running when the batch is built, when it passes, then the writes went first and the commit follows; when it refuses, then nothing of the batch commits and that append alone is refused', async () => {
    const schema = testSchema('one_rt');
    const a = await open(schema);
    // Checks left pending by a failed expectation are settled before close(), which waits for them.
    const unsettled: (() => void)[] = [];
    try {
      await a.opened.store.append('repo-z', [deployed('r/1', 1)]);
      // A check answered late: the writes are sent, the commit waits for it.
      a.sends.length = 0;
      const late = deferred();
      unsettled.push(late.resolve);
      const appended = a.opened.store.append('repo-z', [deployed('r/2', 2)], { precondition: late.promise });
      await until(() => a.sends.length > 0, 'the batch sent before its check answered');
      expect(a.sends).toEqual(['open']);
      late.resolve();
      expect((await appended).nextRevision).toBe(1);
      expect(a.sends).toEqual(['open', 'commit']);
      // A late refusal: the sent writes roll back; the batch goes again as usual and refuses it alone.
      a.sends.length = 0;
      const refusal = new StrataError('STRATA_ERR_HTTP_CONFLICT', "'r/3' is a folder");
      const refusing = deferred();
      unsettled.push(() => refusing.reject(refusal));
      const results = Promise.allSettled([
        // (Another origin's event: its refusal leaves no gap in site-a's originSeqs.)
        a.opened.store.append('repo-z', [{ ...deployed('r/3', 1), origin: 'site-b' }], { precondition: refusing.promise }),
        a.opened.store.append('repo-z', [deployed('r/4', 3)]),
      ]);
      await until(() => a.sends.length > 0, 'the batch sent before its check answered');
      expect(a.sends).toEqual(['open']);
      refusing.reject(refusal);
      const [refused, kept] = await results;
      expect(refused).toEqual({ status: 'rejected', reason: refusal });
      expect(kept.status).toBe('fulfilled');
      expect(a.sends).toEqual(['open', 'open', 'commit']);
      const events = await a.opened.store.readStream('repo-z');
      expect(events.map((event) => [event.revision, (event.data as { path: string }).path])).toEqual([
        [0, 'r/1'],
        [1, 'r/2'],
        [2, 'r/4'],
      ]);
      expect((await new SqlEventAudit(a.opened.db).verify()).breaks).toEqual([]);
      const files = await a.opened.db.selectFrom('artifacts').select('path').where('repo', '=', 'z').orderBy('path').execute();
      expect(files.map((row) => row.path)).toEqual(['r/1', 'r/2', 'r/4']);
    } finally {
      for (const settle of unsettled) settle();
      await a.opened.close();
    }
  });

  it('given a store that wrote a stream last, when it appends new paths again, then each batch is one round trip; after another store wrote the stream, the guess fails and the batch is written in two, gapless and chained', async () => {
    const schema = testSchema('one_rt');
    const a = await open(schema);
    const b = await open(schema);
    try {
      // The first append of a store has nothing to guess from: two round trips.
      await a.opened.store.append('repo-x', [deployed('p/1', 1)], { expectedRevision: 'no_stream' });
      expect(a.sends).toEqual(['open', 'commit']);
      // Its own last commit known: one round trip.
      a.sends.length = 0;
      await a.opened.store.append('repo-x', [deployed('p/2', 2), deployed('p/3', 3)], { expectedRevision: 0 });
      expect(a.sends).toEqual(['commit']);
      // Another store writes the stream: a's guess is stale. Its check fails (nothing written),
      // then the batch goes in two round trips.
      await b.opened.store.append('repo-x', [deployed('p/4', 4)], { expectedRevision: 2 });
      a.sends.length = 0;
      const result = await a.opened.store.append('repo-x', [deployed('p/5', 5)], { expectedRevision: 3 });
      expect(result.nextRevision).toBe(4);
      expect(a.sends).toEqual(['failed', 'open', 'commit']);
      const events = await a.opened.store.readStream('repo-x');
      expect(events.map((event) => [event.revision, (event.data as { path: string }).path])).toEqual([
        [0, 'p/1'],
        [1, 'p/2'],
        [2, 'p/3'],
        [3, 'p/4'],
        [4, 'p/5'],
      ]);
      const verified = await new SqlEventAudit(a.opened.db).verify();
      expect(verified.breaks).toEqual([]);
      expect(verified.events).toBe(5);
      const files = await a.opened.db.selectFrom('artifacts').select(['path', 'present']).where('repo', '=', 'x').orderBy('path').execute();
      expect(files).toEqual(['p/1', 'p/2', 'p/3', 'p/4', 'p/5'].map((path) => ({ path, present: true })));
    } finally {
      await a.opened.close();
      await b.opened.close();
    }
  });

  it('given a guess that holds for the stream, when the batch redelivers a stored id or touches a path the projection holds, then the check refuses the one round trip and the batch is written as before', async () => {
    const schema = testSchema('one_rt');
    const a = await open(schema);
    try {
      const first = deployed('q/1', 1);
      await a.opened.store.append('repo-y', [first]);
      await a.opened.store.append('repo-y', [deployed('q/2', 2)]);
      // A redelivered id: idempotent, nothing new written.
      a.sends.length = 0;
      const again = await a.opened.store.append('repo-y', [first]);
      expect(again.appendedCount).toBe(0);
      expect(a.sends).toEqual(['failed', 'open', 'commit']);
      // The guess is paused after a failure: the next batches go in two round trips for a while.
      a.sends.length = 0;
      await a.opened.store.append('repo-y', [deployed('q/3', 3)]);
      expect(a.sends).toEqual(['open', 'commit']);
      // A path the projection already holds (a redeploy): loaded, evolved, written as before.
      const other = await open(schema);
      try {
        await other.opened.store.append('repo-y', [deployed('q/1', 4)]);
        await other.opened.store.append('repo-y', [deployed('q/4', 5)]);
        other.sends.length = 0;
        await other.opened.store.append('repo-y', [deployed('q/2', 6)]);
        expect(other.sends).toEqual(['failed', 'open', 'commit']);
      } finally {
        await other.opened.close();
      }
      const events = await a.opened.store.readStream('repo-y');
      expect(events.map((event) => event.revision)).toEqual([0, 1, 2, 3, 4, 5]);
      expect((await new SqlEventAudit(a.opened.db).verify()).breaks).toEqual([]);
      const rows = await a.opened.db.selectFrom('artifacts').select(['path', 'content_id', 'first_id']).where('repo', '=', 'y').orderBy('path').execute();
      expect(rows.map((row) => row.path)).toEqual(['q/1', 'q/2', 'q/3', 'q/4']);
      // The redeploy evolved the row it loaded: its first deploy is still the first.
      const redeployed = rows.find((row) => row.path === 'q/2')!;
      expect(redeployed.content_id).toBe(events[5]!.id);
      expect(redeployed.first_id).toBe(events[1]!.id);
    } finally {
      await a.opened.close();
    }
  });
});
