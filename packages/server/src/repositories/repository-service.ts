import { findVirtualCycle, flattenVirtualMembers, isStoringClass, isValidRepositoryKey, repositoryKeyIdentity, repositoryStream, StrataError } from '@strata/core';
import type { EventMeta } from '@strata/core';
import type { RepositoryReader } from '../ports.ts';
import type { Decision, StreamWriter } from '../stream-writer.ts';
import { configForCreate, patchForUpdate } from './repository-config.ts';
import { decideRepository, repositoryNotFound } from './repository-decider.ts';
import type { RepositoryCommand } from './repository-decider.ts';
import type { RepositoryStreamState } from './repository-stream.ts';

export interface RepositoryBodyAdjuster {
  prepareCreate(key: string, body: unknown): unknown;
  prepareUpdate(key: string, body: unknown): unknown;
  /** For a federated repository: its members without this site (undefined: not federated here). */
  membersAfterLeaving?(key: string): Promise<readonly { url: string; enabled: boolean }[] | undefined>;
  /** After the members edit without this site was appended: lets the others learn it, then stops federating the repository here. */
  leaveFederation?(key: string): Promise<void>;
}

/** Site-wide rules a configuration change must pass first (e.g. an edge node's: EdgePolicy). */
export interface RepositoryPolicy {
  /** Throws to refuse; may return fields to add to the request body (e.g. a detected smart remote's options). */
  beforeCreate(key: string, config: Readonly<Record<string, unknown>>): Promise<Readonly<Record<string, unknown>> | undefined>;
  beforeUpdate(current: Readonly<Record<string, unknown>>, body: unknown): Promise<Readonly<Record<string, unknown>> | undefined>;
  beforeDelete(key: string): void;
}

/** Creates, updates and deletes repository configurations: each change one event. */
export class RepositoryService {
  readonly #streams: StreamWriter<RepositoryStreamState>;
  readonly #reader: RepositoryReader;
  readonly #onChange: (key: string) => void;
  /** Creates are serialised so that two keys differing only in case cannot both be created here. */
  #creating: Promise<unknown> = Promise.resolve();
  readonly #policy: RepositoryPolicy | undefined;

  /** Adjusts request bodies before validation (federation adds this site to the members). */
  readonly #adjust: RepositoryBodyAdjuster | undefined;

  constructor(streams: StreamWriter<RepositoryStreamState>, reader: RepositoryReader, onChange: (key: string) => void, adjust?: RepositoryBodyAdjuster, policy?: RepositoryPolicy) {
    this.#streams = streams;
    this.#reader = reader;
    this.#onChange = onChange;
    this.#adjust = adjust;
    this.#policy = policy;
  }

  async create(key: string, requestBody: unknown, meta: EventMeta): Promise<void> {
    const body = await this.#validateCreate(key, requestBody);
    const run = this.#creating.then(async () => {
      await this.#checkKeyFree(key);
      await this.#run({ kind: 'create', key, body }, meta);
    });
    this.#creating = run.catch(() => undefined);
    await run;
  }

  /**
   * A create validated as `create` validates it, decided inside a write the caller runs
   * across several streams (a release bundle brings its repositories along with its files,
   * all visible at once). Call `created` once that write is stored.
   */
  async prepareCreate(key: string, requestBody: unknown): Promise<{ decide: (state: RepositoryStreamState) => Decision<undefined>; created: () => void }> {
    const body = await this.#validateCreate(key, requestBody);
    await this.#checkKeyFree(key);
    return {
      decide: (state) => ({ events: decideRepository({ kind: 'create', key, body }, state), result: undefined }),
      created: () => this.#onChange(key),
    };
  }

  async #validateCreate(key: string, requestBody: unknown): Promise<unknown> {
    const adjusted = this.#adjust === undefined ? requestBody : this.#adjust.prepareCreate(key, requestBody);
    // Validate before queueing, so a bad body never waits behind other creates.
    const config = configForCreate(key, adjusted);
    if (config.rclass === 'virtual') await this.#checkVirtual(key, config);
    const added = await this.#policy?.beforeCreate(key, config);
    return added === undefined ? adjusted : { ...(adjusted as Record<string, unknown>), ...added };
  }

  async #checkKeyFree(key: string): Promise<void> {
    const identity = repositoryKeyIdentity(key);
    const clash = (await this.#reader.list()).find((repo) => repositoryKeyIdentity(repo.key) === identity);
    if (clash !== undefined) throw new StrataError('STRATA_ERR_REPO_EXISTS', `Case insensitive repository key already exists: '${clash.key}'`);
  }

  async update(key: string, requestBody: unknown, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw repositoryNotFound(key);
    const adjusted = this.#adjust === undefined ? requestBody : this.#adjust.prepareUpdate(key, requestBody);
    const current = await this.#reader.get(key);
    if (current?.rclass === 'virtual') await this.#checkVirtual(key, { ...current, ...patchForUpdate(current, adjusted) });
    const added = current === undefined ? undefined : await this.#policy?.beforeUpdate(current, adjusted);
    const body = added === undefined ? adjusted : { ...(adjusted as Record<string, unknown>), ...added };
    await this.#run({ kind: 'update', key, body }, meta);
  }

  async delete(key: string, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw repositoryNotFound(key);
    this.#policy?.beforeDelete(key);
    const remaining = await this.#adjust?.membersAfterLeaving?.(key);
    if (remaining !== undefined) {
      // A federated repository is deleted on this site only, as in Artifactory: this site
      // first leaves the federation (a members edit without it, which the others receive and
      // keep the repository with), then deletes its own copy, which is not replicated.
      await this.#run({ kind: 'update', key, body: { members: remaining } }, meta);
      await this.#adjust?.leaveFederation?.(key);
    }
    await this.#run({ kind: 'delete', key }, meta);
  }

  /**
   * A virtual's members must exist and must not lead back to it (a cycle is refused here, at
   * configuration time); its default deployment repository must be a local member.
   */
  async #checkVirtual(key: string, config: Readonly<Record<string, unknown>>): Promise<void> {
    const invalid = (message: string) => new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', message);
    const all = new Map((await this.#reader.list()).map((repo) => [repo.key, repo as Readonly<Record<string, unknown>> & { key: string; rclass: string }]));
    const candidate = { ...config, key, rclass: 'virtual' };
    all.set(key, candidate);
    const members = Array.isArray(config.repositories) ? (config.repositories as string[]) : [];
    for (const member of members) {
      if (member === key) throw invalid(`virtual repository '${key}' cannot include itself`);
      if (!all.has(member)) throw invalid(`virtual repository '${key}' includes '${member}', which does not exist`);
    }
    // Seed: a virtual includes repositories of its own package type; a generic virtual any.
    const packageType = String(config.packageType ?? 'generic').toLowerCase();
    if (packageType !== 'generic') {
      for (const member of members) {
        const memberType = String(all.get(member)?.packageType ?? '').toLowerCase();
        if (memberType !== packageType) throw invalid(`virtual repository '${key}' (${packageType}) cannot include '${member}' (${memberType}): members must have the virtual's package type`);
      }
    }
    const cycle = findVirtualCycle(key, (k) => all.get(k));
    if (cycle !== undefined) throw invalid(`virtual repository '${key}' would form a cycle: ${cycle.join(' → ')}`);
    const target = config.defaultDeploymentRepo;
    if (typeof target === 'string' && target !== '') {
      const flattened = flattenVirtualMembers(key, (k) => all.get(k));
      const member = flattened.find((repo) => repo.key === target);
      if (member === undefined || !isStoringClass(member.rclass)) {
        throw invalid(`defaultDeploymentRepo '${target}' must be a local repository included in virtual repository '${key}'`);
      }
    }
  }

  async #run(command: RepositoryCommand, meta: EventMeta): Promise<void> {
    await this.#streams.execute(repositoryStream(command.key), meta, (state) => ({ events: decideRepository(command, state), result: undefined }));
    this.#onChange(command.key);
  }
}
