/**
 * Deterministic ports for engine unit tests: a manual scheduler (time moves only when a test
 * says so), a fixed clock, a counter-based Random, and an in-process transport between
 * engines with links that can be cut.
 */
import { HybridLogicalClock, type Random, type NewEvent } from '@strata/core';
import { MemoryEventStore } from '@strata/store';
import {
  FederationEngine,
  type FederationEngineOptions,
  type FederationReply,
  type FederationRequest,
  MemoryFederationStateStore,
  type PeerTransport,
  type Scheduler,
} from '../src/index.ts';

export class ManualScheduler implements Scheduler {
  now = 1_700_000_000_000;
  readonly #tasks: { at: number; seq: number; task: () => void; cancelled: boolean }[] = [];
  #seq = 0;
  /** Delays asked for, in order (to observe backoff). */
  readonly delays: number[] = [];

  schedule(delayMs: number, task: () => void): { cancel(): void } {
    const entry = { at: this.now + delayMs, seq: this.#seq++, task, cancelled: false };
    this.delays.push(delayMs);
    this.#tasks.push(entry);
    return { cancel: () => void (entry.cancelled = true) };
  }

  /** Runs every task due within `ms`, in time order, letting promises settle after each. */
  async advance(ms: number): Promise<void> {
    const until = this.now + ms;
    for (;;) {
      await settle();
      const due = this.#tasks.filter((entry) => !entry.cancelled && entry.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      due.cancelled = true;
      this.now = Math.max(this.now, due.at);
      due.task();
    }
    this.now = until;
    await settle();
  }
}

export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class CountingRandom implements Random {
  #state: number;
  constructor(seed: number) {
    this.#state = seed;
  }
  next(): number {
    this.#state = (this.#state * 48271) % 2147483647;
    return this.#state / 2147483647;
  }
  bytes(length: number): Uint8Array {
    return Uint8Array.from({ length }, () => Math.floor(this.next() * 256));
  }
}

/** Engines by site id; a request to a site reaches its engine unless the link is cut. */
export class LoopbackNetwork {
  readonly engines = new Map<string, FederationEngine>();
  readonly cut = new Set<string>();
  readonly requests: { from: string; to: string; request: FederationRequest; reply?: FederationReply }[] = [];

  transportFor(from: string): PeerTransport {
    return {
      send: async (peerId, request, { signal }) => {
        const target = this.engines.get(peerId);
        if (target === undefined) throw new Error(`connection refused by ${peerId}`);
        if (this.cut.has(`${from}>${peerId}`)) {
          // Unreachable: hang until the engine gives up.
          return new Promise<FederationReply>((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('unreachable'))));
        }
        const entry: (typeof this.requests)[number] = { from, to: peerId, request };
        this.requests.push(entry);
        const reply = await target.receive(structuredClone(request));
        entry.reply = reply;
        return reply;
      },
    };
  }

  cutLink(a: string, b: string): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }
}

export const memberUrl = (siteId: string): string => `http://${siteId}.test/artifactory/fed`;
export const peerIdOf = (url: string): string | undefined => /^http:\/\/([^.]+)\.test\//.exec(url)?.[1];
export const members = (...siteIds: string[]) => siteIds.map((siteId) => ({ url: memberUrl(siteId), enabled: true }));

export interface TestSite {
  readonly siteId: string;
  readonly store: MemoryEventStore;
  readonly stateStore: MemoryFederationStateStore;
  readonly clock: { now(): number; skewMs: number };
  engine: FederationEngine;
  readonly appended: NewEvent[];
}

export async function openSite(
  network: LoopbackNetwork,
  scheduler: ManualScheduler,
  siteId: string,
  memberIds: readonly string[],
  options: {
    store?: MemoryEventStore;
    stateStore?: MemoryFederationStateStore;
    skewMs?: number;
    engine?: Partial<FederationEngineOptions>;
    /** false: wait for an invitation instead of federating at once. */
    federate?: boolean;
  } = {},
): Promise<TestSite> {
  const store = options.store ?? new MemoryEventStore();
  const stateStore = options.stateStore ?? new MemoryFederationStateStore();
  const clock = {
    skewMs: options.skewMs ?? 0,
    now(): number {
      return scheduler.now + this.skewMs;
    },
  };
  const appended: NewEvent[] = [];
  const engine = new FederationEngine({
    siteId,
    store,
    stateStore,
    transport: network.transportFor(siteId),
    scheduler,
    clock,
    random: new CountingRandom([...siteId].reduce((sum, char) => sum * 31 + char.charCodeAt(0), 7) % 2147483646 + 1),
    hlc: new HybridLogicalClock({ clock }),
    peerIdOf,
    retryDelayBaseMs: 100,
    retryDelayMaxMs: 1_600,
    peerRequestTimeoutMs: 500,
    antiEntropyIntervalMs: 60_000,
    onEventsAppended: (_repoKey, events) => appended.push(...events),
    ...options.engine,
  });
  network.engines.set(siteId, engine);
  if (options.federate !== false) await engine.federate('fed', { members: members(...memberIds) });
  await settle();
  return { siteId, store, stateStore, clock, engine, appended };
}

export const deploy = (path: string) =>
  ({
    type: 'ArtifactDeployed',
    data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'text/plain', properties: {} },
  }) as const;

/** An event as site `origin` would have stamped it. */
export function eventOf(origin: string, originSeq: number, wall: number, path = `p${originSeq}`): NewEvent {
  return { id: `${origin}-${originSeq}-${wall}`, origin, originSeq, hlc: { wall, logical: 0 }, meta: {}, ...deploy(path) };
}

export function push(from: string, events: readonly NewEvent[], vector: Record<string, number> = {}): FederationRequest {
  return { kind: 'push', repoKey: 'fed', from, sentAtMs: 1_700_000_000_000, vector, events, fullSync: false };
}
