import { isValidRepositoryKey, repositoryKeyIdentity, repositoryStream, StrataError } from '@strata/core';
import type { EventMeta } from '@strata/core';
import type { RepositoryReader } from '../ports.ts';
import type { StreamWriter } from '../stream-writer.ts';
import { configForCreate } from './repository-config.ts';
import { decideRepository, repositoryNotFound } from './repository-decider.ts';
import type { RepositoryCommand } from './repository-decider.ts';
import type { RepositoryStreamState } from './repository-stream.ts';

/** Creates, updates and deletes repository configurations: each change one event. */
export class RepositoryService {
  readonly #streams: StreamWriter<RepositoryStreamState>;
  readonly #reader: RepositoryReader;
  readonly #onChange: (key: string) => void;
  /** Creates are serialised so that two keys differing only in case cannot both be created here. */
  #creating: Promise<unknown> = Promise.resolve();

  constructor(streams: StreamWriter<RepositoryStreamState>, reader: RepositoryReader, onChange: (key: string) => void) {
    this.#streams = streams;
    this.#reader = reader;
    this.#onChange = onChange;
  }

  async create(key: string, body: unknown, meta: EventMeta): Promise<void> {
    // Validate before queueing, so a bad body never waits behind other creates.
    configForCreate(key, body);
    const run = this.#creating.then(async () => {
      const identity = repositoryKeyIdentity(key);
      const clash = (await this.#reader.list()).find((repo) => repositoryKeyIdentity(repo.key) === identity);
      if (clash !== undefined) throw new StrataError('STRATA_ERR_REPO_EXISTS', `Case insensitive repository key already exists: '${clash.key}'`);
      await this.#run({ kind: 'create', key, body }, meta);
    });
    this.#creating = run.catch(() => undefined);
    await run;
  }

  async update(key: string, body: unknown, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw repositoryNotFound(key);
    await this.#run({ kind: 'update', key, body }, meta);
  }

  async delete(key: string, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw repositoryNotFound(key);
    await this.#run({ kind: 'delete', key }, meta);
  }

  async #run(command: RepositoryCommand, meta: EventMeta): Promise<void> {
    await this.#streams.execute(repositoryStream(command.key), meta, (state) => ({ events: decideRepository(command, state), result: undefined }));
    this.#onChange(command.key);
  }
}
