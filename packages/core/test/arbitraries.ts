/**
 * fast-check arbitraries for core values, shared by every package's tests. Everything they
 * generate is valid (passes event-validation) and survives the codec unchanged.
 */
import fc from 'fast-check';
import {
  EVENT_TYPES,
  eventPositionMax,
  hlcLogicalMax,
  isValidRepositoryKey,
  repositoryStream,
  SYSTEM_STREAM,
  type DomainEventMap,
  type EventMeta,
  type EventType,
  type HlcStamp,
  type NewEvent,
  type Properties,
  type RecordedEvent,
} from '../src/index.ts';

const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;

/** Characters that make paths interesting: wildcards, dots, spaces, non-ASCII, astral. */
const PATH_CHARACTERS = [...'abcxyzABC019.-_ @+~*?=;,()[]{}$#%&!\'éü中😀'];

export const arbitraryPathSegment: fc.Arbitrary<string> = fc
  .string({ unit: fc.constantFrom(...PATH_CHARACTERS), minLength: 1, maxLength: 10 })
  .filter((segment) => segment !== '.' && segment !== '..');

/** A normal, non-root repository path. */
export const arbitraryRepositoryPath: fc.Arbitrary<string> = fc
  .array(arbitraryPathSegment, { minLength: 1, maxLength: 6 })
  .map((segments) => segments.join('/'));

/** A normal path, the root '' included. */
export const arbitraryRepositoryPathOrRoot: fc.Arbitrary<string> = fc.oneof(
  { weight: 1, arbitrary: fc.constant('') },
  { weight: 9, arbitrary: arbitraryRepositoryPath },
);

export const arbitraryRepositoryKey: fc.Arbitrary<string> = fc
  .stringMatching(/^[A-Za-z_-][A-Za-z0-9_.-]{0,30}$/)
  .filter((key) => isValidRepositoryKey(key));

export const arbitrarySiteId: fc.Arbitrary<string> = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$/);

export const arbitraryEventId: fc.Arbitrary<string> = fc.stringMatching(/^[A-Za-z0-9._~-]{1,64}$/);

export const arbitraryHlcStamp: fc.Arbitrary<HlcStamp> = fc.record({
  wall: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  logical: fc.integer({ min: 0, max: hlcLogicalMax }),
});

/** Strings of any printable Unicode, well-formed (no lone surrogates). */
export const arbitraryText = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength });

const arbitraryJsonKey: fc.Arbitrary<string> = arbitraryText(8).filter((key) => key !== '__proto__');

export const arbitraryJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((number) => (number === 0 ? 0 : number)),
    arbitraryText(12),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(arbitraryJsonKey, tie('value'), { maxKeys: 4, noNullPrototype: true }),
  ),
})).value;

export const arbitraryJsonObject: fc.Arbitrary<Record<string, unknown>> = fc.dictionary(arbitraryJsonKey, arbitraryJson, {
  maxKeys: 5,
  noNullPrototype: true,
});

export const arbitraryPropertyKey: fc.Arbitrary<string> = arbitraryText(16).filter(
  (key) => key.length > 0 && key !== '__proto__' && !CONTROL_CHARACTER.test(key),
);

export const arbitraryProperties: fc.Arbitrary<Properties> = fc.dictionary(
  arbitraryPropertyKey,
  fc.array(arbitraryText(12), { maxLength: 3 }),
  { maxKeys: 4, noNullPrototype: true },
);

const hex = (length: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });

const arbitraryMimeType: fc.Arbitrary<string> = fc.constantFrom(
  'application/octet-stream',
  'application/java-archive',
  'application/x-gzip',
  'text/plain',
  'application/json',
);

const artifactDeployedFields = {
  path: arbitraryRepositoryPath,
  sha256: hex(64),
  sha1: hex(40),
  md5: hex(32),
  size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  mimeType: arbitraryMimeType,
  properties: arbitraryProperties,
};

export const arbitraryEventData: { readonly [T in EventType]: fc.Arbitrary<DomainEventMap[T]> } = {
  RepositoryCreated: fc.record({ key: arbitraryRepositoryKey, config: arbitraryJsonObject }),
  RepositoryConfigChanged: fc.record({ key: arbitraryRepositoryKey, patch: arbitraryJsonObject }),
  RepositoryDeleted: fc.record({ key: arbitraryRepositoryKey }),
  ArtifactDeployed: fc.record(artifactDeployedFields),
  ArtifactDeleted: fc.record({ path: arbitraryRepositoryPath }),
  FolderDeleted: fc.record({ prefix: arbitraryRepositoryPathOrRoot }),
  PropertiesSet: fc.record({ path: arbitraryRepositoryPathOrRoot, properties: arbitraryProperties }),
  PropertiesRemoved: fc.record({ path: arbitraryRepositoryPathOrRoot, keys: fc.array(arbitraryPropertyKey, { maxLength: 4 }) }),
  RemoteArtifactCached: fc.record({
    ...artifactDeployedFields,
    remoteUrl: fc.webUrl(),
  }),
  ArtifactBinaryCollected: fc.record({ path: arbitraryRepositoryPath, sha256: hex(64) }),
  UserSaved: arbitraryJsonObject,
  UserDeleted: arbitraryJsonObject,
  GroupSaved: arbitraryJsonObject,
  GroupDeleted: arbitraryJsonObject,
  TokenIssued: arbitraryJsonObject,
  TokenRevoked: arbitraryJsonObject,
  PermissionTargetSaved: arbitraryJsonObject,
  PermissionTargetDeleted: arbitraryJsonObject,
  SettingsChanged: arbitraryJsonObject,
  CurationPolicySaved: arbitraryJsonObject,
  CurationPolicyDeleted: arbitraryJsonObject,
  ReleaseBundleCreated: arbitraryJsonObject,
  ReleaseBundleReceived: arbitraryJsonObject,
  ReleaseBundlePublished: arbitraryJsonObject,
  ReleaseBundleDeleted: arbitraryJsonObject,
  TrustedKeySaved: arbitraryJsonObject,
  TrustedKeyDeleted: arbitraryJsonObject,
};

export const arbitraryEventMeta: fc.Arbitrary<EventMeta> = fc.record(
  {
    actor: arbitraryText(16),
    correlationId: arbitraryEventId,
    causationId: arbitraryEventId,
    clientAddress: fc.ipV4(),
    requestId: arbitraryEventId,
  },
  { requiredKeys: [] },
);

export interface ArbitraryEventOptions {
  /** Only these event types (default: all of EVENT_TYPES). */
  readonly types?: readonly EventType[];
  /** Only these origins (default: any site id). */
  readonly origins?: readonly string[];
}

/** A valid NewEvent of any type, with valid data, stamp and meta. */
export function arbitraryNewEvent(options: ArbitraryEventOptions = {}): fc.Arbitrary<NewEvent> {
  const types = options.types ?? EVENT_TYPES;
  const origin = options.origins === undefined ? arbitrarySiteId : fc.constantFrom(...options.origins);
  return fc.constantFrom(...types).chain(
    (type) =>
      fc.record({
        id: arbitraryEventId,
        origin,
        originSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        hlc: arbitraryHlcStamp,
        type: fc.constant(type),
        data: arbitraryEventData[type] as fc.Arbitrary<unknown>,
        meta: arbitraryEventMeta,
      }) as fc.Arbitrary<NewEvent>,
  );
}

export const arbitraryStream: fc.Arbitrary<string> = fc.oneof(
  fc.constant(SYSTEM_STREAM),
  arbitraryRepositoryKey.map((key) => repositoryStream(key)),
);

/** A valid RecordedEvent: a NewEvent plus stream, revision and a position up to 2^63 - 1. */
export function arbitraryRecordedEvent(options: ArbitraryEventOptions = {}): fc.Arbitrary<RecordedEvent> {
  return fc
    .record({
      event: arbitraryNewEvent(options),
      stream: arbitraryStream,
      revision: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      position: fc.bigInt({ min: 0n, max: eventPositionMax }),
    })
    .map(({ event, stream, revision, position }): RecordedEvent => ({ ...event, stream, revision, position }));
}
