import { afterAll, describe, expect, it } from 'vitest';
import { isStrataError, type RecordedEvent } from '@strata/core';
import { START_CHECKPOINT, type Checkpoint, type EventStore } from '@strata/store';
import { artifactDeleted, artifactDeletedEvents, dropTestSchemas, eventStoreBackends, type TestProjection } from './event-store.backends.ts';

afterAll(dropTestSchemas);

function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  return a.position < b.position ? -1 : a.position > b.position ? 1 : 0;
}

describe.each(eventStoreBackends())('event store concurrency on $name', (backend) => {
  it('16 concurrent writers and a tailing reader: the reader sees every event exactly once', async () => {
    const harness = await backend.open();
    try {
      // On PostgreSQL the writers are spread over four stores, as four processes would be.
      const stores: EventStore[] = [harness.store];
      for (let index = 1; index < 4; index++) stores.push(await harness.another());
      const appendedIds = new Set<string>();
      let writersDone = false;
      const writers = Array.from({ length: 16 }, async (_, writer) => {
        const store = stores[writer % stores.length]!;
        for (let round = 0; round < 25; round++) {
          const events = artifactDeletedEvents(1 + ((writer + round) % 3));
          const stream = round % 2 === 0 ? `repo-writer${writer}` : 'repo-shared';
          await store.append(stream, events, { expectedRevision: 'any' });
          for (const event of events) appendedIds.add(event.id);
        }
      });
      let deadline = Number.POSITIVE_INFINITY;
      const reader = (async () => {
        const seen: string[] = [];
        let checkpoint = START_CHECKPOINT;
        // Once the writers are done, read until every appended event has been seen (or give up).
        while (!(writersDone && (seen.length >= appendedIds.size || Date.now() > deadline))) {
          const page = await harness.store.readAll({ after: checkpoint, maxCount: 37 });
          expect(compareCheckpoints(page.checkpoint, checkpoint)).toBeGreaterThanOrEqual(0);
          checkpoint = page.checkpoint;
          seen.push(...page.events.map((event) => event.id));
          if (page.events.length === 0) await new Promise((resolve) => setTimeout(resolve, 2));
        }
        return { seen, checkpoint };
      })();
      await Promise.all(writers);
      deadline = Date.now() + 30_000;
      writersDone = true;
      const { seen, checkpoint } = await reader;
      await harness.settle();
      expect((await harness.store.readAll({ after: checkpoint })).events).toEqual([]);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen.length).toBe(appendedIds.size);
      expect(new Set(seen)).toEqual(appendedIds);
      let expectedTotal = 0;
      for (let writer = 0; writer < 16; writer++) for (let round = 0; round < 25; round++) expectedTotal += 1 + ((writer + round) % 3);
      expect(appendedIds.size).toBe(expectedTotal);
      const shared = await harness.store.readStream('repo-shared', { maxCount: 10_000 });
      expect(shared.map((event) => event.revision)).toEqual(shared.map((_, index) => index));
    } finally {
      await harness.close();
    }
  });

  it('among racing appends expecting no_stream exactly one wins; appends to other streams are unaffected', async () => {
    const harness = await backend.open();
    try {
      const store = harness.store;
      const racing = Array.from({ length: 20 }, () => artifactDeletedEvents(2));
      const results = await Promise.allSettled([
        ...racing.map((events) => store.append('repo-libs', events, { expectedRevision: 'no_stream' })),
        ...Array.from({ length: 10 }, (_, index) => store.append(`repo-other${index}`, [artifactDeleted()], { expectedRevision: 'no_stream' })),
      ]);
      const racingResults = results.slice(0, 20);
      const winners = racingResults.filter((result) => result.status === 'fulfilled');
      expect(winners).toHaveLength(1);
      for (const result of racingResults) {
        if (result.status === 'rejected') expect(isStrataError(result.reason, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')).toBe(true);
      }
      expect(results.slice(20).every((result) => result.status === 'fulfilled')).toBe(true);
      const winner = (winners[0] as PromiseFulfilledResult<{ events: readonly RecordedEvent[] }>).value;
      expect(await store.readStream('repo-libs')).toEqual(winner.events);
    } finally {
      await harness.close();
    }
  });

  it('multi-stream appends racing single appends: a tailing reader never sees one part of a group without the others', async () => {
    const harness = await backend.open();
    try {
      const stores: EventStore[] = [harness.store];
      for (let index = 1; index < 3; index++) stores.push(await harness.another());
      /** Event id → the ids of its whole group (every part of one appendMany). */
      const groupOf = new Map<string, readonly string[]>();
      let writersDone = false;
      const groupWriters = Array.from({ length: 4 }, async (_, writer) => {
        const store = stores[writer % stores.length]!;
        for (let round = 0; round < 12; round++) {
          const parts = [0, 1, 2].map((part) => ({ stream: `repo-g${(writer + round + part) % 5}`, events: artifactDeletedEvents(1 + part), expectedRevision: 'any' as const }));
          const ids = parts.flatMap((part) => part.events.map((event) => event.id));
          for (const id of ids) groupOf.set(id, ids);
          await store.appendMany(parts);
        }
      });
      const singleWriters = Array.from({ length: 4 }, async (_, writer) => {
        const store = stores[(writer + 1) % stores.length]!;
        for (let round = 0; round < 12; round++) await store.append(`repo-g${(writer + round) % 5}`, artifactDeletedEvents(2), { expectedRevision: 'any' });
      });
      const reader = (async () => {
        const seen = new Set<string>();
        const torn: string[] = [];
        let checkpoint = START_CHECKPOINT;
        while (!writersDone) {
          const page = await harness.store.readAll({ after: checkpoint });
          checkpoint = page.checkpoint;
          for (const event of page.events) seen.add(event.id);
          // After each read, every group is seen whole or not at all.
          for (const event of page.events) {
            const group = groupOf.get(event.id);
            if (group !== undefined && !group.every((id) => seen.has(id))) torn.push(event.id);
          }
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        return torn;
      })();
      await Promise.all([...groupWriters, ...singleWriters]);
      writersDone = true;
      expect(await reader).toEqual([]);
      await harness.settle();
      const stored = new Set((await harness.store.readAll()).events.map((event) => event.id));
      expect([...groupOf.keys()].every((id) => stored.has(id))).toBe(true);
      expect(stored.size).toBe(groupOf.size + 4 * 12 * 2);
    } finally {
      await harness.close();
    }
  });

  it('an append its projection refuses fails alone; its neighbours in the same batch are stored', async () => {
    const poison: TestProjection = {
      async apply(events) {
        if (events.some((event) => event.type === 'ArtifactDeleted' && event.data.path === 'poison')) throw new Error('projection refused poison');
      },
    };
    const harness = await backend.open({ projections: [poison] });
    try {
      const store = harness.store;
      const appends = Array.from({ length: 10 }, (_, index) =>
        index === 4 ? [artifactDeleted(), artifactDeleted({ path: 'poison' })] : [artifactDeleted()],
      );
      const results = await Promise.allSettled(appends.map((events, index) => store.append(`repo-r${index % 3}`, events)));
      expect(results.map((result) => result.status)).toEqual(appends.map((_, index) => (index === 4 ? 'rejected' : 'fulfilled')));
      await harness.settle();
      const stored = (await store.readAll()).events.map((event) => event.id);
      expect(stored.sort()).toEqual(
        appends
          .filter((_, index) => index !== 4)
          .flat()
          .map((event) => event.id)
          .sort(),
      );
    } finally {
      await harness.close();
    }
  });

  // Only PostgreSQL lets two writers hold transactions at once; PGlite has one connection
  // (a held transaction blocks every reader) and the memory store appends one at a time.
  if (!backend.sharedByProcesses) {
    console.log(`event store concurrency on '${backend.name}': the late-commit reader test needs concurrent transactions (PostgreSQL only); skipped here`);
  }
  (backend.sharedByProcesses ? it : it.skip)('a reader never skips an event committed late by a slower concurrent transaction', async () => {
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow: TestProjection = {
      async apply(events) {
        if (events.some((event) => event.type === 'ArtifactDeleted' && event.data.path === 'slow')) {
          entered();
          await gate;
        }
      },
    };
    const harness = await backend.open({ projections: [slow] });
    try {
      const other = await harness.another();
      const slowEvent = artifactDeleted({ path: 'slow' });
      const slowAppend = harness.store.append('repo-slow', [slowEvent]);
      await inside;
      // The fast transaction starts later and commits first, with a higher position.
      const fastEvent = artifactDeleted();
      await other.append('repo-fast', [fastEvent]);
      const whileSlowRuns = await other.readAll();
      expect(whileSlowRuns.events).toEqual([]);
      release();
      await slowAppend;
      await harness.settle();
      const after = await other.readAll({ after: whileSlowRuns.checkpoint });
      expect(after.events.map((event) => event.id)).toEqual([slowEvent.id, fastEvent.id]);
    } finally {
      release();
      await harness.close();
    }
  });
});
