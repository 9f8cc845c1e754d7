/**
 * One deterministic multi-site run. Each site is the real FederationEngine from
 * packages/federation over a MemoryEventStore from packages/store, projected by the pure
 * core models (SiteProjection); around them, everything is simulated: a discrete-event loop
 * over simulated time, a seeded network (per-link delays, loss, duplication, reordering,
 * partitions), skewed, drifting and jumping clocks, and crashes that keep what would be on
 * disk (event store, outbox cursors) and drop what was in memory (engine, projection, HLC).
 *
 * A run: genesis (site-0 creates the federated repository), the workload with its
 * disruptions, then heal (partitions end, crashed sites restart), a membership restore, and
 * the run continues until every site holds the same events and state or the liveness bound
 * passes. Then the invariants are checked (invariants.ts).
 *
 * Between two queue items the loop lets every pending promise settle (setImmediate), so an
 * item's whole chain of store calls and engine continuations happens at its simulated time.
 */
import { createHash, type Hash } from 'node:crypto';
import { HybridLogicalClock, type NewEvent, type RecordedEvent, compareStamps, repositoryStream } from '@strata/core';
import { MemoryEventStore } from '@strata/store';
import {
  type FederationReply,
  type FederationRequest,
  FederationEngine,
  MemoryFederationStateStore,
  type PeerTransport,
  type Scheduler,
  decodeFederationReply,
  decodeFederationRequest,
  encodeFederationReply,
  encodeFederationRequest,
  newestStampIn,
  vectorsEqual,
} from '@strata/federation';
import { EventQueue } from './event-queue.ts';
import {
  type DisruptionTuple,
  REPO_KEY,
  type Scenario,
  type SimulationConfig,
  allMembers,
  disruptionKindOf,
  domainEventOf,
  opKindOf,
  peerIdOfUrl,
  siteIdOf,
} from './scenario.ts';
import { SimRandom } from './sim-random.ts';
import { SiteProjection } from './site-projection.ts';
import { type Violation, checkFinalInvariants } from './invariants.ts';

export const SIMULATION_EPOCH_MS = 1_700_000_000_000;
export const maxClockOffsetMs = 500;
const antiEntropyIntervalMs = 2_000;
const retryDelayBaseMs = 100;
const retryDelayMaxMs = 4_000;
const peerRequestTimeoutMs = 1_000;
const convergenceCheckIntervalMs = 250;
/** Queue items one run may process: a livelock (work rescheduled at the same instant) ends the run instead of hanging it. */
const queueItemsMax = 20_000_000;
/** After the membership restore: every site must converge within this much simulated time. */
export const livenessBoundMs = 120_000;
const stream = repositoryStream(REPO_KEY);

export interface SimulationStats {
  acknowledgedWrites: number;
  refusedWrites: number;
  deliveredRequests: number;
  /** Events carried by delivered requests, and how many of them the receiver already held. */
  deliveredEvents: number;
  duplicateEvents: number;
  lostMessages: number;
  duplicatedRequests: number;
  crashes: number;
  partitions: number;
  clockJumps: number;
  /** Simulated ms from genesis until every site converged (or the bound). */
  simulatedMs: number;
  /** From the end of the workload (heal) to convergence. */
  convergenceMs: number | null;
  invariantChecks: number;
  storedEvents: number;
}

export interface RunResult {
  readonly ok: boolean;
  readonly violations: readonly Violation[];
  /** Hex sha256 over the run's full trace and final state. */
  readonly digest: string;
  readonly stats: SimulationStats;
}

export class SimulatedSite {
  readonly index: number;
  readonly id: string;
  readonly store = new MemoryEventStore();
  readonly stateStore = new MemoryFederationStateStore();
  readonly random: SimRandom;
  readonly skewMs: number;
  readonly driftPpm: number;
  jumpMs = 0;
  incarnation = 0;
  up = false;
  engine: FederationEngine | undefined;
  projection: SiteProjection | undefined;

  constructor(index: number, seed: number, [skewMs, driftPpm]: readonly [number, number]) {
    this.index = index;
    this.id = siteIdOf(index);
    this.random = SimRandom.derive(seed, 1000 + index);
    this.skewMs = skewMs;
    this.driftPpm = driftPpm;
  }
}

export class Simulation {
  readonly config: SimulationConfig;
  readonly scenario: Scenario;
  readonly sites: SimulatedSite[];
  /** Every write a client was told succeeded, as the origin stamped it. */
  readonly acknowledged: NewEvent[] = [];
  readonly violations: Violation[] = [];
  readonly stats: SimulationStats = {
    acknowledgedWrites: 0,
    refusedWrites: 0,
    deliveredRequests: 0,
    deliveredEvents: 0,
    duplicateEvents: 0,
    lostMessages: 0,
    duplicatedRequests: 0,
    crashes: 0,
    partitions: 0,
    clockJumps: 0,
    simulatedMs: 0,
    convergenceMs: null,
    invariantChecks: 0,
    storedEvents: 0,
  };
  readonly #queue = new EventQueue();
  readonly #network: SimRandom;
  readonly #blocked = new Map<number, number>();
  readonly #trace: Hash = createHash('sha256');
  #now = SIMULATION_EPOCH_MS;
  #itemsProcessed = 0;
  #livelocked = false;

  constructor(config: SimulationConfig, scenario: Scenario) {
    if (config.sites < 2 || config.sites > 10) throw new Error('a simulation runs 2 to 10 sites');
    this.config = config;
    this.scenario = scenario;
    this.#network = SimRandom.derive(scenario.networkSeed, 1);
    this.sites = Array.from({ length: config.sites }, (_, index) => new SimulatedSite(index, scenario.networkSeed, scenario.clocks[index] ?? [0, 0]));
  }

  get now(): number {
    return this.#now;
  }

  physicalNow(site: SimulatedSite): number {
    const elapsed = this.#now - SIMULATION_EPOCH_MS;
    return Math.floor(this.#now + site.skewMs + (site.driftPpm * elapsed) / 1_000_000 + site.jumpMs);
  }

  trace(line: string): void {
    this.#trace.update(`${this.#now - SIMULATION_EPOCH_MS} ${line}\n`);
  }

  at(time: number, run: () => unknown): { cancelled: boolean } {
    return this.#queue.push(Math.max(time, this.#now), run);
  }

  async run(): Promise<RunResult> {
    const { config, scenario } = this;
    for (const site of this.sites) await this.#start(site);
    const genesis = this.sites[0]!;
    await this.#commit(genesis, {
      type: 'RepositoryCreated',
      data: { key: REPO_KEY, config: { rclass: 'federated', packageType: 'generic', members: allMembers(config.sites) } },
    });

    // The workload and its disruptions, laid out in simulated time.
    let time = SIMULATION_EPOCH_MS + 100;
    const disruptionsAt = new Map<number, DisruptionTuple[]>();
    for (const disruption of scenario.disruptions) {
      const list = disruptionsAt.get(disruption[0]) ?? [];
      list.push(disruption);
      disruptionsAt.set(disruption[0], list);
    }
    const opTimes: number[] = [];
    for (const op of scenario.ops) {
      time += op[0];
      opTimes.push(time);
    }
    const workloadEnd = time + 1;
    scenario.ops.forEach((op, index) => {
      for (const disruption of disruptionsAt.get(index) ?? []) this.at(opTimes[index]!, () => this.#disrupt(disruption, workloadEnd));
      this.at(opTimes[index]!, () => this.#operate(op));
    });
    await this.#runUntil(workloadEnd);

    // Heal: every partition ends, every crashed site restarts.
    this.#blocked.clear();
    this.trace('heal');
    for (const site of this.sites) if (!site.up) await this.#start(site);

    // Membership restore, stamped after every workload stamp (skews, jumps and drift bounded by the margin).
    const restoreAt = workloadEnd + 2 * config.skewMs + 2 * (config.skewMs + 1_000) + 2 * maxClockOffsetMs + 1_000;
    this.at(restoreAt, async () => {
      const site = this.sites.find((candidate) => candidate.up && candidate.engine?.isFederated(REPO_KEY))!;
      await this.#commit(site, { type: 'RepositoryConfigChanged', data: { key: REPO_KEY, patch: { members: allMembers(config.sites) } } });
    });
    await this.#runUntil(restoreAt);
    const deadline = restoreAt + livenessBoundMs;
    let converged = false;
    while (this.#now < deadline && !this.#livelocked) {
      await this.#runUntil(Math.min(deadline, this.#now + convergenceCheckIntervalMs));
      if (this.#converged()) {
        converged = true;
        break;
      }
    }
    this.stats.convergenceMs = converged ? this.#now - workloadEnd : null;
    this.stats.simulatedMs = this.#now - SIMULATION_EPOCH_MS;
    if (!converged) {
      this.violations.push({ invariant: 'liveness', message: `sites did not converge within ${livenessBoundMs} ms of simulated time after heal and restore` });
    }
    await checkFinalInvariants(this);
    for (const site of this.sites) this.trace(`final ${site.id} ${site.projection?.digest() ?? 'down'}`);
    for (const violation of this.violations) this.trace(`violation ${violation.invariant} ${violation.message}`);
    for (const site of this.sites) site.engine?.close();
    return { ok: this.violations.length === 0, violations: this.violations, digest: this.#trace.digest('hex'), stats: this.stats };
  }

  /** Cheap first (vectors), then the projections' digests. */
  #converged(): boolean {
    const first = this.sites[0]!;
    if (!first.up || first.engine === undefined) return false;
    const vector = first.engine.versionVector(REPO_KEY);
    for (const site of this.sites) {
      if (!site.up || site.engine === undefined || !site.engine.isFederated(REPO_KEY) || !vectorsEqual(site.engine.versionVector(REPO_KEY), vector)) return false;
    }
    const digest = first.projection!.digest();
    return this.sites.every((site) => site.projection!.digest() === digest);
  }

  async #runUntil(time: number): Promise<void> {
    for (;;) {
      const head = this.#queue.peek();
      if (head === undefined || head.time > time || this.#livelocked) break;
      if (++this.#itemsProcessed > queueItemsMax) {
        this.#livelocked = true;
        this.violations.push({ invariant: 'liveness', message: `more than ${queueItemsMax} queue items by simulated time ${this.#now - SIMULATION_EPOCH_MS} ms: livelock` });
        break;
      }
      this.#queue.pop();
      if (head.cancelled) continue;
      this.#now = head.time;
      await head.run();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.#now = Math.max(this.#now, time);
  }

  // Sites --------------------------------------------------------------------------------

  async #start(site: SimulatedSite): Promise<void> {
    site.incarnation++;
    const incarnation = site.incarnation;
    const projection = new SiteProjection({ dropTombstones: this.config.fault === 'drop-tombstones' });
    projection.applyAll(await site.store.readStream(stream, { maxCount: Number.MAX_SAFE_INTEGER }));
    const clock = { now: () => this.physicalNow(site) };
    const newest = await newestStampIn(site.store, [stream]);
    const hlc = new HybridLogicalClock({ clock, maxClockOffsetMs, ...(newest === undefined ? {} : { initial: newest }) });
    const fault = this.config.fault;
    const engine = new FederationEngine({
      siteId: site.id,
      store: site.store,
      stateStore: site.stateStore,
      transport: this.#transportFor(site, incarnation),
      scheduler: this.#schedulerFor(site, incarnation),
      clock,
      random: site.random,
      hlc,
      peerIdOf: peerIdOfUrl,
      federationBatchEventsMax: this.config.federationBatchEventsMax,
      ...(this.config.federationCatchUpBatchEventsMax === undefined ? {} : { federationCatchUpBatchEventsMax: this.config.federationCatchUpBatchEventsMax }),
      pushWindow: this.config.pushWindow,
      ...(this.config.forwardDelayMs === undefined ? {} : { forwardDelayMs: this.config.forwardDelayMs }),
      retryDelayBaseMs,
      retryDelayMaxMs,
      peerRequestTimeoutMs,
      antiEntropyIntervalMs,
      onEventsAppended: (_repoKey, events) => {
        if (site.incarnation === incarnation) projection.applyAll(events);
      },
      faults: {
        lwwByArrival: fault === 'lww-by-arrival',
        wallClock: fault === 'wall-clock',
        noDedup: fault === 'no-dedup',
      },
    });
    site.projection = projection;
    site.engine = engine;
    site.up = true;
    // Site-0 creates the federated repository; the others join when its creation reaches them
    // (or, after a restart, because their store holds its stream).
    if (site.index === 0 || (await site.store.streamRevision(stream)) !== undefined) {
      await engine.federate(REPO_KEY, { members: allMembers(this.config.sites) });
    }
    this.trace(`start ${site.id} #${incarnation}`);
  }

  #crash(site: SimulatedSite): void {
    if (!site.up) return;
    this.stats.crashes++;
    site.engine?.close();
    site.engine = undefined;
    site.projection = undefined;
    site.up = false;
    site.incarnation++;
    this.trace(`crash ${site.id}`);
  }

  #schedulerFor(site: SimulatedSite, incarnation: number): Scheduler {
    return {
      schedule: (delayMs, task) => {
        const item = this.at(this.#now + Math.max(0, Math.floor(delayMs)), () => {
          if (site.incarnation === incarnation && site.up) task();
        });
        return {
          cancel: () => {
            item.cancelled = true;
          },
        };
      },
    };
  }

  // Network ------------------------------------------------------------------------------

  #delayMs(from: number, to: number): number {
    const [base, jitter] = this.scenario.links[from * this.config.sites + to] ?? [5, 5];
    let delay = base + Math.floor(this.#network.next() * (jitter + 1));
    if (this.#network.chance(0.02)) delay *= 5; // a slow tail: reorders messages
    return delay;
  }

  #passes(from: number, to: number): boolean {
    if ((this.#blocked.get(from * this.config.sites + to) ?? 0) > 0) return false;
    if (this.config.cutLinks?.some(([x, y]) => (x === from && y === to) || (x === to && y === from)) === true) return false;
    if (this.#network.chance(this.config.loss)) {
      this.stats.lostMessages++;
      return false;
    }
    return true;
  }

  #transportFor(site: SimulatedSite, incarnation: number): PeerTransport {
    return {
      send: (peerId: string, request: FederationRequest, { signal }: { signal: AbortSignal }) =>
        new Promise<FederationReply>((resolve, reject) => {
          let settled = false;
          const onAbort = (): void => {
            if (settled) return;
            settled = true;
            reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
          };
          if (signal.aborted) return onAbort();
          signal.addEventListener('abort', onAbort, { once: true });
          const target = this.sites.find((candidate) => candidate.id === peerId);
          if (target === undefined) return; // a ghost member: nobody answers
          const copies = this.#network.chance(this.config.duplication) ? 2 : 1;
          if (copies === 2) this.stats.duplicatedRequests++;
          for (let copy = 0; copy < copies; copy++) {
            if (!this.#passes(site.index, target.index)) continue;
            // Not awaited by the loop: a batch that overtook its predecessor waits (for a
            // simulated timer or the predecessor's arrival) inside receive.
            this.at(this.#now + this.#delayMs(site.index, target.index), () => void deliver());
            const deliver = async (): Promise<void> => {
              if (!target.up || target.engine === undefined) return;
              this.stats.deliveredRequests++;
              const delivered = this.config.wireCodec
                ? decodeFederationRequest(encodeFederationRequest(request), {
                    eventsMax: Math.max(this.config.federationBatchEventsMax, this.config.federationCatchUpBatchEventsMax ?? 0),
                  })
                : request;
              let reply = await target.engine.receive(delivered);
              this.stats.deliveredEvents += request.events.length;
              if (reply.kind === 'ack') this.stats.duplicateEvents += reply.duplicates;
              if (this.config.wireCodec) reply = decodeFederationReply(encodeFederationReply(reply));
              this.trace(`deliver ${site.id}>${target.id} n=${request.events.length} ${reply.kind}${reply.kind === 'refused' ? `:${reply.reason}` : ''}`);
              if (!this.#passes(target.index, site.index)) return;
              this.at(this.#now + this.#delayMs(target.index, site.index), () => {
                if (settled || site.incarnation !== incarnation) return;
                settled = true;
                signal.removeEventListener('abort', onAbort);
                resolve(reply);
              });
            };
          }
        }),
    };
  }

  #block(from: number, to: number, delta: number): void {
    const key = from * this.config.sites + to;
    this.#blocked.set(key, Math.max(0, (this.#blocked.get(key) ?? 0) + delta));
  }

  // Workload -----------------------------------------------------------------------------

  async #operate(op: Scenario['ops'][number]): Promise<void> {
    const site = this.sites[op[1] % this.sites.length]!;
    if (!site.up || site.engine === undefined) {
      this.stats.refusedWrites++;
      this.trace(`op ${site.id} refused (down)`);
      return;
    }
    await this.#commit(site, domainEventOf(op, this.config.sites), opKindOf(op[2]));
  }

  async #commit(site: SimulatedSite, event: Parameters<FederationEngine['commit']>[1][number], kind: string = event.type): Promise<void> {
    const before = site.projection!.newest;
    let recorded: readonly RecordedEvent[];
    try {
      recorded = await site.engine!.commit(REPO_KEY, [event], { actor: `user@${site.id}` });
    } catch (error) {
      this.stats.refusedWrites++;
      this.trace(`op ${site.id} ${kind} failed ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    for (const written of recorded) {
      const { stream: _stream, revision: _revision, position: _position, ...newEvent } = written;
      this.acknowledged.push(newEvent as NewEvent);
      this.stats.acknowledgedWrites++;
      this.trace(`op ${site.id} ${kind} ${written.id} ${written.hlc.wall}.${written.hlc.logical}`);
      // (d) causality, checked as each write happens: after everything its site had seen.
      this.stats.invariantChecks++;
      if (before !== null && compareStamps(written, before) <= 0) {
        this.violations.push({
          invariant: 'causality',
          message: `${site.id} stamped ${kind} ${written.id} at ${written.hlc.wall}.${written.hlc.logical}, not after ${before.hlc.wall}.${before.hlc.logical} (${before.origin}) which it had already applied`,
        });
      }
    }
  }

  #disrupt([, kindNumber, a, b, durationMs]: DisruptionTuple, workloadEnd: number): void {
    const kind = disruptionKindOf(kindNumber, this.config);
    const sites = this.config.sites;
    const until = Math.min(this.#now + durationMs, workloadEnd);
    switch (kind) {
      case 'partition-symmetric':
      case 'partition-asymmetric': {
        const mask = (a % ((1 << sites) - 2)) + 1; // a proper, non-empty subset
        const pairs: [number, number][] = [];
        for (let from = 0; from < sites; from++) {
          for (let to = 0; to < sites; to++) {
            const inFrom = ((mask >> from) & 1) === 1;
            const inTo = ((mask >> to) & 1) === 1;
            if (inFrom && !inTo) pairs.push([from, to]);
            if (kind === 'partition-symmetric' && !inFrom && inTo) pairs.push([from, to]);
          }
        }
        this.stats.partitions++;
        for (const [from, to] of pairs) this.#block(from, to, 1);
        this.trace(`${kind} mask=${mask} for ${until - this.#now}`);
        this.at(until, () => {
          for (const [from, to] of pairs) this.#block(from, to, -1);
          this.trace(`heal mask=${mask}`);
        });
        return;
      }
      case 'crash': {
        const site = this.sites[a % sites]!;
        if (!site.up) return;
        this.#crash(site);
        this.at(until, async () => {
          if (!site.up) await this.#start(site);
        });
        return;
      }
      case 'clock-jump': {
        const site = this.sites[a % sites]!;
        const magnitude = 100 + (b * 37) % (this.config.skewMs + 1_000);
        const delta = b % 2 === 0 ? magnitude : -magnitude;
        // Jumps add up but stay within ±(skewMs + 1000) in total, which the restore margin assumes.
        const bound = this.config.skewMs + 1_000;
        site.jumpMs = Math.max(-bound, Math.min(bound, site.jumpMs + delta));
        this.stats.clockJumps++;
        this.trace(`clock-jump ${site.id} ${delta}`);
        return;
      }
      case 'full-sync': {
        const site = this.sites[a % sites]!;
        if (!site.up || site.engine?.isFederated(REPO_KEY) !== true) return;
        site.engine.fullSync(REPO_KEY);
        this.trace(`full-sync ${site.id}`);
        return;
      }
      case undefined:
        return;
    }
  }
}
