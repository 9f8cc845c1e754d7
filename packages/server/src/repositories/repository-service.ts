import { isValidRepositoryKey, repositoryKeyIdentity, repositoryStream, StrataError } from '@strata/core';
import type { EventMeta } from '@strata/core';
import type { RepositoryReader } from '../ports.ts';
import type { StreamWriter } from '../stream-writer.ts';
import { configForCreate, patchForUpdate } from './repository-config.ts';
import type { RepositoryStreamState } from './repository-stream.ts';

/** Creates, updates and deletes repository configurations: each change one event. */
export class RepositoryService {
  readonly #streams: StreamWriter<RepositoryStreamState>;
  readonly #reader: RepositoryReader;
  /** Creates are serialised so that two keys differing only in case cannot both be created here. */
  #creating: Promise<unknown> = Promise.resolve();

  readonly #onChange: (key: string) => void;

  constructor(streams: StreamWriter<RepositoryStreamState>, reader: RepositoryReader, onChange: (key: string) => void) {
    this.#streams = streams;
    this.#reader = reader;
    this.#onChange = onChange;
  }

  async create(key: string, body: unknown, meta: EventMeta): Promise<void> {
    const config = configForCreate(key, body);
    const run = this.#creating.then(async () => {
      const identity = repositoryKeyIdentity(key);
      const clash = (await this.#reader.list()).find((repo) => repositoryKeyIdentity(repo.key) === identity);
      if (clash !== undefined) throw new StrataError('STRATA_ERR_REPO_EXISTS', `Case insensitive repository key already exists: '${clash.key}'`);
      await this.#streams.execute(repositoryStream(key), meta, (state) => {
        if (state.config !== undefined) throw new StrataError('STRATA_ERR_REPO_EXISTS', `repository '${key}' already exists`);
        return { events: [{ type: 'RepositoryCreated', data: { key, config } }], result: undefined };
      });
    });
    this.#creating = run.catch(() => undefined);
    await run;
    this.#onChange(key);
  }

  async update(key: string, body: unknown, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw notFound(key);
    await this.#streams.execute(repositoryStream(key), meta, (state) => {
      if (state.config === undefined) throw notFound(key);
      const patch = patchForUpdate(state.config, body);
      if (Object.keys(patch).length === 0) return { events: [], result: undefined };
      return { events: [{ type: 'RepositoryConfigChanged', data: { key, patch } }], result: undefined };
    });
    this.#onChange(key);
  }

  async delete(key: string, meta: EventMeta): Promise<void> {
    if (!isValidRepositoryKey(key)) throw notFound(key);
    await this.#streams.execute(repositoryStream(key), meta, (state) => {
      if (state.config === undefined) throw notFound(key);
      return { events: [{ type: 'RepositoryDeleted', data: { key } }], result: undefined };
    });
    this.#onChange(key);
  }
}

export function notFound(key: string): StrataError {
  return new StrataError('STRATA_ERR_REPO_NOT_FOUND', `Repository '${key}' not found`);
}
