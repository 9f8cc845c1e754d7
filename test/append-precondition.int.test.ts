import { afterAll, describe, expect, it } from 'vitest';
import { isStrataError, StrataError } from '@strata/core';
import { artifactDeleted, deferred, dropTestSchemas, eventStoreBackends } from './event-store.backends.ts';

afterAll(dropTestSchemas);

describe.each(eventStoreBackends())('append precondition ($name)', (backend) => {
  it('given a precondition still pending when the append starts, when it resolves, then the append is written', async () => {
    const harness = await backend.open();
    try {
      const check = deferred();
      const appended = harness.store.append('repo-a', [artifactDeleted({ path: 'one' })], { expectedRevision: 'no_stream', precondition: check.promise });
      await new Promise((resolve) => setTimeout(resolve, 20));
      check.resolve();
      const result = await appended;
      expect(result.nextRevision).toBe(0);
      expect((await harness.store.readStream('repo-a')).map((event) => event.revision)).toEqual([0]);
    } finally {
      await harness.close();
    }
  });

  it('given appends queued together, when one precondition rejects, then that append alone is refused with its reason and the others are written', async () => {
    const harness = await backend.open();
    try {
      const store = harness.store;
      await store.append('repo-a', [artifactDeleted({ path: 'first' })]);
      const refusal = new StrataError('STRATA_ERR_HTTP_CONFLICT', 'the path is a folder');
      const check = deferred();
      const results = Promise.allSettled([
        store.append('repo-a', [artifactDeleted({ path: 'refused' })], { expectedRevision: 0, precondition: check.promise }),
        store.append('repo-b', [artifactDeleted({ path: 'kept' })], { expectedRevision: 'no_stream' }),
        store.append('repo-c', [artifactDeleted({ path: 'kept too' })], { precondition: Promise.resolve() }),
      ]);
      setTimeout(() => check.reject(refusal), 10);
      const [refused, kept, keptToo] = await results;
      expect(refused.status).toBe('rejected');
      expect((refused as PromiseRejectedResult).reason).toBe(refusal);
      expect(kept.status).toBe('fulfilled');
      expect(keptToo.status).toBe('fulfilled');
      expect((await store.readStream('repo-a')).map((event) => event.data)).toEqual([{ path: 'first' }]);
      expect(await store.streamRevision('repo-a')).toBe(0);
      // The refusal left nothing behind: the next append at the same revision is written.
      await store.append('repo-a', [artifactDeleted({ path: 'after' })], { expectedRevision: 0 });
      expect((await store.readStream('repo-a')).map((event) => event.revision)).toEqual([0, 1]);
    } finally {
      await harness.close();
    }
  });

  it('given a precondition that rejects with something other than a StrataError, when the append runs, then it is refused with a typed error', async () => {
    const harness = await backend.open();
    try {
      const error = await harness.store.append('repo-a', [artifactDeleted()], { precondition: Promise.reject(new Error('lookup failed')) }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(isStrataError(error, 'STRATA_ERR_INVARIANT')).toBe(true);
      expect(await harness.store.streamRevision('repo-a')).toBeUndefined();
    } finally {
      await harness.close();
    }
  });

  it('given an append queued after (`after`) another of the same stream, then it is written only once that one committed, never in its transaction; when that one is refused, it is refused with the reason and writes nothing', async () => {
    const harness = await backend.open();
    try {
      const store = harness.store;
      // Queued together: were they one transaction, the second would wait for the first's commit inside it.
      const first = store.append('repo-a', [artifactDeleted({ path: 'one' })], { expectedRevision: 'no_stream' });
      const second = store.append('repo-a', [artifactDeleted({ path: 'two' })], { expectedRevision: 0, after: first });
      expect((await second).nextRevision).toBe(1);
      expect((await first).nextRevision).toBe(0);
      // The one ahead refused: the one after it is refused with that reason, even where its own expectation would hold.
      const refused = store.append('repo-a', [artifactDeleted({ path: 'refused' })], { expectedRevision: 5 });
      const behind = store.append('repo-a', [artifactDeleted({ path: 'behind' })], { after: refused });
      const [ahead, following] = await Promise.allSettled([refused, behind]);
      expect(isStrataError((ahead as PromiseRejectedResult).reason, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')).toBe(true);
      expect((following as PromiseRejectedResult).reason).toBe((ahead as PromiseRejectedResult).reason);
      expect((await store.readStream('repo-a')).map((event) => event.data)).toEqual([{ path: 'one' }, { path: 'two' }]);
    } finally {
      await harness.close();
    }
  });
});
