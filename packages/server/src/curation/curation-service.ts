import { isStrataError, StrataError, SYSTEM_STREAM } from '@strata/core';
import type { EventMeta, HlcStamp, NewEvent, RecordedEvent } from '@strata/core';
import type { EventStore } from '@strata/store';
import { curationBlockReason, curationPolicyFromBody } from './curation-policy.ts';
import type { CurationPolicy, CurationSubject, PackageCoordinates } from './curation-policy.ts';

/** One blocked request: who asked for what, through which remote, and which policy said no. */
export interface CurationBlock {
  /** Epoch ms. */
  readonly at: number;
  readonly actor: string;
  readonly repo: string;
  readonly path: string;
  readonly policy: string;
  readonly reason: string;
  /** The repository the client asked (a virtual, or the remote itself). */
  readonly requestedRepo: string;
  readonly packageName?: string;
  readonly packageVersion?: string;
}

/** Where blocks are recorded (not events: they are as frequent as requests). */
export interface CurationBlockLog {
  record(block: CurationBlock): Promise<void>;
  /** Newest first. */
  list(options: { limit: number; repo?: string; policy?: string }): Promise<readonly CurationBlock[]>;
}

/** Blocks kept in memory, bounded (tests; and a server without SQL). */
export class MemoryCurationBlockLog implements CurationBlockLog {
  readonly #blocks: CurationBlock[] = [];
  readonly #entriesMax: number;
  constructor(entriesMax = 10_000) {
    this.#entriesMax = entriesMax;
  }
  async record(block: CurationBlock): Promise<void> {
    this.#blocks.push(block);
    if (this.#blocks.length > this.#entriesMax) this.#blocks.shift();
  }
  async list(options: { limit: number; repo?: string; policy?: string }): Promise<readonly CurationBlock[]> {
    return this.#blocks
      .filter((block) => (options.repo === undefined || block.repo === options.repo) && (options.policy === undefined || block.policy === options.policy))
      .slice(-options.limit)
      .reverse();
  }
}

/**
 * Package coordinates of a path in a repository of some package type (npm, PyPI, Maven…):
 * registered by the package-format code so `packages` and `versionPatterns` rules apply to
 * requests that come through the generic path flow too.
 */
export type PackageCoordinatesExtractor = (path: string) => PackageCoordinates | undefined;

export interface CurationCheck {
  /** The remote repository the artifact would come from. */
  readonly repo: string;
  readonly path: string;
  readonly packageType?: string;
  /** Given by a package-format route that knows them; else the registered extractor is asked. */
  readonly packageCoordinates?: PackageCoordinates;
  /** Properties of the cached artifact, when cached (read only if a policy has property rules). */
  readonly properties?: () => Promise<NonNullable<CurationSubject['properties']>>;
  readonly actor: string;
  readonly requestedRepo: string;
}

export interface CurationServiceOptions {
  readonly eventStore: Pick<EventStore, 'append' | 'readStream' | 'streamRevision'>;
  readonly blocks: CurationBlockLog;
  readonly siteId: string;
  readonly stamp: () => HlcStamp;
  readonly newId: () => string;
  readonly now: () => number;
  /** How long the policy set may be served before checking the store for changes by other servers. */
  readonly refreshIntervalMs: number;
  readonly appendRetriesMax: number;
}

const readBatchEventsMax = 1_000;

/**
 * Curation policies as events of the `system` stream (`CurationPolicySaved {name, policy}`,
 * `CurationPolicyDeleted {name}`), folded in memory; and the blocking check every remote
 * request passes through.
 */
export class CurationService {
  readonly #options: CurationServiceOptions;
  readonly #policies = new Map<string, CurationPolicy>();
  readonly #extractors = new Map<string, PackageCoordinatesExtractor>();
  #revision = -1;
  /** Highest originSeq per origin in the system stream (for this site's next event). */
  readonly #originSeqs = new Map<string, number>();
  #checkedAt = Number.NEGATIVE_INFINITY;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: CurationServiceOptions) {
    this.#options = options;
  }

  /** Lets a package format name the package and version a path holds (for package rules). */
  registerPackageCoordinates(packageType: string, extractor: PackageCoordinatesExtractor): void {
    this.#extractors.set(packageType.toLowerCase(), extractor);
  }

  #exclusive<R>(task: () => Promise<R>): Promise<R> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #apply(event: RecordedEvent): void {
    this.#revision = event.revision;
    this.#originSeqs.set(event.origin, Math.max(this.#originSeqs.get(event.origin) ?? 0, event.originSeq));
    if (event.type === 'CurationPolicySaved') {
      const data = event.data as { name?: unknown; policy?: unknown };
      if (typeof data.name !== 'string') return;
      try {
        this.#policies.set(data.name, curationPolicyFromBody(data.name, data.policy));
      } catch {
        // A policy another site accepted but this build cannot read is left out, never half-applied.
      }
    } else if (event.type === 'CurationPolicyDeleted') {
      const data = event.data as { name?: unknown };
      if (typeof data.name === 'string') this.#policies.delete(data.name);
    }
  }

  async #catchUp(): Promise<void> {
    for (;;) {
      const events = await this.#options.eventStore.readStream(SYSTEM_STREAM, { fromRevision: this.#revision + 1, maxCount: readBatchEventsMax });
      for (const event of events) this.#apply(event);
      if (events.length < readBatchEventsMax) return;
    }
  }

  /** Brings the policy set up to date when it may be stale (bounded by refreshIntervalMs). */
  async #fresh(): Promise<void> {
    const now = this.#options.now();
    if (now - this.#checkedAt < this.#options.refreshIntervalMs) return;
    await this.#exclusive(async () => {
      const revision = await this.#options.eventStore.streamRevision(SYSTEM_STREAM);
      if (revision !== undefined && revision > this.#revision) await this.#catchUp();
      this.#checkedAt = this.#options.now();
    });
  }

  async list(): Promise<CurationPolicy[]> {
    await this.#fresh();
    return [...this.#policies.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async get(name: string): Promise<CurationPolicy> {
    await this.#fresh();
    const policy = this.#policies.get(name);
    if (policy === undefined) throw new StrataError('STRATA_ERR_CURATION_POLICY_NOT_FOUND', `curation policy '${name}' not found`);
    return policy;
  }

  /** Creates or replaces a policy. `isRemote` says whether a key names a remote repository. */
  async save(name: string, body: unknown, meta: EventMeta, isRemote: (key: string) => Promise<boolean>): Promise<CurationPolicy> {
    const policy = curationPolicyFromBody(name, body);
    for (const key of policy.repositories) {
      if (!(await isRemote(key))) throw new StrataError('STRATA_ERR_CURATION_POLICY_INVALID', `'${key}' is not a remote repository: policies attach to remote repositories`);
    }
    await this.#write(meta, () => [{ type: 'CurationPolicySaved', data: { name, policy: { ...policy } } }]);
    return policy;
  }

  async delete(name: string, meta: EventMeta): Promise<void> {
    await this.#write(meta, () => {
      if (!this.#policies.has(name)) throw new StrataError('STRATA_ERR_CURATION_POLICY_NOT_FOUND', `curation policy '${name}' not found`);
      return [{ type: 'CurationPolicyDeleted', data: { name } }];
    });
  }

  async #write(meta: EventMeta, decide: () => { type: 'CurationPolicySaved' | 'CurationPolicyDeleted'; data: Record<string, unknown> }[]): Promise<void> {
    await this.#exclusive(async () => {
      await this.#catchUp();
      for (let attempt = 0; ; attempt++) {
        const events = decide();
        const firstSeq = (this.#originSeqs.get(this.#options.siteId) ?? 0) + 1;
        const newEvents = events.map(
          (event, index) => ({ ...event, id: this.#options.newId(), origin: this.#options.siteId, originSeq: firstSeq + index, hlc: this.#options.stamp(), meta }) as NewEvent,
        );
        try {
          const appended = await this.#options.eventStore.append(SYSTEM_STREAM, newEvents, { expectedRevision: this.#revision === -1 ? 'no_stream' : this.#revision });
          for (const event of appended.events) this.#apply(event);
          this.#checkedAt = this.#options.now();
          return;
        } catch (error) {
          if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT') || attempt >= this.#options.appendRetriesMax) throw error;
          await this.#catchUp();
        }
      }
    });
  }

  /**
   * Throws 403 STRATA_ERR_CURATION_BLOCKED (and records the block) when an enabled policy
   * attached to `check.repo` blocks the artifact. The hook package formats call with the
   * coordinates they know; the generic flow calls it for every remote request.
   */
  async enforce(check: CurationCheck): Promise<void> {
    await this.#fresh();
    if (this.#policies.size === 0) return;
    const coordinates = check.packageCoordinates ?? (check.packageType === undefined ? undefined : this.#extractors.get(check.packageType.toLowerCase())?.(check.path));
    let properties: CurationSubject['properties'];
    for (const policy of this.#policies.values()) {
      if (!policy.enabled || !policy.repositories.includes(check.repo)) continue;
      if (properties === undefined && check.properties !== undefined && Object.keys(policy.properties).length > 0) properties = await check.properties();
      const reason = curationBlockReason(policy, {
        repo: check.repo,
        path: check.path,
        ...(coordinates === undefined ? {} : { packageCoordinates: coordinates }),
        ...(properties === undefined ? {} : { properties }),
      });
      if (reason === undefined) continue;
      await this.#options.blocks.record({
        at: this.#options.now(),
        actor: check.actor,
        repo: check.repo,
        path: check.path,
        policy: policy.name,
        reason,
        requestedRepo: check.requestedRepo,
        ...(coordinates === undefined ? {} : { packageName: coordinates.name, ...(coordinates.version === undefined ? {} : { packageVersion: coordinates.version }) }),
      });
      throw new StrataError('STRATA_ERR_CURATION_BLOCKED', `'${check.repo}:${check.path}' is blocked by curation policy '${policy.name}' (${reason})`, { policy: policy.name });
    }
  }

  /**
   * Whether an enabled policy attached to `check.repo` would block the artifact, without
   * recording a block: for package metadata (a packument, a simple index) that leaves blocked
   * versions out. Property rules are not applied (they need the cached file's properties).
   */
  async wouldBlock(check: Pick<CurationCheck, 'repo' | 'path' | 'packageType' | 'packageCoordinates'>): Promise<boolean> {
    await this.#fresh();
    if (this.#policies.size === 0) return false;
    const coordinates = check.packageCoordinates ?? (check.packageType === undefined ? undefined : this.#extractors.get(check.packageType.toLowerCase())?.(check.path));
    for (const policy of this.#policies.values()) {
      if (!policy.enabled || !policy.repositories.includes(check.repo)) continue;
      if (curationBlockReason(policy, { repo: check.repo, path: check.path, ...(coordinates === undefined ? {} : { packageCoordinates: coordinates }) }) !== undefined) return true;
    }
    return false;
  }

  /** Whether any enabled policy is attached to `repo` (metadata filtering is skipped otherwise). */
  async curates(repo: string): Promise<boolean> {
    await this.#fresh();
    for (const policy of this.#policies.values()) if (policy.enabled && policy.repositories.includes(repo)) return true;
    return false;
  }

  /** Changes whenever the policy set may have changed: metadata filtered by curation is recomputed then. */
  async policiesRevision(): Promise<number> {
    await this.#fresh();
    return this.#revision;
  }

  blocks(options: { limit: number; repo?: string; policy?: string }): Promise<readonly CurationBlock[]> {
    return this.#options.blocks.list(options);
  }
}
