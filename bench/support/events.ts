/**
 * Deterministic, Maven-like traffic for the benchmarks: ten repositories, then mostly
 * deploys, some property edits, deletes and folder deletes over a few hundred thousand paths.
 */
import type { NewEvent } from '@strata/core';

export interface BenchEvent {
  readonly stream: string;
  readonly event: NewEvent;
}

export const BENCH_REPOSITORIES = Array.from({ length: 10 }, (_, index) => `libs-${index}`);

/** mulberry32: the same sequence on every machine. */
function random32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function repositoryCreations(idPrefix = ''): BenchEvent[] {
  return BENCH_REPOSITORIES.map((key) => ({
    stream: `repo-${key}`,
    event: {
      id: `${idPrefix}create-${key}`,
      origin: 'site-a',
      originSeq: 1,
      hlc: { wall: 1_700_000_000_000, logical: 0 },
      meta: { actor: 'admin' },
      type: 'RepositoryCreated',
      data: { key, config: { rclass: 'local', packageType: 'maven', description: key } },
    } as NewEvent,
  }));
}

/** `count` events after the repository creations (which are not counted), ids `${idPrefix}ev-<n>`. */
export function* artifactTraffic(count: number, options: { seed?: number; idPrefix?: string } = {}): Generator<BenchEvent> {
  const random = random32(options.seed ?? 42);
  const idPrefix = options.idPrefix ?? '';
  for (let index = 0; index < count; index++) {
    const repo = BENCH_REPOSITORIES[Math.floor(random() * BENCH_REPOSITORIES.length)]!;
    const group = `org/group${Math.floor(random() * 200)}`;
    const artifact = `artifact${Math.floor(random() * 50)}`;
    const version = `${Math.floor(random() * 20)}.0`;
    const path = `${group}/${artifact}/${version}/${artifact}-${version}.${random() < 0.5 ? 'jar' : 'pom'}`;
    const roll = random();
    const base = {
      id: `${idPrefix}ev-${index}`,
      origin: random() < 0.5 ? 'site-a' : 'site-b',
      originSeq: index + 2,
      hlc: { wall: 1_700_000_000_000 + index, logical: 0 },
      meta: { actor: random() < 0.5 ? 'alice' : 'bob' },
    };
    let event: NewEvent;
    if (roll < 0.8) {
      event = {
        ...base,
        type: 'ArtifactDeployed',
        data: {
          path,
          sha256: index.toString(16).padStart(64, '0'),
          sha1: index.toString(16).padStart(40, '0'),
          md5: index.toString(16).padStart(32, '0'),
          size: 1000 + (index % 5000),
          mimeType: 'application/java-archive',
          properties: random() < 0.3 ? { 'build.number': [String(index)] } : {},
        },
      } as NewEvent;
    } else if (roll < 0.9) {
      event = { ...base, type: 'PropertiesSet', data: { path, properties: { qa: [random() < 0.5 ? 'passed' : 'failed'] } } } as NewEvent;
    } else if (roll < 0.97) {
      event = { ...base, type: 'ArtifactDeleted', data: { path } } as NewEvent;
    } else if (roll < 0.995) {
      event = { ...base, type: 'PropertiesRemoved', data: { path, keys: ['qa'] } } as NewEvent;
    } else {
      event = { ...base, type: 'FolderDeleted', data: { prefix: `${group}/${artifact}/${version}` } } as NewEvent;
    }
    yield { stream: `repo-${repo}`, event };
  }
}
