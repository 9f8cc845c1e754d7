import { describe, expect, it } from 'vitest';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../src/download-counter.ts';
import type { PendingDownloads } from '../src/download-counter.ts';

describe('BatchingDownloadCounter', () => {
  it('counts exactly before, during and after a flush', async () => {
    const sink = new MemoryDownloadStatsSink();
    let release: () => void = () => {};
    const slowSink = {
      async add(batch: readonly PendingDownloads[]) {
        await new Promise<void>((resolve) => (release = resolve));
        await sink.add(batch);
      },
      get: (repo: string, path: string) => sink.get(repo, path),
    };
    const counter = new BatchingDownloadCounter(slowSink, { flushIntervalMs: 0 });
    counter.record('r', 'a', 'alice', 10);
    counter.record('r', 'a', 'bob', 20);
    expect(await counter.get('r', 'a')).toEqual({ downloadCount: 2, lastDownloaded: 20, lastDownloadedBy: 'bob' });
    const flushing = counter.flush();
    counter.record('r', 'a', 'carol', 30);
    expect((await counter.get('r', 'a'))?.downloadCount).toBe(3);
    release();
    await flushing;
    expect(await counter.get('r', 'a')).toEqual({ downloadCount: 3, lastDownloaded: 30, lastDownloadedBy: 'carol' });
    const closing = counter.close();
    release();
    await closing;
    expect(await sink.get('r', 'a')).toEqual({ downloadCount: 3, lastDownloaded: 30, lastDownloadedBy: 'carol' });
  });
});
