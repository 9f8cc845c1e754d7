import { describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent } from '@strata/core';
import { MemoryEventStore, type AppendWrites } from '@strata/store';
import type { ReceiveStages } from '../src/index.ts';
import { LoopbackNetwork, ManualScheduler, deploy, eventOf, memberUrl, openSite, push, settle } from './federation-test-kit.ts';

const stream = repositoryStream('fed');
const T0 = 1_700_000_000_000;

describe('receiving a peer batch', () => {
  it('refuses a batch with an originSeq gap and applies none of it, replying with its vector to resend from', async () => {
    // given site b, federated with a
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    // when a sends events 1 and 3 of its origin
    const reply = await b.engine.receive(push('a', [eventOf('a', 1, T0), eventOf('a', 3, T0)]));
    // then nothing is stored and the reply asks for a resend from the vector b holds
    expect(reply).toMatchObject({ kind: 'refused', reason: 'gap', vector: {} });
    expect(await b.store.readStream(stream)).toHaveLength(0);
    expect(b.appended).toHaveLength(0);
    expect(b.engine.status('fed').members[0]?.lastError).toMatch(/refused here, gap: a originSeq 3 follows 1/);
    // an accepted batch from the member clears it (b then pushes to a at once, which this
    // test's network cannot reach: that failure is the only error left)
    await b.engine.receive(push('a', [eventOf('a', 1, T0)]));
    expect(b.engine.status('fed').members[0]?.lastError ?? '').not.toMatch(/refused here/);
  });

  it('ignores a redelivered event: stored once, projected once, acknowledged as a duplicate', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    const batch = push('a', [eventOf('a', 1, T0), eventOf('a', 2, T0)]);
    expect(await b.engine.receive(batch)).toMatchObject({ kind: 'ack', appended: 2, duplicates: 0, vector: { a: 2 } });
    // when the same batch arrives again
    const again = await b.engine.receive(structuredClone(batch));
    // then it changes nothing
    expect(again).toMatchObject({ kind: 'ack', appended: 0, duplicates: 2, vector: { a: 2 } });
    expect(await b.store.readStream(stream)).toHaveLength(2);
    expect(b.appended).toHaveLength(2);
  });

  it("hands the receiver's append writes (a push's nonce) to the append of the batch's new events, and to nothing else", async () => {
    // given site b over a store that records the writes each append was given
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const store = new MemoryEventStore();
    const given: (string | undefined)[] = [];
    const append = store.append.bind(store);
    store.append = (streamName, events, options = {}) => {
      given.push(options.writes === undefined ? undefined : (options.writes.statements(events as never) as unknown as string[]).join());
      return append(streamName, events, options);
    };
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { store });
    const writes = (nonce: string): AppendWrites => ({ statements: () => [nonce] as never });
    const batch = push('a', [eventOf('a', 1, T0), eventOf('a', 2, T0)]);
    expect(b.engine.mayAppend(batch)).toBe(true);
    expect(b.engine.mayAppend(push('a', []))).toBe(false);
    expect(b.engine.mayAppend({ ...batch, repoKey: 'unknown' })).toBe(true);
    given.length = 0;
    // when the batch arrives with writes, then again (a redelivery), then a batch from a non-member
    expect(await b.engine.receive(batch, {}, { appendWrites: writes('first') })).toMatchObject({ kind: 'ack', appended: 2 });
    expect(b.engine.mayAppend(batch)).toBe(false);
    expect(await b.engine.receive(structuredClone(batch), {}, { appendWrites: writes('again') })).toMatchObject({ kind: 'ack', appended: 0 });
    expect(await b.engine.receive(push('z', [eventOf('z', 1, T0)]), {}, { appendWrites: writes('refused') })).toMatchObject({ kind: 'refused', reason: 'not-member' });
    // then only the append of new events carried them
    expect(given).toEqual(['first']);
  });

  it('refuses a whole batch when one stamp runs too far ahead, and records why in the member status', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    // given a batch whose second event is stamped 10 s ahead of b's clock (limit 500 ms)
    const reply = await b.engine.receive(push('a', [eventOf('a', 1, T0), eventOf('a', 2, T0 + 10_000)]));
    // then nothing of it is applied, b's clock is not dragged forward, and the status says why
    expect(reply).toMatchObject({ kind: 'refused', reason: 'clock-ahead', offsetMs: 10_000 });
    expect(await b.store.readStream(stream)).toHaveLength(0);
    const status = b.engine.status('fed').members.find((member) => member.peerId === 'a');
    expect(status?.lastError).toMatch(/clock ahead.*10000 ms/);
    const [local] = await b.engine.commit('fed', [deploy('x')]);
    expect(local!.hlc.wall).toBeLessThan(T0 + 1_000);
  });

  it('refuses a sender that is not a member, and malformed or forged batches, applying nothing', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    expect(await b.engine.receive(push('mallory', [eventOf('mallory', 1, T0)]))).toMatchObject({ kind: 'refused', reason: 'not-member' });
    expect(await b.engine.receive({ ...push('a', []), events: 'nope' })).toMatchObject({ kind: 'refused', reason: 'malformed' });
    expect(await b.engine.receive({ ...push('a', [eventOf('a', 1, T0)]), repoKey: 'other' })).toMatchObject({ kind: 'refused', reason: 'not-federated' });
    const truncated = { ...eventOf('a', 1, T0), hlc: { wall: -1, logical: 0 } };
    expect(await b.engine.receive(push('a', [truncated]))).toMatchObject({ kind: 'refused', reason: 'malformed' });
    // an originSeq already held under another id is a conflict, not a duplicate
    await b.engine.receive(push('a', [eventOf('a', 1, T0)]));
    expect(await b.engine.receive(push('a', [{ ...eventOf('a', 1, T0), id: 'forged' }]))).toMatchObject({ kind: 'refused', reason: 'conflict' });
    expect(await b.store.readStream(stream)).toHaveLength(1);
  });
});

describe('local commits and pushing', () => {
  it('stamps local writes with contiguous originSeq and pushes them to every member', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b', 'c']);
    const c = await openSite(network, scheduler, 'c', ['a', 'b', 'c']);
    await scheduler.advance(1_000);
    const written = await a.engine.commit('fed', [deploy('one'), deploy('two')]);
    await a.engine.commit('fed', [deploy('three')]);
    await settle();
    expect(written.map((event) => event.originSeq)).toEqual([1, 2]);
    expect(b.engine.versionVector('fed')).toEqual({ a: 3 });
    expect(c.engine.versionVector('fed')).toEqual({ a: 3 });
    expect(a.engine.status('fed').members.map((member) => [member.peerId, member.state, member.lagEvents])).toEqual([
      ['b', 'SYNCING', 0],
      ['c', 'SYNCING', 0],
    ]);
  });

  it("a push carries when each of the origin's own events committed there, and the receiver hands those times on with the events; a forwarded copy carries none", async () => {
    // given a, b and c, b forwarding at once (so a's events reach c through b too)
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const handed: { site: string; ids: string[]; committedAtMs: readonly (number | null)[] | undefined }[] = [];
    const onEventsAppended = (site: string) => (_repoKey: string, events: readonly { id: string }[], stages?: ReceiveStages) => {
      if (stages !== undefined) handed.push({ site, ids: events.map((event) => event.id), committedAtMs: stages.committedAtMs });
    };
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c'], { engine: { onEventsAppended: onEventsAppended('a') } });
    await openSite(network, scheduler, 'b', ['a', 'b', 'c'], { engine: { forwardDelayMs: 0, onEventsAppended: onEventsAppended('b') } });
    await openSite(network, scheduler, 'c', ['a', 'b', 'c'], { engine: { onEventsAppended: onEventsAppended('c') } });
    await scheduler.advance(1_000);
    network.requests.length = 0;
    // when a commits two events through the engine, and 250 ms later another writer appends one and tells the engine
    const committedAt = scheduler.now;
    const first = await a.engine.commit('fed', [deploy('one'), deploy('two')]);
    await scheduler.advance(250);
    const told = await a.store.append(stream, [eventOf('a', 3, scheduler.now)], { expectedRevision: 'any' });
    await a.engine.localAppended('fed', told.events);
    await scheduler.advance(0);
    // then each of a's pushes says when its events committed on a
    const fromA = network.requests.filter((entry) => entry.from === 'a' && entry.request.events.length > 0);
    expect(fromA.map((entry) => [entry.to, entry.request.committedAtMs])).toEqual([
      ['b', [committedAt, committedAt]],
      ['c', [committedAt, committedAt]],
      ['b', [committedAt + 250]],
      ['c', [committedAt + 250]],
    ]);
    // b forwards a's events to c without them (b cannot know when a committed)
    const forwarded = network.requests.filter((entry) => entry.from === 'b' && entry.to === 'c' && entry.request.events.length > 0);
    expect(forwarded.length).toBeGreaterThan(0);
    expect(forwarded.every((entry) => entry.request.committedAtMs === undefined)).toBe(true);
    // and b and c were handed each event of a with its commit time, once (the forwarded copies were duplicates)
    for (const site of ['b', 'c']) {
      const times = handed.filter((entry) => entry.site === site).flatMap((entry) => entry.ids.map((id, index) => [id, entry.committedAtMs?.[index]]));
      expect(times).toEqual([
        [first[0]!.id, committedAt],
        [first[1]!.id, committedAt],
        [told.events[0]!.id, committedAt + 250],
      ]);
    }
  });

  it('forwards events received from others, so a cut link between a and c heals through b', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    network.cutLink('a', 'c');
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c']);
    await openSite(network, scheduler, 'b', ['a', 'b', 'c']);
    const c = await openSite(network, scheduler, 'c', ['a', 'b', 'c']);
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [deploy('from-a')]);
    await c.engine.commit('fed', [deploy('from-c')]);
    await scheduler.advance(5_000);
    expect(c.engine.versionVector('fed')).toEqual({ a: 1, c: 1 });
    expect(a.engine.versionVector('fed')).toEqual({ a: 1, c: 1 });
    expect(network.requests.some((entry) => entry.from === 'b' && entry.to === 'c' && entry.request.events.some((event) => event.origin === 'a'))).toBe(true);
  });

  it('in a healthy federation every member receives each event once: nothing is forwarded that the origin delivered itself', async () => {
    // given three sites, every link up
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b', 'c']);
    const c = await openSite(network, scheduler, 'c', ['a', 'b', 'c']);
    await scheduler.advance(1_000);
    network.requests.length = 0;
    // when a commits, again and again, and time passes well beyond the forward delay
    for (let round = 0; round < 5; round++) {
      await a.engine.commit('fed', [deploy(`one-${round}`), deploy(`two-${round}`)]);
      await scheduler.advance(300);
    }
    await scheduler.advance(10_000);
    // then b and c hold everything, each event of a travelled once to each of them, and no
    // event of a came back to a; b and c only compared vectors
    expect(b.engine.versionVector('fed')).toEqual({ a: 10 });
    expect(c.engine.versionVector('fed')).toEqual({ a: 10 });
    const carried = (from: string, to: string) => network.requests.filter((entry) => entry.from === from && entry.to === to).flatMap((entry) => entry.request.events.map((event) => `${event.origin}:${event.originSeq}`));
    expect(carried('a', 'b')).toHaveLength(10);
    expect(new Set(carried('a', 'b')).size).toBe(10);
    expect(carried('a', 'c')).toHaveLength(10);
    expect([...carried('b', 'c'), ...carried('c', 'b'), ...carried('b', 'a'), ...carried('c', 'a')]).toEqual([]);
    expect(network.requests.every((entry) => entry.reply?.kind === 'ack' && entry.reply.duplicates === 0)).toBe(true);
  });

  it('forwards at once, unchecked, with forwardDelayMs 0: each member then receives the events of a twice', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const engine = { forwardDelayMs: 0 };
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c'], { engine });
    await openSite(network, scheduler, 'b', ['a', 'b', 'c'], { engine });
    await openSite(network, scheduler, 'c', ['a', 'b', 'c'], { engine });
    await scheduler.advance(1_000);
    network.requests.length = 0;
    await a.engine.commit('fed', [deploy('one')]);
    await scheduler.advance(5_000);
    const duplicates = network.requests.reduce((sum, entry) => sum + (entry.reply?.kind === 'ack' ? entry.reply.duplicates : 0), 0);
    expect(duplicates).toBeGreaterThan(0);
  });

  it('forwards an event only after the forward delay, and only when the member still lacks it then', async () => {
    // given a–c cut: c gets a's events only through b
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    network.cutLink('a', 'c');
    const a = await openSite(network, scheduler, 'a', ['a', 'b', 'c'], { engine: { forwardDelayMs: 2_000 } });
    await openSite(network, scheduler, 'b', ['a', 'b', 'c'], { engine: { forwardDelayMs: 2_000 } });
    const c = await openSite(network, scheduler, 'c', ['a', 'b', 'c'], { engine: { forwardDelayMs: 2_000 } });
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [deploy('from-a')]);
    // when less than the delay has passed, c does not have it yet
    await scheduler.advance(1_500);
    expect(c.engine.versionVector('fed')).toEqual({});
    // then, once it is ripe at b and b learned that c lacks it, b forwards it
    await scheduler.advance(4_000);
    expect(c.engine.versionVector('fed')).toEqual({ a: 1 });
    const forwarded = network.requests.filter((entry) => entry.from === 'b' && entry.to === 'c' && entry.request.events.length > 0);
    expect(forwarded).toHaveLength(1);
    // b asked c for its vector first (an exchange without events)
    expect(network.requests.some((entry) => entry.from === 'b' && entry.to === 'c' && entry.request.events.length === 0)).toBe(true);
  });

  it('retries an unreachable peer with capped exponential backoff, then catches it up', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    network.cutLink('a', 'b');
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    await a.engine.commit('fed', [deploy('x')]);
    scheduler.delays.length = 0;
    await scheduler.advance(20_000);
    expect(a.engine.status('fed').members[0]).toMatchObject({ peerId: 'b', state: 'OUT_OF_SYNC', lagEvents: 1, lagMs: 20_000 });
    // retry delays (timeouts of 500 ms excluded): 100·2^n with jitter in [½, 1], capped at 1600
    const retries = scheduler.delays.filter((delay) => delay !== 500);
    expect(retries.length).toBeGreaterThan(4);
    retries.forEach((delay) => expect(delay).toBeLessThanOrEqual(1_600));
    expect(Math.max(...retries)).toBeGreaterThanOrEqual(800);
    network.cut.clear();
    await scheduler.advance(5_000);
    expect(b.engine.versionVector('fed')).toEqual({ a: 1 });
    expect(a.engine.status('fed').members[0]).toMatchObject({ state: 'SYNCING', lagEvents: 0, lagMs: 0, lastError: null });
  });

  it('keeps the outbox cursor across a crash: a restarted site resends nothing already acknowledged', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    await openSite(network, scheduler, 'b', ['a', 'b']);
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [deploy('one'), deploy('two')]);
    await settle();
    expect(await a.stateStore.loadCursor('fed', 'b')).toEqual({ a: 2 });
    // when a crashes (in-memory state lost) and restarts on the same stores
    a.engine.close();
    network.requests.length = 0;
    const restarted = await openSite(network, scheduler, 'a', ['a', 'b'], { store: a.store, stateStore: a.stateStore });
    await settle();
    // then its first exchange with b carries no events, and its status shows no lag
    const fromA = network.requests.filter((entry) => entry.from === 'a');
    expect(fromA.length).toBeGreaterThan(0);
    expect(fromA.every((entry) => entry.request.events.length === 0)).toBe(true);
    expect(restarted.engine.status('fed').members[0]).toMatchObject({ peerId: 'b', lagEvents: 0, cursor: { a: 2 } });
    // and its next local write continues the origin's sequence
    const [next] = await restarted.engine.commit('fed', [deploy('three')]);
    expect(next!.originSeq).toBe(3);
  });

  it('a full sync replaces the cursor by what the peer reports and resends what it lacks', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [deploy('one')]);
    await settle();
    // given a cursor that wrongly claims b holds more (as after b lost its data)
    network.engines.delete('b');
    b.engine.close();
    const fresh = await openSite(network, scheduler, 'b', ['a', 'b']);
    expect(fresh.engine.versionVector('fed')).toEqual({});
    // when a runs a full sync
    a.engine.fullSync('fed');
    expect(a.engine.status('fed').members[0]?.state).toBe('FULL_SYNC_RUNNING');
    await settle();
    // then b receives everything again
    expect(fresh.engine.versionVector('fed')).toEqual({ a: 1 });
    expect(a.engine.status('fed').members[0]?.state).toBe('SYNCING');
  });

  it('a site that lost its data gets everything back by running a full sync itself', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [deploy('one'), deploy('two')]);
    await scheduler.advance(1_000);
    expect(await a.stateStore.loadCursor('fed', 'b')).toEqual({ a: 2 });
    // when b comes back empty (restored from an old backup) and runs a full sync
    b.engine.close();
    const restored = await openSite(network, scheduler, 'b', ['a', 'b']);
    restored.engine.fullSync('fed');
    await scheduler.advance(1_000);
    // then a, told exactly what b holds, resends what b lost
    expect(restored.engine.versionVector('fed')).toEqual({ a: 2 });
  });

  it('a full sync to a member that has not joined yet invites it with the creation', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    await a.engine.commit('fed', [{ type: 'RepositoryCreated', data: { key: 'fed', config: { rclass: 'federated', members: [{ url: memberUrl('a') }, { url: memberUrl('b') }] } } }]);
    // b appears (not federated yet) and a runs a full sync, whose first request carries no events
    const b = await openSite(network, scheduler, 'b', [], { federate: false });
    a.engine.fullSync('fed');
    await settle();
    expect(b.engine.versionVector('fed')).toEqual({ a: 1 });
    expect(a.engine.status('fed').members[0]).toMatchObject({ peerId: 'b', state: 'SYNCING', lagEvents: 0 });
  });

  it('stops sending to a member once it is disabled in the members field, and shows it DISABLED', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', ['a', 'b']);
    await scheduler.advance(1_000);
    await a.engine.commit('fed', [
      { type: 'RepositoryConfigChanged', data: { key: 'fed', patch: { members: [{ url: memberUrl('a'), enabled: true }, { url: memberUrl('b'), enabled: false }] } } },
    ]);
    await settle();
    await a.engine.commit('fed', [deploy('after-disable')]);
    await scheduler.advance(5_000);
    // (the edit that disables b is not sent to b either: traffic stops as the edit commits)
    expect(a.engine.status('fed').members[0]).toMatchObject({ peerId: 'b', state: 'DISABLED', lagEvents: 2 });
    expect(b.engine.versionVector('fed')).toEqual({});
    // b's own writes still reach a: a disabled member stays in the circle of trust
    await b.engine.commit('fed', [deploy('from-b')]);
    await scheduler.advance(1_000);
    expect(a.engine.versionVector('fed')).toEqual({ a: 2, b: 1 });
  });

  it('joins a federated repository when a member sends its creation naming this site, and not otherwise', async () => {
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const joined: string[] = [];
    const a = await openSite(network, scheduler, 'a', ['a', 'b']);
    const b = await openSite(network, scheduler, 'b', [], { federate: false, engine: { onRepositoryJoined: (repoKey) => joined.push(repoKey) } });
    const c = await openSite(network, scheduler, 'c', [], { federate: false });
    // an uninvited sender is refused
    expect(await c.engine.receive(push('a', [eventOf('a', 1, T0)]))).toMatchObject({ kind: 'refused', reason: 'not-federated' });
    await a.engine.commit('fed', [{ type: 'RepositoryCreated', data: { key: 'fed', config: { rclass: 'federated', members: [{ url: memberUrl('a') }, { url: memberUrl('b') }] } } }]);
    await a.engine.commit('fed', [deploy('x')]);
    await scheduler.advance(2_000);
    expect(joined).toEqual(['fed']);
    expect(b.engine.versionVector('fed')).toEqual({ a: 2 });
    expect(b.appended.map((event) => event.type)).toEqual(['RepositoryCreated', 'ArtifactDeployed']);
    // c is not among the members: it never joins
    expect(c.engine.isFederated('fed')).toBe(false);
  });
});

describe('pipelined pushes', () => {
  it('sends one batch at a time to a peer that is down (not a window of them per retry), and the whole window again once it answers', async () => {
    // given a, pushing batches of 2 events with 4 in flight to b, which is down
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const engine = { federationBatchEventsMax: 2, pushWindow: 4 };
    const transportFor = network.transportFor.bind(network);
    let inFlight = 0;
    const rounds: number[] = [];
    network.transportFor = (from) => {
      const transport = transportFor(from);
      if (from !== 'a') return transport;
      return {
        send: async (peerId, request, options) => {
          inFlight++;
          rounds.push(inFlight);
          try {
            return await transport.send(peerId, request, options);
          } finally {
            inFlight--;
          }
        },
      };
    };
    const a = await openSite(network, scheduler, 'a', ['a', 'b'], { engine });
    await a.engine.commit('fed', Array.from({ length: 8 }, (_, index) => deploy(`down/${index}`)));
    await scheduler.advance(10_000);
    // then after the first window failed, every retry was one request alone
    const firstFailure = rounds.findIndex((concurrent, index) => index > 0 && concurrent === 1);
    expect(rounds.length).toBeGreaterThan(6);
    expect(rounds.slice(Math.max(firstFailure, 4))).toEqual(rounds.slice(Math.max(firstFailure, 4)).map(() => 1));
    // when b comes up, the next retry is acknowledged and the window opens again
    rounds.length = 0;
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { engine });
    await scheduler.advance(5_000);
    expect(b.engine.versionVector('fed')).toEqual({ a: 8 });
    expect(Math.max(...rounds)).toBeGreaterThan(1);
    expect(a.engine.status('fed').members[0]).toMatchObject({ lagEvents: 0, state: 'SYNCING' });
  });

  it('keeps several batches in flight to one peer, and a batch that overtakes its predecessor waits for it instead of being refused', async () => {
    // given a and b federated, batches of 2 events, 4 pushes in flight; b's first delivery is held back
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const engine = { federationBatchEventsMax: 2, pushWindow: 4, reorderWaitMs: 200 };
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { engine });
    const receive = b.engine.receive.bind(b.engine);
    let inFlight = 0;
    let inFlightMax = 0;
    let held = 0;
    b.engine.receive = async (raw) => {
      inFlight++;
      inFlightMax = Math.max(inFlightMax, inFlight);
      // the first batch with events arrives after the ones sent behind it
      if ((raw as { events: unknown[] }).events.length > 0 && held++ === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      try {
        return await receive(raw);
      } finally {
        inFlight--;
      }
    };
    const a = await openSite(network, scheduler, 'a', ['a', 'b'], { engine });
    // when a commits 8 events in one append
    await a.engine.commit('fed', Array.from({ length: 8 }, (_, index) => deploy(`pipelined/${index}`)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    await scheduler.advance(100);
    // then b held them all after one round of pushes, in originSeq order, without a gap refusal
    expect(inFlightMax).toBeGreaterThan(1);
    expect(b.engine.versionVector('fed')).toEqual({ a: 8 });
    expect((await b.store.readStream(stream)).map((event) => event.originSeq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(network.requests.filter((entry) => entry.reply?.kind === 'refused')).toEqual([]);
    expect(a.engine.status('fed').members[0]).toMatchObject({ lagEvents: 0, state: 'SYNCING' });
  });

  it('pauses between slices of 500 events while it encodes a large received batch before its queue, and appends it whole', async () => {
    // given b with a pause that counts (production: a turn of the event loop)
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    let pauses = 0;
    const engine = { federationBatchEventsMax: 500, federationCatchUpBatchEventsMax: 2_000, pause: async () => void pauses++ };
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { engine });
    // when a page of 1,200 events arrives
    const reply = await b.engine.receive(push('a', Array.from({ length: 1_200 }, (_, index) => eventOf('a', index + 1, T0))));
    // then it was encoded in three slices, with a pause between each two, and appended whole
    expect(reply, JSON.stringify(reply)).toMatchObject({ kind: 'ack', appended: 1_200 });
    expect(pauses).toBe(2);
    expect(b.engine.versionVector('fed')).toEqual({ a: 1_200 });
  });

  it('offers the transport the catch-up page it holds back while two are in flight, and sends exactly that page next', async () => {
    // given a and b federated, batches of 2 events and catch-up pages of 5, a's transport slow to answer
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const engine = { federationBatchEventsMax: 2, federationCatchUpBatchEventsMax: 5, pushWindow: 4 };
    const transportFor = network.transportFor.bind(network);
    const pages = (events: readonly NewEvent[]) => events.map((event) => event.originSeq).join(',');
    const prepared: string[] = [];
    const sent: string[] = [];
    network.transportFor = (from) => {
      const transport = transportFor(from);
      if (from !== 'a') return transport;
      return {
        send: async (peerId, request, options) => {
          if (request.events.length > 0) sent.push(pages(request.events));
          await new Promise((resolve) => setTimeout(resolve, 2));
          return transport.send(peerId, request, options);
        },
        prepare: (events) => prepared.push(pages(events)),
      };
    };
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { engine });
    const a = await openSite(network, scheduler, 'a', ['a', 'b'], { engine });
    // when a commits 25 events in one append
    await a.engine.commit('fed', Array.from({ length: 25 }, (_, index) => deploy(`prepared/${index}`)));
    for (let round = 0; round < 20; round++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await scheduler.advance(500);
    }
    // then b holds them all, and every page offered while two were in flight was the next page sent
    expect(b.engine.versionVector('fed')).toEqual({ a: 25 });
    expect(prepared.length).toBeGreaterThan(0);
    for (const page of new Set(prepared)) expect(sent.filter((entry) => entry.split(',').length > 2)).toContain(page);
    expect(prepared.every((page) => page.split(',').length === 5)).toBe(true);
  });

  it('sends a member that lacks more than a batch catch-up pages, at most two in flight, and a plain batch alone after a failed page', async () => {
    // given a and b federated, batches of 2 events and catch-up pages of 5; the first page a sends fails (say, too large for a proxy)
    const network = new LoopbackNetwork();
    const scheduler = new ManualScheduler();
    const engine = { federationBatchEventsMax: 2, federationCatchUpBatchEventsMax: 5, pushWindow: 4 };
    const transportFor = network.transportFor.bind(network);
    let inFlight = 0;
    let failed = false;
    let sentBeforeFailure = 0;
    const sent: { events: number; inFlight: number; failed: boolean }[] = [];
    network.transportFor = (from) => {
      const transport = transportFor(from);
      if (from !== 'a') return transport;
      return {
        send: async (peerId, request, options) => {
          inFlight++;
          const entry = { events: request.events.length, inFlight, failed: false };
          sent.push(entry);
          try {
            await new Promise((resolve) => setTimeout(resolve, 2));
            if (!failed && request.events.length > 2) {
              failed = entry.failed = true;
              sentBeforeFailure = sent.length;
              throw new Error('413 payload too large');
            }
            return await transport.send(peerId, request, options);
          } finally {
            inFlight--;
          }
        },
      };
    };
    const b = await openSite(network, scheduler, 'b', ['a', 'b'], { engine });
    const a = await openSite(network, scheduler, 'a', ['a', 'b'], { engine });
    // when a commits 13 events in one append
    await a.engine.commit('fed', Array.from({ length: 13 }, (_, index) => deploy(`catch-up/${index}`)));
    for (let round = 0; round < 20; round++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      await scheduler.advance(500);
    }
    // then b holds them all in originSeq order
    expect(b.engine.versionVector('fed')).toEqual({ a: 13 });
    expect((await b.store.readStream(stream)).map((event) => event.originSeq)).toEqual(Array.from({ length: 13 }, (_, index) => index + 1));
    const pushes = sent.filter((entry) => entry.events > 0);
    // pages of at most 5 events, at most two of them in flight
    expect(Math.max(...pushes.map((entry) => entry.events))).toBe(5);
    expect(pushes.filter((entry) => entry.events > 2).every((entry) => entry.inFlight <= 2)).toBe(true);
    // the first push sent after the page failed was a plain batch, alone
    expect(sent.some((entry) => entry.failed)).toBe(true);
    const afterFailure = sent.slice(sentBeforeFailure).find((entry) => entry.events > 0);
    expect(afterFailure).toMatchObject({ inFlight: 1 });
    expect(afterFailure!.events).toBeLessThanOrEqual(2);
    // and a receiver refuses a push larger than its catch-up page, applying nothing
    const refused = await b.engine.receive(push('a', Array.from({ length: 6 }, (_, index) => eventOf('a', 14 + index, T0))));
    expect(refused).toMatchObject({ kind: 'refused', reason: 'malformed' });
    expect(b.engine.versionVector('fed')).toEqual({ a: 13 });
  });
});
