/**
 * Virtual repository resolution order (seeds/repository-types.txt, "Virtual Resolution
 * Order"; seeds/virtual-resolution-and-curation.txt): pure code over repository configs.
 *
 * - Members are flattened depth-first in configured order; a nested virtual contributes its
 *   own flattened members where it is listed; a repository reached twice is asked once (at
 *   its first place).
 * - Members with `priorityResolution: true` are asked before all others.
 * - Within each of those two parts: local (and federated) repositories first, then the
 *   caches of remote repositories, then the remote repositories themselves, each group in
 *   the flattened configured order.
 * - For a given path, a member whose include/exclude patterns refuse the path is not asked,
 *   and a nested virtual whose patterns refuse it contributes nothing.
 * - A cycle (a virtual that contains itself, directly or through others) is refused at
 *   configuration time (`findVirtualCycle`); resolution never loops even if one slipped in
 *   (a virtual already being expanded is skipped).
 */
import { compileRepoPatterns } from './ant-pattern.ts';
import type { RepoPatterns } from './ant-pattern.ts';

/** What resolution needs of a repository configuration (Artifactory JSON fields). */
export interface ResolvableRepository {
  readonly key: string;
  readonly rclass: string;
  readonly repositories?: readonly string[] | unknown;
  readonly includesPattern?: unknown;
  readonly excludesPattern?: unknown;
  readonly priorityResolution?: unknown;
}

/** How a member is asked: its stored content, a remote's cache only, or a remote (fetch on a miss). */
export const RESOLUTION_MODES = ['stored', 'cache', 'remote'] as const;
export type ResolutionMode = (typeof RESOLUTION_MODES)[number];

export interface ResolutionStep<R extends ResolvableRepository = ResolvableRepository> {
  readonly key: string;
  readonly mode: ResolutionMode;
  readonly repository: R;
}

/** Bounds the flattening: a virtual may not reach more repositories than this. */
export const virtualMembersMax = 1_000;
/** Bounds nesting depth. */
export const virtualNestingDepthMax = 32;

const patternCache = new WeakMap<object, RepoPatterns>();

function patternsOf(repository: ResolvableRepository): RepoPatterns {
  let patterns = patternCache.get(repository);
  if (patterns === undefined) {
    patterns = compileRepoPatterns({
      includesPattern: typeof repository.includesPattern === 'string' ? repository.includesPattern : '',
      excludesPattern: typeof repository.excludesPattern === 'string' ? repository.excludesPattern : '',
    });
    patternCache.set(repository, patterns);
  }
  return patterns;
}

/** Whether a repository's include/exclude patterns let `path` be asked of it ('' = any). */
export function repositoryAccepts(repository: ResolvableRepository, path: string): boolean {
  if (path === '') return true;
  return patternsOf(repository).matches(path);
}

function membersOf(repository: ResolvableRepository): readonly string[] {
  const members = repository.repositories;
  return Array.isArray(members) ? members.filter((member): member is string => typeof member === 'string') : [];
}

export function isStoringClass(rclass: string): boolean {
  return rclass === 'local' || rclass === 'federated';
}

/**
 * The flattened, de-duplicated non-virtual members of a virtual in configured order (no
 * grouping). With a path, members and nested virtuals whose patterns refuse it are left out.
 * Unknown member keys are skipped.
 */
export function flattenVirtualMembers<R extends ResolvableRepository>(
  virtualKey: string,
  lookup: (key: string) => R | undefined,
  path = '',
): R[] {
  const out: R[] = [];
  const seen = new Set<string>();
  const expanding = new Set<string>();
  const visit = (key: string, depth: number): void => {
    if (out.length >= virtualMembersMax || depth > virtualNestingDepthMax) return;
    const repository = lookup(key);
    if (repository === undefined) return;
    if (repository.rclass === 'virtual') {
      if (expanding.has(key)) return;
      if (depth > 0 && !repositoryAccepts(repository, path)) return;
      expanding.add(key);
      for (const member of membersOf(repository)) visit(member, depth + 1);
      expanding.delete(key);
      return;
    }
    if (seen.has(key)) return;
    seen.add(key);
    if (!repositoryAccepts(repository, path)) return;
    out.push(repository);
  };
  visit(virtualKey, 0);
  return out;
}

/**
 * The ordered steps resolving `path` through a virtual: priority members first, then
 * locals, remote caches, remotes (see the file comment). `path` '' gives the order for any path.
 */
export function virtualResolutionSteps<R extends ResolvableRepository>(
  virtualKey: string,
  lookup: (key: string) => R | undefined,
  path = '',
): ResolutionStep<R>[] {
  const members = flattenVirtualMembers(virtualKey, lookup, path);
  const steps: ResolutionStep<R>[] = [];
  for (const priority of [true, false]) {
    const part = members.filter((member) => (member.priorityResolution === true) === priority);
    for (const member of part) if (isStoringClass(member.rclass)) steps.push({ key: member.key, mode: 'stored', repository: member });
    for (const member of part) if (member.rclass === 'remote') steps.push({ key: member.key, mode: 'cache', repository: member });
    for (const member of part) if (member.rclass === 'remote') steps.push({ key: member.key, mode: 'remote', repository: member });
  }
  return steps;
}

/** The effective order of repository keys (each once): what GET /api/repositories/{virtual} shows. */
export function virtualResolutionOrder(virtualKey: string, lookup: (key: string) => ResolvableRepository | undefined): string[] {
  const order: string[] = [];
  for (const step of virtualResolutionSteps(virtualKey, lookup)) if (!order.includes(step.key)) order.push(step.key);
  return order;
}

/**
 * A cycle through `virtualKey` if its members (as `lookup` sees them, with the candidate
 * configuration in place) lead back to it: the keys along the cycle, first = last; else undefined.
 */
export function findVirtualCycle(virtualKey: string, lookup: (key: string) => ResolvableRepository | undefined): string[] | undefined {
  const onPath: string[] = [];
  const done = new Set<string>();
  const visit = (key: string): string[] | undefined => {
    const at = onPath.indexOf(key);
    if (at >= 0) return [...onPath.slice(at), key];
    if (done.has(key) || onPath.length > virtualNestingDepthMax * 4) return undefined;
    const repository = lookup(key);
    if (repository === undefined || repository.rclass !== 'virtual') return undefined;
    onPath.push(key);
    for (const member of membersOf(repository)) {
      const cycle = visit(member);
      if (cycle !== undefined) return cycle;
    }
    onPath.pop();
    done.add(key);
    return undefined;
  };
  return visit(virtualKey);
}
