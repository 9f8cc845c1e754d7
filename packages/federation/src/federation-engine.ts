/**
 * The federation engine of one site (DESIGN §5): per federated repository, it appends local
 * writes with this origin's next originSeq, receives peers' events in originSeq order per
 * origin (gaps refused, duplicates skipped by id, clocks too far ahead refused), pushes to
 * every member what it lacks from a per-peer outbox cursor that advances only on
 * acknowledgement and survives restarts, forwards what it received from others, retries
 * with capped exponential backoff, and exchanges version vectors periodically (anti-entropy)
 * and on demand (fullSync).
 *
 * Everything outside is a port: the event store, the cursor store, the peer transport, the
 * scheduler, the clock, randomness and the site's hybrid logical clock. The same code runs
 * behind HTTP in the server and inside the deterministic simulations of simulations/.
 *
 * Concurrency: every change of one repository's state (local commit, received batch,
 * membership change) runs in that repository's queue, one at a time, so the stream, the
 * in-memory indexes and the vector always agree. Pushes run outside the queue, one request
 * in flight per peer.
 *
 * Every write to a federated stream must go through `commit` (the engine assigns originSeq
 * and expects to be the stream's only writer; an unexpected revision is a conflict).
 */
import {
  type Clock,
  type DomainEvent,
  type EventMeta,
  type EventVersion,
  type HlcStamp,
  type HybridLogicalClock,
  type NewEvent,
  type Random,
  type RecordedEvent,
  type StreamEvent,
  CHAIN_GENESIS,
  ORIGIN_PREV_META_KEY,
  StrataError,
  chainLinkHex,
  compareVersions,
  encodeEventData,
  encodeMeta,
  eventDigest,
  invariant,
  originPrevOf,
  isStrataError,
  repositoryStream,
  versionOf,
} from '@strata/core';
import { encodeAndDigestEvent, type AppendWrites, type EventStore } from '@strata/store';
import { federationError } from './federation-errors.ts';
import {
  type FederationReply,
  type FederationRequest,
  type PushRequest,
  type RefusalReason,
  validateFederationReply,
  validateFederationRequest,
} from './federation-messages.ts';
import type { FederationStateStore, PeerTransport, ScheduledTask, Scheduler } from './ports.ts';
import { EMPTY_VERSION_VECTOR, type VersionVector, mergeVectors, vectorCovers, vectorGet, vectorLag } from './version-vector.ts';

export const defaultFederationBatchEventsMax = 500;
/** Events per push to a peer that lacks more than a batch (federationCatchUpBatchEventsMax). */
export const defaultFederationCatchUpBatchEventsMax = 5_000;
export const defaultRetryDelayBaseMs = 200;
export const defaultRetryDelayMaxMs = 30_000;
export const defaultPeerRequestTimeoutMs = 10_000;
export const defaultAntiEntropyIntervalMs = 30_000;
export const defaultPushWindow = 4;
export const defaultForwardDelayMs = 1_000;
/** Catch-up pages (pushes larger than federationBatchEventsMax) in flight per peer at most. */
const catchUpPagesInFlightMax = 2;
/** Failed attempts to deliver a removed member's farewell before giving it up. */
const farewellAttemptsMax = 6;
/** Batches waiting for their predecessors per repository at most (beyond, a gap is refused at once). */
const reorderWaitersMax = 64;
/** Gap replies in a row before the engine backs off instead of resending at once. */
const gapResendsMax = 3;
const storeReadBatchEventsMax = 10_000;
/** Concurrency conflicts with another writer of a stream before a received batch is given up (the sender retries). */
const appendConflictRetriesMax = 8;
/**
 * This site's own events whose commit time is kept per repository (the newest ones), for the
 * pushes' `committedAtMs`: a push normally leaves within moments of the commit; an event
 * sent later (a member catching up) goes without one.
 */
const commitTimesKeptMax = 8192;

export const MEMBER_STATES = ['SYNCING', 'OUT_OF_SYNC', 'DISABLED', 'FULL_SYNC_RUNNING'] as const;
export type MemberState = (typeof MEMBER_STATES)[number];

/** One entry of the `members` config field (Artifactory JSON: `{url, enabled}`). */
export interface FederationMember {
  readonly url: string;
  readonly enabled: boolean;
}

export interface FederationMemberStatus {
  readonly peerId: string;
  readonly url: string;
  readonly state: MemberState;
  /** Events this site holds that the peer has not acknowledged. */
  readonly lagEvents: number;
  /** Age, by this site's physical clock, of the oldest event the peer has not acknowledged (0 if none). */
  readonly lagMs: number;
  readonly lastError: string | null;
  /** The peer's physical clock minus ours, estimated from its last request (null: not heard yet). */
  readonly clockOffsetMs: number | null;
  /** The peer's acknowledged vector (this site's outbox cursor for it). */
  readonly cursor: VersionVector;
}

export interface FederationStatus {
  readonly repoKey: string;
  /** True when the repository's members field no longer lists this site: it sends nothing more. */
  readonly removed: boolean;
  /** The origin of the members edit in force (who removed this site, when `removed`). */
  readonly membersEditedBy: string | null;
  readonly vector: VersionVector;
  readonly members: readonly FederationMemberStatus[];
}

/**
 * Planted bugs, for simulations/ only (`--fault`), to prove the invariants catch them. Off
 * everywhere else; the server never sets them.
 */
export interface FederationFaults {
  /** Received events are stored with the receiver's arrival stamp instead of the origin's. */
  readonly lwwByArrival?: boolean;
  /** Local events are stamped with physical time instead of the hybrid logical clock. */
  readonly wallClock?: boolean;
  /** Redelivered events are handed to the projection again. */
  readonly noDedup?: boolean;
}

export interface FederationEngineOptions {
  /** This site's id: the `origin` of its events. */
  readonly siteId: string;
  readonly store: EventStore;
  readonly stateStore: FederationStateStore;
  readonly transport: PeerTransport;
  readonly scheduler: Scheduler;
  readonly clock: Clock;
  readonly random: Random;
  /** The site's clock, shared with every other writer of the site. */
  readonly hlc: HybridLogicalClock;
  /** The site id behind a member url, or undefined if it names no site we can reach. */
  readonly peerIdOf: (memberUrl: string) => string | undefined;
  readonly federationBatchEventsMax?: number;
  /**
   * Events per push at most while a peer lacks more than `federationBatchEventsMax` (a member
   * catching up after being offline), and the most a received push may carry: a catch-up
   * page. After a failed request the pages are `federationBatchEventsMax` again until one is
   * answered (a receiver that refuses large pages, a page over the push's byte limit).
   * Default: 5,000 when `federationBatchEventsMax` is not set, else `federationBatchEventsMax`.
   */
  readonly federationCatchUpBatchEventsMax?: number;
  /** Push requests in flight per peer (default 4); 1 is the unpipelined protocol. */
  readonly pushWindow?: number;
  /**
   * How long a received batch that starts beyond what is held here (a gap) waits, before
   * the repository's queue, for the batches before it — sent earlier over another
   * connection, they may arrive later. Default: a quarter of peerRequestTimeoutMs, at most 1 s.
   */
  readonly reorderWaitMs?: number;
  readonly retryDelayBaseMs?: number;
  readonly retryDelayMaxMs?: number;
  readonly peerRequestTimeoutMs?: number;
  readonly antiEntropyIntervalMs?: number;
  /**
   * Forwarding (DESIGN §5, "a partition heals through a third member"), deferred and checked:
   * an event received from another member is forwarded to a peer only once it has been held
   * here for `forwardDelayMs` (between one and two of them: a timer ripens what arrived) *and*
   * a vector of that peer learned after that moment still lacks it. In a healthy federation
   * the origin's own push gets there first and nothing is sent twice; across a cut link the
   * events arrive that much later. 0 forwards at once, unchecked (every member then receives
   * every event once per path). Default 1 s.
   */
  readonly forwardDelayMs?: number;
  /**
   * Called, inside the repository's queue, with the events just appended to a federated
   * stream (local or received), in append order: where projections hook in. For a received
   * batch, `stages` says when it went through each step of its receipt.
   */
  readonly onEventsAppended?: (repoKey: string, events: readonly StreamEvent[], stages?: ReceiveStages) => void;
  /**
   * Join a federated repository this site does not know yet when a member sends its
   * creation: a batch holding a `RepositoryCreated` of that key with `rclass: "federated"` whose
   * members name both this site and the sender. Default true.
   */
  readonly joinOnInvitation?: boolean;
  /** Called once the engine has joined a repository on invitation (to persist that it is federated). */
  readonly onRepositoryJoined?: (repoKey: string) => void;
  /**
   * Awaited between slices of a large received batch's work before its queue (its encodings
   * and digests): production yields to the event loop (setImmediate), so that the database
   * round trips of the batch ahead, pipelined behind it, are answered meanwhile instead of
   * after the whole page. Absent (tests, simulations): no pause.
   */
  readonly pause?: () => Promise<void>;
  readonly faults?: FederationFaults;
}

/** Events of a received batch encoded and digested between two pauses (FederationEngineOptions.pause). */
const receivedEventsPerSlice = 500;

interface MembersRegister {
  readonly version: EventVersion;
  /** Revision of the event that set it (in this site's stream; -1 while only planned). */
  readonly revision: number;
  readonly members: readonly FederationMember[];
}

type FullSyncPhase = 'none' | 'exchange' | 'sending';

interface PeerState {
  readonly peerId: string;
  url: string;
  enabled: boolean;
  /** False once removed from the members (and its farewell is over): its loops stop. */
  active: boolean;
  /**
   * Set once the peer left the members (or this site did): it gets what it lacks up to this
   * vector — which holds the members edit that removed it — and nothing after; then it is dropped.
   */
  leaving: VersionVector | null;
  cursor: VersionVector;
  /** The cursor plus the batches in flight: where the next batch starts. */
  sent: VersionVector;
  /** Requests in flight (at most pushWindow). */
  inFlight: number;
  /** Bumped when the pipeline restarts from the cursor; replies of older epochs decide nothing. */
  epoch: number;
  saving: boolean;
  saveWanted: boolean;
  exchangeWanted: boolean;
  fullSyncPhase: FullSyncPhase;
  retryTask: ScheduledTask | null;
  attempt: number;
  gapResends: number;
  lastError: string | null;
  clockOffsetMs: number | null;
  /**
   * The repository's ripe vector (events held here for the forward delay) as of the latest
   * moment this peer's vector was learned (a reply to us, or a request from it): events of
   * other origins up to it that the peer's cursor lacks, it lacked when they were ripe, so
   * they are forwarded; ripe events beyond it wait for the next vector (see forwardDelayMs).
   */
  checked: VersionVector;
  /**
   * The peer answered `not-federated` (it has not joined): until it acknowledges a batch, it
   * gets everything from scratch at once — the creation, which invites it, leads — as in a
   * full sync, not deferred.
   */
  inviting: boolean;
}

class FederatedRepository {
  readonly key: string;
  readonly stream: string;
  /** origin → its events held here, index = originSeq - 1. */
  readonly held = new Map<string, RecordedEvent[]>();
  /** event id → `origin:originSeq`, to tell a redelivery from a forged or colliding id. */
  readonly ids = new Map<string, string>();
  readonly peers = new Map<string, PeerState>();
  /** Peers no longer members that still get their farewell (see PeerState.leaving). */
  readonly leaving = new Map<string, PeerState>();
  /** True when the members field no longer lists this site, after a value that did: it pushes nothing more. */
  removed = false;
  /**
   * Whether some members value applied here listed this site. A site that joined holds the
   * history from before it was added (values without it): those do not make it "removed".
   */
  listedOnce = false;
  readonly #isSelf: (url: string) => boolean;
  /** Woken whenever a farewell ends. */
  readonly farewellWaiters = new Set<() => void>();
  readonly bootstrapMembers: readonly FederationMember[];
  membersRegister: MembersRegister | null = null;
  /** The origin of the repository's creation: its events lead every batch, so a batch can invite. */
  creatorOrigin: string | null = null;
  revision = -1;
  /** Events held here for the forward delay (forwardable once checked against a peer's vector). */
  ripe: VersionVector = EMPTY_VERSION_VECTOR;
  /** The timer that ripens what was held when it was set (null: none pending). */
  ripenTask: ScheduledTask | null = null;
  /** Per origin: the digest of its newest event whose digest was needed (origin-chain checks). */
  readonly #digests = new Map<string, { originSeq: number; digest: Buffer }>();
  /** Received batches waiting for their predecessors (woken whenever events are recorded). */
  readonly waiters = new Set<() => void>();
  /** event id → this site's physical clock when its append committed (own events, the newest commitTimesKeptMax). */
  readonly #commitTimes = new Map<string, number>();
  #vector: VersionVector | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Received batches handed to the store and not yet recorded, oldest first: a catch-up page
   * is planned on those ahead of it (pipelined, see `receive`) instead of waiting for their
   * commits. Each is removed, in order, as it is recorded or given up.
   */
  readonly appending: AppendingBatch[] = [];
  /** A batch of `appending` failed: until they have all ended, nothing is planned on them. */
  appendingFailed = false;
  /** Settles once every batch of `appending` as it stands has ended (never rejects). */
  #appendingEnded: Promise<unknown> = Promise.resolve();

  constructor(key: string, bootstrapMembers: readonly FederationMember[], isSelf: (url: string) => boolean) {
    this.#isSelf = isSelf;
    this.key = key;
    this.stream = repositoryStream(key);
    this.bootstrapMembers = bootstrapMembers;
  }

  heldCount(origin: string): number {
    return this.held.get(origin)?.length ?? 0;
  }

  /** The digest of an event of this stream: the origin-chain link its successor must carry (core event-chain.ts). */
  digestOf(event: NewEvent): Buffer {
    const envelope = { stream: this.stream, id: event.id, origin: event.origin, originSeq: event.originSeq, hlc: event.hlc, type: event.type };
    return eventDigest(envelope, encodeEventData(event.type, event.data as never), encodeMeta(event.meta));
  }

  /** The digest of the held event `originSeq` of `origin` (cached for the newest one of each origin). */
  heldDigest(origin: string, originSeq: number): Buffer {
    const cached = this.#digests.get(origin);
    if (cached !== undefined && cached.originSeq === originSeq) return cached.digest;
    const event = this.held.get(origin)![originSeq - 1]!;
    const digest = this.digestOf(event);
    this.#digests.set(origin, { originSeq, digest });
    return digest;
  }

  rememberDigest(origin: string, originSeq: number, digest: Buffer): void {
    this.#digests.set(origin, { originSeq, digest });
  }

  /** Notes when this site's own events committed (for the pushes' `committedAtMs`). */
  rememberCommitted(events: readonly { readonly id: string }[], committedAtMs: number): void {
    for (const event of events) this.#commitTimes.set(event.id, committedAtMs);
    while (this.#commitTimes.size > commitTimesKeptMax) this.#commitTimes.delete(this.#commitTimes.keys().next().value!);
  }

  /** The commit times of a batch's events, one per event (null: not known here), or undefined when none is known. */
  commitTimesOf(events: readonly NewEvent[]): (number | null)[] | undefined {
    if (this.#commitTimes.size === 0) return undefined;
    let known = false;
    const times = events.map((event) => {
      const committedAtMs = this.#commitTimes.get(event.id);
      if (committedAtMs === undefined) return null;
      known = true;
      return committedAtMs;
    });
    return known ? times : undefined;
  }

  /**
   * True iff some origin's first event in the batch not held here (nor being appended) is
   * beyond the next one expected.
   */
  startsBeyondHeld(events: readonly NewEvent[]): boolean {
    const checked = new Set<string>();
    const last = this.appending.at(-1);
    for (const event of events) {
      if (checked.has(event.origin) || this.ids.has(event.id) || this.appending.some((batch) => batch.ids.has(event.id))) continue;
      checked.add(event.origin);
      if (event.originSeq > (last?.heads.get(event.origin)?.originSeq ?? this.heldCount(event.origin)) + 1) return true;
    }
    return false;
  }

  /** Adds a batch handed to the store; `ended` settles when it has been recorded or given up. */
  startAppending(batch: AppendingBatch, ended: Promise<unknown>): void {
    this.appending.push(batch);
    const before = this.#appendingEnded;
    this.#appendingEnded = Promise.all([before, ended.catch(() => undefined)]);
    // A batch waiting for its predecessors may now be planned on this one.
    for (const wake of [...this.waiters]) wake();
  }

  /** Removes the oldest batch of `appending` (it was recorded, or it failed). */
  endAppending(batch: AppendingBatch, failed: boolean): void {
    invariant(this.appending[0] === batch, `stream ${this.stream}: received batches ended out of order`);
    this.appending.shift();
    if (failed) this.appendingFailed = true;
    if (this.appending.length === 0) this.appendingFailed = false;
  }

  /** Settles once every received batch handed to the store so far has ended. */
  appendingEnded(): Promise<unknown> {
    return this.#appendingEnded;
  }

  get vector(): VersionVector {
    if (this.#vector === null) {
      const vector: Record<string, number> = {};
      for (const origin of [...this.held.keys()].sort()) vector[origin] = this.heldCount(origin);
      this.#vector = Object.freeze(vector);
    }
    return this.#vector;
  }

  /** Indexes events just appended (or loaded) in stream order. */
  record(events: readonly RecordedEvent[]): boolean {
    let membersChanged = false;
    for (const event of events) {
      invariant(event.revision === this.revision + 1, `stream ${this.stream}: revision ${event.revision} after ${this.revision}`);
      let byOrigin = this.held.get(event.origin);
      if (byOrigin === undefined) this.held.set(event.origin, (byOrigin = []));
      invariant(
        event.originSeq === byOrigin.length + 1,
        `stream ${this.stream}: ${event.origin} originSeq ${event.originSeq} after ${byOrigin.length}`,
      );
      byOrigin.push(event);
      this.ids.set(event.id, `${event.origin}:${event.originSeq}`);
      if (this.creatorOrigin === null && event.type === 'RepositoryCreated') this.creatorOrigin = event.origin;
      this.revision = event.revision;
      if (this.#applyMembers(event, event.revision)) membersChanged = true;
    }
    if (events.length > 0) {
      this.#vector = null;
      for (const wake of [...this.waiters]) wake();
    }
    return membersChanged;
  }

  /** The members field is one LWW register of the configuration (DESIGN §4). */
  #applyMembers(event: NewEvent, revision: number): boolean {
    let value: unknown;
    if (event.type === 'RepositoryCreated' && event.data.key === this.key) value = event.data.config['members'];
    else if (event.type === 'RepositoryConfigChanged' && event.data.key === this.key) value = event.data.patch['members'];
    if (value === undefined) return false;
    const version = versionOf(event);
    if (this.membersRegister !== null && compareVersions(version, this.membersRegister.version) <= 0) return false;
    this.membersRegister = { version, revision, members: parseMembers(value) };
    if (this.membersRegister.members.some((member) => this.#isSelf(member.url))) this.listedOnce = true;
    return true;
  }

  members(): readonly FederationMember[] {
    return this.membersRegister?.members ?? this.bootstrapMembers;
  }

  /** Up to `max` events the holder of `cursor` lacks, contiguous per origin (and within `limit`, when given). */
  missingFor(cursor: VersionVector, max: number, limit?: VersionVector): NewEvent[] {
    const batch: NewEvent[] = [];
    const origins = [...this.held.keys()].sort();
    if (this.creatorOrigin !== null) origins.sort((a, b) => (a === this.creatorOrigin ? -1 : b === this.creatorOrigin ? 1 : 0));
    for (const origin of origins) {
      const events = this.held.get(origin)!;
      const end = limit === undefined ? events.length : Math.min(events.length, vectorGet(limit, origin));
      for (let index = vectorGet(cursor, origin); index < end && batch.length < max; index++) batch.push(events[index]!);
      if (batch.length >= max) break;
    }
    return batch;
  }

  /** What this site held when the current members field was written: a removed member's farewell. */
  farewellVector(): VersionVector {
    const upTo = this.membersRegister?.revision ?? this.revision;
    const vector: Record<string, number> = {};
    for (const [origin, events] of this.held) {
      // Revisions grow along each origin's events: count those at or before `upTo`.
      let low = 0;
      let high = events.length;
      while (low < high) {
        const middle = (low + high) >> 1;
        if (events[middle]!.revision <= upTo) low = middle + 1;
        else high = middle;
      }
      if (low > 0) vector[origin] = low;
    }
    return vector;
  }

  /** The smallest wall time among the first events the holder of `cursor` lacks, per origin. */
  oldestMissingWall(cursor: VersionVector): number | undefined {
    let oldest: number | undefined;
    for (const [origin, events] of this.held) {
      const first = events[vectorGet(cursor, origin)];
      if (first !== undefined && (oldest === undefined || first.hlc.wall < oldest)) oldest = first.hlc.wall;
    }
    return oldest;
  }

  /** Runs `task` in the repository's queue, once every received batch being appended has ended. */
  serialize<T>(task: () => Promise<T>): Promise<T> {
    return this.serializeAhead(async () => {
      while (this.appending.length > 0) await this.appendingEnded();
      return task();
    });
  }

  /** Runs `task` in the repository's queue, with received batches possibly still being appended (`appending`). */
  serializeAhead<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/** A received batch handed to the store, not yet recorded (FederatedRepository.appending). */
interface AppendingBatch {
  readonly ids: ReadonlySet<string>;
  /** The stream's revision once it is appended. */
  readonly revisionAfter: number;
  /** Per origin: its newest event in this batch or any batch ahead of it, with its digest. */
  readonly heads: ReadonlyMap<string, { readonly originSeq: number; readonly digest: Buffer; readonly chained: boolean }>;
  /** The store's append of it: a batch planned on this one is written only after it (AppendOptions.after). */
  readonly appended: Promise<unknown>;
}

/** AppendOptions.after's refusal of a batch planned on one that failed: a conflict, so the batch is planned again on the stream as it is. */
function aheadFailed(stream: string, cause: unknown): Error {
  return new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', `stream ${stream}: the batch this one was planned on was not appended (${describe(cause)})`, { stream });
}

/** True iff `event` is a configuration event (the members field may change: not pipelined). */
function isConfigEvent(event: NewEvent): boolean {
  return event.type === 'RepositoryCreated' || event.type === 'RepositoryConfigChanged' || event.type === 'RepositoryDeleted';
}

/** Lenient reading of the members field: entries without a string url are ignored. */
export function parseMembers(value: unknown): FederationMember[] {
  if (!Array.isArray(value)) return [];
  const members: FederationMember[] = [];
  for (const entry of value) {
    if (typeof entry !== 'object' || entry === null) continue;
    const url = (entry as Record<string, unknown>)['url'];
    if (typeof url !== 'string') continue;
    members.push({ url, enabled: (entry as Record<string, unknown>)['enabled'] !== false });
  }
  return members;
}

function describe(error: unknown): string {
  if (isStrataError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

const inboundErrorPrefix = 'batch refused here, ';

function refused(reason: RefusalReason, message: string, vector: VersionVector | null, offsetMs: number | null = null): FederationReply {
  return { kind: 'refused', reason, message, vector, offsetMs };
}

/** True iff a configuration event in `repo-<key>` is about `key` (tree events carry no key). */
function eventBelongsTo(repoKey: string, event: NewEvent): boolean {
  switch (event.type) {
    case 'RepositoryCreated':
    case 'RepositoryConfigChanged':
    case 'RepositoryDeleted':
      return event.data.key === repoKey;
    default:
      return true;
  }
}

/** When a received push went through the steps before the engine (the receiving server's clock). */
export interface ReceiveTimes {
  /** The request and its body were in hand, before authentication. */
  readonly arrivedAtMs?: number;
  /** The request was authenticated (signature, replay check). */
  readonly authenticatedAtMs?: number;
}

/** What the receiving end asks of the append of a received batch. */
export interface ReceiveOptions {
  /**
   * Statements that commit in the transaction appending the batch's new events (the store's
   * `AppendOptions.writes`): sent only when the batch appends something. The server records
   * the push's nonce this way (federation.md, "Circle of trust").
   */
  readonly appendWrites?: AppendWrites;
}

/** ReceiveTimes and the engine's own steps of one received batch (the engine's clock). */
export interface ReceiveStages extends ReceiveTimes {
  /** `receive` was called (the batch decoded). */
  readonly receivedAtMs: number;
  /** The repository's queue let the batch in (after any batch ahead of it). */
  readonly startedAtMs: number;
  /** The batch was planned, appended and projected. */
  readonly appendedAtMs: number;
  /**
   * Per event handed over with these stages (same order): when its origin committed it, by
   * the origin's clock, as the push said (`committedAtMs`), or null. Absent when the push
   * carried none. Diagnostics only (the server's `receiveLagFromCommit`).
   */
  readonly committedAtMs?: readonly (number | null)[];
  /** The push's `sentAtMs` (the sender's clock when it built the request). */
  readonly sentAtMs?: number;
}

export class FederationEngine {
  readonly siteId: string;
  readonly #options: FederationEngineOptions;
  readonly #batchMax: number;
  readonly #catchUpBatchMax: number;
  readonly #pushWindow: number;
  readonly #reorderWaitMs: number;
  readonly #retryDelayBaseMs: number;
  readonly #retryDelayMaxMs: number;
  readonly #timeoutMs: number;
  readonly #antiEntropyIntervalMs: number;
  readonly #forwardDelayMs: number;
  readonly #faults: FederationFaults;
  readonly #repos = new Map<string, FederatedRepository>();
  readonly #inFlight = new Set<AbortController>();
  #antiEntropyTask: ScheduledTask | null = null;
  #closed = false;

  constructor(options: FederationEngineOptions) {
    this.siteId = options.siteId;
    this.#options = options;
    this.#batchMax = options.federationBatchEventsMax ?? defaultFederationBatchEventsMax;
    this.#catchUpBatchMax =
      options.federationCatchUpBatchEventsMax ?? (options.federationBatchEventsMax === undefined ? defaultFederationCatchUpBatchEventsMax : this.#batchMax);
    this.#retryDelayBaseMs = options.retryDelayBaseMs ?? defaultRetryDelayBaseMs;
    this.#retryDelayMaxMs = options.retryDelayMaxMs ?? defaultRetryDelayMaxMs;
    this.#timeoutMs = options.peerRequestTimeoutMs ?? defaultPeerRequestTimeoutMs;
    this.#antiEntropyIntervalMs = options.antiEntropyIntervalMs ?? defaultAntiEntropyIntervalMs;
    this.#pushWindow = options.pushWindow ?? defaultPushWindow;
    this.#forwardDelayMs = options.forwardDelayMs ?? defaultForwardDelayMs;
    invariant(Number.isFinite(this.#forwardDelayMs) && this.#forwardDelayMs >= 0, 'forwardDelayMs must be a non-negative number');
    this.#reorderWaitMs = options.reorderWaitMs ?? Math.min(1_000, Math.floor(this.#timeoutMs / 4));
    invariant(Number.isSafeInteger(this.#pushWindow) && this.#pushWindow > 0, 'pushWindow must be a positive integer');
    this.#faults = options.faults ?? {};
    invariant(Number.isSafeInteger(this.#batchMax) && this.#batchMax > 0, 'federationBatchEventsMax must be a positive integer');
    invariant(Number.isSafeInteger(this.#catchUpBatchMax) && this.#catchUpBatchMax > 0, 'federationCatchUpBatchEventsMax must be a positive integer');
    invariant(this.#retryDelayBaseMs > 0 && this.#retryDelayMaxMs >= this.#retryDelayBaseMs, 'retry delays must be positive, base ≤ max');
    this.#scheduleAntiEntropy();
  }

  /**
   * Starts federating a repository: loads its stream (indexes, vector, members), loads the
   * outbox cursors and exchanges vectors with every member. `members` is the bootstrap list
   * used until the stream holds a `members` config field.
   */
  async federate(repoKey: string, { members = [] }: { members?: readonly FederationMember[] } = {}): Promise<void> {
    this.#assertOpen();
    invariant(!this.#repos.has(repoKey), `repository ${repoKey} is already federated`);
    const repo = new FederatedRepository(repoKey, members, (url) => this.#options.peerIdOf(url) === this.siteId);
    this.#repos.set(repoKey, repo);
    await repo.serialize(async () => {
      for (;;) {
        const events = await this.#options.store.readStream(repo.stream, { fromRevision: repo.revision + 1, maxCount: storeReadBatchEventsMax });
        repo.record(events);
        if (events.length < storeReadBatchEventsMax) break;
      }
      // What the store held before this start is old enough to forward (once checked).
      repo.ripe = repo.vector;
      await this.#reconcilePeers(repo, { initial: true });
    });
    for (const peer of repo.peers.values()) {
      peer.exchangeWanted = true;
      this.#schedulePush(repo, peer);
    }
  }

  isFederated(repoKey: string): boolean {
    return this.#repos.has(repoKey);
  }

  /**
   * Whether `request` (validated or not) may append something here: it names a repository not
   * federated here yet (joining appends the batch), or carries an event whose id is not held.
   * False for an event-less exchange and a batch of events all held here (a redelivery).
   * A hint taken before the repository's queue: what it says may be outdated by the time the
   * batch is planned (a copy of the same events appended meanwhile).
   */
  mayAppend(request: { readonly repoKey: string; readonly events: readonly { readonly id: string }[] }): boolean {
    const repo = this.#repos.get(request.repoKey);
    if (repo === undefined) return request.events.length > 0;
    return request.events.some((event) => !repo.ids.has(event.id));
  }

  /** What this site holds of a federated repository. */
  versionVector(repoKey: string): VersionVector {
    return this.#repo(repoKey).vector;
  }

  /**
   * Appends local domain events to a federated repository's stream, each stamped with the
   * site's HLC and this origin's next originSeq, then pushes them to every member.
   */
  async commit(repoKey: string, events: readonly DomainEvent[], meta: EventMeta = {}): Promise<readonly RecordedEvent[]> {
    this.#assertOpen();
    const repo = this.#repo(repoKey);
    return repo.serialize(async () => {
      this.#assertOpen();
      let originSeq = repo.heldCount(this.siteId);
      const newEvents: NewEvent[] = events.map(
        (event) =>
          ({
            ...event,
            id: this.#newEventId(),
            origin: this.siteId,
            originSeq: ++originSeq,
            hlc: this.#localStamp(),
            meta,
          }) as NewEvent,
      );
      for (const event of newEvents) invariant(eventBelongsTo(repoKey, event), `event ${event.type} is not about ${repoKey}`);
      const result = await this.#options.store.append(repo.stream, newEvents, { expectedRevision: this.#expectedRevision(repo) });
      invariant(result.appendedCount === newEvents.length, 'fresh event ids were reported as duplicates');
      repo.rememberCommitted(result.events, Math.floor(this.#options.clock.now()));
      const membersChanged = repo.record(result.events);
      this.#options.onEventsAppended?.(repoKey, result.events);
      if (membersChanged) await this.#reconcilePeers(repo, { initial: false });
      for (const peer of repo.peers.values()) this.#schedulePush(repo, peer);
      return result.events;
    });
  }

  /**
   * Handles one request from a peer (the receiving end of PeerTransport): validates it,
   * appends the peer's events all-or-nothing, and replies with this site's vector. Never
   * throws: every refusal is a reply, and nothing of a refused batch is applied.
   */
  async receive(raw: unknown, times: ReceiveTimes = {}, options: ReceiveOptions = {}): Promise<FederationReply> {
    const receivedAtMs = this.#options.clock.now();
    if (this.#closed) return refused('unavailable', 'federation engine is closed', null);
    let request: FederationRequest;
    try {
      request = validateFederationRequest(raw, { eventsMax: Math.max(this.#batchMax, this.#catchUpBatchMax) });
    } catch (error) {
      return refused('malformed', describe(error), null);
    }
    let repo = this.#repos.get(request.repoKey);
    if (repo === undefined) {
      const members = this.#invitation(request);
      if (members === undefined) return refused('not-federated', `repository ${request.repoKey} is not federated here`, null);
      // federate() registers the repository at once and loads it in its queue, so a second
      // batch arriving meanwhile simply queues behind the load.
      const joining = this.federate(request.repoKey, { members });
      repo = this.#repos.get(request.repoKey)!;
      try {
        await joining;
      } catch (error) {
        return refused('unavailable', describe(error), null);
      }
      this.#options.onRepositoryJoined?.(request.repoKey);
    }
    // Encode and digest the batch's events now, outside the repository's queue, so that this
    // work overlaps the append of the batch ahead instead of adding to it: the origin-chain
    // check and the append inside the queue take these bytes (encoded-events.ts). Events held
    // here already (a forwarded copy, a redelivery) are skipped; one that turns out to be
    // held by the time the batch is planned only cost its digest.
    const pause = this.#options.pause;
    for (let index = 0; index < request.events.length; index++) {
      if (pause !== undefined && index > 0 && index % receivedEventsPerSlice === 0) await pause();
      const event = request.events[index]!;
      if (!repo.ids.has(event.id) && eventBelongsTo(repo.key, event)) encodeAndDigestEvent(repo.stream, event);
    }
    await this.#awaitPredecessors(repo, request);
    const stagedTimes = { ...times, receivedAtMs };
    try {
      // Where the store pipelines appends (EventStore.appendsPipelined: PostgreSQL), a batch
      // without configuration events (a catch-up page, say) is planned and handed to
      // the store in the repository's queue, then appended and recorded outside it: the next
      // batch is planned on it meanwhile (pipelined), so that the store builds that one while
      // this one's database work runs. The store writes a batch planned on another only
      // after that one has committed (AppendOptions.after), on exactly the rows it leaves.
      if (this.#options.store.appendsPipelined === true && this.#faults.noDedup !== true && !request.events.some(isConfigEvent)) {
        let handOver!: () => void;
        const handedOver = new Promise<void>((resolve) => (handOver = resolve));
        let reply: Promise<FederationReply> | undefined;
        await repo.serializeAhead(async () => {
          // Planned on the recorded state alone after a failure ahead, or with an event of a batch ahead in it.
          const overlaps = () => repo.appendingFailed || request.events.some((event) => repo.appending.some((batch) => batch.ids.has(event.id)));
          while (repo.appending.length > 0 && overlaps()) await repo.appendingEnded();
          reply = this.#receiveInOrder(repo, request, stagedTimes, options, handOver);
          await Promise.race([handedOver, reply.catch(() => undefined)]);
        });
        try {
          return await reply!;
        } catch (error) {
          if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')) throw error;
        }
        // A conflict (another writer, or a batch ahead that failed): planned again in the queue, on the stream as it is.
        return await repo.serialize(async () => {
          await this.#catchUp(repo);
          return this.#receiveRetrying(repo, request, stagedTimes, options);
        });
      }
      return await repo.serialize(() => this.#receiveRetrying(repo, request, stagedTimes, options));
    } catch (error) {
      return refused('unavailable', describe(error), repo.vector);
    }
  }

  /**
   * #receiveInOrder in the repository's queue. Another writer of the stream (the server's
   * local writes) may append between our reads: a conflict re-reads the stream and plans the
   * batch again.
   */
  async #receiveRetrying(
    repo: FederatedRepository,
    request: PushRequest,
    times: ReceiveTimes & { readonly receivedAtMs: number },
    options: ReceiveOptions,
  ): Promise<FederationReply> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#receiveInOrder(repo, request, times, options);
      } catch (error) {
        if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT') || attempt >= appendConflictRetriesMax) throw error;
        await this.#catchUp(repo);
      }
    }
  }

  /**
   * Pipelined pushes travel over several connections, so a batch may overtake the one sent
   * before it. A batch that starts beyond what is held here waits (outside the repository's
   * queue, so the earlier batch can pass) until the gap closes or `reorderWaitMs` passes;
   * then it is planned as usual — still refused as a gap if the gap is still there.
   */
  async #awaitPredecessors(repo: FederatedRepository, request: PushRequest): Promise<void> {
    if (this.#reorderWaitMs <= 0 || repo.waiters.size >= reorderWaitersMax || !repo.startsBeyondHeld(request.events)) return;
    let timedOut = false;
    const timer = this.#options.scheduler.schedule(this.#reorderWaitMs, () => {
      timedOut = true;
      for (const wake of [...repo.waiters]) wake();
    });
    try {
      while (!timedOut && !this.#closed && repo.startsBeyondHeld(request.events)) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            repo.waiters.delete(wake);
            resolve();
          };
          repo.waiters.add(wake);
        });
      }
    } finally {
      timer.cancel();
    }
  }

  /**
   * Tells the engine that another writer of the site (the server's StreamWriter) appended
   * local events to a federated stream: the engine reads them (in its queue, so its indexes
   * follow the stream order) and pushes them to every member. The other writer must number
   * this origin's events gaplessly (originSeq), as `commit` does.
   */
  async localAppended(repoKey: string, appended?: readonly RecordedEvent[]): Promise<void> {
    const repo = this.#repos.get(repoKey);
    if (repo === undefined || this.#closed) return;
    // Told right after the commit: now is when these events committed here.
    if (appended !== undefined && appended.length > 0) repo.rememberCommitted(appended, Math.floor(this.#options.clock.now()));
    await repo.serialize(async () => {
      const first = appended?.[0];
      if (first !== undefined && first.revision === repo.revision + 1 && appended!.every((event, index) => event.revision === first.revision + index)) {
        // The appended events themselves, when they follow what is indexed: no re-read.
        if (repo.record(appended!)) await this.#reconcilePeers(repo, { initial: false });
        return;
      }
      if (appended !== undefined && appended.length > 0 && appended[appended.length - 1]!.revision <= repo.revision) return; // indexed already
      await this.#catchUp(repo);
    });
    for (const peer of repo.peers.values()) this.#schedulePush(repo, peer);
  }

  /**
   * Re-reads the members field against `peerIdOf` (e.g. once a member url could be resolved
   * to a site id): members that became known get a full sync, ones that vanished no traffic.
   */
  async reconcileMembers(repoKey: string): Promise<void> {
    const repo = this.#repos.get(repoKey);
    if (repo === undefined || this.#closed) return;
    await repo.serialize(() => this.#reconcilePeers(repo, { initial: false }));
  }

  /** Reads what the stream holds beyond our index (appended by another writer) and indexes it. */
  async #catchUp(repo: FederatedRepository): Promise<void> {
    let membersChanged = false;
    for (;;) {
      const events = await this.#options.store.readStream(repo.stream, { fromRevision: repo.revision + 1, maxCount: storeReadBatchEventsMax });
      if (repo.record(events)) membersChanged = true;
      if (events.length < storeReadBatchEventsMax) break;
    }
    if (membersChanged) await this.#reconcilePeers(repo, { initial: false });
  }

  /**
   * Waits (at most `timeoutMs`) until every farewell of the repository is over — e.g. after
   * this site removed itself from the members, until the others acknowledged that edit.
   */
  async farewellsDone(repoKey: string, timeoutMs: number): Promise<boolean> {
    const repo = this.#repos.get(repoKey);
    if (repo === undefined) return true;
    let timedOut = false;
    const timer = this.#options.scheduler.schedule(timeoutMs, () => {
      timedOut = true;
      for (const wake of [...repo.farewellWaiters]) wake();
    });
    try {
      while (repo.leaving.size > 0 && !timedOut && !this.#closed) {
        await new Promise<void>((resolve) => {
          const wake = () => {
            repo.farewellWaiters.delete(wake);
            resolve();
          };
          repo.farewellWaiters.add(wake);
        });
      }
    } finally {
      timer.cancel();
    }
    return repo.leaving.size === 0;
  }

  /**
   * Stops federating a repository here (its stream stays as it is): no more pushes, and
   * batches for it are refused as for any repository not federated here.
   */
  unfederate(repoKey: string): void {
    const repo = this.#repos.get(repoKey);
    if (repo === undefined) return;
    this.#repos.delete(repoKey);
    repo.ripenTask?.cancel();
    repo.ripenTask = null;
    for (const peer of [...repo.peers.values(), ...repo.leaving.values()]) {
      peer.active = false;
      peer.retryTask?.cancel();
      peer.retryTask = null;
    }
    for (const wake of [...repo.waiters, ...repo.farewellWaiters]) wake();
  }

  /** Starts a full sync with every enabled member: exchange vectors, reset cursors, send what is missing. */
  fullSync(repoKey: string): void {
    this.#assertOpen();
    const repo = this.#repo(repoKey);
    for (const peer of repo.peers.values()) {
      if (!peer.enabled) continue;
      peer.retryTask?.cancel();
      peer.retryTask = null;
      peer.attempt = 0;
      peer.fullSyncPhase = 'exchange';
      this.#schedulePush(repo, peer);
    }
  }

  /**
   * The configuration travels in the repository's stream with everything else, so a config
   * sync is a full sync (kept as its own entry point for the configSync route).
   */
  configSync(repoKey: string): void {
    this.fullSync(repoKey);
  }

  status(repoKey: string): FederationStatus {
    const repo = this.#repo(repoKey);
    const vector = repo.vector;
    const physical = Math.floor(this.#options.clock.now());
    const members = [...repo.peers.values()]
      .sort((a, b) => (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
      .map((peer): FederationMemberStatus => ({
        peerId: peer.peerId,
        url: peer.url,
        state: !peer.enabled
          ? 'DISABLED'
          : peer.fullSyncPhase !== 'none'
            ? 'FULL_SYNC_RUNNING'
            : peer.retryTask !== null || peer.lastError !== null
              ? 'OUT_OF_SYNC'
              : 'SYNCING',
        lagEvents: vectorLag(vector, peer.cursor),
        lagMs: Math.max(0, physical - (repo.oldestMissingWall(peer.cursor) ?? physical)),
        lastError: peer.lastError,
        clockOffsetMs: peer.clockOffsetMs,
        cursor: peer.cursor,
      }));
    return { repoKey, removed: repo.removed, membersEditedBy: repo.membersRegister?.version.origin ?? null, vector, members };
  }

  /** Stops every timer and aborts every request in flight; the stores stay as they are. */
  close(): void {
    this.#closed = true;
    this.#antiEntropyTask?.cancel();
    for (const repo of this.#repos.values()) {
      repo.ripenTask?.cancel();
      repo.ripenTask = null;
      for (const peer of [...repo.peers.values(), ...repo.leaving.values()]) {
        peer.retryTask?.cancel();
        peer.retryTask = null;
      }
    }
    for (const controller of this.#inFlight) controller.abort(federationError('STRATA_ERR_FEDERATION_CLOSED'));
    this.#inFlight.clear();
    for (const repo of this.#repos.values()) for (const wake of [...repo.waiters]) wake();
  }

  // Receiving ----------------------------------------------------------------------------

  /** The members of the federated repository a batch creates, if it invites this site (and comes from a member). */
  #invitation(request: PushRequest): FederationMember[] | undefined {
    if (this.#options.joinOnInvitation === false || this.#closed) return undefined;
    const created = request.events.some(
      (event) => event.type === 'RepositoryCreated' && event.data.key === request.repoKey && event.data.config['rclass'] === 'federated',
    );
    if (!created) return undefined;
    // The members field as far as this batch tells (LWW over its configuration events), so a
    // member added after the creation is invited too when the batch holds the edit.
    let register: MembersRegister | null = null;
    for (const event of request.events) {
      let value: unknown;
      if (event.type === 'RepositoryCreated' && event.data.key === request.repoKey) value = event.data.config['members'];
      else if (event.type === 'RepositoryConfigChanged' && event.data.key === request.repoKey) value = event.data.patch['members'];
      if (value === undefined) continue;
      const version = versionOf(event);
      if (register !== null && compareVersions(version, register.version) <= 0) continue;
      register = { version, revision: -1, members: parseMembers(value) };
    }
    const invites = (members: readonly FederationMember[]): boolean => {
      const sites = new Set(members.map((member) => this.#options.peerIdOf(member.url)));
      return sites.has(this.siteId) && sites.has(request.from);
    };
    if (register !== null && invites(register.members)) return [...register.members];
    // The sender's members field as it holds it now (sent with the creation): a site added
    // by an edit beyond this batch is invited by it.
    if (request.members !== undefined && invites(request.members)) return [...request.members];
    return undefined;
  }

  async #receiveInOrder(
    repo: FederatedRepository,
    request: PushRequest,
    times: ReceiveTimes & { readonly receivedAtMs: number },
    options: ReceiveOptions,
    /**
     * Pipelined (see `receive`): the batch is planned on the batches being appended
     * (`repo.appending`), and `handOver` is called once it is handed to the store; the rest
     * runs outside the queue, after the batches ahead are recorded.
     */
    handOver?: () => void,
  ): Promise<FederationReply> {
    const startedAtMs = this.#options.clock.now();
    // A disabled member is still in the circle of trust: we stop sending to it, but accept
    // what it sends — else a member disabled by an edit it made itself could never deliver
    // the edit that re-enables it. A sender absent from the members is refused.
    const peer = repo.peers.get(request.from);
    if (peer === undefined) return refused('not-member', `${request.from} is not a member of ${repo.key} here`, null);
    const physical = Math.floor(this.#options.clock.now());
    peer.clockOffsetMs = request.sentAtMs - physical;
    // A refused batch from a known member shows in its status until one of its batches is accepted.
    const inbound = (reason: RefusalReason, message: string, offsetMs: number | null = null): FederationReply => {
      peer.lastError = `${inboundErrorPrefix}${reason}: ${message}`;
      return refused(reason, message, repo.vector, offsetMs);
    };

    // Plan the whole batch before touching anything: all or nothing.
    const tentative = new Map<string, number>();
    const batchIds = new Set<string>();
    const fresh: NewEvent[] = [];
    /** Per origin: the newest fresh event of the batch so far (or of the batches being appended ahead of it), its digest and whether it is chained. */
    const batchHeads = new Map<string, { originSeq: number; digest: Buffer; chained: boolean }>();
    const ahead = handOver === undefined ? undefined : repo.appending.at(-1);
    if (ahead !== undefined) {
      for (const [origin, head] of ahead.heads) {
        tentative.set(origin, head.originSeq);
        batchHeads.set(origin, { ...head });
      }
    }
    const redelivered: StreamEvent[] = [];
    let duplicates = 0;
    /** The origin's commit time of each fresh event, when the push says (`committedAtMs`). */
    const freshCommittedAtMs: (number | null)[] | undefined = request.committedAtMs === undefined ? undefined : [];
    for (const [index, event] of request.events.entries()) {
      if (!eventBelongsTo(repo.key, event)) return inbound('malformed', `event ${event.id} is about another repository`);
      const heldAs = repo.ids.get(event.id);
      if (heldAs !== undefined && heldAs !== `${event.origin}:${event.originSeq}`) {
        return inbound('conflict', `event id ${event.id} is held here as ${heldAs}, not ${event.origin}:${event.originSeq}`);
      }
      if (heldAs !== undefined || batchIds.has(event.id)) {
        duplicates++;
        if (this.#faults.noDedup && repo.ids.has(event.id)) redelivered.push({ ...event, stream: repo.stream });
        continue;
      }
      const held = tentative.get(event.origin) ?? repo.heldCount(event.origin);
      if (event.originSeq <= held) {
        return inbound('conflict', `${event.origin} originSeq ${event.originSeq} is held here as another event`);
      }
      if (event.originSeq !== held + 1) {
        return inbound('gap', `${event.origin} originSeq ${event.originSeq} follows ${held} here`);
      }
      const broken = this.#brokenOriginLink(repo, event, batchHeads);
      if (broken !== undefined) return inbound('broken-chain', `STRATA_ERR_FEDERATION_BROKEN_CHAIN: ${broken}`);
      tentative.set(event.origin, event.originSeq);
      batchIds.add(event.id);
      fresh.push(event);
      freshCommittedAtMs?.push(request.committedAtMs![index] ?? null);
    }

    let newestWall = Number.NEGATIVE_INFINITY;
    for (const event of fresh) newestWall = Math.max(newestWall, event.hlc.wall);
    const offsetMs = newestWall - physical;
    if (fresh.length > 0 && offsetMs > this.#options.hlc.maxClockOffsetMs) {
      return inbound(
        'clock-ahead',
        `clock ahead: a stamp of ${request.from}'s batch runs ${offsetMs} ms ahead of this site (at most ${this.#options.hlc.maxClockOffsetMs} ms)`,
        offsetMs,
      );
    }
    const stamped = fresh.map((event) => {
      const arrival: HlcStamp = this.#options.hlc.receive(event.hlc);
      return this.#faults.lwwByArrival ? { ...event, hlc: arrival } : event;
    });

    let appended: readonly StreamEvent[] = [];
    let membersChanged = false;
    if (stamped.length > 0) {
      const revisionAhead = ahead === undefined ? repo.revision : ahead.revisionAfter;
      const appending = this.#options.store.append(repo.stream, stamped, {
        expectedRevision: revisionAhead < 0 ? 'no_stream' : revisionAhead,
        ...(options.appendWrites === undefined ? {} : { writes: options.appendWrites }),
        // Planned on a batch not committed yet: written only once that one has committed.
        ...(ahead === undefined ? {} : { after: ahead.appended.then(() => undefined, (error: unknown) => Promise.reject(aheadFailed(repo.stream, error))) }),
      });
      let entry: AppendingBatch | undefined;
      let ended: (() => void) | undefined;
      if (handOver !== undefined) {
        // In order: the batches ahead are recorded (or given up) before this one.
        const aheadEnded = repo.appendingEnded();
        entry = { ids: batchIds, heads: new Map(batchHeads), appended: appending, revisionAfter: revisionAhead + stamped.length };
        repo.startAppending(entry, new Promise<void>((resolve) => (ended = resolve)));
        appending.catch(() => undefined);
        handOver();
        await aheadEnded;
      }
      let failed = true;
      try {
        const result = await appending;
        invariant(result.appendedCount === stamped.length, 'events absent from the vector were already stored');
        membersChanged = repo.record(result.events);
        failed = false;
        appended = result.events;
      } finally {
        if (entry !== undefined) {
          repo.endAppending(entry, failed);
          ended!();
        }
      }
      for (const [origin, head] of batchHeads) repo.rememberDigest(origin, head.originSeq, head.digest);
      this.#scheduleRipen(repo);
    }
    if (appended.length > 0 || redelivered.length > 0) {
      this.#options.onEventsAppended?.(repo.key, [...appended, ...redelivered], {
        ...times,
        startedAtMs,
        appendedAtMs: this.#options.clock.now(),
        ...(freshCommittedAtMs === undefined || appended.length === 0 ? {} : { committedAtMs: freshCommittedAtMs, sentAtMs: request.sentAtMs }),
      });
    }
    if (peer.lastError?.startsWith(inboundErrorPrefix)) peer.lastError = null;

    // The sender's vector is a lower bound of what it holds: never send it that again. In a
    // full sync it is exactly what it holds (a site restored from an old backup, say): our
    // cursor follows it down, so we resend what it lost.
    if (request.fullSync) {
      peer.cursor = request.vector;
      peer.sent = request.vector;
      peer.epoch++;
    } else {
      peer.cursor = mergeVectors(peer.cursor, request.vector);
      peer.sent = mergeVectors(peer.sent, peer.cursor);
    }
    // Its vector, just learned: what is ripe here and beyond it, it lacks (forwardDelayMs).
    peer.checked = mergeVectors(peer.checked, repo.ripe);
    if (membersChanged) await this.#reconcilePeers(repo, { initial: false });
    if (appended.length > 0) {
      // Forwarding: a link cut between two members heals through this one.
      for (const other of repo.peers.values()) if (other.peerId !== request.from) this.#schedulePush(repo, other);
    }
    const sender = repo.peers.get(request.from);
    if (sender !== undefined && sender.retryTask !== null) {
      // It just reached us, so it is up: the backoff towards it ends now.
      sender.retryTask.cancel();
      sender.retryTask = null;
      sender.attempt = 0;
      sender.exchangeWanted = true;
    }
    if (sender !== undefined && (sender.exchangeWanted || !vectorCovers(request.vector, repo.vector))) this.#schedulePush(repo, sender);
    return { kind: 'ack', vector: repo.vector, appended: appended.length, duplicates };
  }

  /**
   * The origin-chain check of a fresh event (issue 8: a member verifies what it receives):
   * `meta.originPrev` must be the digest of the previous event of its origin — held here or
   * earlier in the batch — or the genesis link for originSeq 1; once an origin's events carry
   * the chain, each later one must. Events from before chaining (no link on either side) pass.
   * Returns why the link is broken, or undefined.
   */
  #brokenOriginLink(repo: FederatedRepository, event: NewEvent, batchHeads: Map<string, { originSeq: number; digest: Buffer; chained: boolean }>): string | undefined {
    const raw = event.meta[ORIGIN_PREV_META_KEY];
    // Encoded and digested as the append will: it takes these bytes, and the link parsed here,
    // instead of computing them again.
    const encoded = encodeAndDigestEvent(repo.stream, event);
    const link = encoded.originPrev ?? undefined;
    const where = `${event.origin}:${event.originSeq}`;
    if (raw !== undefined && link === undefined) return `event ${where} carries a malformed origin chain link`;
    let expected: Uint8Array;
    let predecessorChained: boolean;
    if (event.originSeq === 1) {
      expected = CHAIN_GENESIS;
      predecessorChained = false;
    } else {
      const inBatch = batchHeads.get(event.origin);
      if (inBatch !== undefined && inBatch.originSeq === event.originSeq - 1) {
        expected = inBatch.digest;
        predecessorChained = inBatch.chained;
      } else {
        expected = repo.heldDigest(event.origin, event.originSeq - 1);
        predecessorChained = originPrevOf(repo.held.get(event.origin)![event.originSeq - 2]!.meta) !== undefined;
      }
    }
    if (link === undefined) {
      if (predecessorChained) return `event ${where} carries no origin chain link, but the event before it did`;
    } else if (Buffer.compare(link, expected) !== 0) {
      return `event ${where} links to ${chainLinkHex(link)}, but the previous event of ${event.origin} here has digest ${chainLinkHex(expected)} (history altered or forged)`;
    }
    batchHeads.set(event.origin, { originSeq: event.originSeq, digest: encoded.digest, chained: link !== undefined });
    return undefined;
  }

  // Pushing ------------------------------------------------------------------------------

  #schedulePush(repo: FederatedRepository, peer: PeerState): void {
    if (this.#closed || !peer.active || !peer.enabled || peer.retryTask !== null) return;
    this.#pump(repo, peer);
  }

  /**
   * Sends batches to a peer, up to `pushWindow` requests in flight: each next batch starts
   * where the batches in flight end (`peer.sent`), so the receiver, which appends in
   * originSeq order, gets them in the order they leave. A refusal or a failure of any of them
   * starts a new epoch from the acknowledged cursor: the replies of the old epoch still raise
   * the cursor (an ack's vector is what the peer holds) but decide nothing else. After a
   * failure, one request goes alone until a reply comes back: a peer that is down costs one
   * batch read and encoded per retry, not `pushWindow` of them (profiled: a site forwarding
   * to a member that was down spent more time encoding batches for it than decoding the ones
   * it received).
   */
  #pump(repo: FederatedRepository, peer: PeerState): void {
    for (;;) {
      const window = peer.attempt > 0 ? 1 : this.#pushWindow;
      if (this.#closed || !peer.active || !peer.enabled || peer.retryTask !== null || peer.inFlight >= window) return;
      const phase = peer.fullSyncPhase;
      // A full sync's vector exchange goes alone: its reply replaces the cursor.
      if (phase === 'exchange' && peer.inFlight > 0) return;
      // Events of other origins are forwarded only once ripe and checked (forwardDelayMs);
      // a farewell and a full sync's sending send everything.
      const deferring = this.#forwardDelayMs > 0 && peer.leaving === null && phase === 'none' && !peer.inviting;
      // A peer that lacks more than a batch gets catch-up pages (fewer, larger transactions
      // on its side); after a failure, plain batches until a reply comes back.
      const batchMax = peer.attempt > 0 ? this.#batchMax : Math.max(this.#batchMax, this.#catchUpBatchMax);
      const events = phase === 'exchange' ? [] : repo.missingFor(peer.sent, batchMax, peer.leaving ?? (deferring ? this.#forwardLimit(repo, peer) : undefined));
      // Catch-up pages: one applying on the peer while the next travels is the pipeline; more
      // would only wait in its queue, towards the request timeout. The page held back is
      // offered to the transport to encode meanwhile: sent after the next reply, it then goes
      // at once instead of after its encoding (profiled: the peer waited for it, idle).
      if (events.length > this.#batchMax && peer.inFlight >= catchUpPagesInFlightMax) {
        this.#options.transport.prepare?.(events);
        return;
      }
      if (peer.leaving !== null && events.length === 0) {
        // A farewell ends once everything up to the edit that removed the peer is acknowledged.
        if (peer.inFlight === 0 && vectorCovers(peer.cursor, peer.leaving)) this.#endFarewell(repo, peer);
        return;
      }
      if (events.length === 0) {
        // Nothing new to send: a vector exchange (wanted, or ending a full sync) waits until
        // the batches in flight are answered — their replies may make it needless.
        if (peer.inFlight > 0) return;
        if (phase === 'sending') peer.fullSyncPhase = 'none';
        // Ripe events it may lack, not checked against its vector since they ripened: ask for it.
        if (phase !== 'exchange' && !peer.exchangeWanted && !(deferring && this.#uncheckedRipe(repo, peer))) return;
      }
      peer.exchangeWanted = false;
      // The commit times ride in the push's JSON header (at most 256 KiB): not with a page
      // larger than the times kept (a catch-up page of old events, which has none or few).
      const committedAtMs = events.length === 0 || events.length > commitTimesKeptMax ? undefined : repo.commitTimesOf(events);
      const request: PushRequest = {
        kind: 'push',
        repoKey: repo.key,
        from: this.siteId,
        sentAtMs: Math.floor(this.#options.clock.now()),
        vector: repo.vector,
        events,
        fullSync: phase === 'exchange',
        ...(events.some((event) => event.type === 'RepositoryCreated') ? { members: repo.members() } : {}),
        ...(committedAtMs === undefined ? {} : { committedAtMs }),
      };
      if (events.length > 0) {
        const reached: Record<string, number> = {};
        for (const event of events) reached[event.origin] = event.originSeq;
        peer.sent = mergeVectors(peer.sent, reached);
      }
      peer.inFlight++;
      void this.#exchange(repo, peer, request, phase, peer.epoch, repo.ripe);
    }
  }

  /** One request of the pipeline and what its reply means (see #pump). */
  async #exchange(repo: FederatedRepository, peer: PeerState, request: PushRequest, phase: FullSyncPhase, epoch: number, ripeAtSend: VersionVector): Promise<void> {
    let reply: FederationReply | undefined;
    let failure: string | undefined;
    try {
      reply = validateFederationReply(await this.#send(peer.peerId, request));
    } catch (error) {
      failure = `unreachable: ${describe(error)}`;
    } finally {
      peer.inFlight--;
    }
    if (this.#closed || !peer.active) return;
    const current = epoch === peer.epoch;
    if (reply?.kind === 'ack') {
      peer.cursor = phase === 'exchange' && current ? reply.vector : mergeVectors(peer.cursor, reply.vector);
      // Its vector after our request: whatever was ripe when we sent it and it lacks, it lacked then.
      peer.checked = mergeVectors(peer.checked, ripeAtSend);
      peer.inviting = false;
      this.#saveCursor(repo, peer);
      if (!current) return this.#pump(repo, peer);
      const unheld = request.events.find((event) => vectorGet(peer.cursor, event.origin) < event.originSeq);
      if (unheld !== undefined) {
        // Acknowledged but not held: resending at once would loop; back off instead.
        return this.#restart(repo, peer, `acknowledged ${unheld.origin}:${unheld.originSeq} without holding it`);
      }
      if (phase === 'exchange') {
        peer.fullSyncPhase = 'sending';
        peer.sent = peer.cursor;
      } else {
        peer.sent = mergeVectors(peer.sent, peer.cursor);
      }
      peer.attempt = 0;
      peer.gapResends = 0;
      peer.lastError = null;
      return this.#pump(repo, peer);
    }
    if (!current) return this.#pump(repo, peer); // the epoch that sent it already failed
    if (reply === undefined) return this.#restart(repo, peer, failure!);
    if (peer.leaving !== null && reply.reason !== 'gap') {
      // A former member that refuses (it left, or no longer holds the repository) is done with.
      peer.lastError = `${reply.reason}: ${reply.message}`;
      return this.#endFarewell(repo, peer);
    }
    if (reply.reason === 'gap' && reply.vector !== null && peer.gapResends < gapResendsMax) {
      // The peer lacks what we thought it held (or a batch overtook the one before it):
      // resend from its own vector.
      peer.gapResends++;
      peer.epoch++;
      peer.cursor = reply.vector;
      peer.sent = reply.vector;
      peer.checked = mergeVectors(peer.checked, ripeAtSend);
      return this.#pump(repo, peer);
    }
    if (reply.reason === 'not-federated') peer.inviting = true;
    if (
      reply.reason === 'not-federated' &&
      peer.gapResends < gapResendsMax &&
      (request.events.length === 0 || vectorGet(peer.cursor, request.events[0]!.origin) > 0 || request.events[0]!.originSeq > 1)
    ) {
      // The peer has not joined yet: it holds nothing, and the batch from scratch starts
      // with the repository's creation, which invites it.
      peer.gapResends++;
      peer.epoch++;
      peer.cursor = EMPTY_VERSION_VECTOR;
      peer.sent = EMPTY_VERSION_VECTOR;
      peer.checked = mergeVectors(peer.checked, ripeAtSend);
      if (phase === 'exchange') peer.fullSyncPhase = 'sending';
      return this.#pump(repo, peer);
    }
    this.#restart(repo, peer, `${reply.reason}: ${reply.message}`);
  }

  /**
   * How far each origin's events may go to `peer` now: this site's own events all; another
   * origin's up to what was ripe when the peer's vector was last learned (forwardDelayMs).
   */
  #forwardLimit(repo: FederatedRepository, peer: PeerState): VersionVector {
    const limit: Record<string, number> = {};
    for (const origin of repo.held.keys()) limit[origin] = origin === this.siteId ? repo.heldCount(origin) : vectorGet(peer.checked, origin);
    return limit;
  }

  /** True iff some other origin's ripe events are neither sent to `peer` nor checked against its vector. */
  #uncheckedRipe(repo: FederatedRepository, peer: PeerState): boolean {
    for (const origin of Object.keys(repo.ripe)) {
      if (origin === this.siteId) continue;
      const ripe = vectorGet(repo.ripe, origin);
      if (ripe > vectorGet(peer.sent, origin) && ripe > vectorGet(peer.checked, origin)) return true;
    }
    return false;
  }

  /**
   * Ripens, `forwardDelayMs` from now, what is held now; again while events keep arriving.
   * Then every peer is looked at: what is ripe and unchecked makes it ask for the peer's vector.
   */
  #scheduleRipen(repo: FederatedRepository): void {
    if (this.#forwardDelayMs <= 0 || repo.ripenTask !== null || this.#closed) return;
    const target = repo.vector;
    if (vectorCovers(repo.ripe, target)) return;
    repo.ripenTask = this.#options.scheduler.schedule(this.#forwardDelayMs, () => {
      repo.ripenTask = null;
      if (this.#closed || this.#repos.get(repo.key) !== repo) return;
      repo.ripe = mergeVectors(repo.ripe, target);
      this.#scheduleRipen(repo);
      for (const peer of repo.peers.values()) this.#schedulePush(repo, peer);
    });
  }

  /** Ends the current epoch: what was in flight is resent from the acknowledged cursor after a backoff. */
  #restart(repo: FederatedRepository, peer: PeerState, error: string): void {
    peer.epoch++;
    peer.sent = peer.cursor;
    this.#failed(repo, peer, error);
  }

  /**
   * Saves the peer's cursor, one save at a time per peer; acknowledgements arriving while one
   * runs are saved together by the next. A lost save only costs duplicates after a restart.
   */
  #saveCursor(repo: FederatedRepository, peer: PeerState): void {
    if (peer.saving) {
      peer.saveWanted = true;
      return;
    }
    peer.saving = true;
    peer.saveWanted = false;
    const cursor = peer.cursor;
    void this.#options.stateStore.saveCursor(repo.key, peer.peerId, cursor).then(
      () => {
        peer.saving = false;
        if (peer.saveWanted && !this.#closed) this.#saveCursor(repo, peer);
      },
      (error: unknown) => {
        peer.saving = false;
        if (this.#closed || !peer.active) return;
        this.#restart(repo, peer, `cursor not saved: ${describe(error)}`);
      },
    );
  }

  async #send(peerId: string, request: PushRequest): Promise<unknown> {
    const controller = new AbortController();
    this.#inFlight.add(controller);
    const timeout = this.#options.scheduler.schedule(this.#timeoutMs, () =>
      controller.abort(new Error(`no reply within ${this.#timeoutMs} ms`)),
    );
    try {
      return await this.#options.transport.send(peerId, request, { signal: controller.signal });
    } finally {
      timeout.cancel();
      this.#inFlight.delete(controller);
    }
  }

  /** Capped exponential backoff with jitter (half fixed, half random). */
  #failed(repo: FederatedRepository, peer: PeerState, error: string): void {
    peer.lastError = error;
    peer.attempt++;
    if (this.#closed || !peer.active) return;
    if (peer.leaving !== null && peer.attempt >= farewellAttemptsMax) return this.#endFarewell(repo, peer);
    const delayMs = Math.min(this.#retryDelayMaxMs, this.#retryDelayBaseMs * 2 ** Math.min(peer.attempt - 1, 30));
    const jitteredMs = Math.floor(delayMs / 2 + this.#options.random.next() * (delayMs / 2));
    peer.retryTask?.cancel();
    peer.retryTask = this.#options.scheduler.schedule(jitteredMs, () => {
      peer.retryTask = null;
      peer.exchangeWanted = true;
      this.#schedulePush(repo, peer);
    });
  }

  #scheduleAntiEntropy(): void {
    if (this.#closed) return;
    const delayMs = Math.floor(this.#antiEntropyIntervalMs * (0.75 + 0.5 * this.#options.random.next()));
    this.#antiEntropyTask = this.#options.scheduler.schedule(delayMs, () => {
      for (const repo of this.#repos.values()) {
        for (const peer of repo.peers.values()) {
          peer.exchangeWanted = true;
          this.#schedulePush(repo, peer);
        }
      }
      this.#scheduleAntiEntropy();
    });
  }

  // Members ------------------------------------------------------------------------------

  /**
   * Brings the peer table in line with the members field: new members get a full sync,
   * removed ones their farewell (what they lack up to the edit that removed them, so they
   * learn it) and then no traffic. A members field without this site means this site was
   * removed: every peer gets its farewell (the edit, so the others learn it too), then it
   * pushes nothing more.
   */
  async #reconcilePeers(repo: FederatedRepository, { initial }: { initial: boolean }): Promise<void> {
    const wanted = new Map<string, FederationMember>();
    let listed = false;
    for (const member of repo.members()) {
      const peerId = this.#options.peerIdOf(member.url);
      if (peerId === this.siteId) listed = true;
      if (peerId === undefined || peerId === this.siteId) continue;
      wanted.set(peerId, member);
    }
    repo.removed = repo.listedOnce && repo.membersRegister !== null && !listed;
    if (repo.removed) wanted.clear();
    for (const [peerId, peer] of repo.peers) {
      if (wanted.has(peerId)) continue;
      peer.retryTask?.cancel();
      peer.retryTask = null;
      repo.peers.delete(peerId);
      if (initial || !peer.enabled) peer.active = false;
      else this.#startFarewell(repo, peer);
    }
    for (const [peerId, peer] of repo.leaving) if (wanted.has(peerId)) this.#endFarewell(repo, peer); // a member again
    for (const [peerId, member] of wanted) {
      const existing = repo.peers.get(peerId);
      if (existing !== undefined) {
        const enabledNow = member.enabled && !existing.enabled;
        existing.url = member.url;
        existing.enabled = member.enabled;
        if (enabledNow) {
          existing.exchangeWanted = true;
          this.#schedulePush(repo, existing);
        }
        continue;
      }
      const cursor = (await this.#options.stateStore.loadCursor(repo.key, peerId)) ?? EMPTY_VERSION_VECTOR;
      const peer: PeerState = {
        peerId,
        url: member.url,
        enabled: member.enabled,
        active: true,
        leaving: null,
        cursor,
        sent: cursor,
        inFlight: 0,
        epoch: 0,
        saving: false,
        saveWanted: false,
        exchangeWanted: true,
        fullSyncPhase: initial ? 'none' : 'exchange',
        retryTask: null,
        attempt: 0,
        gapResends: 0,
        lastError: null,
        clockOffsetMs: null,
        checked: EMPTY_VERSION_VECTOR,
        inviting: false,
      };
      repo.peers.set(peerId, peer);
      if (!initial) this.#schedulePush(repo, peer);
    }
  }

  #startFarewell(repo: FederatedRepository, peer: PeerState): void {
    peer.leaving = repo.farewellVector();
    peer.epoch++;
    peer.sent = peer.cursor;
    peer.fullSyncPhase = 'none';
    peer.exchangeWanted = false;
    peer.attempt = 0;
    peer.gapResends = 0;
    repo.leaving.set(peer.peerId, peer);
    this.#pump(repo, peer);
  }

  #endFarewell(repo: FederatedRepository, peer: PeerState): void {
    peer.active = false;
    peer.retryTask?.cancel();
    peer.retryTask = null;
    if (repo.leaving.get(peer.peerId) === peer) repo.leaving.delete(peer.peerId);
    for (const wake of [...repo.farewellWaiters]) wake();
  }

  // Helpers ------------------------------------------------------------------------------

  #repo(repoKey: string): FederatedRepository {
    const repo = this.#repos.get(repoKey);
    if (repo === undefined) throw federationError('STRATA_ERR_FEDERATION_NOT_FEDERATED', `repository ${repoKey} is not federated here`);
    return repo;
  }

  #assertOpen(): void {
    if (this.#closed) throw federationError('STRATA_ERR_FEDERATION_CLOSED');
  }

  #expectedRevision(repo: FederatedRepository): number | 'no_stream' {
    return repo.revision < 0 ? 'no_stream' : repo.revision;
  }

  #localStamp(): HlcStamp {
    if (this.#faults.wallClock) return { wall: Math.floor(this.#options.clock.now()), logical: 0 };
    return this.#options.hlc.now();
  }

  /** 96 random bits, hex: url-safe and within the event id limit. */
  #newEventId(): string {
    const bytes = this.#options.random.bytes(12);
    let id = '';
    for (const byte of bytes) id += byte.toString(16).padStart(2, '0');
    return id;
  }
}

/** The newest stamp in a store: where a restarted site's HLC resumes (`initial`). */
export async function newestStampIn(store: EventStore, streams: readonly string[]): Promise<HlcStamp | undefined> {
  let newest: HlcStamp | undefined;
  for (const stream of streams) {
    let fromRevision = 0;
    for (;;) {
      const events = await store.readStream(stream, { fromRevision, maxCount: storeReadBatchEventsMax });
      for (const event of events) {
        if (newest === undefined || event.hlc.wall > newest.wall || (event.hlc.wall === newest.wall && event.hlc.logical > newest.logical)) {
          newest = event.hlc;
        }
      }
      if (events.length < storeReadBatchEventsMax) break;
      fromRevision += events.length;
    }
  }
  return newest;
}
