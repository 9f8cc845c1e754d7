import { StrataError } from '@strata/core';
import type { DomainEvent } from '@strata/core';
import { configForCreate, patchForUpdate } from './repository-config.ts';
import type { RepositoryStreamState } from './repository-stream.ts';

/** Commands on a repository's configuration (the HTTP body is validated here, purely). */
export type RepositoryCommand =
  | { readonly kind: 'create'; readonly key: string; readonly body: unknown }
  | { readonly kind: 'update'; readonly key: string; readonly body: unknown }
  | { readonly kind: 'delete'; readonly key: string };

export function repositoryNotFound(key: string): StrataError {
  return new StrataError('STRATA_ERR_REPO_NOT_FOUND', `Repository '${key}' not found`);
}

/**
 * decide(command, state) → events for the configuration of one repository stream. Pure:
 * the case-insensitive uniqueness across repositories is checked by the service, which
 * alone can see other streams.
 */
export function decideRepository(command: RepositoryCommand, state: RepositoryStreamState): DomainEvent[] {
  switch (command.kind) {
    case 'create': {
      const config = configForCreate(command.key, command.body);
      if (state.config !== undefined) throw new StrataError('STRATA_ERR_REPO_EXISTS', `repository '${command.key}' already exists`);
      return [{ type: 'RepositoryCreated', data: { key: command.key, config } }];
    }
    case 'update': {
      if (state.config === undefined) throw repositoryNotFound(command.key);
      const patch = patchForUpdate(state.config, command.body);
      return Object.keys(patch).length === 0 ? [] : [{ type: 'RepositoryConfigChanged', data: { key: command.key, patch } }];
    }
    case 'delete':
      if (state.config === undefined) throw repositoryNotFound(command.key);
      return [{ type: 'RepositoryDeleted', data: { key: command.key } }];
  }
}
