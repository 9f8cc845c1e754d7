/**
 * What federation members say to each other: plain typed objects, validated at the boundary
 * (a request by the receiver, a reply by the sender) before anything acts on them. One
 * request kind does everything: a `push` carries the sender's version vector (anti-entropy)
 * and the events the receiver is believed to lack (possibly none, for a bare vector exchange).
 * The wire form (encodeFederationRequest) uses the core event codec for the events.
 */
import {
  type NewEvent,
  type RecordedEvent,
  StrataError,
  decodeEventBatchEntry,
  encodeEncodedEventBatch,
  encodeEvent,
  encodeStoredEvent,
  eventBatchEntries,
  isRecordedEvent,
  validateNewEvent,
  validateRepositoryKey,
  validateSiteId,
} from '@strata/core';
import { federationError } from './federation-errors.ts';
import type { VersionVector } from './version-vector.ts';
import { decodeFramedHeader, encodeFramed } from './framed-message.ts';

export interface PushRequest {
  readonly kind: 'push';
  readonly repoKey: string;
  /** Sender site id. */
  readonly from: string;
  /** Sender's physical clock when sending: the receiver's estimate of the clock offset. */
  readonly sentAtMs: number;
  /** Everything the sender holds. */
  readonly vector: VersionVector;
  /** Events for the receiver, contiguous per origin from what the sender believes it holds. */
  readonly events: readonly NewEvent[];
  /** Part of a full sync: the reply's vector replaces the sender's cursor instead of raising it. */
  readonly fullSync: boolean;
  /**
   * The members field as the sender holds it now, sent with a batch that holds the repository's
   * creation: a site added long after the creation is invited by it even when the edit that
   * added it is beyond this batch.
   */
  readonly members?: readonly { readonly url: string; readonly enabled: boolean }[];
  /**
   * Diagnostics, optional: per event (same length and order as `events`), the sender's physical
   * clock (ms) when the append of that event committed on it, for its own events it still
   * remembers; null for the others (another origin's events, older ones). A receiver measures
   * replication lag from it (federation.md, `receiveLagFromCommit`); nothing is decided by it.
   */
  readonly committedAtMs?: readonly (number | null)[];
}
export type FederationRequest = PushRequest;

export const REFUSAL_REASONS = ['malformed', 'not-federated', 'not-member', 'gap', 'conflict', 'clock-ahead', 'unavailable', 'broken-chain'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
const REFUSAL_REASON_SET: ReadonlySet<string> = new Set(REFUSAL_REASONS);

export interface AckReply {
  readonly kind: 'ack';
  /** Everything the receiver holds after this batch. */
  readonly vector: VersionVector;
  readonly appended: number;
  readonly duplicates: number;
}
export interface RefusedReply {
  readonly kind: 'refused';
  readonly reason: RefusalReason;
  readonly message: string;
  /** The receiver's vector, when it knows the repository: resend from there. */
  readonly vector: VersionVector | null;
  /** clock-ahead: how far the batch's newest stamp ran ahead of the receiver's clock. */
  readonly offsetMs: number | null;
}
export type FederationReply = AckReply | RefusedReply;

function malformed(message: string): never {
  throw federationError('STRATA_ERR_FEDERATION_MALFORMED', `malformed federation message: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function expectFields(value: unknown, what: string, fields: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) malformed(`${what} must be a plain object`);
  for (const key of Object.keys(value)) if (!fields.includes(key)) malformed(`${what}.${key} is not a known field`);
  return value;
}

/** Refuses anything that is not a map of site id → positive safe integer (bounded size). */
export function validateVersionVector(value: unknown, field = 'vector', originsMax = 1024): VersionVector {
  if (!isPlainObject(value)) malformed(`${field} must be a plain object`);
  const keys = Object.keys(value);
  if (keys.length > originsMax) malformed(`${field} has more than ${originsMax} origins`);
  const vector: Record<string, number> = {};
  for (const origin of keys) {
    try {
      validateSiteId(origin, `${field} origin`);
    } catch {
      malformed(`${field} origin ${JSON.stringify(origin).slice(0, 80)} is not a site id`);
    }
    const seq = value[origin];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) malformed(`${field}.${origin} must be a non-negative safe integer`);
    vector[origin] = seq;
  }
  return vector;
}

function guard<T>(what: string, validate: () => T): T {
  try {
    return validate();
  } catch (error) {
    if (error instanceof StrataError) malformed(`${what}: ${error.message}`);
    throw error;
  }
}

const PUSH_FIELDS = ['kind', 'repoKey', 'from', 'sentAtMs', 'vector', 'events', 'fullSync', 'members', 'committedAtMs'] as const;
const membersMax = 1024;
const memberUrlLengthMax = 2048;

export interface ValidateFederationRequestOptions {
  /** More events than this are refused (federationBatchEventsMax). */
  readonly eventsMax: number;
}

/** The receiver's boundary: a request as typed, fully validated data, or a STRATA_ERR_FEDERATION_MALFORMED error. */
export function validateFederationRequest(value: unknown, { eventsMax }: ValidateFederationRequestOptions): FederationRequest {
  const request = expectFields(value, 'request', PUSH_FIELDS);
  if (request['kind'] !== 'push') malformed('kind must be "push"');
  const repoKey = guard('repoKey', () => validateRepositoryKey(request['repoKey']));
  const from = guard('from', () => validateSiteId(request['from'], 'from'));
  const sentAtMs = request['sentAtMs'];
  if (typeof sentAtMs !== 'number' || !Number.isSafeInteger(sentAtMs) || sentAtMs < 0) malformed('sentAtMs must be a non-negative safe integer');
  if (typeof request['fullSync'] !== 'boolean') malformed('fullSync must be a boolean');
  const events = request['events'];
  if (!Array.isArray(events)) malformed('events must be an array');
  if (events.length > eventsMax) malformed(`events holds ${events.length} events, more than ${eventsMax}`);
  // Recorded events (with a sender's stream position) are accepted and trimmed to NewEvent.
  const newEvents = validated.has(events)
    ? events.map((event: unknown) => stripRecorded(event as NewEvent))
    : events.map((event: unknown, index) => guard(`events[${index}]`, () => toNewEvent(event)));
  // A request validated here is validated again by whoever it is handed to (the server
  // decodes a push, the engine receives it): its events are not checked a second time.
  validated.add(newEvents);
  return {
    kind: 'push',
    repoKey,
    from,
    sentAtMs,
    vector: validateVersionVector(request['vector']),
    events: newEvents,
    fullSync: request['fullSync'],
    ...(request['members'] === undefined ? {} : { members: validateMembers(request['members']) }),
    ...(request['committedAtMs'] === undefined ? {} : { committedAtMs: validateCommittedAtMs(request['committedAtMs'], newEvents, from) }),
  };
}

/**
 * The sender's commit times: one entry per event, each null or a non-negative safe integer
 * (ms), and a time only for the sender's own events (it cannot know when another origin
 * committed). Their values are not checked against anything: they only feed a diagnostic.
 */
function validateCommittedAtMs(value: unknown, events: readonly NewEvent[], from: string): (number | null)[] {
  if (!Array.isArray(value) || value.length !== events.length) malformed(`committedAtMs must be an array of one entry per event (${events.length})`);
  for (const [index, entry] of value.entries()) {
    if (entry === null) continue;
    if (typeof entry !== 'number' || !Number.isSafeInteger(entry) || entry < 0) malformed(`committedAtMs[${index}] must be null or a non-negative safe integer`);
    if (events[index]!.origin !== from) malformed(`committedAtMs[${index}] is given for an event of ${events[index]!.origin}, not of the sender ${from}`);
  }
  return (value as (number | null)[]).slice();
}

/** Event arrays the core codec has just decoded, or this module has just validated: not validated a second time. */
const validated = new WeakSet<readonly unknown[]>();

function stripRecorded(event: NewEvent): NewEvent {
  if (!('revision' in event)) return event;
  const { stream: _stream, revision: _revision, position: _position, ...rest } = event as NewEvent & { stream?: unknown; revision?: unknown; position?: unknown };
  return rest as NewEvent;
}

function validateMembers(value: unknown): { url: string; enabled: boolean }[] {
  if (!Array.isArray(value) || value.length > membersMax) malformed(`members must be an array of at most ${membersMax} entries`);
  return value.map((entry: unknown, index) => {
    const member = expectFields(entry, `members[${index}]`, ['url', 'enabled']);
    const url = member['url'];
    if (typeof url !== 'string' || url.length === 0 || url.length > memberUrlLengthMax) malformed(`members[${index}].url must be a string of 1 to ${memberUrlLengthMax} characters`);
    if (typeof member['enabled'] !== 'boolean') malformed(`members[${index}].enabled must be a boolean`);
    return { url, enabled: member['enabled'] };
  });
}

function toNewEvent(value: unknown): NewEvent {
  if (isPlainObject(value) && 'revision' in value) {
    const { stream: _stream, revision: _revision, position: _position, ...rest } = value;
    return validateNewEvent(rest);
  }
  return validateNewEvent(value);
}

/** The sender's boundary: a reply as typed data, or a STRATA_ERR_FEDERATION_MALFORMED error. */
export function validateFederationReply(value: unknown): FederationReply {
  if (!isPlainObject(value)) malformed('reply must be a plain object');
  if (value['kind'] === 'ack') {
    const reply = expectFields(value, 'reply', ['kind', 'vector', 'appended', 'duplicates']);
    const appended = reply['appended'];
    const duplicates = reply['duplicates'];
    if (typeof appended !== 'number' || !Number.isSafeInteger(appended) || appended < 0) malformed('appended must be a count');
    if (typeof duplicates !== 'number' || !Number.isSafeInteger(duplicates) || duplicates < 0) malformed('duplicates must be a count');
    return { kind: 'ack', vector: validateVersionVector(reply['vector']), appended, duplicates };
  }
  if (value['kind'] === 'refused') {
    const reply = expectFields(value, 'reply', ['kind', 'reason', 'message', 'vector', 'offsetMs']);
    const reason = reply['reason'];
    if (typeof reason !== 'string' || !REFUSAL_REASON_SET.has(reason)) malformed('reason is not a known refusal reason');
    const message = reply['message'];
    if (typeof message !== 'string' || message.length > 4096) malformed('message must be a string of at most 4096 characters');
    const offsetMs = reply['offsetMs'];
    if (offsetMs !== null && (typeof offsetMs !== 'number' || !Number.isSafeInteger(offsetMs))) malformed('offsetMs must be an integer or null');
    return {
      kind: 'refused',
      reason: reason as RefusalReason,
      message,
      vector: reply['vector'] === null ? null : validateVersionVector(reply['vector']),
      offsetMs,
    };
  }
  return malformed('reply kind must be "ack" or "refused"');
}

// ---------------------------------------------------------------------------------------
// Wire form: [u32 header length][header JSON][event batch (core codec)][attachments]
// With attachments, the header also holds `batchBytes` (the batch's length) and
// `attachments: [{sha256, size}]`, whose bytes follow the batch in that order.

/** A binary sent inside a push (a small one the receiver would otherwise pull right after). */
export interface FederationAttachment {
  readonly sha256: string;
  readonly bytes: Uint8Array;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const headerBytesMax = 256 * 1024;

export function encodeFederationRequest(request: FederationRequest, attachments: readonly FederationAttachment[] = []): Uint8Array {
  const { events, ...header } = request;
  const batch = encodeEncodedEventBatch(events.map(wireEncoding));
  const headerValue =
    attachments.length === 0
      ? header
      : { ...header, batchBytes: batch.byteLength, attachments: attachments.map((attachment) => ({ sha256: attachment.sha256, size: attachment.bytes.byteLength })) };
  return encodeFramed(headerValue, [batch, ...attachments.map((attachment) => attachment.bytes)]);
}

/**
 * The encodings of the events pushed most recently, per event object: an origin sends the
 * same new events to every member (and again after a refusal or a retry), and a site
 * forwards what it received, each within moments. Bounded (the oldest entry goes first):
 * an engine holds every event of its repositories, and keeping an encoding beside each
 * would double that. Events are immutable, so an encoding cannot go stale. Room for a member's
 * catch-up pages in flight and the one prepared behind them (federation-engine.ts).
 *
 * The oldest entry is found in a ring of the keys, not by `keys().next()`: a Map leaves its
 * deleted entries in place until it rehashes, and the iterator walks over all of them each
 * time (profiled on an origin serving a catch-up: a tenth of a second per 10,000 events).
 */
const wireEncodings = new Map<object, Uint8Array>();
const wireEncodingsMax = 16_384;
const wireEncodingKeys: (object | undefined)[] = new Array<object | undefined>(wireEncodingsMax).fill(undefined);
let wireEncodingNext = 0;

/**
 * Events a store recorded (they carry a position) are encoded without validating them
 * again (core's encodeStoredEvent); others are validated as the codec encodes them.
 */
function wireEncoding(event: NewEvent): Uint8Array {
  let bytes = wireEncodings.get(event);
  if (bytes === undefined) {
    bytes = isRecordedEvent(event as never) ? encodeStoredEvent(event as never) : encodeEvent(event);
    const oldest = wireEncodingKeys[wireEncodingNext];
    if (oldest !== undefined) wireEncodings.delete(oldest);
    wireEncodingKeys[wireEncodingNext] = event;
    wireEncodingNext = (wireEncodingNext + 1) % wireEncodingsMax;
    wireEncodings.set(event, bytes);
  }
  return bytes;
}

/**
 * Encodes `events` for the wire now and keeps the encodings (as a push of them would), so
 * that a push of them soon after takes them from memory. Throws as encodeFederationRequest
 * would on an invalid event.
 */
export function prepareWireEncodings(events: readonly NewEvent[]): void {
  for (const event of events) wireEncoding(event);
}

export function decodeFederationRequest(bytes: Uint8Array, options: ValidateFederationRequestOptions): FederationRequest {
  return decodeFederationPush(bytes, options).request;
}

/**
 * A push and the binaries attached to it. Each attachment must be named by a deploy of the
 * batch; its content is checked against its sha256 by whoever stores it.
 */
export function decodeFederationPush(bytes: Uint8Array, options: ValidateFederationRequestOptions): { request: FederationRequest; attachments: FederationAttachment[] } {
  const parts = pushParts(bytes, options);
  const events = guard('events', () => parts.entries.map(decodeEventBatchEntry));
  return pushOf(parts, events, options);
}

/** Events decoded between two pauses of `decodeFederationPushInSlices`. */
const decodedEventsPerSlice = 500;

/**
 * `decodeFederationPush` with `pause()` awaited after every slice of decoded events, so that
 * a receiver's other work (its database round trips for the batch ahead) is not held up for
 * the whole of a catch-up page's decoding. The same result, the same refusals.
 */
export async function decodeFederationPushInSlices(
  bytes: Uint8Array,
  options: ValidateFederationRequestOptions,
  pause: () => Promise<void>,
): Promise<{ request: FederationRequest; attachments: FederationAttachment[] }> {
  const parts = pushParts(bytes, options);
  const events: (NewEvent | RecordedEvent)[] = [];
  for (let from = 0; from < parts.entries.length; from += decodedEventsPerSlice) {
    if (from > 0) await pause();
    const slice = parts.entries.slice(from, from + decodedEventsPerSlice);
    guard('events', () => {
      for (const [index, entry] of slice.entries()) events.push(decodeEventBatchEntry(entry, from + index));
    });
  }
  return pushOf(parts, events, options);
}

interface PushParts {
  readonly pushHeader: Record<string, unknown>;
  readonly entries: readonly unknown[];
  readonly attachments: FederationAttachment[];
}

/** The header, the attachments and the batch's entries (not decoded yet) of a push's wire form. */
function pushParts(bytes: Uint8Array, options: ValidateFederationRequestOptions): PushParts {
  const { header, bodyStart: batchStart } = decodeFramedHeader(bytes, { what: 'request', headerBytesMax, malformed });
  if (!isPlainObject(header)) malformed('request header must be an object');
  const { batchBytes, attachments: listed, ...pushHeader } = header;
  let batchEnd = bytes.byteLength;
  const attachments: FederationAttachment[] = [];
  if (listed !== undefined || batchBytes !== undefined) {
    if (typeof batchBytes !== 'number' || !Number.isSafeInteger(batchBytes) || batchBytes < 0 || batchStart + batchBytes > bytes.byteLength) malformed('batchBytes out of range');
    if (!Array.isArray(listed) || listed.length > options.eventsMax) malformed(`attachments must be an array of at most ${options.eventsMax} entries`);
    batchEnd = batchStart + batchBytes;
    let offset = batchEnd;
    for (const [index, entry] of listed.entries()) {
      const attachment = expectFields(entry, `attachments[${index}]`, ['sha256', 'size']);
      const sha256 = attachment['sha256'];
      const size = attachment['size'];
      if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) malformed(`attachments[${index}].sha256 must be a lower-case hex sha256`);
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || offset + size > bytes.byteLength) malformed(`attachments[${index}].size out of range`);
      attachments.push({ sha256, bytes: bytes.subarray(offset, offset + size) });
      offset += size;
    }
    if (offset !== bytes.byteLength) malformed('bytes left after the attachments');
  }
  const entries = guard('events', () => eventBatchEntries(bytes.subarray(batchStart, batchEnd), { eventsMax: options.eventsMax }));
  return { pushHeader, entries, attachments };
}

/** The push of `parts` with its decoded `events`, validated, its attachments checked against its deploys. */
function pushOf(parts: PushParts, events: (NewEvent | RecordedEvent)[], options: ValidateFederationRequestOptions): { request: FederationRequest; attachments: FederationAttachment[] } {
  validated.add(events);
  const request = validateFederationRequest({ ...parts.pushHeader, events }, options);
  for (const attachment of parts.attachments) {
    if (!request.events.some((event) => event.type === 'ArtifactDeployed' && event.data.sha256 === attachment.sha256)) {
      malformed(`attachment ${attachment.sha256} is named by no deploy of the batch`);
    }
  }
  return { request, attachments: parts.attachments };
}

export function encodeFederationReply(reply: FederationReply): Uint8Array {
  return textEncoder.encode(JSON.stringify(reply));
}

export function decodeFederationReply(bytes: Uint8Array): FederationReply {
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(bytes));
  } catch {
    malformed('reply is not JSON');
  }
  return validateFederationReply(value);
}
