import { describe, expect, it } from 'vitest';
import { repositoryStream } from '@strata/core';
import { LoopbackNetwork, ManualScheduler, deploy, eventOf, memberUrl, openSite, push } from './federation-test-kit.ts';

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

describe('joining a repository with a long history', () => {
  it('a site added long after the creation joins: the batch holding the creation carries the sender’s members field', async () => {
    // given a, alone in a repository, with more events than one batch before c is added
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a'], { engine: { federationBatchEventsMax: 3 } });
    await a.engine.commit('fed', [{ type: 'RepositoryCreated', data: { key: 'fed', config: { rclass: 'federated', members: [{ url: memberUrl('a') }] } } }]);
    for (let i = 0; i < 7; i++) await a.engine.commit('fed', [deploy(`early-${i}`)]);
    const c = await openSite(network, scheduler, 'c', [], { federate: false, engine: { federationBatchEventsMax: 3 } });
    // when a adds c (the edit is event 9, two batches beyond the creation)
    await a.engine.commit('fed', [
      { type: 'RepositoryConfigChanged', data: { key: 'fed', patch: { members: [{ url: memberUrl('a'), enabled: true }, { url: memberUrl('c'), enabled: true }] } } },
    ]);
    await scheduler.advance(5_000);
    // then c joined and holds everything
    expect(c.engine.isFederated('fed')).toBe(true);
    expect(c.engine.versionVector('fed')).toEqual({ a: 9 });
    // and the first batch c accepted carried a's members field next to the creation
    const first = network.requests.find((entry) => entry.to === 'c' && entry.reply?.kind === 'ack');
    expect(first?.request.members?.map((member) => member.url)).toEqual([memberUrl('a'), memberUrl('c')]);
  });
});
