/**
 * fast-check arbitraries for artifact tree and repository configuration events. Alphabets
 * are tiny on purpose: paths, prefixes, keys, origins and stamps collide often, so folder
 * deletes overlap deploys, properties race, and stamps tie (ties are broken by origin, then
 * by event id, then tombstones win), which is where merge bugs live.
 */
import fc from 'fast-check';
import type { DomainEvent, RecordedEvent } from '@strata/core';

export const TEST_ORIGINS = ['site-a', 'site-b', 'site-c'] as const;
export const TEST_REPOS = ['libs', 'Libs2'] as const;
export const TEST_SEGMENTS = ['a', 'b', 'ab'] as const;
export const TEST_PROPERTY_KEYS = ['k1', 'k2', 'k3'] as const;
export const TEST_ACTORS = ['alice', 'bob'] as const;

/** A file path of 1–3 segments from a 3-letter alphabet ('a/b', 'ab', 'a/ab/a', …). */
export const arbitraryPath = fc
  .array(fc.constantFrom(...TEST_SEGMENTS), { minLength: 1, maxLength: 3 })
  .map((segments) => segments.join('/'));

/** A folder prefix of 0–2 segments ('' is the repository root). */
export const arbitraryPrefix = fc
  .array(fc.constantFrom(...TEST_SEGMENTS), { minLength: 0, maxLength: 2 })
  .map((segments) => segments.join('/'));

export interface TestStamp {
  readonly wall: number;
  readonly logical: number;
  readonly origin: string;
}

/** Stamps from a small space so that ties and near-ties are frequent. */
export const arbitraryStamp: fc.Arbitrary<TestStamp> = fc.record({
  wall: fc.integer({ min: 1_000, max: 1_008 }),
  logical: fc.integer({ min: 0, max: 2 }),
  origin: fc.constantFrom(...TEST_ORIGINS),
});

export const arbitraryPropertyValues = fc.array(fc.constantFrom('x', 'y', 'z'), { minLength: 0, maxLength: 2 });

export const arbitraryProperties = fc
  .uniqueArray(fc.constantFrom(...TEST_PROPERTY_KEYS), { maxLength: 2 })
  .chain((keys) =>
    fc.tuple(...keys.map(() => arbitraryPropertyValues)).map((values) => {
      const properties: Record<string, string[]> = {};
      keys.forEach((key, index) => (properties[key] = values[index] ?? []));
      return properties;
    }),
  );

const arbitraryChecksum = fc.constantFrom('1', '2', '3').map((digit) => ({
  sha256: digit.repeat(64),
  sha1: digit.repeat(40),
  md5: digit.repeat(32),
}));

/** One artifact-tree domain event (weights favour deploys, then deletes and properties). */
export const arbitraryArtifactDomainEvent: fc.Arbitrary<DomainEvent> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({ path: arbitraryPath, checksum: arbitraryChecksum, size: fc.integer({ min: 0, max: 50 }), properties: arbitraryProperties })
      .map(({ path, checksum, size, properties }) => ({
        type: 'ArtifactDeployed' as const,
        data: { path, ...checksum, size, mimeType: 'application/octet-stream', properties },
      })),
  },
  {
    weight: 1,
    arbitrary: fc.record({ path: arbitraryPath, checksum: arbitraryChecksum }).map(({ path, checksum }) => ({
      type: 'RemoteArtifactCached' as const,
      data: { path, ...checksum, size: 7, mimeType: 'application/java-archive', properties: {}, remoteUrl: `https://remote.example/${path}` },
    })),
  },
  { weight: 2, arbitrary: arbitraryPath.map((path) => ({ type: 'ArtifactDeleted' as const, data: { path } })) },
  { weight: 2, arbitrary: arbitraryPrefix.map((prefix) => ({ type: 'FolderDeleted' as const, data: { prefix } })) },
  {
    weight: 3,
    arbitrary: fc
      .record({ path: fc.oneof(arbitraryPath, arbitraryPrefix), properties: arbitraryProperties })
      .map(({ path, properties }) => ({ type: 'PropertiesSet' as const, data: { path, properties } })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ path: arbitraryPath, keys: fc.uniqueArray(fc.constantFrom(...TEST_PROPERTY_KEYS), { minLength: 1, maxLength: 2 }) })
      .map(({ path, keys }) => ({ type: 'PropertiesRemoved' as const, data: { path, keys } })),
  },
);

export interface ArbitraryEventsOptions {
  readonly minLength?: number;
  readonly maxLength?: number;
  /** Also generate RepositoryDeleted (which tombstones the whole tree). Default true. */
  readonly repositoryDeletes?: boolean;
}

function recorded(index: number, repo: string, stamp: TestStamp, actor: string | undefined, event: DomainEvent, idPrefix: string): RecordedEvent {
  return {
    ...event,
    id: `${idPrefix}${String(index).padStart(4, '0')}`,
    stream: `repo-${repo}`,
    revision: index,
    position: BigInt(index),
    origin: stamp.origin,
    originSeq: index + 1,
    hlc: { wall: stamp.wall, logical: stamp.logical },
    meta: actor === undefined ? {} : { actor },
  } as RecordedEvent;
}

/**
 * A set of distinct recorded events (unique ids) over the test repositories. Revisions and
 * positions are just the generation index: the models must not look at them.
 */
export function arbitraryArtifactEvents(options: ArbitraryEventsOptions = {}): fc.Arbitrary<RecordedEvent[]> {
  const treeEvent: fc.Arbitrary<DomainEvent | 'RepositoryDeleted'> =
    options.repositoryDeletes === false
      ? arbitraryArtifactDomainEvent
      : fc.oneof(
          { weight: 20, arbitrary: arbitraryArtifactDomainEvent },
          { weight: 1, arbitrary: fc.constant('RepositoryDeleted' as const) },
        );
  const item = fc.record({
    repo: fc.constantFrom(...TEST_REPOS),
    stamp: arbitraryStamp,
    actor: fc.option(fc.constantFrom(...TEST_ACTORS), { nil: undefined }),
    event: treeEvent,
  });
  return fc.array(item, { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 40 }).map((items) =>
    items.map((entry, index) => {
      const event: DomainEvent =
        entry.event === 'RepositoryDeleted' ? { type: 'RepositoryDeleted', data: { key: entry.repo } } : entry.event;
      return recorded(index, entry.repo, entry.stamp, entry.actor, event, 'ev-');
    }),
  );
}

/** A permutation of `events` with up to `duplicatesMax` of them delivered again at random places. */
export function arbitraryDelivery<T>(events: readonly T[], duplicatesMax = 5): fc.Arbitrary<T[]> {
  const count = events.length;
  return fc
    .tuple(
      fc.shuffledSubarray([...events], { minLength: count, maxLength: count }),
      fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: count === 0 ? 0 : duplicatesMax }),
    )
    .map(([permutation, duplicates]) => {
      const delivery = [...permutation];
      for (const [which, where] of duplicates) {
        delivery.splice(where % (delivery.length + 1), 0, events[which % count]!);
      }
      return delivery;
    });
}

/** A set of events and one delivery of it (permuted, with duplicates). */
export function arbitraryEventsAndDelivery(options: ArbitraryEventsOptions = {}): fc.Arbitrary<{ events: RecordedEvent[]; delivery: RecordedEvent[] }> {
  return arbitraryArtifactEvents(options).chain((events) => arbitraryDelivery(events).map((delivery) => ({ events, delivery })));
}

// ---- repository configuration -----------------------------------------------------------

export const TEST_CONFIG_FIELDS = ['description', 'includesPattern', 'excludesPattern', 'repositories', 'rclass'] as const;

const arbitraryConfigValue = fc.oneof(
  fc.constantFrom('**/*', 'docs', ''),
  fc.array(fc.constantFrom('libs', 'remote'), { maxLength: 2 }),
  fc.constant(null),
  fc.record({ b: fc.integer({ min: 0, max: 3 }), a: fc.boolean() }),
);

const arbitraryConfigFields = fc
  .uniqueArray(fc.constantFrom(...TEST_CONFIG_FIELDS), { minLength: 1, maxLength: 3 })
  .chain((fields) =>
    fc.tuple(...fields.map((field) => (field === 'rclass' ? fc.constantFrom('local', 'remote', 'virtual') : arbitraryConfigValue))).map((values) => {
      const config: Record<string, unknown> = {};
      fields.forEach((field, index) => (config[field] = values[index]));
      return config;
    }),
  );

export const arbitraryRepositoryDomainEvent = (key: string): fc.Arbitrary<DomainEvent> =>
  fc.oneof(
    { weight: 2, arbitrary: arbitraryConfigFields.map((config) => ({ type: 'RepositoryCreated' as const, data: { key, config } })) },
    { weight: 3, arbitrary: arbitraryConfigFields.map((patch) => ({ type: 'RepositoryConfigChanged' as const, data: { key, patch } })) },
    { weight: 1, arbitrary: fc.constant({ type: 'RepositoryDeleted' as const, data: { key } }) },
  );

/** A set of distinct repository configuration events over the test keys. */
export function arbitraryRepositoryEvents(options: { maxLength?: number } = {}): fc.Arbitrary<RecordedEvent[]> {
  const item = fc.constantFrom(...TEST_REPOS).chain((repo) =>
    fc.record({
      repo: fc.constant(repo),
      stamp: arbitraryStamp,
      event: arbitraryRepositoryDomainEvent(repo),
    }),
  );
  return fc
    .array(item, { maxLength: options.maxLength ?? 25 })
    .map((items) => items.map((entry, index) => recorded(index, entry.repo, entry.stamp, 'admin', entry.event, 'cfg-')));
}
