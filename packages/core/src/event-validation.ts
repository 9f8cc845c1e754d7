/**
 * Runtime validation of events wherever they cross a trust boundary: decoding bytes from a
 * peer or the store, accepting events from an HTTP body. Each validator returns a fresh copy
 * holding only the known fields, so nothing unchecked rides along. Refusals are
 * STRATA_ERR_EVENT_INVALID naming the field (details.field), or
 * STRATA_ERR_CODEC_UNKNOWN_TYPE for an event type this version does not know.
 */
import { StrataError } from './errors.ts';
import {
  isEventType,
  type ArtifactDeployedData,
  type DomainEvent,
  type DomainEventMap,
  type EventMeta,
  type EventType,
  type HlcStamp,
  type NewEvent,
  type Properties,
  type RecordedEvent,
} from './events.ts';
import { isNormalRepositoryPath, normalizeRepositoryPath } from './repository-path.ts';
import { validateRepositoryKey } from './repository-key.ts';
import { isMarkedFrozenValidNewEvent, markFrozenValidNewEvent } from './frozen-valid-events.ts';
import { isLowercaseHex } from './hex-values.ts';

/** The largest encoded event (and so the largest encoded data or meta) we accept. */
export const eventPayloadBytesMax = 1024 * 1024;
export const eventIdCharsMax = 64;
export const siteIdCharsMax = 64;
export const streamCharsMax = 128;
/** HLC logical counters stay within 2^31 so every implementation can hold them in an int. */
export const hlcLogicalMax = 2 ** 31;
/** Positions are PostgreSQL bigints. */
export const eventPositionMax = 2n ** 63n - 1n;
export const propertyKeyCharsMax = 255;
export const propertyValueCharsMax = 4000;
export const mimeTypeCharsMax = 255;
export const remoteUrlCharsMax = 4096;
export const eventMetaKeysMax = 16;
export const eventMetaKeyCharsMax = 64;
export const eventMetaValueCharsMax = 1024;
/** How deeply free-form JSON data (repository config, system events) may nest. */
export const eventJsonDepthMax = 32;

/** Hyperid's url-safe ids, and anything else made of RFC 3986 unreserved characters. */
const EVENT_ID = /^[A-Za-z0-9._~-]+$/;
export const SITE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const STREAM = /^[A-Za-z0-9_.-]+$/;
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
// Strings must survive UTF-8 (msgpack, JSON, URLs) unchanged: no lone surrogates.
const LONE_SURROGATE = /\p{Cs}/u;

const NEW_EVENT_FIELDS = ['id', 'origin', 'originSeq', 'hlc', 'type', 'data', 'meta'] as const;
const RECORDED_EVENT_FIELDS = [...NEW_EVENT_FIELDS, 'stream', 'revision', 'position'] as const;

function invalid(field: string, message: string): never {
  throw new StrataError('STRATA_ERR_EVENT_INVALID', `invalid event: ${field} ${message}`, { field });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function expectObject(value: unknown, field: string, known?: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) invalid(field, 'must be a plain object');
  if (known !== undefined) {
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) invalid(field === '' ? key : `${field}.${key}`, 'is not a known field');
    }
  }
  return value;
}

function expectString(
  value: unknown,
  field: string,
  { min = 0, max, controls = true }: { min?: number; max: number; controls?: boolean },
): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  if (value.length < min) invalid(field, min === 1 ? 'must not be empty' : `must be at least ${min} characters`);
  if (value.length > max) invalid(field, `must be at most ${max} characters`);
  if (!controls && CONTROL_CHARACTER.test(value)) invalid(field, 'must not contain control characters');
  if (LONE_SURROGATE.test(value)) invalid(field, 'must be well-formed Unicode (no lone surrogates)');
  return value;
}

/** `length` lowercase hex digits (a checksum), else refused as `${description}`. */
function expectLowercaseHex(value: unknown, field: string, length: number, description: string): string {
  if (typeof value !== 'string' || !isLowercaseHex(value, length)) invalid(field, `must be ${description}`);
  return value;
}

function expectMatch(value: unknown, field: string, pattern: RegExp, description: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) invalid(field, `must be ${description}`);
  return value;
}

function expectSafeInteger(value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) invalid(field, 'must be a safe integer');
  if (value < min || value > max) invalid(field, `must be between ${min} and ${max}`);
  // -0 is 0: the codec and deep equality must not see two zeros.
  return value === 0 ? 0 : value;
}

function expectPath(value: unknown, field: string, { root }: { root: boolean }): string {
  if (typeof value !== 'string') invalid(field, 'must be a string');
  if (!isNormalRepositoryPath(value)) {
    try {
      normalizeRepositoryPath(value);
    } catch (error) {
      if (error instanceof StrataError) invalid(field, `must be a valid path (${error.message})`);
      throw error;
    }
    invalid(field, 'must be a normal path (no leading or trailing slash)');
  }
  if (!root && value === '') invalid(field, 'must not be the repository root');
  return value;
}

function expectRepositoryKey(value: unknown, field: string): string {
  try {
    return validateRepositoryKey(value);
  } catch (error) {
    if (error instanceof StrataError) invalid(field, `must be a valid repository key (${error.message})`);
    throw error;
  }
}

function expectKey(key: string, field: string): void {
  // Such a key would replace the prototype of a plain object built from it downstream.
  if (key === '__proto__') invalid(field, "must not use the key '__proto__'");
  if (LONE_SURROGATE.test(key)) invalid(field, 'must use well-formed Unicode keys');
}

/** A deep copy of JSON data: null, booleans, finite numbers, strings, arrays, plain objects. */
function copyJson(value: unknown, field: string, depth: number): unknown {
  if (value === null || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) invalid(field, 'must be a finite number');
    return value === 0 ? 0 : value;
  }
  if (typeof value === 'string') return expectString(value, field, { max: Number.MAX_SAFE_INTEGER });
  if (depth >= eventJsonDepthMax) invalid(field, `must not nest deeper than ${eventJsonDepthMax} levels`);
  if (Array.isArray(value)) {
    const copy: unknown[] = [];
    for (let index = 0; index < value.length; index++) {
      copy.push(copyJson(value[index], `${field}[${index}]`, depth + 1));
    }
    return copy;
  }
  if (isPlainObject(value)) return copyJsonObject(value, field, depth);
  invalid(field, 'must be JSON data (null, boolean, finite number, string, array or plain object)');
}

function copyJsonObject(value: unknown, field: string, depth = 0): Record<string, unknown> {
  const object = expectObject(value, field);
  const copy: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(object)) {
    expectKey(key, `${field}.${key}`);
    copy[key] = copyJson(entry, `${field}.${key}`, depth + 1);
  }
  return copy;
}

function expectPropertyKey(value: unknown, field: string): string {
  const key = expectString(value, field, { min: 1, max: propertyKeyCharsMax, controls: false });
  expectKey(key, field);
  return key;
}

function expectProperties(value: unknown, field: string): Properties {
  const object = expectObject(value, field);
  const copy: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(object)) {
    const keyField = `${field}.${key}`;
    expectPropertyKey(key, keyField);
    if (!Array.isArray(values)) invalid(keyField, 'must be an array of strings');
    const valuesCopy: string[] = [];
    for (let index = 0; index < values.length; index++) {
      valuesCopy.push(expectString(values[index], `${keyField}[${index}]`, { max: propertyValueCharsMax }));
    }
    copy[key] = valuesCopy;
  }
  return copy;
}

function artifactDeployedData(data: Record<string, unknown>, field: string): ArtifactDeployedData {
  return {
    path: expectPath(data['path'], `${field}.path`, { root: false }),
    sha256: expectLowercaseHex(data['sha256'], `${field}.sha256`, 64, '64 lowercase hex characters'),
    sha1: expectLowercaseHex(data['sha1'], `${field}.sha1`, 40, '40 lowercase hex characters'),
    md5: expectLowercaseHex(data['md5'], `${field}.md5`, 32, '32 lowercase hex characters'),
    size: expectSafeInteger(data['size'], `${field}.size`, 0),
    mimeType: expectString(data['mimeType'], `${field}.mimeType`, { min: 1, max: mimeTypeCharsMax, controls: false }),
    properties: expectProperties(data['properties'], `${field}.properties`),
  };
}

type DataValidator<T extends EventType> = (value: unknown, field: string) => DomainEventMap[T];

function systemData(value: unknown, field: string): DomainEventMap['UserSaved'] {
  return copyJsonObject(value, field);
}

const ARTIFACT_DEPLOYED_FIELDS = ['path', 'sha256', 'sha1', 'md5', 'size', 'mimeType', 'properties'] as const;

const DATA_VALIDATORS: { readonly [T in EventType]: DataValidator<T> } = {
  RepositoryCreated: (value, field) => {
    const data = expectObject(value, field, ['key', 'config']);
    return { key: expectRepositoryKey(data['key'], `${field}.key`), config: copyJsonObject(data['config'], `${field}.config`) };
  },
  RepositoryConfigChanged: (value, field) => {
    const data = expectObject(value, field, ['key', 'patch']);
    return { key: expectRepositoryKey(data['key'], `${field}.key`), patch: copyJsonObject(data['patch'], `${field}.patch`) };
  },
  RepositoryDeleted: (value, field) => {
    const data = expectObject(value, field, ['key']);
    return { key: expectRepositoryKey(data['key'], `${field}.key`) };
  },
  ArtifactDeployed: (value, field) => artifactDeployedData(expectObject(value, field, ARTIFACT_DEPLOYED_FIELDS), field),
  ArtifactDeleted: (value, field) => {
    const data = expectObject(value, field, ['path']);
    return { path: expectPath(data['path'], `${field}.path`, { root: false }) };
  },
  FolderDeleted: (value, field) => {
    const data = expectObject(value, field, ['prefix']);
    // '' is the root: deleting it empties the repository.
    return { prefix: expectPath(data['prefix'], `${field}.prefix`, { root: true }) };
  },
  PropertiesSet: (value, field) => {
    const data = expectObject(value, field, ['path', 'properties']);
    return {
      path: expectPath(data['path'], `${field}.path`, { root: true }),
      properties: expectProperties(data['properties'], `${field}.properties`),
    };
  },
  PropertiesRemoved: (value, field) => {
    const data = expectObject(value, field, ['path', 'keys']);
    const keys = data['keys'];
    if (!Array.isArray(keys)) invalid(`${field}.keys`, 'must be an array of property keys');
    return {
      path: expectPath(data['path'], `${field}.path`, { root: true }),
      keys: keys.map((key: unknown, index) => expectPropertyKey(key, `${field}.keys[${index}]`)),
    };
  },
  RemoteArtifactCached: (value, field) => {
    const data = expectObject(value, field, [...ARTIFACT_DEPLOYED_FIELDS, 'remoteUrl']);
    return {
      ...artifactDeployedData(data, field),
      remoteUrl: expectString(data['remoteUrl'], `${field}.remoteUrl`, { min: 1, max: remoteUrlCharsMax, controls: false }),
    };
  },
  ArtifactBinaryCollected: (value, field) => {
    const data = expectObject(value, field, ['path', 'sha256']);
    return {
      path: expectPath(data['path'], `${field}.path`, { root: false }),
      sha256: expectLowercaseHex(data['sha256'], `${field}.sha256`, 64, '64 lowercase hex characters'),
    };
  },
  UserSaved: systemData,
  UserDeleted: systemData,
  GroupSaved: systemData,
  GroupDeleted: systemData,
  TokenIssued: systemData,
  TokenRevoked: systemData,
  PermissionTargetSaved: systemData,
  PermissionTargetDeleted: systemData,
  SettingsChanged: systemData,
  CurationPolicySaved: systemData,
  CurationPolicyDeleted: systemData,
  ReleaseBundleCreated: systemData,
  ReleaseBundleReceived: systemData,
  ReleaseBundlePublished: systemData,
  ReleaseBundleDeleted: systemData,
  TrustedKeySaved: systemData,
  TrustedKeyDeleted: systemData,
};

/** Refuses anything that is not a known event type; unknown types are their own error. */
export function validateEventType(value: unknown): EventType {
  if (typeof value !== 'string') invalid('type', 'must be a string');
  if (!isEventType(value)) {
    throw new StrataError('STRATA_ERR_CODEC_UNKNOWN_TYPE', `unknown event type '${value.slice(0, 100)}'`, {
      type: value.slice(0, 100),
    });
  }
  return value;
}

/** A copy of `data` checked against the shape of event type `type`. */
export function validateEventData<T extends EventType>(type: T, data: unknown): DomainEventMap[T] {
  const validator: DataValidator<T> = DATA_VALIDATORS[validateEventType(type) as T];
  return validator(data, 'data');
}

export function validateHlcStamp(value: unknown, field = 'hlc'): HlcStamp {
  const stamp = expectObject(value, field, ['wall', 'logical']);
  return {
    wall: expectSafeInteger(stamp['wall'], `${field}.wall`, 0),
    logical: expectSafeInteger(stamp['logical'], `${field}.logical`, 0, hlcLogicalMax),
  };
}

export function validateSiteId(value: unknown, field = 'origin'): string {
  return expectMatch(value, field, SITE_ID_PATTERN, `a site id (${SITE_ID_PATTERN.source})`);
}

export function validateEventId(value: unknown, field = 'id'): string {
  expectString(value, field, { min: 1, max: eventIdCharsMax });
  return expectMatch(value, field, EVENT_ID, 'url-safe (letters, digits, ., _, ~, -)');
}

/**
 * Meta is free-form context (actor, correlation and causation ids, client address, request
 * id, and whatever later versions add): string values only, bounded. An undefined value is
 * the same as an absent one and is dropped.
 */
export function validateEventMeta(value: unknown, field = 'meta'): EventMeta {
  const meta = expectObject(value, field);
  // Keys, not entries: no pair allocated per entry (every received event's meta passes here).
  const keys = Object.keys(meta);
  if (keys.length > eventMetaKeysMax) invalid(field, `must have at most ${eventMetaKeysMax} entries`);
  const copy: Record<string, string> = {};
  for (const key of keys) {
    const entry = meta[key];
    const entryField = `${field}.${key}`;
    if (key.length === 0 || key.length > eventMetaKeyCharsMax) {
      invalid(entryField, `must have a key of 1 to ${eventMetaKeyCharsMax} characters`);
    }
    expectKey(key, entryField);
    if (entry === undefined) continue;
    copy[key] = expectString(entry, entryField, { max: eventMetaValueCharsMax });
  }
  return copy;
}

export function validateStream(value: unknown, field = 'stream'): string {
  expectString(value, field, { min: 1, max: streamCharsMax });
  return expectMatch(value, field, STREAM, 'a stream name (letters, digits, ., _, -)');
}

function newEventFields(event: Record<string, unknown>): NewEvent {
  const type = validateEventType(event['type']);
  const domainEvent = { type, data: validateEventData(type, event['data']) } as DomainEvent;
  return {
    id: validateEventId(event['id']),
    origin: validateSiteId(event['origin']),
    originSeq: expectSafeInteger(event['originSeq'], 'originSeq', 1),
    hlc: validateHlcStamp(event['hlc']),
    ...domainEvent,
    meta: validateEventMeta(event['meta']),
  };
}

/** A NewEvent carries no stream, revision or position: the appending store assigns them. */
export function validateNewEvent(value: unknown): NewEvent {
  return newEventFields(expectObject(value, '', NEW_EVENT_FIELDS));
}

function deepFreeze(value: unknown): void {
  if (typeof value !== 'object' || value === null || ArrayBuffer.isView(value) || Object.isFrozen(value)) return;
  Object.freeze(value);
  if (Array.isArray(value)) {
    for (const entry of value) deepFreeze(entry);
  } else {
    for (const key in value) deepFreeze((value as Record<string, unknown>)[key]);
  }
}

/**
 * Freezes, deeply, a new event that `validateNewEvent` has just returned (its own fresh copy,
 * not yet handed to anyone) and marks it as validated: `isFrozenValidNewEvent` then says so.
 * Only for such a copy — it is what makes the mark true. A marked event holds exactly what
 * validation returned and nothing can change it, so whoever is handed one need not validate it
 * again (a receiver catching up validated every event twice: decoded, then encoded for its
 * digest — a tenth of its main thread). The marks live in frozen-valid-events.ts.
 */
export function freezeValidatedNewEvent(event: NewEvent): NewEvent {
  deepFreeze(event);
  markFrozenValidNewEvent(event, null);
  return event;
}

/** Whether `value` is a new event that validation returned and `freezeValidatedNewEvent` froze: valid, and unchanged since. */
export function isFrozenValidNewEvent(value: unknown): value is NewEvent {
  return typeof value === 'object' && value !== null && isMarkedFrozenValidNewEvent(value);
}

export function validateRecordedEvent(value: unknown): RecordedEvent {
  const event = expectObject(value, '', RECORDED_EVENT_FIELDS);
  const position = event['position'];
  if (typeof position !== 'bigint') invalid('position', 'must be a bigint');
  if (position < 0n || position > eventPositionMax) invalid('position', `must be between 0 and ${eventPositionMax}`);
  return {
    ...newEventFields(event),
    stream: validateStream(event['stream']),
    revision: expectSafeInteger(event['revision'], 'revision', 0),
    position,
  };
}

/** Whether an event carries the fields a store assigns when it records it. */
export function isRecordedEvent(event: NewEvent | RecordedEvent): event is RecordedEvent {
  return 'position' in event && event.position !== undefined;
}
