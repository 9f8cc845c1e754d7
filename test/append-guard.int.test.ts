/**
 * Append guards (AppendOptions.guard): a caller's check as a statement of the append's own
 * transaction, run after its locks in the round trip that takes them. SQL stores only: the
 * memory store refuses an append that carries one. On PostgreSQL a batch sent in one round
 * trip (appendOneRoundTrip) checks the guards with its guess; a guard that does not hold sends
 * the batch the usual way, which refuses that append alone, and does not pause the guesses.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { isStrataError, StrataError } from '@strata/core';
import { openEventStore, type AppendGuard } from '@strata/store';
import { artifactDeleted, dropTestSchemas, eventStoreBackends, testSchema } from './event-store.backends.ts';

afterAll(dropTestSchemas);

/** Refuses the append while `stream` holds an event; the refusal keeps the rows it was given. */
function emptyStream(stream: string): AppendGuard & { readonly seen: Readonly<Record<string, unknown>>[][] } {
  const seen: Readonly<Record<string, unknown>>[][] = [];
  return {
    statement: sql`select stream, revision from events where stream = ${stream} order by revision`,
    refusal(rows) {
      seen.push([...rows]);
      return new StrataError('STRATA_ERR_HTTP_CONFLICT', `${stream} already holds events`);
    },
    seen,
  };
}

/** What `append` was refused with (undefined: it was written). */
const refusalOf = (append: Promise<unknown>): Promise<unknown> => append.then(
  () => undefined,
  (caught: unknown) => caught,
);

describe.each(eventStoreBackends())('append guard ($name)', (backend) => {
  if (backend.name === 'memory') {
    it('given a guard, when the memory store appends, then it refuses with a typed error and writes nothing', async () => {
      const harness = await backend.open();
      try {
        const error = await refusalOf(harness.store.append('repo-a', [artifactDeleted()], { guard: emptyStream('repo-a') }));
        expect(isStrataError(error, 'STRATA_ERR_INVARIANT')).toBe(true);
        expect(await harness.store.streamRevision('repo-a')).toBeUndefined();
      } finally {
        await harness.close();
      }
    });
    return;
  }

  it('given a guard whose statement returns no rows, when the append runs, then it is written', async () => {
    const harness = await backend.open();
    try {
      const guard = emptyStream('repo-b');
      const result = await harness.store.append('repo-a', [artifactDeleted({ path: 'one' })], { expectedRevision: 'no_stream', guard });
      expect(result.nextRevision).toBe(0);
      expect(guard.seen).toEqual([]);
      expect((await harness.store.readStream('repo-a')).map((event) => event.data)).toEqual([{ path: 'one' }]);
    } finally {
      await harness.close();
    }
  });

  it('given appends queued together, when one guard reads rows committed before it, then that append alone is refused with its refusal and the others are written', async () => {
    const harness = await backend.open();
    try {
      const store = harness.store;
      await store.append('repo-a', [artifactDeleted({ path: 'first' })]);
      await store.append('repo-taken', [artifactDeleted({ path: 'taken' })]);
      const refusing = emptyStream('repo-taken');
      const passing = emptyStream('repo-free');
      const [refused, kept, keptToo] = await Promise.allSettled([
        store.append('repo-a', [artifactDeleted({ path: 'refused' })], { expectedRevision: 0, guard: refusing }),
        store.append('repo-b', [artifactDeleted({ path: 'kept' })], { expectedRevision: 'no_stream', guard: passing }),
        store.append('repo-c', [artifactDeleted({ path: 'kept too' })]),
      ]);
      expect(refused.status).toBe('rejected');
      expect(isStrataError((refused as PromiseRejectedResult).reason, 'STRATA_ERR_HTTP_CONFLICT')).toBe(true);
      expect(((refused as PromiseRejectedResult).reason as Error).message).toMatch(/repo-taken already holds events/);
      // The refusal was given the statement's rows, as JSON objects by column name.
      expect(refusing.seen.at(-1)).toEqual([{ stream: 'repo-taken', revision: 0 }]);
      expect(kept.status).toBe('fulfilled');
      expect(keptToo.status).toBe('fulfilled');
      expect((await store.readStream('repo-a')).map((event) => event.data)).toEqual([{ path: 'first' }]);
      // The refusal left nothing behind: the next append at the same revision is written.
      await store.append('repo-a', [artifactDeleted({ path: 'after' })], { expectedRevision: 0, guard: passing });
      expect((await store.readStream('repo-a')).map((event) => event.revision)).toEqual([0, 1]);
    } finally {
      await harness.close();
    }
  });

  it('given a guard whose refusal throws something other than a StrataError, when it refuses, then the append is refused with a typed error', async () => {
    const harness = await backend.open();
    try {
      await harness.store.append('repo-taken', [artifactDeleted({ path: 'taken' })]);
      const guard: AppendGuard = {
        statement: sql`select 1 as one from events where stream = 'repo-taken'`,
        refusal() {
          throw new Error('cannot say why');
        },
      };
      const error = await refusalOf(harness.store.append('repo-a', [artifactDeleted()], { guard }));
      expect(isStrataError(error, 'STRATA_ERR_INVARIANT')).toBe(true);
      expect(await harness.store.streamRevision('repo-a')).toBeUndefined();
    } finally {
      await harness.close();
    }
  });
});

const databaseUrl = process.env['DATABASE_URL'];

describe.skipIf(databaseUrl === undefined)('append guard in one round trip (postgres)', () => {
  it('given a stream the store guesses, when guarded appends run, then a passing guard costs no round trip, a failing one refuses alone and the guesses go on', async () => {
    const schema = testSchema('guard_1rt');
    const sends: string[] = [];
    const opened = await openEventStore({
      databaseUrl: databaseUrl!,
      schema,
      poolConnectionsMax: 3,
      store: { siteId: 'site-a' },
      onAppendSend: (send) => sends.push(send.failed === true ? 'failed' : send.commit ? 'commit' : 'open'),
    });
    try {
      const store = opened.store;
      await store.append('repo-a', [artifactDeleted({ path: 'first' })], { expectedRevision: 'no_stream' });
      await store.append('repo-taken', [artifactDeleted({ path: 'taken' })]);
      // The stream's row as this store left it: the next batch on it is one round trip.
      sends.length = 0;
      await store.append('repo-a', [artifactDeleted({ path: 'passes' })], { expectedRevision: 0, guard: emptyStream('repo-free') });
      expect(sends).toEqual(['commit']);
      sends.length = 0;
      const refusing = emptyStream('repo-taken');
      const error = await refusalOf(store.append('repo-a', [artifactDeleted({ path: 'refused' })], { expectedRevision: 1, guard: refusing }));
      expect(isStrataError(error, 'STRATA_ERR_HTTP_CONFLICT')).toBe(true);
      // The one round trip failed on the guard (nothing written), the usual one read why and refused.
      expect(sends[0]).toBe('failed');
      expect(refusing.seen).toEqual([[{ stream: 'repo-taken', revision: 0 }]]);
      expect((await store.readStream('repo-a')).map((event) => event.data)).toEqual([{ path: 'first' }, { path: 'passes' }]);
      // The guess held, so it is not paused: the next guarded batch is one round trip again.
      sends.length = 0;
      await store.append('repo-a', [artifactDeleted({ path: 'after' })], { expectedRevision: 1, guard: emptyStream('repo-free') });
      expect(sends).toEqual(['commit']);
      expect((await store.readStream('repo-a')).map((event) => event.revision)).toEqual([0, 1, 2]);
    } finally {
      await opened.close();
    }
  });
});
