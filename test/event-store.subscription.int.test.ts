import { afterAll, describe, expect, it } from 'vitest';
import type { RecordedEvent } from '@strata/core';
import type { Checkpoint, Subscription } from '@strata/store';
import { artifactDeletedEvents, dropTestSchemas, eventStoreBackends } from './event-store.backends.ts';

afterAll(dropTestSchemas);

async function take(subscription: Subscription, count: number, onEvent?: () => void): Promise<{ events: RecordedEvent[]; checkpoint: Checkpoint | undefined }> {
  const events: RecordedEvent[] = [];
  let checkpoint: Checkpoint | undefined;
  if (count === 0) return { events, checkpoint };
  for await (const entry of subscription) {
    events.push(entry.event);
    checkpoint = entry.checkpoint;
    onEvent?.();
    if (events.length === count) break;
  }
  return { events, checkpoint };
}

describe.each(eventStoreBackends({ pgliteMainThread: true }))('event store subscriptions on $name', (backend) => {
  it('a subscription resumed from a saved checkpoint after a restart delivers the rest exactly once', async () => {
    const harness = await backend.open();
    try {
      await harness.store.append('repo-a', artifactDeletedEvents(6));
      await harness.store.append('repo-b', artifactDeletedEvents(4));
      const first = await take(harness.store.subscribe(), 4);
      expect(first.checkpoint).toBeDefined();
      // The memory store is not durable: its "restart" keeps the same instance.
      const store = await harness.restart();
      await store.append('repo-a', artifactDeletedEvents(3));
      await harness.settle();
      const all = (await store.readAll()).events;
      expect(all).toHaveLength(backend.durable || backend.name === 'memory' ? 13 : 3);
      const rest = await take(store.subscribe({ after: first.checkpoint! }), 9);
      expect([...first.events, ...rest.events].map((event) => event.id)).toEqual(all.map((event) => event.id));
    } finally {
      await harness.close();
    }
  });

  it('a caught-up subscription delivers live appends in global order', async () => {
    const harness = await backend.open();
    try {
      const subscription = harness.store.subscribe({ pollIntervalMs: 20 });
      const received = take(subscription, 6);
      const appended: RecordedEvent[] = [];
      for (let round = 0; round < 3; round++) {
        await new Promise((resolve) => setTimeout(resolve, 30));
        appended.push(...(await harness.store.append(`repo-s${round}`, artifactDeletedEvents(2))).events);
      }
      expect((await received).events).toEqual(appended);
    } finally {
      await harness.close();
    }
  });

  it('a subscription pages through a long backlog in order', async () => {
    const harness = await backend.open();
    try {
      for (let batch = 0; batch < 5; batch++) await harness.store.append('repo-big', artifactDeletedEvents(500));
      const { events } = await take(harness.store.subscribe(), 2500);
      expect(events.map((event) => event.revision)).toEqual(events.map((_, index) => index));
    } finally {
      await harness.close();
    }
  });

  it('a subscription ends when its signal aborts, when closed, and when the store closes', async () => {
    const harness = await backend.open();
    try {
      await harness.store.append('repo-a', artifactDeletedEvents(1));
      const controller = new AbortController();
      // Each ends once the one stored event has been delivered (not after a fixed delay: the
      // first read may take longer than any delay, PGlite answering from its worker thread).
      const aborted = take(harness.store.subscribe({ signal: controller.signal, pollIntervalMs: 10_000 }), 5, () => setTimeout(() => controller.abort(), 20));
      expect((await aborted).events).toHaveLength(1);

      const subscription = harness.store.subscribe({ pollIntervalMs: 10_000 });
      const closed = take(subscription, 5, () => setTimeout(() => void subscription.close(), 20));
      expect((await closed).events).toHaveLength(1);

      let delivered!: () => void;
      const first = new Promise<void>((resolve) => (delivered = resolve));
      const untilStoreCloses = take(harness.store.subscribe({ pollIntervalMs: 10_000 }), 5, () => delivered());
      await first;
      // Then idle in its poll wait, as before this test waited for the first delivery.
      await new Promise((resolve) => setTimeout(resolve, 50));
      await harness.store.close();
      expect((await untilStoreCloses).events).toHaveLength(1);
    } finally {
      await harness.close();
    }
  });

  it('a store closed right after a delivery, while the subscription reads its next page, ends the subscription', async () => {
    // PostgreSQL: the pool's end() never answers a connection request still queued, so a
    // close that did not wait for the read in flight left the subscription hanging forever.
    for (let round = 0; round < 3; round++) {
      const harness = await backend.open();
      try {
        await harness.store.append('repo-a', artifactDeletedEvents(1));
        let delivered!: () => void;
        const first = new Promise<void>((resolve) => (delivered = resolve));
        const untilStoreCloses = take(harness.store.subscribe({ pollIntervalMs: 10_000 }), 5, () => delivered());
        await first;
        await harness.store.close();
        expect((await untilStoreCloses).events).toHaveLength(1);
      } finally {
        await harness.close();
      }
    }
  });
});
