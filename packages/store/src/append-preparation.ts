/**
 * Everything an append checks before it touches a database: the stream name, each event's
 * fields (with @strata/core validation), that each event type belongs in this stream, and
 * the encoded sizes. A refused append leaves every store unchanged.
 */
import {
  isSystemEventType,
  isDistributionEventType,
  DISTRIBUTION_STREAM,
  SYSTEM_STREAM,
  StrataError,
  encodeValidatedEventParts,
  isValidRepositoryKey,
  validateNewEvent,
  validateStream,
  type EventType,
  type NewEvent,
  type RecordedEvent,
} from '@strata/core';
import type { AppendResult, Checkpoint, ExpectedRevision } from './event-store.ts';
import { encodedEventOf } from './encoded-events.ts';

/** The most events one append may carry. */
export const appendEventsMax = 10_000;

/** An event as validated and encoded for storage. */
export interface PreparedEvent {
  readonly event: NewEvent;
  readonly data: Uint8Array;
  readonly meta: Uint8Array;
  /** The event's digest over `data` and `meta` in this stream, when computed before the append (encoded-events.ts). */
  readonly digest?: Buffer;
  /** `originPrevOf(event.meta) ?? null`, when parsed before the append (encoded-events.ts). */
  readonly originPrev?: Uint8Array | null;
}

const REPOSITORY_STREAM_PREFIX = 'repo-';

/** Validates and encodes an append; throws a StrataError and touches nothing when refused. */
export function prepareAppend(stream: unknown, events: unknown, expectedRevision: unknown): PreparedEvent[] {
  const streamName = validateStream(stream);
  validateExpectedRevision(expectedRevision);
  if (!Array.isArray(events)) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', 'invalid append: events must be an array', { field: 'events' });
  }
  if (events.length > appendEventsMax) {
    throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `an append holds at most ${appendEventsMax} events, got ${events.length}`, {
      events: events.length,
      eventsMax: appendEventsMax,
    });
  }
  const ids = new Set<string>();
  return events.map((candidate: unknown, index) => {
    // Validated, encoded and digested already (say, by the federation engine checking its
    // origin chain, encoded-events.ts): that validated copy and its bytes, not computed twice.
    const encoded = encodedEventOf(candidate, streamName);
    let event: NewEvent;
    try {
      event = encoded?.event ?? validateNewEvent(candidate);
    } catch (error) {
      if (error instanceof StrataError) {
        throw new StrataError(error.code, `event ${index}: ${error.message}`, { ...error.details, index }, { cause: error });
      }
      throw error;
    }
    if (ids.has(event.id)) {
      throw new StrataError('STRATA_ERR_EVENT_INVALID', `event ${index}: id '${event.id}' appears twice in one append`, {
        field: 'id',
        index,
      });
    }
    ids.add(event.id);
    checkEventFitsStream(streamName, event, index);
    if (encoded !== undefined) return { event, data: encoded.data, meta: encoded.meta, digest: encoded.digest, originPrev: encoded.originPrev };
    // `event` is validation's own copy: encoded without validating its data and meta again.
    const { data, meta } = encodeValidatedEventParts(event);
    return { event, data, meta };
  });
}

/** The most streams one `appendMany` may write. */
export const appendManyStreamsMax = 1000;

/** One part of a multi-stream append, validated and encoded. */
export interface PreparedStreamAppend {
  readonly stream: string;
  readonly events: readonly PreparedEvent[];
  readonly expectedRevision: ExpectedRevision | undefined;
}

/**
 * Validates and encodes a multi-stream append: each part as `prepareAppend`, the streams
 * distinct, no event id in two parts. Throws a StrataError and touches nothing when refused.
 */
export function prepareAppendMany(appends: unknown): PreparedStreamAppend[] {
  if (!Array.isArray(appends)) throw new StrataError('STRATA_ERR_EVENT_INVALID', 'invalid append: appends must be an array', { field: 'appends' });
  if (appends.length > appendManyStreamsMax) {
    throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `a multi-stream append writes at most ${appendManyStreamsMax} streams, got ${appends.length}`, {
      streams: appends.length,
      streamsMax: appendManyStreamsMax,
    });
  }
  const streams = new Set<string>();
  const ids = new Set<string>();
  return appends.map((part: unknown, index) => {
    const { stream, events, expectedRevision } = (typeof part === 'object' && part !== null ? part : {}) as Record<string, unknown>;
    const prepared = prepareAppend(stream, events, expectedRevision);
    const name = stream as string;
    if (streams.has(name)) {
      throw new StrataError('STRATA_ERR_EVENT_INVALID', `append ${index}: stream '${name}' appears twice in one multi-stream append`, { field: 'stream', index });
    }
    streams.add(name);
    for (const { event } of prepared) {
      if (ids.has(event.id)) throw new StrataError('STRATA_ERR_EVENT_INVALID', `append ${index}: id '${event.id}' appears in two streams of one append`, { field: 'id', index });
      ids.add(event.id);
    }
    return { stream: name, events: prepared, expectedRevision: expectedRevision as ExpectedRevision | undefined };
  });
}

function checkEventFitsStream(stream: string, event: NewEvent, index: number): void {
  const wrong = (why: string): never => {
    throw new StrataError('STRATA_ERR_EVENT_WRONG_STREAM', `event ${index} (${event.type}) does not belong in stream '${stream}': ${why}`, {
      stream,
      type: event.type,
      index,
    });
  };
  if (isSystemEventType(event.type)) {
    if (stream !== SYSTEM_STREAM) wrong(`it belongs in '${SYSTEM_STREAM}'`);
    return;
  }
  if (isDistributionEventType(event.type)) {
    if (stream !== DISTRIBUTION_STREAM) wrong(`it belongs in '${DISTRIBUTION_STREAM}'`);
    return;
  }
  if (!stream.startsWith(REPOSITORY_STREAM_PREFIX)) wrong(`it belongs in a '${REPOSITORY_STREAM_PREFIX}<key>' stream`);
  const key = stream.slice(REPOSITORY_STREAM_PREFIX.length);
  if (!isValidRepositoryKey(key)) wrong(`'${key}' is not a repository key`);
  if (
    (event.type === 'RepositoryCreated' || event.type === 'RepositoryConfigChanged' || event.type === 'RepositoryDeleted') &&
    event.data.key !== key
  ) {
    wrong(`it is about repository '${event.data.key}'`);
  }
}

function validateExpectedRevision(value: unknown): asserts value is ExpectedRevision | undefined {
  if (value === undefined || value === 'any' || value === 'no_stream' || value === 'exists') return;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= -1) return;
  throw new StrataError('STRATA_ERR_EVENT_INVALID', "invalid append: expectedRevision must be a revision, 'any', 'no_stream' or 'exists'", {
    field: 'expectedRevision',
  });
}

/**
 * The conflict error when `expected` does not hold for a stream whose last revision is
 * `current` (-1: no events), or undefined when it holds.
 */
export function expectedRevisionConflict(stream: string, expected: ExpectedRevision | undefined, current: number): StrataError | undefined {
  const holds =
    expected === undefined || expected === 'any'
      ? true
      : expected === 'no_stream'
        ? current === -1
        : expected === 'exists'
          ? current >= 0
          : current === expected;
  if (holds) return undefined;
  const actual = current === -1 ? 'no_stream' : String(current);
  return new StrataError(
    'STRATA_ERR_STORE_CONCURRENCY_CONFLICT',
    `stream '${stream}' is at revision ${actual}, expected ${String(expected)}`,
    { stream, expectedRevision: expected, actualRevision: current === -1 ? undefined : current },
  );
}

export function duplicateInOtherStream(id: string, stream: string, storedStream: string): StrataError {
  return new StrataError(
    'STRATA_ERR_STORE_DUPLICATE_EVENT',
    `event '${id}' is already stored in stream '${storedStream}', not '${stream}'`,
    { id, stream, storedStream },
  );
}

export function recordEvent(event: NewEvent, stream: string, revision: number, position: bigint): RecordedEvent {
  // Field by field, in the order validation returns them: one object shape for every
  // recorded event (a spread of the event cost a receiver ~4 µs per event).
  const { id, origin, originSeq, hlc, type, data, meta } = event;
  return { id, origin, originSeq, hlc, type, data, meta, stream, revision, position } as RecordedEvent;
}

export function appendResult(nextRevision: number, events: readonly RecordedEvent[], appendedCount: number): AppendResult {
  return { nextRevision, events, appendedCount };
}

export function compareCheckpoints(a: Checkpoint, b: Checkpoint): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.position !== b.position) return a.position < b.position ? -1 : 1;
  return 0;
}
