import { describe, expect, it } from 'vitest';
import { repositoryStream } from '@strata/core';
import { LoopbackNetwork, ManualScheduler, eventOf, openSite, push } from './federation-test-kit.ts';

const stream = repositoryStream('fed');
const T0 = 1_700_000_000_000;

describe('another writer of a federated stream (the server StreamWriter)', () => {
  it('events another writer appended are pushed to every member once the engine is told', async () => {
    // given sites a and b federated
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    // when a's other writer appends a local event and tells the engine
    await a.store.append(stream, [eventOf('a', 1, T0)], { expectedRevision: 'no_stream' });
    await a.engine.localAppended('fed');
    await scheduler.advance(0);
    // then b holds it, and a's vector counts it
    expect((await b.store.readStream(stream)).map((event) => event.id)).toEqual([eventOf('a', 1, T0).id]);
    expect(a.engine.versionVector('fed')).toEqual({ a: 1 });
  });

  it('a received batch that races an append of the other writer is planned again, not refused', async () => {
    // given site b federated with a, whose stream got a local event the engine has not read
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    await b.store.append(stream, [eventOf('b', 1, T0)], { expectedRevision: 'no_stream' });
    // when a batch from a arrives
    const reply = await b.engine.receive(push('a', [eventOf('a', 1, T0 + 1)]));
    // then it is appended after the local event, and both are in b's vector
    expect(reply).toMatchObject({ kind: 'ack', appended: 1 });
    expect((await b.store.readStream(stream)).map((event) => `${event.origin}:${event.originSeq}`)).toEqual(['b:1', 'a:1']);
    expect(b.engine.versionVector('fed')).toEqual({ a: 1, b: 1 });
  });
});
