import { StrataError } from '@strata/core';
import type { DomainEvent, Properties } from '@strata/core';
import type { BlobInfo } from '@strata/store';
import { compilePathFilter } from '../core-slice.ts';
import type { PathFilter } from '../core-slice.ts';
import { repositoryNotFound } from '../repositories/repository-decider.ts';
import type { RepositoryStreamState } from '../repositories/repository-stream.ts';

/** Repository classes that hold their own artifacts and accept deploys. */
export const DEPLOYABLE_CLASSES: ReadonlySet<string> = new Set(['local', 'federated']);

const filterCache = new WeakMap<object, PathFilter>();

/** The include/exclude filter of a repository configuration (compiled once per config object). */
export function pathFilterOf(config: Readonly<Record<string, unknown>>): PathFilter {
  let filter = filterCache.get(config);
  if (filter === undefined) {
    filter = compilePathFilter(String(config.includesPattern ?? '**/*'), String(config.excludesPattern ?? ''));
    filterCache.set(config, filter);
  }
  return filter;
}

/** Throws 403 naming the pattern when the repository's include/exclude patterns refuse `path`. */
export function enforcePatterns(repo: string, config: Readonly<Record<string, unknown>>, path: string): void {
  if (path === '') return;
  const refusal = pathFilterOf(config).refusal(path);
  if (refusal !== undefined) {
    throw new StrataError('STRATA_ERR_PATTERN_FORBIDDEN', `path '${path}' in repository '${repo}' is refused by the include/exclude pattern '${refusal}'`);
  }
}

/** Throws unless `config` is a repository that takes a deploy at `path`. */
export function checkDeployable(repo: string, config: Readonly<Record<string, unknown>>, path: string): void {
  if (!DEPLOYABLE_CLASSES.has(String(config.rclass))) {
    throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `repository '${repo}' is ${String(config.rclass)}: deploy to a local repository`);
  }
  if (config.blackedOut === true) throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', `repository '${repo}' is blacked out`);
  if (path === '') throw new StrataError('STRATA_ERR_PATH_INVALID', 'deploy needs a file path below the repository');
  enforcePatterns(repo, config, path);
}

export interface DeployCommand {
  readonly repo: string;
  readonly path: string;
  /** The stored blob the artifact points at. */
  readonly blob: BlobInfo;
  readonly mimeType: string;
  readonly properties: Properties;
}

/** decide(deploy, state): one ArtifactDeployed, or why not. */
export function decideDeploy(command: DeployCommand, state: RepositoryStreamState): DomainEvent[] {
  if (state.config === undefined) throw repositoryNotFound(command.repo);
  checkDeployable(command.repo, state.config, command.path);
  const { blob } = command;
  return [
    {
      type: 'ArtifactDeployed',
      data: { path: command.path, sha256: blob.sha256, sha1: blob.sha1, md5: blob.md5, size: blob.size, mimeType: command.mimeType, properties: command.properties },
    },
  ];
}

export interface DeleteCommand {
  readonly repo: string;
  readonly path: string;
  /** What the artifact tree holds at `path` (looked up by the service). */
  readonly existing: 'file' | 'folder' | undefined;
}

/** decide(delete, state): ArtifactDeleted for a file, one FolderDeleted for a folder. */
export function decideDelete(command: DeleteCommand, state: RepositoryStreamState): DomainEvent[] {
  const { repo, path } = command;
  if (state.config === undefined) throw repositoryNotFound(repo);
  // A remote repository's cache can be deleted from (never deployed to).
  if (!DEPLOYABLE_CLASSES.has(String(state.config.rclass)) && state.config.rclass !== 'remote') {
    throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `repository '${repo}' is ${String(state.config.rclass)}: it holds no deletable content`);
  }
  if (command.existing === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not locate artifact '${repo}:${path}'`);
  return command.existing === 'file' ? [{ type: 'ArtifactDeleted', data: { path } }] : [{ type: 'FolderDeleted', data: { prefix: path } }];
}
