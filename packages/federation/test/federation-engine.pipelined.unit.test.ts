import { describe, expect, it } from 'vitest';
import { repositoryStream, StrataError, type NewEvent } from '@strata/core';
import { MemoryEventStore, type AppendOptions, type AppendResult } from '@strata/store';
import { LoopbackNetwork, ManualScheduler, eventOf, openSite, push } from './federation-test-kit.ts';

const stream = repositoryStream('fed');
const T0 = 1_700_000_000_000;

/** A memory store whose appends to the federated stream can be held, then let through or failed. */
class HeldStore extends MemoryEventStore {
  /** Per append of the stream, in call order: when it was called, the events' originSeqs. */
  readonly calls: { readonly originSeqs: number[]; release: (fail?: Error) => void }[] = [];
  holding = false;
  /** As the SQL store on PostgreSQL: the engine hands batches over early. */
  readonly appendsPipelined = true;

  override append(name: string, events: readonly NewEvent[], options: AppendOptions = {}): Promise<AppendResult> {
    if (name !== stream || !this.holding) return super.append(name, events, options);
    let release!: (fail?: Error) => void;
    const released = new Promise<Error | undefined>((resolve) => (release = resolve));
    this.calls.push({ originSeqs: events.map((event) => event.originSeq), release });
    return released.then((fail) => (fail === undefined ? super.append(name, events, options) : Promise.reject(fail)));
  }
}

const page = (first: number, count: number): NewEvent[] => Array.from({ length: count }, (_, index) => eventOf('a', first + index, T0 + first + index));

async function until(done: () => boolean): Promise<void> {
  for (let turns = 0; !done(); turns++) {
    if (turns > 1_000) throw new Error('never happened');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('received batches pipelined into the store (catch-up pages)', () => {
  it('a batch that follows one still being appended is planned on it and handed to the store at once; both are appended and acknowledged in order', async () => {
    // given site b, whose store holds the appends of its federated stream
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const store = new HeldStore();
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { store });
    store.holding = true;
    // when a's first page arrives, then its second while the first is still being appended
    const first = b.engine.receive(push('a', page(1, 3)));
    await until(() => store.calls.length === 1);
    const second = b.engine.receive(push('a', page(4, 3)));
    // then the second is handed to the store before the first is appended
    await until(() => store.calls.length === 2);
    expect(store.calls.map((call) => call.originSeqs)).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    for (const call of store.calls) call.release();
    expect(await first).toMatchObject({ kind: 'ack', appended: 3 });
    expect(await second).toMatchObject({ kind: 'ack', appended: 3, vector: { a: 6 } });
    const events = await store.readStream(stream);
    expect(events.map((event) => [event.revision, event.originSeq])).toEqual([1, 2, 3, 4, 5, 6].map((seq) => [seq - 1, seq]));
    expect(b.engine.versionVector('fed')).toEqual({ a: 6 });
  });

  it('when the batch ahead fails after the next one was planned on it, nothing of the next one is appended: it is refused as a gap, and resent the two converge', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const store = new HeldStore();
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { store });
    store.holding = true;
    const first = b.engine.receive(push('a', page(1, 3)));
    await until(() => store.calls.length === 1);
    const second = b.engine.receive(push('a', page(4, 3)));
    await until(() => store.calls.length === 2);
    // when the first page's append fails (and the second's store append would go through)
    store.calls[0]!.release(new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the database went away'));
    store.calls[1]!.release();
    // then the first is refused as unavailable, the second as a gap, and the store holds neither
    expect(await first).toMatchObject({ kind: 'refused', reason: 'unavailable' });
    expect(await second).toMatchObject({ kind: 'refused', reason: 'gap', vector: {} });
    expect(await store.readStream(stream)).toEqual([]);
    expect(b.engine.versionVector('fed')).toEqual({});
    // and sent again, in order, both are appended
    store.holding = false;
    expect(await b.engine.receive(push('a', page(1, 3)))).toMatchObject({ kind: 'ack', appended: 3 });
    expect(await b.engine.receive(push('a', page(4, 3)))).toMatchObject({ kind: 'ack', appended: 3, vector: { a: 6 } });
    expect((await store.readStream(stream)).map((event) => event.originSeq)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('a batch with an event of the batch ahead is planned only once that one is recorded (a redelivery, not a conflict)', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const store = new HeldStore();
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { store });
    store.holding = true;
    const first = b.engine.receive(push('a', page(1, 3)));
    await until(() => store.calls.length === 1);
    // when a batch overlapping it (events 3 to 5) arrives while it is being appended
    const overlapping = b.engine.receive(push('a', page(3, 3)));
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
    // then it waits: nothing more is handed to the store until the first is recorded
    expect(store.calls).toHaveLength(1);
    store.calls[0]!.release();
    expect(await first).toMatchObject({ kind: 'ack', appended: 3 });
    await until(() => store.calls.length === 2);
    expect(store.calls[1]!.originSeqs).toEqual([4, 5]);
    store.calls[1]!.release();
    expect(await overlapping).toMatchObject({ kind: 'ack', appended: 2, duplicates: 1 });
    expect((await store.readStream(stream)).map((event) => event.originSeq)).toEqual([1, 2, 3, 4, 5]);
  });
});
