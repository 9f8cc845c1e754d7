/**
 * The msgpack encoding of events, for the store (data and meta as bytea) and for the wire
 * (federation batches). Plain msgpack maps, no msgpackr records, so any msgpack library can
 * read them; positions are 64-bit integers decoded as bigint. Everything decoded is
 * validated; every failure is a StrataError (STRATA_ERR_CODEC_MALFORMED, _UNKNOWN_TYPE,
 * _TOO_LARGE or STRATA_ERR_EVENT_INVALID), never a raw msgpackr exception.
 */
import { Packr } from 'msgpackr';
import { StrataError } from './errors.ts';
import type { DomainEventMap, EventMeta, EventType, NewEvent, RecordedEvent } from './events.ts';
import {
  eventPayloadBytesMax,
  freezeValidatedNewEvent,
  isRecordedEvent,
  validateEventData,
  validateEventMeta,
  validateNewEvent,
  validateRecordedEvent,
} from './event-validation.ts';
import { readCanonicalNewEvent } from './canonical-event-reader.ts';
import { encodedPartsOfFrozenValidNewEvent, markFrozenValidNewEvent } from './frozen-valid-events.ts';

/** The bytes of a batch beyond its events: the array header and one bin header per event. */
const batchHeaderBytesMax = 5;
const batchEntryHeaderBytesMax = 5;

export interface DecodeEventBatchOptions {
  /** More events than this are refused before any of them is decoded. */
  readonly eventsMax: number;
  /** Defaults to what eventsMax events of eventPayloadBytesMax each can take. */
  readonly bytesMax?: number;
}

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  moreTypes: false,
  bundleStrings: false,
  int64AsType: 'bigint',
});

function encode(value: unknown, what: string): Uint8Array {
  const bytes: Uint8Array = packr.pack(value);
  if (bytes.byteLength > eventPayloadBytesMax) {
    throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `encoded ${what} is ${bytes.byteLength} bytes, more than ${eventPayloadBytesMax}`, {
      bytes: bytes.byteLength,
      bytesMax: eventPayloadBytesMax,
    });
  }
  return bytes;
}

function decode(bytes: unknown, what: string, bytesMax = eventPayloadBytesMax): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `encoded ${what} must be a Uint8Array`);
  }
  if (bytes.byteLength > bytesMax) {
    throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `encoded ${what} is ${bytes.byteLength} bytes, more than ${bytesMax}`, {
      bytes: bytes.byteLength,
      bytesMax,
    });
  }
  if (bytes.byteLength === 0) throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `encoded ${what} is empty`);
  try {
    return packr.unpack(bytes);
  } catch (error) {
    // Truncation, trailing bytes, bad tokens, and stack exhaustion on absurd nesting alike.
    const reason = error instanceof Error ? error.message : String(error);
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `malformed encoded ${what}: ${reason.slice(0, 200)}`, undefined, {
      cause: error,
    });
  }
}

/** Events, data and meta are all maps: anything else at the top is not one of our encodings. */
function decodeMap(bytes: unknown, what: string): Record<string, unknown> {
  const value = decode(bytes, what);
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.getPrototypeOf(value) !== Object.prototype) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `encoded ${what} is not a msgpack map`);
  }
  return value as Record<string, unknown>;
}

/** Validates, then encodes a new or recorded event. */
export function encodeEvent(event: NewEvent | RecordedEvent): Uint8Array {
  const valid = isRecordedEvent(event) ? validateRecordedEvent(event) : validateNewEvent(event);
  return encode(valid, 'event');
}

/** A new or recorded event, as it was encoded (recorded iff it carries a position). */
export function decodeEvent(bytes: Uint8Array): NewEvent | RecordedEvent {
  const value = decodeMap(bytes, 'event');
  if ('position' in value) return validateRecordedEvent(value);
  return validateNewEvent(value);
}

/**
 * A new event from the encoding of a new or a recorded one: a peer's stream, revision and
 * position are its own and are dropped (after being checked).
 */
export function decodeNewEvent(bytes: Uint8Array): NewEvent {
  const event = decodeEvent(bytes);
  if (!isRecordedEvent(event)) return event;
  const { stream: _stream, revision: _revision, position: _position, ...newEvent } = event;
  return newEvent as NewEvent;
}

export function decodeRecordedEvent(bytes: Uint8Array): RecordedEvent {
  return validateRecordedEvent(decodeMap(bytes, 'event'));
}

export function encodeEventData<T extends EventType>(type: T, data: DomainEventMap[T]): Uint8Array {
  return encode(validateEventData(type, data), 'event data');
}

export function decodeEventData<T extends EventType>(type: T, bytes: Uint8Array): DomainEventMap[T] {
  return validateEventData(type, decodeMap(bytes, 'event data'));
}

export function encodeMeta(meta: EventMeta): Uint8Array {
  return encode(validateEventMeta(meta), 'event meta');
}

export function decodeMeta(bytes: Uint8Array): EventMeta {
  return validateEventMeta(decodeMap(bytes, 'event meta'));
}

/** A batch for the wire: a msgpack array of encoded events, each one a bin. */
export function encodeEventBatch(events: readonly (NewEvent | RecordedEvent)[]): Uint8Array {
  return encodeEncodedEventBatch(events.map((event) => encodeEvent(event)));
}

/**
 * The NewEvent fields of an event a store recorded, encoded as `encodeEvent` encodes them,
 * without validating them again: the store validated the event when it was appended (and
 * stores what validation returned), so validating it once more for every push of it only
 * repeats that (profiled: 2.2 s of an origin's 10 s busy time in a catch-up). Whoever
 * decodes it validates it as usual. Only for events read from or returned by a store.
 */
export function encodeStoredEvent(event: RecordedEvent): Uint8Array {
  const { id, origin, originSeq, hlc, type, data, meta } = event;
  return encode({ id, origin, originSeq, hlc: { wall: hlc.wall, logical: hlc.logical }, type, data, meta }, 'event');
}

/**
 * The data and meta of a new event that validation returned (`validateNewEvent`, a decoder),
 * encoded exactly as `encodeEventData` and `encodeMeta` encode them, without validating them
 * again: validation returns a fresh copy in its own key order, and validating that copy once
 * more returns the same values in the same order (profiled on a receiver catching up: the
 * same event validated three times, a tenth of its main thread). Only for such values, not
 * changed since; the size limits still apply.
 */
export function encodeValidatedEventParts(event: NewEvent): { readonly data: Uint8Array; readonly meta: Uint8Array } {
  // Read from exactly these encodings (decodeEventBatchEntry): the received bytes.
  const kept = encodedPartsOfFrozenValidNewEvent(event);
  if (kept !== undefined) return kept;
  return { data: encode(event.data, 'event data'), meta: encode(event.meta, 'event meta') };
}

/** A batch for the wire from events encoded one by one (`encodeEvent`, `encodeStoredEvent`). */
export function encodeEncodedEventBatch(encoded: readonly Uint8Array[]): Uint8Array {
  const bytes: Uint8Array = packr.pack(encoded);
  return bytes;
}

function batchBytesMax(eventsMax: number): number {
  return batchHeaderBytesMax + eventsMax * (eventPayloadBytesMax + batchEntryHeaderBytesMax);
}

/** The element count of a msgpack array header, or undefined if `bytes` starts otherwise. */
function arrayLength(bytes: Uint8Array): number | undefined {
  const token = bytes[0];
  if (token === undefined) return undefined;
  if (token >= 0x90 && token <= 0x9f) return token - 0x90;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (token === 0xdc && bytes.byteLength >= 3) return view.getUint16(1);
  if (token === 0xdd && bytes.byteLength >= 5) return view.getUint32(1);
  return undefined;
}

/** The events of a batch, each validated; the new ones (without a position) come back deeply frozen (`isFrozenValidNewEvent`). */
export function decodeEventBatch(bytes: Uint8Array, options: DecodeEventBatchOptions): (NewEvent | RecordedEvent)[] {
  return eventBatchEntries(bytes, options).map(decodeEventBatchEntry);
}

/**
 * The entries of a batch, each one event's encoding, checked as `decodeEventBatch` checks the
 * batch (its count before anything is decoded, its size, its shape) but not decoded yet: for a
 * caller that decodes a large batch in slices (`decodeEventBatchEntry`), so that other work
 * can run between them. Entries that are not binary are refused by `decodeEventBatchEntry`.
 */
export function eventBatchEntries(bytes: Uint8Array, options: DecodeEventBatchOptions): readonly unknown[] {
  const { eventsMax } = options;
  if (!Number.isSafeInteger(eventsMax) || eventsMax < 0) {
    throw new StrataError('STRATA_ERR_INVARIANT', 'decodeEventBatch: eventsMax must be a non-negative integer');
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', 'encoded event batch must be a Uint8Array');
  }
  // Count before decoding, so an oversized batch costs nothing.
  const length = arrayLength(bytes);
  if (length === undefined) throw new StrataError('STRATA_ERR_CODEC_MALFORMED', 'encoded event batch is not an array');
  if (length > eventsMax) {
    throw new StrataError('STRATA_ERR_CODEC_TOO_LARGE', `event batch holds ${length} events, more than ${eventsMax}`, {
      events: length,
      eventsMax,
    });
  }
  const entries = decode(bytes, 'event batch', options.bytesMax ?? batchBytesMax(eventsMax));
  if (!Array.isArray(entries)) throw new StrataError('STRATA_ERR_CODEC_MALFORMED', 'encoded event batch is not an array');
  return entries;
}

/** Entry `index` of `eventBatchEntries`, decoded and validated as `decodeEventBatch` decodes it. */
export function decodeEventBatchEntry(entry: unknown, index: number): NewEvent | RecordedEvent {
  if (!(entry instanceof Uint8Array)) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `event batch entry ${index} is not binary`, { index });
  }
  // Almost always the codec's own encoding of a new event (a peer's push): read as it is, its
  // data's and meta's bytes kept for the append instead of encoded again. Anything else (or
  // anything refused) takes the general path below, which decides.
  if (entry.byteLength <= eventPayloadBytesMax) {
    const canonical = readCanonicalNewEvent(entry);
    if (canonical !== undefined) {
      markFrozenValidNewEvent(canonical.event, { data: canonical.data, meta: canonical.meta });
      return canonical.event;
    }
  }
  const event = decodeEvent(entry);
  // A new event decoded here is validation's fresh copy, held by no one else yet: frozen, so
  // that whoever it is handed to can take it as valid without validating it again.
  return isRecordedEvent(event) ? event : freezeValidatedNewEvent(event);
}
