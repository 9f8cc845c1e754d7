/**
 * Federation in the server (issue 4): the FederationEngine wired to the site's event store
 * (the same append and inline projections as local writes), an HTTP transport signed with
 * the federation secret, the SQL cursor store, the peer directory and the binary puller.
 *
 * Local writes keep going through the StreamWriter; after each append the server tells the
 * engine (`localAppended`), which reads the new events in stream order and pushes them to
 * every member at once. Received batches are appended by the engine, whose conflicts with
 * local writes (both expect a revision) are retried on either side.
 */
import { randomBytes } from 'node:crypto';
// Lets the event loop serve I/O (the connections' replies, sockets, timers) before the caller goes on.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { isStrataError, StrataError } from '@strata/core';
import type { Clock, HybridLogicalClock, RecordedEvent, StreamEvent } from '@strata/core';
import { readEach, type BlobStore, type EventStore, type StoredBlob } from '@strata/store';
import {
  blobBatchBlobBytesMax,
  blobBatchReplyBytesMax,
  type BlobBatchEntry,
  decodeFederationPushInSlices,
  defaultRequestSkewMsMax,
  FederationEngine,
  FEDERATION_IDENTITY_PATH,
  HttpPeerTransport,
  parseMembers,
  PeerRequestVerifier,
  SignedPeerClient,
  SqlFederationStateStore,
  isVerifiedPeer,
  type FederationAttachment,
  type FederationMemberStatus,
  type PendingBinary,
  type FederationRequest,
  type FederationReply,
  type PeerRequestRefusal,
  type ReceiveStages,
  type ReceiveTimes,
  type VerifiedPeer,
} from '@strata/federation';
import type { FastifyPluginAsync } from 'fastify';
import type { Kysely } from 'kysely';
import type { FederationHooks, RepositoryReader } from '../ports.ts';
import { BinaryPuller } from './binary-puller.ts';
import { federationRoutes } from './federation-routes.ts';
import { memberUrlOf, normalizeBaseUrl, parseMemberUrl, PeerDirectory } from './peer-directory.ts';

export interface FederationSettings {
  /** The shared secret of the federation (STRATA_FEDERATION_TOKEN). */
  readonly secret: string;
  /** This site's public base URL (STRATA_BASE_URL), e.g. http://host:8081. */
  readonly baseUrl: string;
  readonly antiEntropyIntervalMs?: number;
  readonly retryDelayBaseMs?: number;
  readonly retryDelayMaxMs?: number;
  readonly peerRequestTimeoutMs?: number;
  readonly federationBatchEventsMax?: number;
  /** FederationEngineOptions.federationCatchUpBatchEventsMax (default: 5,000 unless federationBatchEventsMax is set). */
  readonly federationCatchUpBatchEventsMax?: number;
  readonly requestSkewMsMax?: number;
  readonly binaryPullsConcurrentMax?: number;
  /** Own deploys' binaries up to this size travel inside the push (0: none). */
  readonly inlineBinaryBytesMax?: number;
  /** Enables the test-only link-blocking endpoint (STRATA_FEDERATION_TEST_HOOKS=1). */
  readonly testHooks?: boolean;
}

export const federationDefaults = {
  antiEntropyIntervalMs: 30_000,
  retryDelayBaseMs: 200,
  retryDelayMaxMs: 10_000,
  peerRequestTimeoutMs: 10_000,
  federationBatchEventsMax: 500,
  federationCatchUpBatchEventsMax: 5_000,
  binaryPullsConcurrentMax: 4,
  /** How often member urls without a known site id are looked up. */
  memberResolveIntervalMs: 2_000,
  binaryFetchTimeoutMs: 60_000,
  /**
   * Binaries of own deploys up to this size travel inside the push instead of being pulled:
   * read from memory here (RecentBlobs), stored by one putMany there, no pull request either
   * way. 64 KiB (the inline blob threshold): measured at 500 deploys/s on PostgreSQL, CPU per
   * deploy across the three sites 0.79–0.88 of pulling them (docs/benchmarks.md, Federation,
   * seventh pass). Off (0) until then: as first built (read from disk, one fsynced file each
   * on the receiver) it made the lag worse (second pass).
   */
  inlineBinaryBytesMax: 64 * 1024,
  /** Attached binaries per push at most (bytes). */
  inlineBatchBytesMax: 8 * 1024 * 1024,
  /** How long deleting a federated repository waits for the members to acknowledge that this site left. */
  leaveTimeoutMs: 10_000,
  /**
   * Binaries of this site's own recent deploys kept in memory for the members' pulls (each of
   * at most recentBlobBytesMax): the members ask for every one of them right after its push,
   * and serving it from memory costs no stat, no SQL select and no failed file open.
   */
  recentBlobsMax: 4096,
  recentBlobBytesMax: 64 * 1024,
  recentBlobsBytesMax: 16 * 1024 * 1024,
} as const;

/** The binaries of this site's most recent small deploys (bounded by count and bytes; the oldest go first). */
class RecentBlobs {
  readonly #blobs = new Map<string, Buffer>();
  #bytes = 0;

  get(sha256: string): Buffer | undefined {
    return this.#blobs.get(sha256);
  }

  add(sha256: string, bytes: Buffer): void {
    if (bytes.byteLength > federationDefaults.recentBlobBytesMax || this.#blobs.has(sha256)) return;
    this.#blobs.set(sha256, bytes);
    this.#bytes += bytes.byteLength;
    while (this.#blobs.size > federationDefaults.recentBlobsMax || this.#bytes > federationDefaults.recentBlobsBytesMax) {
      const [oldest, oldestBytes] = this.#blobs.entries().next().value!;
      this.#blobs.delete(oldest);
      this.#bytes -= oldestBytes.byteLength;
    }
  }
}

export interface FederationServiceOptions {
  readonly siteId: string;
  readonly settings: FederationSettings;
  readonly eventStore: EventStore;
  readonly db: Kysely<any>;
  readonly blobs: BlobStore;
  readonly hlc: HybridLogicalClock;
  readonly clock: Clock;
  readonly repositories: RepositoryReader;
}

export interface FederationLogger {
  info(object: Record<string, unknown>, message: string): void;
  warn(object: Record<string, unknown>, message: string): void;
  error(object: Record<string, unknown>, message: string): void;
}

const silentLogger: FederationLogger = { info() {}, warn() {}, error() {} };

export interface MemberStatusView {
  readonly url: string;
  readonly siteId: string | null;
  readonly state: FederationMemberStatus['state'];
  readonly lagEvents: number;
  readonly lagMs: number;
  readonly lastError: string | null;
  /** The last request or batch of this member refused here, and why (cleared once one is accepted). */
  readonly lastInboundError: string | null;
  readonly clockOffsetMs: number | null;
  readonly pendingBinaries: number;
}

/**
 * Replication lag of events received here, to their append and projection here: from the
 * origin's stamp (`receiveLag`), or from the origin's commit (`receiveLagFromCommit`).
 */
export interface ReceiveLagView {
  /** Events measured (the most recent ones, at most receiveLagSamplesMax). */
  readonly events: number;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  readonly maxMs: number | null;
}

/** p50 and p99 of one step of receiving (ms). */
export interface ReceiveStageView {
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
}

/**
 * Where the receive lag goes, per received event (the last receiveStageSamplesMax events
 * that came in a push): `arrival` origin stamp → the push's request handled here (the
 * origin's own append, its push, the network, this site's HTTP parsing), `authentication`
 * signature and replay check, `queue` decoding and the wait for the repository's queue
 * (behind the batches ahead), `append` planning, appending and projecting. Of the events
 * whose push carried their commit time (`receiveLagFromCommit`), `arrival` split in two:
 * `dispatch` the origin's commit → its push built (the origin's clock: its queue, a push
 * window full), `transit` push built → handled here (reading its binaries, encoding and
 * signing it, the network, this site's HTTP parsing; across hosts off by the clocks' difference).
 */
export interface ReceiveStagesView {
  readonly events: number;
  readonly arrival: ReceiveStageView;
  readonly authentication: ReceiveStageView;
  readonly queue: ReceiveStageView;
  readonly append: ReceiveStageView;
  readonly dispatch: ReceiveStageView;
  readonly transit: ReceiveStageView;
}

const receiveStageNames = ['arrival', 'authentication', 'queue', 'append', 'dispatch', 'transit'] as const;

/** The most recent `size` samples. */
class SampleRing {
  readonly #samples: Float64Array;
  #next = 0;
  #count = 0;
  /** The samples sorted, until the next `add`: a status poll between two batches sorts nothing again. */
  #sorted: Float64Array | undefined;

  constructor(size: number) {
    this.#samples = new Float64Array(size);
  }

  get count(): number {
    return this.#count;
  }

  add(value: number): void {
    this.#samples[this.#next] = Math.max(0, value);
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#count = Math.min(this.#count + 1, this.#samples.length);
    this.#sorted = undefined;
  }

  /** Ascending (a typed array sorts numerically, without a comparator call per pair). Not to be changed by the caller. */
  sorted(): Float64Array {
    this.#sorted ??= this.#samples.slice(0, this.#count).sort();
    return this.#sorted;
  }
}

function quantile(sorted: Float64Array, q: number): number | null {
  return sorted.length === 0 ? null : Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
}

/** Pushes accepted between two deletions of expired nonces. */
const noncesPurgeEvery = 1_000;

/** Received events whose lag the status summarises (a ring per repository). */
export const receiveLagSamplesMax = 20_000;
/** Received events whose steps of receipt the status summarises (four rings per repository). */
export const receiveStageSamplesMax = 4_096;

export interface FederationStatusView {
  readonly repoKey: string;
  readonly siteId: string;
  /** True when a members edit removed this site: it sends nothing more to the others. */
  readonly removed: boolean;
  readonly vector: Readonly<Record<string, number>>;
  readonly pendingBinaries: number;
  readonly receiveLag: ReceiveLagView;
  /**
   * The same events' lag from the origin's commit (the time its push says the append committed
   * there, by its clock) to their append and projection here, by this site's clock: the lag as
   * issue 4 defines it. Only events whose push carried their commit time (the origin's own
   * pushes, within moments of the commit) are measured. Across hosts it is off by the clocks'
   * difference (members' `clockOffsetMs`).
   */
  readonly receiveLagFromCommit: ReceiveLagView;
  readonly receiveStages: ReceiveStagesView;
  readonly members: readonly MemberStatusView[];
}

export class FederationService implements FederationHooks {
  readonly siteId: string;
  readonly settings: FederationSettings;
  readonly directory: PeerDirectory;
  readonly client: SignedPeerClient;
  readonly verifier: PeerRequestVerifier;
  readonly #options: FederationServiceOptions;
  readonly #state: SqlFederationStateStore;
  readonly #engine: FederationEngine;
  readonly #puller: BinaryPuller;
  readonly #recentBlobs = new RecentBlobs();
  readonly #remoteListeners: ((repoKey: string, events: readonly StreamEvent[]) => void)[] = [];
  /** Test hook: base URLs whose link is cut (both directions). */
  readonly #blocked = new Set<string>();
  /** Per site id and per `base:<url>` (as claimed): the last request or batch of it refused here. */
  readonly #inboundRefusals = new Map<string, string>();
  /** Per member base URL not resolved yet: why its identity lookup failed. */
  readonly #resolveErrors = new Map<string, string>();
  readonly #federating = new Map<string, Promise<void>>();
  /** Per repository: lag samples (ms) of received events, and of each step of their receipt. */
  readonly #receiveLags = new Map<string, { lag: SampleRing; fromCommit: SampleRing; stages: Record<(typeof receiveStageNames)[number], SampleRing> }>();
  #log: FederationLogger = silentLogger;
  #resolveTimer: NodeJS.Timeout | null = null;
  #resolving = false;
  #resolveFailures = 0;
  #resolveAgain = false;
  #noncesSincePurge = 0;
  #closed = false;

  constructor(options: FederationServiceOptions) {
    this.#options = options;
    this.siteId = options.siteId;
    this.settings = options.settings;
    const now = () => options.clock.now();
    this.#state = new SqlFederationStateStore(options.db);
    this.directory = new PeerDirectory({ siteId: options.siteId, baseUrl: options.settings.baseUrl, save: (base, site) => this.#state.savePeer(base, site) });
    this.client = new SignedPeerClient({
      secret: options.settings.secret,
      siteId: options.siteId,
      baseUrl: this.directory.ownBaseUrl,
      now,
      isBlocked: (base) => this.#blocked.has(base),
    });
    this.verifier = new PeerRequestVerifier({
      secret: options.settings.secret,
      now,
      ...(options.settings.requestSkewMsMax === undefined ? {} : { requestSkewMsMax: options.settings.requestSkewMsMax }),
    });
    const settings = options.settings;
    this.#engine = new FederationEngine({
      siteId: options.siteId,
      store: options.eventStore,
      stateStore: this.#state,
      transport: new HttpPeerTransport({
        client: this.client,
        baseUrlOf: (peerId) => this.directory.baseUrlOf(peerId),
        attachmentsFor: (request) => this.#attachmentsFor(request),
      }),
      scheduler: {
        schedule(delayMs, task) {
          const timer = setTimeout(task, delayMs);
          timer.unref();
          return { cancel: () => clearTimeout(timer) };
        },
      },
      pause: yieldToEventLoop,
      clock: options.clock,
      random: { next: () => Math.random(), bytes: (length) => new Uint8Array(randomBytes(length)) },
      hlc: options.hlc,
      peerIdOf: (url) => this.directory.peerIdOf(url),
      federationBatchEventsMax: settings.federationBatchEventsMax ?? federationDefaults.federationBatchEventsMax,
      federationCatchUpBatchEventsMax: catchUpBatchEventsMax(settings),
      retryDelayBaseMs: settings.retryDelayBaseMs ?? federationDefaults.retryDelayBaseMs,
      retryDelayMaxMs: settings.retryDelayMaxMs ?? federationDefaults.retryDelayMaxMs,
      peerRequestTimeoutMs: settings.peerRequestTimeoutMs ?? federationDefaults.peerRequestTimeoutMs,
      antiEntropyIntervalMs: settings.antiEntropyIntervalMs ?? federationDefaults.antiEntropyIntervalMs,
      onEventsAppended: (repoKey, events, stages) => this.#remoteAppended(repoKey, events, stages),
      onRepositoryJoined: (repoKey) => {
        this.#log.info({ repoKey }, 'joined a federated repository on invitation');
        // The other members named in the invitation may not be known here yet.
        this.#scheduleResolve(0);
      },
    });
    this.#puller = new BinaryPuller({
      blobs: options.blobs,
      client: this.client,
      sourcesOf: (repoKey, origin) => this.#binarySources(repoKey, origin),
      persist: { remove: (sha256) => this.#state.removePendingBinary(sha256) },
      pullsConcurrentMax: settings.binaryPullsConcurrentMax ?? federationDefaults.binaryPullsConcurrentMax,
      retryDelayBaseMs: settings.retryDelayBaseMs ?? federationDefaults.retryDelayBaseMs,
      retryDelayMaxMs: settings.retryDelayMaxMs ?? federationDefaults.retryDelayMaxMs,
      fetchTimeoutMs: federationDefaults.binaryFetchTimeoutMs,
      onError: (message, error) => this.#log.error({ err: error }, message),
    });
  }

  /** The federation routes (registered by the HTTP application under /artifactory). */
  get routes(): FastifyPluginAsync {
    return async (app) => {
      this.setLogger(app.log);
      await app.register(federationRoutes, { service: this, blobs: this.#options.blobs });
    };
  }

  setLogger(log: FederationLogger): void {
    this.#log = log;
  }

  get testHooks(): boolean {
    return this.settings.testHooks === true;
  }

  /** Loads what was learned before and federates every federated repository this site holds. */
  async start(): Promise<void> {
    await this.#state.forgetNoncesExpiredBy(Math.floor(this.#options.clock.now()));
    this.directory.load(await this.#state.loadPeers());
    for (const repo of await this.#options.repositories.list()) {
      if (repo.rclass === 'federated') await this.#federate(repo.key, repo['members']);
    }
    this.#puller.resume(await this.#state.loadPendingBinaries(1_000_000));
    this.#scheduleResolve(0);
  }

  close(): void {
    this.#closed = true;
    if (this.#resolveTimer !== null) clearTimeout(this.#resolveTimer);
    this.#engine.close();
    this.#puller.close();
  }

  // Hooks of the HTTP application -------------------------------------------------------------

  localAppended(stream: string, events: readonly RecordedEvent[]): void {
    if (this.#closed || !stream.startsWith('repo-')) return;
    const key = stream.slice('repo-'.length);
    // A members edit made here may name sites not known yet.
    if (events.some((event) => event.type === 'RepositoryConfigChanged' && event.data.patch['members'] !== undefined)) this.#scheduleResolve(0);
    if (this.#engine.isFederated(key)) {
      this.#keepRecentBlobs(events);
      void this.#engine.localAppended(key, events).catch((error: unknown) => this.#log.error({ err: error, repoKey: key }, 'federation could not read a local append'));
      return;
    }
    const created = events.find((event) => event.type === 'RepositoryCreated' && event.data.config['rclass'] === 'federated');
    if (created !== undefined && created.type === 'RepositoryCreated') {
      void this.#federate(key, created.data.config['members']).catch((error: unknown) =>
        this.#log.error({ err: error, repoKey: key }, 'federating a new repository failed'),
      );
    }
  }

  /**
   * Keeps the binaries of small deploys just committed here, while the blob store still holds
   * them in memory (a deploy's blob stays staged until its append returns): the members pull
   * each of them moments later.
   */
  #keepRecentBlobs(events: readonly RecordedEvent[]): void {
    const held = this.#options.blobs.held;
    if (held === undefined) return;
    for (const event of events) {
      if (event.type !== 'ArtifactDeployed' || event.data.size > federationDefaults.recentBlobBytesMax) continue;
      const bytes = held.call(this.#options.blobs, event.data.sha256);
      if (bytes !== undefined) this.#recentBlobs.add(event.data.sha256, bytes);
    }
  }

  /**
   * A member's batch pull (POST …/federation/blobs): recent small deploys from memory, the
   * rest by one `readMany` (one SQL statement for the inline ones); at most
   * blobBatchReplyBytesMax bytes of binaries, the rest `deferred`.
   */
  async readBlobBatch(sha256s: readonly string[]): Promise<BlobBatchEntry[]> {
    const blobs = this.#options.blobs;
    const inMemory = new Map<string, Buffer>();
    const misses: string[] = [];
    for (const sha256 of sha256s) {
      const bytes = this.#recentBlobs.get(sha256) ?? blobs.held?.(sha256);
      if (bytes !== undefined) inMemory.set(sha256, bytes);
      else misses.push(sha256);
    }
    const options = { sizeBytesMax: blobBatchBlobBytesMax };
    const stored: ReadonlyMap<string, StoredBlob> = misses.length === 0 ? new Map() : await (blobs.readMany?.(misses, options) ?? readEach(blobs, misses, options));
    let budget = blobBatchReplyBytesMax;
    return sha256s.map((sha256): BlobBatchEntry => {
      const found = inMemory.get(sha256) ?? stored.get(sha256);
      if (found === undefined) return { sha256, status: 'missing' };
      const bytes = Buffer.isBuffer(found) ? found : found.bytes;
      if (bytes === undefined || bytes.byteLength > blobBatchBlobBytesMax) return { sha256, status: 'too-large', size: Buffer.isBuffer(found) ? found.byteLength : found.size };
      if (bytes.byteLength > budget) return { sha256, status: 'deferred' };
      budget -= bytes.byteLength;
      return { sha256, status: 'found', bytes };
    });
  }

  onRemoteAppended(listener: (repoKey: string, events: readonly StreamEvent[]) => void): void {
    this.#remoteListeners.push(listener);
  }

  /**
   * A federated repository created here lists this site among its members (so that every
   * member lists all the others and the invitation names both ends); member urls must name
   * the same repository key.
   */
  prepareCreate(key: string, body: unknown): unknown {
    if (typeof body !== 'object' || body === null || (body as Record<string, unknown>)['rclass'] !== 'federated') return body;
    const value = (body as Record<string, unknown>)['members'] ?? [];
    if (!Array.isArray(value)) return body; // the config validation refuses it
    const members = parseMembers(value);
    for (const member of members) {
      const { repoKey } = parseMemberUrl(member.url);
      if (repoKey !== key) throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `member url '${member.url}' names repository '${repoKey}', not '${key}'`);
    }
    const own = memberUrlOf(this.directory.ownBaseUrl, key);
    const normalized = members.map((member) => ({ url: normalizeBaseUrl(member.url), enabled: member.enabled }));
    if (!normalized.some((member) => member.url === own)) normalized.unshift({ url: own, enabled: true });
    return { ...(body as Record<string, unknown>), members: normalized };
  }

  prepareUpdate(key: string, body: unknown): unknown {
    if (typeof body !== 'object' || body === null) return body;
    const value = (body as Record<string, unknown>)['members'];
    if (!Array.isArray(value)) return body;
    if (!this.#engine.isFederated(key)) return body;
    const members = parseMembers(value).map((member) => {
      const { repoKey } = parseMemberUrl(member.url);
      if (repoKey !== key) throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `member url '${member.url}' names repository '${repoKey}', not '${key}'`);
      return { url: normalizeBaseUrl(member.url), enabled: member.enabled };
    });
    // This site stays a member of its own federation (the list is the same on every member).
    const own = memberUrlOf(this.directory.ownBaseUrl, key);
    if (!members.some((member) => member.url === own)) members.unshift({ url: own, enabled: true });
    return { ...(body as Record<string, unknown>), members };
  }

  isFederated(repoKey: string): boolean {
    return this.#engine.isFederated(repoKey);
  }

  async membersAfterLeaving(key: string): Promise<{ url: string; enabled: boolean }[] | undefined> {
    if (!this.#engine.isFederated(key)) return undefined;
    const own = memberUrlOf(this.directory.ownBaseUrl, key);
    const config = await this.#options.repositories.get(key);
    return parseMembers(config?.['members']).filter((member) => member.url !== own);
  }

  /** Waits (bounded) until the members edit without this site reached the others, then stops federating `key`. */
  async leaveFederation(key: string): Promise<void> {
    if (!this.#engine.isFederated(key)) return;
    await this.#engine.localAppended(key); // the edit is indexed and its farewells started
    const delivered = await this.#engine.farewellsDone(key, federationDefaults.leaveTimeoutMs);
    if (!delivered) this.#log.warn({ repoKey: key }, 'left the federation without every member acknowledging it (they learn it from the others)');
    this.#engine.unfederate(key);
  }

  /** A download found no local binary: fetch it from a member now. */
  async fetchMissingBinary(repoKey: string, sha256: string, origin: string): Promise<boolean> {
    if (this.#closed) return false;
    return this.#puller.fetchNow(repoKey, origin, sha256);
  }

  isBinaryPending(sha256: string): boolean {
    return this.#puller.isPending(sha256);
  }

  // Peer requests -------------------------------------------------------------------------------

  /** Authenticates a peer request before anything in it is decoded; learns where the sender lives. */
  async authenticate(method: string, path: string, headers: Readonly<Record<string, string | string[] | undefined>>, body: Uint8Array): Promise<VerifiedPeer | PeerRequestRefusal> {
    const verified = this.verifier.verify(method, path, headers, body);
    if (!isVerifiedPeer(verified)) {
      const message = `request refused here: ${verified.message}`;
      if (verified.claimedSiteId !== undefined) this.#inboundRefusals.set(verified.claimedSiteId, message);
      const claimedBase = headers['x-strata-federation-base-url'];
      if (typeof claimedBase === 'string') {
        try {
          this.#inboundRefusals.set(`base:${normalizeBaseUrl(claimedBase)}`, message);
        } catch {
          // not a URL: only the site id is remembered
        }
      }
      return verified;
    }
    let base: string;
    try {
      base = normalizeBaseUrl(verified.baseUrl);
    } catch {
      return { authentic: true, claimedSiteId: verified.siteId, message: `sender base URL '${verified.baseUrl.slice(0, 200)}' is not an http(s) URL` };
    }
    if (this.#blocked.has(base)) return { authentic: true, claimedSiteId: verified.siteId, message: `link from ${base} is blocked (test hook)` };
    // Only a push changes anything here: its nonce is kept across restarts, written by
    // receivePush (with the push's events when it appends any). Reads (identity, binaries,
    // batches of binaries) are refused when replayed by the in-memory check alone.
    this.#resolveErrors.delete(base);
    if (await this.directory.learn(base, verified.siteId)) await this.#reconcileAll();
    return verified;
  }

  /**
   * The verifier refuses a nonce seen since this process started; pushes (the requests that
   * change anything) also have theirs written to SQL until their timestamp leaves the window,
   * so a push replayed to this site after a restart is refused too. A GET replayed after a
   * restart only reads again what it read (an identity, a binary).
   */
  async #rememberNonce(peer: VerifiedPeer): Promise<boolean> {
    const fresh = await this.#state.rememberNonce(peer.nonce, this.#nonceExpiresAtMs(peer));
    if (fresh) this.#nonceRemembered();
    return fresh;
  }

  /** Until when a request's nonce must be kept: its own timestamp (now + offset) passes the window until then + windowMs. */
  #nonceExpiresAtMs(peer: VerifiedPeer): number {
    const windowMs = this.settings.requestSkewMsMax ?? defaultRequestSkewMsMax;
    return Math.ceil(this.#options.clock.now() + peer.clockOffsetMs + windowMs) + 1;
  }

  #nonceRemembered(): void {
    if (++this.#noncesSincePurge < noncesPurgeEvery) return;
    this.#noncesSincePurge = 0;
    void this.#state.forgetNoncesExpiredBy(Math.floor(this.#options.clock.now())).catch((error: unknown) => this.#log.error({ err: error }, 'dropping expired federation nonces failed'));
  }

  #replayed(peer: VerifiedPeer): PeerRequestRefusal {
    const message = 'replayed request: this nonce was already used (nonces are kept across restarts)';
    this.#inboundRefusals.set(peer.siteId, `request refused here: ${message}`);
    return { authentic: true, claimedSiteId: peer.siteId, message };
  }

  /**
   * An authenticated push (its nonce passed the in-memory check). Its nonce is kept in SQL
   * until its timestamp leaves the window, so that a replay is refused after a restart too:
   * written by the append that applies the push's new events, in the same transaction (no
   * commit of its own on the path of every push), or — for a push that cannot append anything
   * (no events, all held here already, malformed) — on its own before anything in it is acted
   * on. A refusal (401, nothing applied) when the nonce was used before.
   */
  async receivePush(peer: VerifiedPeer, body: Uint8Array, times: ReceiveTimes = {}): Promise<FederationReply | PeerRequestRefusal> {
    let request;
    const malformed = async (message: string): Promise<FederationReply | PeerRequestRefusal> => {
      if (!(await this.#rememberNonce(peer))) return this.#replayed(peer);
      this.#inboundRefusals.set(peer.siteId, `batch refused here, malformed: ${message}`);
      return { kind: 'refused', reason: 'malformed', message, vector: null, offsetMs: null };
    };
    let attachments: FederationAttachment[];
    try {
      // In slices, with the event loop served between them: a catch-up page takes a tenth of a
      // second to decode, while the page ahead's COPYs and commit wait on this process.
      ({ request, attachments } = await decodeFederationPushInSlices(body, { eventsMax: receivedEventsMax(this.settings) }, yieldToEventLoop));
    } catch (error) {
      return malformed(isStrataError(error) ? error.message : String(error));
    }
    if (request.from !== peer.siteId) {
      if (!(await this.#rememberNonce(peer))) return this.#replayed(peer);
      return { kind: 'refused', reason: 'malformed', message: `batch from ${request.from} signed by ${peer.siteId}`, vector: null, offsetMs: null };
    }
    // A push that may append: its nonce commits with its events (appendWrites). Else now.
    const withAppend = this.#engine.mayAppend(request);
    if (!withAppend && !(await this.#rememberNonce(peer))) return this.#replayed(peer);
    // Binaries sent with the batch are not pulled; once the batch is appended they are stored
    // in the background, each checked against its sha256 (their blob writes stay off the
    // append's path; one that does not match is pulled as usual).
    const bytesOf = new Map(attachments.map((attachment) => [attachment.sha256, attachment.bytes]));
    const arriving: PendingBinary[] = [];
    for (const event of request.events) {
      if (event.type !== 'ArtifactDeployed' || !bytesOf.has(event.data.sha256) || arriving.some((entry) => entry.sha256 === event.data.sha256)) continue;
      arriving.push({ sha256: event.data.sha256, repoKey: request.repoKey, origin: event.origin });
    }
    this.#puller.markArriving(arriving);
    let reply: FederationReply;
    try {
      reply = await this.#engine.receive(request, times, withAppend ? { appendWrites: this.#state.nonceWrites(peer.nonce, this.#nonceExpiresAtMs(peer)) } : {});
    } catch (error) {
      this.#puller.unmarkArriving(arriving);
      throw error;
    }
    if (withAppend) {
      if (reply.kind === 'ack' && reply.appended > 0) this.#nonceRemembered();
      else if (!(await this.#rememberNonce(peer))) {
        // Nothing appended after all (refused, or its events appended meanwhile from another
        // copy): the nonce is written now. Used before: a replay whose reply we withhold;
        // what it did here (nothing appended; the sender's vector raised our cursor) is
        // what a redelivery does.
        this.#puller.unmarkArriving(arriving);
        return this.#replayed(peer);
      }
    }
    if (reply.kind === 'ack') this.#puller.storeArriving(arriving.map((binary) => ({ ...binary, bytes: bytesOf.get(binary.sha256)! })));
    else this.#puller.unmarkArriving(arriving);
    const base = normalizeBaseUrl(peer.baseUrl);
    if (reply.kind === 'ack') {
      this.#inboundRefusals.delete(peer.siteId);
      this.#inboundRefusals.delete(`base:${base}`);
    } else {
      this.#inboundRefusals.set(peer.siteId, `batch refused here, ${reply.reason}: ${reply.message}`);
    }
    return reply;
  }

  /**
   * Small binaries of this site's own deploys go inside the push (at most
   * inlineBinaryBytesMax each, inlineBatchBytesMax per push): a member receiving them pulls
   * nothing, and this site serves no binary request per deploy and member. Forwarded deploys
   * carry none (their origin sent them); a binary that cannot be read is left to the pull.
   */
  async #attachmentsFor(request: FederationRequest): Promise<FederationAttachment[]> {
    const bytesMax = this.settings.inlineBinaryBytesMax ?? federationDefaults.inlineBinaryBytesMax;
    if (bytesMax <= 0) return [];
    const chosen = new Set<string>();
    let total = 0;
    for (const event of request.events) {
      if (event.type !== 'ArtifactDeployed' || event.origin !== this.siteId || chosen.has(event.data.sha256)) continue;
      const size = event.data.size;
      if (size > bytesMax || total + size > federationDefaults.inlineBatchBytesMax) continue;
      chosen.add(event.data.sha256);
      total += size;
    }
    // This site's recent small deploys from memory (kept as they commit, see RecentBlobs); the
    // rest (a member catching up on older ones) by one readMany — one SQL statement for the
    // inline ones instead of a select each. One not readable here (collected since?) is left
    // to the member's pull, which learns it is gone.
    const attachments: FederationAttachment[] = [];
    const misses: string[] = [];
    for (const sha256 of chosen) {
      const bytes = this.#recentBlobs.get(sha256) ?? this.#options.blobs.held?.(sha256);
      if (bytes !== undefined) attachments.push({ sha256, bytes });
      else misses.push(sha256);
    }
    if (misses.length === 0) return attachments;
    const options = { sizeBytesMax: bytesMax };
    try {
      const stored = await (this.#options.blobs.readMany?.(misses, options) ?? readEach(this.#options.blobs, misses, options));
      for (const sha256 of misses) {
        const bytes = stored.get(sha256)?.bytes;
        if (bytes !== undefined) attachments.push({ sha256, bytes });
      }
    } catch (error) {
      this.#log.warn({ err: error }, 'binaries to send with a push could not be read; the members pull them');
    }
    return attachments;
  }


  identity(): { siteId: string; baseUrl: string } {
    return { siteId: this.siteId, baseUrl: this.directory.ownBaseUrl };
  }

  // Operations ----------------------------------------------------------------------------------

  fullSync(repoKey: string): void {
    this.#engine.fullSync(repoKey);
  }

  configSync(repoKey: string): void {
    this.#engine.configSync(repoKey);
  }

  async status(repoKey: string): Promise<FederationStatusView> {
    const status = this.#engine.status(repoKey);
    const byPeer = new Map(status.members.map((member) => [member.peerId, member]));
    const config = await this.#options.repositories.get(repoKey);
    const members: MemberStatusView[] = [];
    const seen = new Set<string>();
    const held = Object.values(status.vector).reduce((sum, count) => sum + count, 0);
    const inboundOf = (peerId: string | undefined, url: string): string | null => {
      const byId = peerId === undefined ? undefined : this.#inboundRefusals.get(peerId);
      if (byId !== undefined) return byId;
      try {
        return this.#inboundRefusals.get(`base:${parseMemberUrl(url).baseUrl}`) ?? null;
      } catch {
        return null;
      }
    };
    const removedNote = status.removed ? `this site was removed from the members of ${repoKey} (members edit by ${status.membersEditedBy ?? 'unknown'}): it sends nothing more` : null;
    for (const member of parseMembers(config?.['members'])) {
      const peerId = this.directory.peerIdOf(member.url);
      if (peerId === this.siteId) continue;
      if (removedNote !== null) {
        members.push({ url: member.url, siteId: peerId ?? null, state: 'DISABLED', lagEvents: 0, lagMs: 0, lastError: removedNote, lastInboundError: inboundOf(peerId, member.url), clockOffsetMs: null, pendingBinaries: 0 });
        continue;
      }
      const engineView = peerId === undefined ? undefined : byPeer.get(peerId);
      if (peerId !== undefined) seen.add(peerId);
      if (engineView === undefined) {
        let resolveError: string | undefined;
        try {
          resolveError = this.#resolveErrors.get(parseMemberUrl(member.url).baseUrl);
        } catch (error) {
          resolveError = isStrataError(error) ? error.message : String(error);
        }
        members.push({
          url: member.url,
          siteId: peerId ?? null,
          state: member.enabled ? 'OUT_OF_SYNC' : 'DISABLED',
          lagEvents: held,
          lagMs: 0,
          lastError: resolveError ?? (peerId === undefined ? 'member not reached yet: its site id is unknown' : null),
          lastInboundError: inboundOf(peerId, member.url),
          clockOffsetMs: null,
          pendingBinaries: 0,
        });
        continue;
      }
      members.push(this.#memberView(repoKey, engineView, member.url, inboundOf(peerId, member.url)));
    }
    // Peers the engine still tracks (from its own view of the members field) but the projection lacks.
    for (const member of status.members) {
      if (!seen.has(member.peerId)) members.push(this.#memberView(repoKey, member, member.url, inboundOf(member.peerId, member.url)));
    }
    return { repoKey, siteId: this.siteId, removed: status.removed, vector: status.vector, pendingBinaries: this.#puller.pendingCount(repoKey), receiveLag: this.#lagView(this.#receiveLags.get(repoKey)?.lag), receiveLagFromCommit: this.#lagView(this.#receiveLags.get(repoKey)?.fromCommit), receiveStages: this.#stagesView(repoKey), members };
  }

  #memberView(repoKey: string, member: FederationMemberStatus, url: string, lastInboundError: string | null): MemberStatusView {
    const lastError = member.lastError?.startsWith('batch refused here, ') ? null : member.lastError;
    return {
      url,
      siteId: member.peerId,
      state: member.state === 'SYNCING' && (lastError !== null || lastInboundError !== null) ? 'OUT_OF_SYNC' : member.state,
      lagEvents: member.lagEvents,
      lagMs: member.lagMs,
      lastError,
      lastInboundError,
      clockOffsetMs: member.clockOffsetMs,
      pendingBinaries: this.#puller.pendingCount(repoKey, member.peerId),
    };
  }

  /** Test hook: cut (or restore) the links to and from these base URLs. */
  setBlocked(baseUrls: readonly string[]): void {
    this.#blocked.clear();
    for (const url of baseUrls) this.#blocked.add(normalizeBaseUrl(url));
  }

  // Internals -----------------------------------------------------------------------------------

  async #federate(key: string, membersValue: unknown): Promise<void> {
    const running = this.#federating.get(key);
    if (running !== undefined) return running;
    if (this.#engine.isFederated(key)) return;
    const run = this.#engine.federate(key, { members: parseMembers(membersValue) });
    this.#federating.set(key, run);
    try {
      await run;
    } finally {
      this.#federating.delete(key);
    }
    this.#scheduleResolve(0);
  }

  #recordLag(repoKey: string, events: readonly StreamEvent[], stages: ReceiveStages | undefined): void {
    let rings = this.#receiveLags.get(repoKey);
    if (rings === undefined) {
      const stage = () => new SampleRing(receiveStageSamplesMax);
      rings = {
        lag: new SampleRing(receiveLagSamplesMax),
        fromCommit: new SampleRing(receiveLagSamplesMax),
        stages: { arrival: stage(), authentication: stage(), queue: stage(), append: stage(), dispatch: stage(), transit: stage() },
      };
      this.#receiveLags.set(repoKey, rings);
    }
    // By this site's physical clock; the origin's stamp is its physical clock when it prepared
    // the event (HLC wall), before its own append round; its commit time comes with the push.
    const now = this.#options.clock.now();
    for (const event of events) rings.lag.add(now - event.hlc.wall);
    const committedAtMs = stages?.committedAtMs;
    if (committedAtMs !== undefined) {
      const { sentAtMs, arrivedAtMs } = stages!;
      for (const committed of committedAtMs) {
        if (committed === null) continue;
        rings.fromCommit.add(now - committed);
        if (sentAtMs === undefined || arrivedAtMs === undefined) continue;
        rings.stages.dispatch.add(sentAtMs - committed);
        rings.stages.transit.add(arrivedAtMs - sentAtMs);
      }
    }
    if (stages?.arrivedAtMs === undefined || stages.authenticatedAtMs === undefined) return;
    const { arrivedAtMs, authenticatedAtMs, startedAtMs, appendedAtMs } = stages;
    for (const event of events) {
      rings.stages.arrival.add(arrivedAtMs - event.hlc.wall);
      rings.stages.authentication.add(authenticatedAtMs - arrivedAtMs);
      rings.stages.queue.add(startedAtMs - authenticatedAtMs);
      rings.stages.append.add(appendedAtMs - startedAtMs);
    }
  }

  #lagView(ring: SampleRing | undefined): ReceiveLagView {
    if (ring === undefined || ring.count === 0) return { events: 0, p50Ms: null, p99Ms: null, maxMs: null };
    const sorted = ring.sorted();
    return { events: ring.count, p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99), maxMs: Math.round(sorted[sorted.length - 1]!) };
  }

  #stagesView(repoKey: string): ReceiveStagesView {
    const stages = this.#receiveLags.get(repoKey)?.stages;
    const view = (name: (typeof receiveStageNames)[number]): ReceiveStageView => {
      const sorted = stages?.[name].sorted() ?? new Float64Array(0);
      return { p50Ms: quantile(sorted, 0.5), p99Ms: quantile(sorted, 0.99) };
    };
    return {
      events: stages?.append.count ?? 0,
      arrival: view('arrival'),
      authentication: view('authentication'),
      queue: view('queue'),
      append: view('append'),
      dispatch: view('dispatch'),
      transit: view('transit'),
    };
  }

  /** This site's physical clock (ms), for the times the routes note as a push goes through them. */
  now(): number {
    return this.#options.clock.now();
  }

  #remoteAppended(repoKey: string, events: readonly StreamEvent[], stages?: ReceiveStages): void {
    this.#recordLag(repoKey, events, stages);
    for (const listener of this.#remoteListeners) {
      try {
        listener(repoKey, events);
      } catch (error) {
        this.#log.error({ err: error, repoKey }, 'a listener of received events failed');
      }
    }
    const deploys = [];
    for (const event of events) {
      if (event.type === 'ArtifactDeployed' && event.origin !== this.siteId) deploys.push({ sha256: event.data.sha256, repoKey, origin: event.origin });
      if (event.type === 'RepositoryConfigChanged' && event.data.patch['members'] !== undefined) this.#scheduleResolve(0);
    }
    if (deploys.length > 0) {
      void this.#puller.consider(deploys).catch((error: unknown) => this.#log.error({ err: error, repoKey }, 'recording pending binaries failed'));
    }
  }

  #binarySources(repoKey: string, origin: string): string[] {
    const sources: string[] = [];
    const originBase = this.directory.baseUrlOf(origin);
    if (originBase !== undefined && origin !== this.siteId) sources.push(originBase);
    if (this.#engine.isFederated(repoKey)) {
      for (const member of this.#engine.status(repoKey).members) {
        const base = this.directory.baseUrlOf(member.peerId);
        if (base !== undefined && !sources.includes(base)) sources.push(base);
      }
    }
    return sources;
  }

  async #reconcileAll(): Promise<void> {
    for (const repo of await this.#options.repositories.list()) {
      if (repo.rclass === 'federated' && this.#engine.isFederated(repo.key)) await this.#engine.reconcileMembers(repo.key);
    }
  }

  #scheduleResolve(delayMs: number): void {
    if (this.#closed) return;
    if (delayMs === 0) this.#resolveFailures = 0;
    if (this.#resolving) {
      // A lookup is running: run another right after it (the trigger may name new members).
      if (delayMs === 0) this.#resolveAgain = true;
      return;
    }
    if (this.#resolveTimer !== null) {
      if (delayMs > 0) return;
      clearTimeout(this.#resolveTimer);
    }
    this.#resolveTimer = setTimeout(() => {
      this.#resolveTimer = null;
      void this.#resolveMembers();
    }, delayMs);
    this.#resolveTimer.unref();
  }

  /** Looks up the site id of member base URLs not known yet (signed identity requests). */
  async #resolveMembers(): Promise<void> {
    if (this.#closed) return;
    this.#resolving = true;
    let unresolved = 0;
    try {
      const bases = new Set<string>();
      for (const repo of await this.#options.repositories.list()) {
        if (repo.rclass !== 'federated') continue;
        for (const member of parseMembers(repo['members'])) {
          try {
            const { baseUrl } = parseMemberUrl(member.url);
            if (!this.directory.isKnownBase(baseUrl)) bases.add(baseUrl);
          } catch {
            // an unusable url stays unresolved; the status shows it
          }
        }
      }
      let learned = false;
      for (const base of bases) {
        try {
          const response = await this.client.request(base, 'GET', FEDERATION_IDENTITY_PATH, new Uint8Array(), AbortSignal.timeout(5_000));
          if (response.status !== 200 || !response.authentic) {
            let detail = '';
            try {
              detail = (JSON.parse(new TextDecoder().decode(response.body)) as { errors?: { message?: string }[] }).errors?.[0]?.message ?? '';
            } catch {
              // not JSON
            }
            this.#resolveErrors.set(
              base,
              `identity lookup refused: HTTP ${response.status}${response.authentic ? '' : ' without a valid reply signature (another federation secret?)'}${detail === '' ? '' : `: ${detail}`}`,
            );
            unresolved++;
            continue;
          }
          const identity = JSON.parse(new TextDecoder().decode(response.body)) as { siteId?: unknown };
          if (typeof identity.siteId !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(identity.siteId)) {
            unresolved++;
            continue;
          }
          this.#resolveErrors.delete(base);
          if (await this.directory.learn(base, identity.siteId)) learned = true;
        } catch (error) {
          this.#resolveErrors.set(base, `identity lookup failed: ${error instanceof Error ? (error.cause instanceof Error ? `${error.message} (${error.cause.message})` : error.message) : String(error)}`);
          unresolved++;
        }
      }
      if (learned) await this.#reconcileAll();
    } catch (error) {
      this.#log.error({ err: error }, 'resolving federation members failed');
      unresolved++;
    } finally {
      this.#resolving = false;
    }
    if (this.#resolveAgain) {
      this.#resolveAgain = false;
      this.#scheduleResolve(0);
      return;
    }
    // Unreachable or refusing members are asked again, less and less often (2 s doubling to 60 s).
    this.#resolveFailures = unresolved > 0 ? this.#resolveFailures + 1 : 0;
    if (unresolved > 0) this.#scheduleResolve(Math.min(60_000, federationDefaults.memberResolveIntervalMs * 2 ** Math.min(this.#resolveFailures - 1, 5)));
  }
}

/** Events per catch-up page: as set, else the default unless the batch size was set (then that). */
function catchUpBatchEventsMax(settings: FederationSettings): number {
  return settings.federationCatchUpBatchEventsMax ?? (settings.federationBatchEventsMax === undefined ? federationDefaults.federationCatchUpBatchEventsMax : settings.federationBatchEventsMax);
}

/** The most events a received push may carry: a batch or a catch-up page. */
function receivedEventsMax(settings: FederationSettings): number {
  return Math.max(settings.federationBatchEventsMax ?? federationDefaults.federationBatchEventsMax, catchUpBatchEventsMax(settings));
}
