import type { RecordedEvent } from '@strata/core';
import type { StreamFold } from '../stream-writer.ts';

/**
 * The decider state of a `repo-<key>` stream: the repository's configuration, as far as
 * write decisions need it (does it exist, which class, which patterns). Artifact content is
 * not folded here — it lives in the artifact-tree projection.
 */
export interface RepositoryStreamState {
  /** Undefined when the repository was never created or has been deleted. */
  readonly config: Readonly<Record<string, unknown>> | undefined;
}

export const repositoryStreamFold: StreamFold<RepositoryStreamState> = {
  initialState: () => ({ config: undefined }),
  evolve(state, event: RecordedEvent) {
    switch (event.type) {
      case 'RepositoryCreated':
        return { config: { ...event.data.config, key: event.data.key } };
      case 'RepositoryConfigChanged':
        return state.config === undefined ? state : { config: { ...state.config, ...event.data.patch } };
      case 'RepositoryDeleted':
        return { config: undefined };
      default:
        return state;
    }
  },
};
