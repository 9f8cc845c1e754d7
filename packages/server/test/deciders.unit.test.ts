import type { DomainEvent, RecordedEvent } from '@strata/core';
import { isStrataError } from '@strata/core';
import { describe, expect, it } from 'vitest';
import { decideDelete, decideDeploy } from '../src/artifacts/artifact-decider.ts';
import { decideRepository } from '../src/repositories/repository-decider.ts';
import { repositoryStreamFold } from '../src/repositories/repository-stream.ts';
import type { RepositoryStreamState } from '../src/repositories/repository-stream.ts';

/** Given these events (folded in order) … */
function given(...events: DomainEvent[]): RepositoryStreamState {
  return events.reduce(
    (state, event, revision) =>
      repositoryStreamFold.evolve(state, { ...event, id: `e${revision}`, stream: 'repo-r', revision, position: BigInt(revision), origin: 'site', originSeq: revision + 1, hlc: { wall: revision, logical: 0 }, meta: {} } as RecordedEvent),
    repositoryStreamFold.initialState(),
  );
}

function refusal(run: () => unknown): string | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    return isStrataError(error) ? error.code : String(error);
  }
}

const created = (config: Record<string, unknown> = {}): DomainEvent => ({ type: 'RepositoryCreated', data: { key: 'r', config: { key: 'r', rclass: 'local', packageType: 'generic', includesPattern: '**/*', excludesPattern: '', ...config } } });
const blob = { sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 3 };

describe('repository decider', () => {
  it('given no events, when created, then RepositoryCreated with defaults', () => {
    const [event] = decideRepository({ kind: 'create', key: 'r', body: { rclass: 'local' } }, given());
    expect(event).toMatchObject({ type: 'RepositoryCreated', data: { key: 'r', config: { rclass: 'local', packageType: 'generic', includesPattern: '**/*' } } });
  });

  it('given a repository, when created again, then STRATA_ERR_REPO_EXISTS', () => {
    expect(refusal(() => decideRepository({ kind: 'create', key: 'r', body: { rclass: 'local' } }, given(created())))).toBe('STRATA_ERR_REPO_EXISTS');
  });

  it('given a deleted repository, when created again, then it is created anew', () => {
    const state = given(created(), { type: 'RepositoryDeleted', data: { key: 'r' } });
    expect(decideRepository({ kind: 'create', key: 'r', body: { rclass: 'local' } }, state).map((e) => e.type)).toEqual(['RepositoryCreated']);
  });

  it('given a repository, when updated with the same values, then no event; with new ones, then only the changed fields', () => {
    const state = given(created({ description: 'x' }));
    expect(decideRepository({ kind: 'update', key: 'r', body: { description: 'x' } }, state)).toEqual([]);
    expect(decideRepository({ kind: 'update', key: 'r', body: { description: 'y', notes: 'n' } }, state)).toEqual([{ type: 'RepositoryConfigChanged', data: { key: 'r', patch: { description: 'y', notes: 'n' } } }]);
  });

  it('given a repository, when its package type or class is changed, then STRATA_ERR_REPO_CONFIG_INVALID', () => {
    expect(refusal(() => decideRepository({ kind: 'update', key: 'r', body: { packageType: 'npm' } }, given(created())))).toBe('STRATA_ERR_REPO_CONFIG_INVALID');
    expect(refusal(() => decideRepository({ kind: 'update', key: 'r', body: { rclass: 'remote' } }, given(created())))).toBe('STRATA_ERR_REPO_CONFIG_INVALID');
  });

  it('given no repository, when updated or deleted, then STRATA_ERR_REPO_NOT_FOUND', () => {
    expect(refusal(() => decideRepository({ kind: 'update', key: 'r', body: {} }, given()))).toBe('STRATA_ERR_REPO_NOT_FOUND');
    expect(refusal(() => decideRepository({ kind: 'delete', key: 'r' }, given()))).toBe('STRATA_ERR_REPO_NOT_FOUND');
  });
});

describe('artifact decider', () => {
  it('given a local repository, when a file is deployed, then ArtifactDeployed with its blob and properties', () => {
    const events = decideDeploy({ repo: 'r', path: 'a/b.jar', blob, mimeType: 'application/java-archive', properties: { k: ['v'] } }, given(created()));
    expect(events).toEqual([{ type: 'ArtifactDeployed', data: { path: 'a/b.jar', ...blob, mimeType: 'application/java-archive', properties: { k: ['v'] } } }]);
  });

  it('given an exclude pattern, when a deploy matches it, then STRATA_ERR_PATTERN_FORBIDDEN', () => {
    const state = given(created({ excludesPattern: 'secret/**' }));
    expect(refusal(() => decideDeploy({ repo: 'r', path: 'secret/x', blob, mimeType: 'x', properties: {} }, state))).toBe('STRATA_ERR_PATTERN_FORBIDDEN');
  });

  it('given a pattern change after creation, when a deploy no longer matches, then it is refused', () => {
    const state = given(created(), { type: 'RepositoryConfigChanged', data: { key: 'r', patch: { includesPattern: 'org/**' } } });
    expect(refusal(() => decideDeploy({ repo: 'r', path: 'com/x', blob, mimeType: 'x', properties: {} }, state))).toBe('STRATA_ERR_PATTERN_FORBIDDEN');
  });

  it('given a virtual repository or none, when deployed to, then refused', () => {
    expect(refusal(() => decideDeploy({ repo: 'r', path: 'x', blob, mimeType: 'x', properties: {} }, given(created({ rclass: 'virtual' }))))).toBe('STRATA_ERR_HTTP_BAD_REQUEST');
    expect(refusal(() => decideDeploy({ repo: 'r', path: 'x', blob, mimeType: 'x', properties: {} }, given()))).toBe('STRATA_ERR_REPO_NOT_FOUND');
  });

  it('given a file or a folder, when deleted, then ArtifactDeleted or one FolderDeleted; given nothing, then not found', () => {
    const state = given(created());
    expect(decideDelete({ repo: 'r', path: 'a/b.jar', existing: 'file' }, state)).toEqual([{ type: 'ArtifactDeleted', data: { path: 'a/b.jar' } }]);
    expect(decideDelete({ repo: 'r', path: 'a', existing: 'folder' }, state)).toEqual([{ type: 'FolderDeleted', data: { prefix: 'a' } }]);
    expect(refusal(() => decideDelete({ repo: 'r', path: 'a', existing: undefined }, state))).toBe('STRATA_ERR_ARTIFACT_NOT_FOUND');
  });
});
