import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findVirtualCycle, flattenVirtualMembers, virtualResolutionOrder, virtualResolutionSteps } from '../src/index.ts';
import type { ResolvableRepository } from '../src/index.ts';

function world(...repos: ResolvableRepository[]) {
  const byKey = new Map(repos.map((repo) => [repo.key, repo]));
  return (key: string) => byKey.get(key);
}
const local = (key: string, extra: Partial<ResolvableRepository> = {}): ResolvableRepository => ({ key, rclass: 'local', ...extra });
const remote = (key: string, extra: Partial<ResolvableRepository> = {}): ResolvableRepository => ({ key, rclass: 'remote', ...extra });
const virtual = (key: string, repositories: string[], extra: Partial<ResolvableRepository> = {}): ResolvableRepository => ({ key, rclass: 'virtual', repositories, ...extra });
const steps = (lookup: (key: string) => ResolvableRepository | undefined, key: string, path = '') =>
  virtualResolutionSteps(key, lookup, path).map((step) => `${step.mode}:${step.key}`);

describe('virtual resolution order (seeds/repository-types.txt)', () => {
  it('asks local repositories first, then remote caches, then remotes, each group in configured order', () => {
    const lookup = world(remote('r1'), local('l1'), remote('r2'), local('l2'), virtual('v', ['r1', 'l1', 'r2', 'l2']));
    expect(steps(lookup, 'v')).toEqual(['stored:l1', 'stored:l2', 'cache:r1', 'cache:r2', 'remote:r1', 'remote:r2']);
    expect(virtualResolutionOrder('v', lookup)).toEqual(['l1', 'l2', 'r1', 'r2']);
  });

  it('flattens nested virtuals where they are listed and asks a repository reached twice once', () => {
    const lookup = world(local('a'), local('b'), local('c'), remote('r'), virtual('inner', ['b', 'r', 'a']), virtual('outer', ['a', 'inner', 'c']));
    expect(flattenVirtualMembers('outer', lookup).map((repo) => repo.key)).toEqual(['a', 'b', 'r', 'c']);
    expect(steps(lookup, 'outer')).toEqual(['stored:a', 'stored:b', 'stored:c', 'cache:r', 'remote:r']);
  });

  it('puts members with priorityResolution before all others', () => {
    const lookup = world(local('l1'), remote('safe', { priorityResolution: true }), local('l2', { priorityResolution: true }), virtual('v', ['l1', 'safe', 'l2']));
    expect(steps(lookup, 'v')).toEqual(['stored:l2', 'cache:safe', 'remote:safe', 'stored:l1']);
  });

  it('follows the seed include/exclude example: org/apache and com/acme, minus com/acme/exp-project', () => {
    const patterns = { includesPattern: 'org/apache/**,com/acme/**', excludesPattern: 'com/acme/exp-project/**' };
    const lookup = world(local('any'), remote('picky', patterns), virtual('v', ['picky', 'any']));
    expect(steps(lookup, 'v', 'org/apache/maven/parent/1/1.pom')).toEqual(['stored:any', 'cache:picky', 'remote:picky']);
    expect(steps(lookup, 'v', 'com/acme/project-x/core/1.0/nit-1.0.jar')).toEqual(['stored:any', 'cache:picky', 'remote:picky']);
    expect(steps(lookup, 'v', 'com/acme/exp-project/core/1.1/san-1.1.jar')).toEqual(['stored:any']);
  });

  it('leaves out a nested virtual whose patterns refuse the path, with all its members', () => {
    const lookup = world(local('a'), local('b'), virtual('internal', ['b'], { excludesPattern: 'com/acme/**' }), virtual('v', ['a', 'internal']));
    expect(steps(lookup, 'v', 'com/acme/x.jar')).toEqual(['stored:a']);
    expect(steps(lookup, 'v', 'org/x.jar')).toEqual(['stored:a', 'stored:b']);
  });

  it('skips unknown members', () => {
    expect(steps(world(local('a'), virtual('v', ['gone', 'a'])), 'v')).toEqual(['stored:a']);
  });

  it('finds cycles, direct and through other virtuals, and resolution never loops over one', () => {
    const lookup = world(local('a'), virtual('v1', ['a', 'v2']), virtual('v2', ['v3']), virtual('v3', ['v1']));
    expect(findVirtualCycle('v1', lookup)).toEqual(['v1', 'v2', 'v3', 'v1']);
    expect(findVirtualCycle('v2', world(virtual('v2', ['v2'])))).toEqual(['v2', 'v2']);
    expect(findVirtualCycle('v', world(local('a'), virtual('w', ['a']), virtual('v', ['w', 'w'])))).toBeUndefined();
    expect(steps(lookup, 'v1')).toEqual(['stored:a']);
  });

  it('property: steps are grouped (priority, then stored < cache < remote), unique per mode, in first-seen order, for any member graph', () => {
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    const arbitraryRepo = (key: string) =>
      fc.oneof(
        fc.record({ rclass: fc.constantFrom('local', 'federated', 'remote'), priorityResolution: fc.boolean() }).map((r) => ({ key, ...r }) as ResolvableRepository),
        fc.array(fc.constantFrom(...keys, 'missing'), { maxLength: 5 }).map((repositories) => virtual(key, repositories)),
      );
    fc.assert(
      fc.property(fc.tuple(...keys.map(arbitraryRepo)), fc.constantFrom(...keys), (repos, start) => {
        const lookup = world(...repos);
        const result = virtualResolutionSteps(start, lookup);
        const rank = (step: (typeof result)[number]) => (step.repository.priorityResolution === true ? 0 : 3) + ['stored', 'cache', 'remote'].indexOf(step.mode);
        for (let i = 1; i < result.length; i++) expect(rank(result[i - 1]!)).toBeLessThanOrEqual(rank(result[i]!));
        const labels = result.map((step) => `${step.mode}:${step.key}`);
        expect(new Set(labels).size).toBe(labels.length);
        for (const step of result) expect(step.repository.rclass).not.toBe('virtual');
        const flat = flattenVirtualMembers(start, lookup).map((repo) => repo.key);
        for (const mode of ['stored', 'cache', 'remote']) {
          const inMode = result.filter((step) => step.mode === mode && step.repository.priorityResolution !== true).map((step) => step.key);
          expect(inMode).toEqual(flat.filter((key) => inMode.includes(key)));
        }
        const cycle = findVirtualCycle(start, lookup);
        if (cycle !== undefined) {
          expect(cycle[0]).toBe(cycle[cycle.length - 1]);
          for (let i = 0; i + 1 < cycle.length; i++) expect((lookup(cycle[i]!)?.repositories as string[]).includes(cycle[i + 1]!)).toBe(true);
        }
      }),
    );
  });
});
