import { HybridLogicalClock, StrataError } from '@strata/core';
import type { NewEvent } from '@strata/core';
import type { AppendOptions } from '@strata/store';
import { describe, expect, it } from 'vitest';
import { repositoryStreamFold } from '../src/repositories/repository-stream.ts';
import { StreamWriter } from '../src/stream-writer.ts';
import { FakeEventStore, FakeProjections } from './support/fake-projections.ts';

function setUp(siteId = 'site-a', roundLingerMs = 0) {
  const store = new FakeEventStore(new FakeProjections());
  let appends = 0;
  const originalAppend = store.append.bind(store);
  store.append = async (stream: string, events: readonly NewEvent[], options?: AppendOptions) => {
    appends += 1;
    return originalAppend(stream, events, options);
  };
  let counter = 0;
  const writer = new StreamWriter(store, repositoryStreamFold, {
    siteId,
    hlc: new HybridLogicalClock({ clock: { now: () => 1_000 } }),
    newId: () => `${siteId}-${++counter}`,
    appendRetriesMax: 4,
    roundLingerMs,
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

  it('given a command that decides nothing, when it runs, then nothing is appended', async () => {
    const { store, writer } = setUp();
    const { result } = await writer.execute('repo-r', {}, () => ({ events: [], result: 'noop' }));
    expect(result).toBe('noop');
    expect(store.all).toHaveLength(0);
  });
});
