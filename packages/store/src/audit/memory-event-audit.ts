import { performance } from 'node:perf_hooks';
import { historyPathsOf } from '@strata/core';
import type { RecordedEvent } from '@strata/core';
import type { MemoryEventStore } from '../memory-event-store.ts';
import { ChainWalker } from './chain-walker.ts';
import type { EventAudit, HistoryEntry, HistoryJsonPage, PathHistoryJsonOptions, PathHistoryOptions, PathHistoryPage, VerifyOptions, VerifyResult } from './event-audit.ts';
import { historyPageJson } from './history-json.ts';
import { historyLimit } from './sql-event-audit.ts';

/** EventAudit over the memory store: scans (tests and simulations hold small streams). */
export class MemoryEventAudit implements EventAudit {
  readonly #store: MemoryEventStore;

  constructor(store: MemoryEventStore) {
    this.#store = store;
  }

  async pathHistory(stream: string, path: string, options: PathHistoryOptions): Promise<PathHistoryPage> {
    options.signal?.throwIfAborted();
    const limit = historyLimit(options.limit);
    const after = options.afterRevision ?? -1;
    const paths = new Set(historyPathsOf(path));
    const below = path === '' ? '' : `${path}/`;
    const entries = this.#store.chainEntries(stream);
    const events = await readWholeStream(this.#store, stream, after + 1);
    const found: HistoryEntry[] = [];
    let more = false;
    for (const event of events) {
      const entry = entries[event.revision];
      const target = entry?.target ?? null;
      if (target === null) continue;
      if (!paths.has(target) && !(options.deep === true && target.startsWith(below))) continue;
      if (found.length === limit) {
        more = true;
        break;
      }
      found.push({ event, prevHash: entry === undefined ? undefined : Buffer.from(entry.prevHash).toString('hex') });
    }
    return { entries: found, nextAfterRevision: more ? found[found.length - 1]!.event.revision : undefined };
  }

  async pathHistoryJson(stream: string, path: string, options: PathHistoryJsonOptions): Promise<HistoryJsonPage> {
    return historyPageJson(await this.pathHistory(stream, path, options), options.siteId);
  }

  async readChained(stream: string, options: { readonly fromRevision: number; readonly maxCount: number; readonly signal?: AbortSignal }): Promise<readonly HistoryEntry[]> {
    options.signal?.throwIfAborted();
    const entries = this.#store.chainEntries(stream);
    const events = await this.#store.readStream(stream, { fromRevision: options.fromRevision, maxCount: historyLimit(options.maxCount) });
    return events.map((event) => {
      const entry = entries[event.revision];
      return { event, prevHash: entry === undefined ? undefined : Buffer.from(entry.prevHash).toString('hex') };
    });
  }

  async verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    const started = performance.now();
    const walker = new ChainWalker();
    const streams = options.stream === undefined ? this.#store.streamNames() : [options.stream];
    for (const stream of streams) {
      options.signal?.throwIfAborted();
      const entries = this.#store.chainEntries(stream);
      const events = await readWholeStream(this.#store, stream, 0);
      for (const event of events) walker.add({ event, prevHash: entries[event.revision]?.prevHash });
      const last = events.at(-1);
      if (last !== undefined) walker.endStream({ revision: last.revision, chain: this.#store.chainHead(stream) });
    }
    return { streams: walker.streams, events: walker.events, originChained: walker.originChained, breaks: walker.breaks, elapsedMs: performance.now() - started };
  }
}

async function readWholeStream(store: MemoryEventStore, stream: string, fromRevision: number): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for (;;) {
    const page = await store.readStream(stream, { fromRevision: fromRevision + events.length });
    if (page.length === 0) return events;
    events.push(...page);
  }
}
