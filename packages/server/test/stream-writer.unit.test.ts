import { HybridLogicalClock, StrataError } from '@strata/core';
import type { NewEvent } from '@strata/core';
import type { AppendOptions } from '@strata/store';
import { describe, expect, it } from 'vitest';
import { repositoryStreamFold } from '../src/repositories/repository-stream.ts';
import { StreamWriter } from '../src/stream-writer.ts';
import { FakeEventStore, FakeProjections } from './support/fake-projections.ts';

function setUp(siteId = 'site-a', roundLingerMs = 0, options: { roundGatherMs?: number; appendDelayMs?: number; checksDuringAppend?: boolean; onAppend?: () => void } = {}) {
  const store = new FakeEventStore(new FakeProjections());
  let appends = 0;
  const originalAppend = store.append.bind(store);
  store.append = async (stream: string, events: readonly NewEvent[], appendOptions?: AppendOptions) => {
    appends += 1;
    options.onAppend?.();
    // A round that takes time, as a database transaction does.
    if (options.appendDelayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, options.appendDelayMs));
    return originalAppend(stream, events, appendOptions);
  };
  let counter = 0;
  const writer = new StreamWriter(store, repositoryStreamFold, {
    siteId,
    hlc: new HybridLogicalClock({ clock: { now: () => 1_000 } }),
    newId: () => `${siteId}-${++counter}`,
    appendRetriesMax: 4,
    roundLingerMs,
    ...(options.roundGatherMs === undefined ? {} : { roundGatherMs: options.roundGatherMs }),
    ...(options.checksDuringAppend === undefined ? {} : { checksDuringAppend: options.checksDuringAppend }),
  });
  return { store, writer, appends: () => appends };
}

const created = { type: 'RepositoryCreated' as const, data: { key: 'r', config: { rclass: 'local' } } };
const deployed = (path: string) => ({ type: 'ArtifactDeployed' as const, data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} } });

describe('StreamWriter', () => {
  it('given concurrent commands on one stream, when they run, then they share appends and originSeq stays gapless', async () => {
    const { store, writer, appends } = setUp();
    await writer.execute('repo-r', { actor: 'a' }, () => ({ events: [created], result: undefined }));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        writer.execute('repo-r', { actor: 'a' }, (state) => {
          if (state.config === undefined) throw new Error('no repo');
          if (i === 5) throw new StrataError('STRATA_ERR_HTTP_CONFLICT', 'refused alone');
          return { events: [deployed(`p${i}`)], result: i };
        }),
      ),
    );
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    const events = store.streams.get('repo-r') ?? [];
    expect(events.map((e) => e.originSeq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(events.map((e) => e.revision)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(appends()).toBeLessThan(20);
    const hlcs = events.map((e) => e.hlc);
    for (let i = 1; i < hlcs.length; i++) expect(hlcs[i]!.wall * 1e6 + hlcs[i]!.logical).toBeGreaterThan(hlcs[i - 1]!.wall * 1e6 + hlcs[i - 1]!.logical);
  });

  it('given a command announced but not queued yet, when a round starts, then it waits for it and both share one append', async () => {
    const { store, writer, appends } = setUp('site-a', 1_000);
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    const before = appends();
    const queued = writer.announce('repo-r');
    const first = writer.execute('repo-r', {}, () => ({ events: [deployed('first')], result: undefined }));
    // The announced command arrives well after the round would have started without waiting.
    await new Promise((resolve) => setTimeout(resolve, 20));
    queued();
    const second = writer.execute('repo-r', {}, () => ({ events: [deployed('second')], result: undefined }));
    await Promise.all([first, second]);
    expect(appends() - before).toBe(1);
    expect((store.streams.get('repo-r') ?? []).map((e) => e.type)).toEqual(['RepositoryCreated', 'ArtifactDeployed', 'ArtifactDeployed']);
  });

  /**
   * Eight clients that each send their next command a few milliseconds after the previous one
   * is answered (staggered by 0-7 ms), as a build publishing over 8 connections does.
   */
  async function closedLoop(writer: StreamWriter<ReturnType<typeof repositoryStreamFold.initialState>>, commandsPerClient: number): Promise<void> {
    await Promise.all(
      Array.from({ length: 8 }, async (_, client) => {
        for (let index = 0; index < commandsPerClient; index++) {
          await writer.execute('repo-r', {}, () => ({ events: [deployed(`c${client}/${index}`)], result: undefined }));
          await new Promise((resolve) => setTimeout(resolve, client));
        }
      }),
    );
  }

  it('given clients that send again as soon as they are answered, when rounds gather them, then each round takes all of them', async () => {
    const { store, writer, appends } = setUp('site-a', 0, { roundGatherMs: 1_000, appendDelayMs: 200 });
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    const before = appends();
    await closedLoop(writer, 3);
    // Without the wait the first client back starts a round alone and the other seven queue
    // behind it (the next test): one round per pass of the 8 clients instead of two.
    expect(appends() - before).toBe(3);
    expect(store.streams.get('repo-r')).toHaveLength(1 + 24);
  });

  it('given the same clients and no gathering, when they run, then rounds split (the behaviour roundGatherMs removes)', async () => {
    const { writer, appends } = setUp('site-a', 0, { appendDelayMs: 200 });
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    const before = appends();
    await closedLoop(writer, 3);
    expect(appends() - before).toBeGreaterThan(3);
  });

  it('given a round that expects clients who do not come back, when one command is queued, then it runs after the bounded wait and the next rounds stop waiting', async () => {
    const { store, writer, appends } = setUp('site-a', 0, { roundGatherMs: 50, appendDelayMs: 10 });
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    await Promise.all(Array.from({ length: 4 }, (_, index) => writer.execute('repo-r', {}, () => ({ events: [deployed(`burst/${index}`)], result: undefined }))));
    const before = appends();
    // One client carries on alone: each of its commands is appended (rounds of one), none lost.
    for (let index = 0; index < 3; index++) await writer.execute('repo-r', {}, () => ({ events: [deployed(`alone/${index}`)], result: undefined }));
    expect(appends() - before).toBe(3);
    expect(store.streams.get('repo-r')).toHaveLength(1 + 4 + 3);
  });

  it('given another site appended meanwhile, when a command conflicts, then it re-reads, re-decides and keeps its own originSeq gapless', async () => {
    const { store, writer } = setUp('site-a');
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    // Another writer (a second server of the same site shares nothing in memory) appends directly.
    await store.append('repo-r', [{ ...deployed('other'), id: 'foreign-1', origin: 'site-b', originSeq: 1, hlc: { wall: 5, logical: 0 }, meta: {} }]);
    await writer.execute('repo-r', {}, () => ({ events: [deployed('mine')], result: undefined }));
    const events = store.streams.get('repo-r') ?? [];
    expect(events.map((e) => [e.origin, e.originSeq])).toEqual([
      ['site-a', 1],
      ['site-b', 1],
      ['site-a', 2],
    ]);
  });

  it('given checks during the append, when a round starts, then it appends before the checks have answered', async () => {
    let appendCalled: (() => void) | undefined;
    const order: string[] = [];
    const { store, writer, appends } = setUp('site-a', 0, {
      checksDuringAppend: true,
      onAppend: () => {
        order.push('appended');
        appendCalled?.();
      },
    });
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    const before = appends();
    order.length = 0;
    const appendSeen = new Promise<void>((resolve) => (appendCalled = resolve));
    // The check answers once the append has been called (or after 500 ms, if the round waited for it).
    const check = async () => {
      await Promise.race([appendSeen, new Promise((resolve) => setTimeout(resolve, 500))]);
      order.push('check answered');
    };
    await Promise.all([0, 1, 2].map((index) => writer.execute('repo-r', {}, () => ({ events: [deployed(`p${index}`)], result: undefined }), check)));
    expect(appends() - before).toBe(1);
    expect(store.streams.get('repo-r')).toHaveLength(4);
    // The append was called before any check answered: with a round that waited, the race's timer wins and the append comes later.
    expect(order[0]).toBe('appended');
  });

  it('given checks during the append, when one check fails after the append started, then that command alone is refused and originSeq stays gapless', async () => {
    const { store, writer } = setUp('site-a', 0, { checksDuringAppend: true });
    await writer.execute('repo-r', {}, () => ({ events: [created], result: undefined }));
    const slow = (fail: boolean) => async () => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (fail) throw new StrataError('STRATA_ERR_HTTP_CONFLICT', 'the path is a folder');
    };
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((index) => writer.execute('repo-r', {}, () => ({ events: [deployed(`p${index}`)], result: index }), slow(index === 2))),
    );
    expect(results.map((result) => result.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'STRATA_ERR_HTTP_CONFLICT', message: 'the path is a folder' });
    const events = store.streams.get('repo-r') ?? [];
    expect(events.map((event) => (event.data as { path?: string }).path ?? null)).toEqual([null, 'p0', 'p1', 'p3']);
    expect(events.map((event) => event.originSeq)).toEqual([1, 2, 3, 4]);
    expect(events.map((event) => event.revision)).toEqual([0, 1, 2, 3]);
  });

  it('given checks during the append and a command that decides nothing, when its check fails, then it is refused', async () => {
    const { writer } = setUp('site-a', 0, { checksDuringAppend: true });
    const failing = async () => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new StrataError('STRATA_ERR_HTTP_CONFLICT', 'refused by its check');
    };
    await expect(writer.execute('repo-r', {}, () => ({ events: [], result: 'noop' }), failing)).rejects.toMatchObject({ message: 'refused by its check' });
  });

  it('given a command that decides nothing, when it runs, then nothing is appended', async () => {
    const { store, writer } = setUp();
    const { result } = await writer.execute('repo-r', {}, () => ({ events: [], result: 'noop' }));
    expect(result).toBe('noop');
    expect(store.all).toHaveLength(0);
  });
});
