import { afterAll, describe, expect, it } from 'vitest';
import { isStrataError, type ErrorCode, type NewEvent } from '@strata/core';
import { START_CHECKPOINT, type Checkpoint, type EventStore } from '@strata/store';
import { artifactDeleted, artifactDeletedEvents, dropTestSchemas, eventStoreBackends, type Backend } from './event-store.backends.ts';

async function expectStrataError(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error, `expected ${code}`).toBeDefined();
  expect(isStrataError(error) ? error.code : error).toBe(code);
}

async function withStore(backend: Backend, body: (store: EventStore, settle: () => Promise<void>) => Promise<void>): Promise<void> {
  const harness = await backend.open();
  try {
    await body(harness.store, () => harness.settle());
  } finally {
    await harness.close();
  }
}

/** Everything a reader can observe, to prove a refused append changed nothing. */
async function snapshot(store: EventStore, settle: () => Promise<void>, streams: readonly string[]) {
  await settle();
  const all = await store.readAll();
  return {
    ids: all.events.map((event) => event.id),
    checkpoint: all.checkpoint,
    revisions: await Promise.all(streams.map((stream) => store.streamRevision(stream))),
  };
}

afterAll(dropTestSchemas);

function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  return a.position < b.position ? -1 : a.position > b.position ? 1 : 0;
}

describe.each(eventStoreBackends({ pgliteMainThread: true }))('event store conformance on $name', (backend) => {
  describe('expected revision', () => {
    it('no_stream holds only for a stream without events', async () => {
      await withStore(backend, async (store, settle) => {
        const first = await store.append('repo-libs', artifactDeletedEvents(2), { expectedRevision: 'no_stream' });
        expect(first.nextRevision).toBe(1);
        expect(first.appendedCount).toBe(2);
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 'no_stream' }), 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
        expect(await store.streamRevision('repo-libs')).toBe(1);
      });
    });

    it('an exact revision holds only when it is the revision of the last event', async () => {
      await withStore(backend, async (store, settle) => {
        await store.append('repo-libs', artifactDeletedEvents(3));
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 1 }), 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 3 }), 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
        const result = await store.append('repo-libs', [artifactDeleted()], { expectedRevision: 2 });
        expect(result.nextRevision).toBe(3);
        expect((await store.readStream('repo-libs')).map((event) => event.revision)).toEqual([0, 1, 2, 3]);
      });
    });

    it('exists holds only once the stream has an event, any always holds', async () => {
      await withStore(backend, async (store, settle) => {
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 'exists' }), 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
        expect(await store.streamRevision('repo-libs')).toBeUndefined();
        await store.append('repo-libs', [artifactDeleted()], { expectedRevision: 'any' });
        await store.append('repo-libs', [artifactDeleted()], { expectedRevision: 'exists' });
        await store.append('repo-libs', [artifactDeleted()]);
        expect(await store.streamRevision('repo-libs')).toBe(2);
      });
    });

    it('a conflict carries the stream and both revisions and writes nothing', async () => {
      await withStore(backend, async (store, settle) => {
        await store.append('repo-libs', [artifactDeleted()]);
        const before = await snapshot(store, settle, ['repo-libs']);
        const error = await store.append('repo-libs', artifactDeletedEvents(2), { expectedRevision: 7 }).catch((caught: unknown) => caught);
        expect(isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')).toBe(true);
        expect(isStrataError(error) && error.details).toMatchObject({ stream: 'repo-libs', expectedRevision: 7, actualRevision: 0 });
        expect(await snapshot(store, settle, ['repo-libs'])).toEqual(before);
      });
    });
  });

  describe('idempotent append by event id', () => {
    it('re-appending stored events returns them as stored and appends nothing, whatever the expectation', async () => {
      await withStore(backend, async (store, settle) => {
        const events = artifactDeletedEvents(3);
        const first = await store.append('repo-libs', events, { expectedRevision: 'no_stream' });
        const again = await store.append('repo-libs', events, { expectedRevision: 'no_stream' });
        expect(again.appendedCount).toBe(0);
        expect(again.nextRevision).toBe(2);
        expect(again.events).toEqual(first.events);
        await settle();
        expect((await store.readAll()).events).toHaveLength(3);
      });
    });

    it('a redelivery mixing stored and new events appends only the new ones, in order', async () => {
      await withStore(backend, async (store, settle) => {
        const [a, b, c] = artifactDeletedEvents(3) as [NewEvent, NewEvent, NewEvent];
        await store.append('repo-libs', [a, b]);
        const result = await store.append('repo-libs', [a, b, c], { expectedRevision: 1 });
        expect(result.appendedCount).toBe(1);
        expect(result.events.map((event) => [event.id, event.revision])).toEqual([
          [a.id, 0],
          [b.id, 1],
          [c.id, 2],
        ]);
      });
    });

    it('an id already stored in another stream is refused and nothing is written', async () => {
      await withStore(backend, async (store, settle) => {
        const shared = artifactDeleted();
        await store.append('repo-libs', [shared]);
        const before = await snapshot(store, settle, ['repo-libs', 'repo-other']);
        await expectStrataError(store.append('repo-other', [artifactDeleted(), shared]), 'STRATA_ERR_STORE_DUPLICATE_EVENT');
        expect(await snapshot(store, settle, ['repo-libs', 'repo-other'])).toEqual(before);
      });
    });

    it('concurrent deliveries of the same events store them once', async () => {
      await withStore(backend, async (store, settle) => {
        const events = artifactDeletedEvents(4);
        const results = await Promise.all(Array.from({ length: 8 }, () => store.append('repo-libs', events)));
        expect(results.reduce((sum, result) => sum + result.appendedCount, 0)).toBe(4);
        expect((await store.readStream('repo-libs')).map((event) => event.id)).toEqual(events.map((event) => event.id));
      });
    });
  });

  describe('multi-stream append (appendMany)', () => {
    it('writes every part, each with its own revisions, and readers see all of them', async () => {
      await withStore(backend, async (store, settle) => {
        await store.append('repo-a', artifactDeletedEvents(2));
        const results = await store.appendMany([
          { stream: 'repo-a', events: artifactDeletedEvents(2), expectedRevision: 1 },
          { stream: 'repo-b', events: artifactDeletedEvents(3), expectedRevision: 'no_stream' },
        ]);
        expect(results.map((result) => [result.nextRevision, result.appendedCount])).toEqual([
          [3, 2],
          [2, 3],
        ]);
        expect(results[0]!.events.map((event) => [event.stream, event.revision])).toEqual([
          ['repo-a', 2],
          ['repo-a', 3],
        ]);
        expect(await store.streamRevision('repo-b')).toBe(2);
        await settle();
        const all = (await store.readAll()).events;
        expect(all.map((event) => event.id).slice(2)).toEqual(results.flatMap((result) => result.events.map((event) => event.id)));
      });
    });

    it('one failed expectation refuses every part: nothing is written to any stream', async () => {
      await withStore(backend, async (store, settle) => {
        await store.append('repo-b', artifactDeletedEvents(1));
        const before = await snapshot(store, settle, ['repo-a', 'repo-b']);
        const error = await store
          .appendMany([
            { stream: 'repo-a', events: artifactDeletedEvents(2), expectedRevision: 'no_stream' },
            { stream: 'repo-b', events: artifactDeletedEvents(1), expectedRevision: 'no_stream' },
          ])
          .catch((caught: unknown) => caught);
        expect(isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')).toBe(true);
        expect(isStrataError(error) && error.details).toMatchObject({ stream: 'repo-b' });
        expect(await snapshot(store, settle, ['repo-a', 'repo-b'])).toEqual(before);
      });
    });

    it('an id already stored in another stream refuses every part', async () => {
      await withStore(backend, async (store, settle) => {
        const shared = artifactDeleted();
        await store.append('repo-libs', [shared]);
        const before = await snapshot(store, settle, ['repo-libs', 'repo-a', 'repo-b']);
        await expectStrataError(
          store.appendMany([
            { stream: 'repo-a', events: artifactDeletedEvents(2) },
            { stream: 'repo-b', events: [artifactDeleted(), shared] },
          ]),
          'STRATA_ERR_STORE_DUPLICATE_EVENT',
        );
        expect(await snapshot(store, settle, ['repo-libs', 'repo-a', 'repo-b'])).toEqual(before);
      });
    });

    it('a redelivered multi-stream append is idempotent', async () => {
      await withStore(backend, async (store, settle) => {
        const parts = [
          { stream: 'repo-a', events: artifactDeletedEvents(2), expectedRevision: 'no_stream' as const },
          { stream: 'repo-b', events: artifactDeletedEvents(1), expectedRevision: 'no_stream' as const },
        ];
        const first = await store.appendMany(parts);
        const again = await store.appendMany(parts);
        expect(again.map((result) => result.appendedCount)).toEqual([0, 0]);
        expect(again.map((result) => result.events)).toEqual(first.map((result) => result.events));
        await settle();
        expect((await store.readAll()).events).toHaveLength(3);
      });
    });

    it('refuses a stream named twice, an id in two parts, and a bad part, before touching the store', async () => {
      await withStore(backend, async (store, settle) => {
        const before = await snapshot(store, settle, ['repo-a', 'repo-b']);
        await expectStrataError(
          store.appendMany([
            { stream: 'repo-a', events: artifactDeletedEvents(1) },
            { stream: 'repo-a', events: artifactDeletedEvents(1) },
          ]),
          'STRATA_ERR_EVENT_INVALID',
        );
        const event = artifactDeleted();
        await expectStrataError(
          store.appendMany([
            { stream: 'repo-a', events: [event] },
            { stream: 'repo-b', events: [event] },
          ]),
          'STRATA_ERR_EVENT_INVALID',
        );
        await expectStrataError(
          store.appendMany([
            { stream: 'repo-a', events: artifactDeletedEvents(1) },
            { stream: 'system', events: artifactDeletedEvents(1) },
          ]),
          'STRATA_ERR_EVENT_WRONG_STREAM',
        );
        await expectStrataError(store.appendMany('nope' as never), 'STRATA_ERR_EVENT_INVALID');
        expect(await snapshot(store, settle, ['repo-a', 'repo-b'])).toEqual(before);
      });
    });

    it('inline projections see every part in one apply, and a projection failure stores nothing', async () => {
      const applied: string[][] = [];
      let failOn: string | undefined;
      const harness = await backend.open({
        projections: [
          {
            async apply(events) {
              if (events.some((event) => event.stream === failOn)) throw new Error('projection refused');
              applied.push(events.map((event) => event.stream));
            },
          },
        ],
      });
      try {
        const { store } = harness;
        await store.appendMany([
          { stream: 'repo-a', events: artifactDeletedEvents(1) },
          { stream: 'repo-b', events: artifactDeletedEvents(2) },
        ]);
        expect(applied).toEqual([['repo-a', 'repo-b', 'repo-b']]);
        failOn = 'repo-d';
        const before = await snapshot(store, () => harness.settle(), ['repo-c', 'repo-d']);
        await expect(
          store.appendMany([
            { stream: 'repo-c', events: artifactDeletedEvents(1) },
            { stream: 'repo-d', events: artifactDeletedEvents(1) },
          ]),
        ).rejects.toThrow();
        expect(await snapshot(store, () => harness.settle(), ['repo-c', 'repo-d'])).toEqual(before);
      } finally {
        await harness.close();
      }
    });
  });

  describe('revisions and global order', () => {
    it('revisions are gapless per stream and positions strictly increase in the global order', async () => {
      await withStore(backend, async (store, settle) => {
        const streams = ['repo-a', 'repo-b', 'repo-c'];
        await Promise.all(
          Array.from({ length: 60 }, (_, index) => store.append(streams[index % 3]!, artifactDeletedEvents(1 + (index % 4)))),
        );
        for (const stream of streams) {
          const events = await store.readStream(stream);
          expect(events.map((event) => event.revision)).toEqual(events.map((_, index) => index));
          expect(await store.streamRevision(stream)).toBe(events.length - 1);
        }
        await settle();
        const all = await store.readAll();
        expect(all.events).toHaveLength(60 * 2.5);
        expect(new Set(all.events.map((event) => event.position)).size).toBe(all.events.length);
        // The global order is the checkpoint order; on PostgreSQL positions alone need not
        // increase along it (transactions commit out of position order).
        let checkpoint = START_CHECKPOINT;
        const oneByOne: string[] = [];
        for (;;) {
          const page = await store.readAll({ after: checkpoint, maxCount: 1 });
          if (page.events.length === 0) break;
          expect(compareCheckpoints(page.checkpoint, checkpoint)).toBe(1);
          checkpoint = page.checkpoint;
          oneByOne.push(page.events[0]!.id);
        }
        expect(oneByOne).toEqual(all.events.map((event) => event.id));
      });
    });

    it('reads back exactly what was appended, and pages by checkpoint and revision', async () => {
      await withStore(backend, async (store, settle) => {
        const events = artifactDeletedEvents(5);
        const appended = await store.append('repo-libs', events);
        const read = await store.readStream('repo-libs');
        expect(read).toEqual(appended.events);
        for (const [index, event] of read.entries()) expect(event).toMatchObject({ ...events[index], stream: 'repo-libs', revision: index });
        expect((await store.readStream('repo-libs', { fromRevision: 3 })).map((event) => event.revision)).toEqual([3, 4]);
        expect(await store.readStream('repo-libs', { maxCount: 2 })).toEqual(read.slice(0, 2));
        await settle();
        const firstPage = await store.readAll({ maxCount: 2 });
        const secondPage = await store.readAll({ after: firstPage.checkpoint, maxCount: 10 });
        expect([...firstPage.events, ...secondPage.events]).toEqual(read);
        const empty = await store.readAll({ after: secondPage.checkpoint });
        expect(empty.events).toEqual([]);
        expect(empty.checkpoint).toEqual(secondPage.checkpoint);
        expect(await store.readStream('repo-none')).toEqual([]);
        expect((await store.readAll({ after: START_CHECKPOINT })).events).toHaveLength(5);
      });
    });
  });

  describe('bad input is refused before the store is touched', () => {
    const bad: { name: string; stream: string; events: () => unknown[]; code: ErrorCode }[] = [
      { name: 'an unknown event type', stream: 'repo-libs', events: () => [{ ...artifactDeleted(), type: 'ArtifactTeleported' }], code: 'STRATA_ERR_CODEC_UNKNOWN_TYPE' },
      { name: 'an artifact event in the system stream', stream: 'system', events: () => [artifactDeleted()], code: 'STRATA_ERR_EVENT_WRONG_STREAM' },
      {
        name: 'a system event in a repository stream',
        stream: 'repo-libs',
        events: () => [{ ...artifactDeleted(), type: 'UserSaved', data: { name: 'alice' } }],
        code: 'STRATA_ERR_EVENT_WRONG_STREAM',
      },
      {
        name: 'a repository event about another repository',
        stream: 'repo-libs',
        events: () => [{ ...artifactDeleted(), type: 'RepositoryDeleted', data: { key: 'other' } }],
        code: 'STRATA_ERR_EVENT_WRONG_STREAM',
      },
      { name: 'a stream that is no stream name', stream: 'repo libs/../x', events: () => [artifactDeleted()], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'an originSeq of 0', stream: 'repo-libs', events: () => [artifactDeleted({ originSeq: 0 })], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'an id with a slash', stream: 'repo-libs', events: () => [artifactDeleted({ id: 'a/b' })], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'a missing hlc', stream: 'repo-libs', events: () => [{ ...artifactDeleted(), hlc: undefined }], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'a meta value that is not a string', stream: 'repo-libs', events: () => [artifactDeleted({ meta: { actor: 42 } as never })], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'data missing its path', stream: 'repo-libs', events: () => [{ ...artifactDeleted(), data: {} }], code: 'STRATA_ERR_EVENT_INVALID' },
      { name: 'an event that is not an object', stream: 'repo-libs', events: () => ['ArtifactDeleted'], code: 'STRATA_ERR_EVENT_INVALID' },
      {
        name: 'the same id twice in one append',
        stream: 'repo-libs',
        events: () => {
          const event = artifactDeleted();
          return [event, { ...event }];
        },
        code: 'STRATA_ERR_EVENT_INVALID',
      },
      {
        name: 'data larger than the event size limit',
        stream: 'repo-libs',
        events: () => [
          {
            ...artifactDeleted(),
            type: 'PropertiesSet',
            data: { path: 'big', properties: Object.fromEntries(Array.from({ length: 400 }, (_, index) => [`key${index}`, ['x'.repeat(3000)]])) },
          },
        ],
        code: 'STRATA_ERR_CODEC_TOO_LARGE',
      },
    ];

    it.each(bad)('$name is refused with its error code and the store is unchanged', async ({ stream, events, code }) => {
      await withStore(backend, async (store, settle) => {
        await store.append('repo-libs', artifactDeletedEvents(2));
        const before = await snapshot(store, settle, ['repo-libs', 'system', stream]);
        // A valid event in front proves the append is all or nothing.
        await expectStrataError(store.append(stream, [artifactDeleted(), ...events()] as NewEvent[]), code);
        expect(await snapshot(store, settle, ['repo-libs', 'system', stream])).toEqual(before);
      });
    });

    it('an invalid expectedRevision is refused', async () => {
      await withStore(backend, async (store, settle) => {
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 'latest' as never }), 'STRATA_ERR_EVENT_INVALID');
        await expectStrataError(store.append('repo-libs', [artifactDeleted()], { expectedRevision: 1.5 }), 'STRATA_ERR_EVENT_INVALID');
        expect(await store.streamRevision('repo-libs')).toBeUndefined();
      });
    });

    it('a closed store refuses appends and reads', async () => {
      const harness = await backend.open();
      await harness.close();
      await expectStrataError(harness.store.append('repo-libs', [artifactDeleted()]), 'STRATA_ERR_STORE_CLOSED');
      await expectStrataError(harness.store.appendMany([{ stream: 'repo-libs', events: [artifactDeleted()] }]), 'STRATA_ERR_STORE_CLOSED');
      await expectStrataError(harness.store.readAll(), 'STRATA_ERR_STORE_CLOSED');
    });
  });
});
