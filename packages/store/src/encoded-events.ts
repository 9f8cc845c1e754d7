/**
 * Encodings and digests of events computed before their append, kept so that the append does
 * not compute them again. The federation engine digests every event it receives (to check its
 * origin chain: core event-chain.ts) — the same msgpack encodings of data and meta and the
 * same sha256 the store's append computes for the site chain. Profiled on a receiver catching
 * up, both together were a fifth of its main thread's busy time.
 *
 * Keyed by the event object, and only for the stream named; the object must not be mutated
 * afterwards. `encodeAndDigestEvent` validates the event (core's `validateNewEvent`) and keeps
 * the validated copy with its bytes: the append takes that copy, the bytes and the digest
 * instead of validating, encoding and hashing again (a received event was validated three
 * times before: decoded, encoded here, appended). The copy is this module's own, so nothing
 * can change it between its validation and its append — or, for an event a decoder returned
 * frozen (core's `isFrozenValidNewEvent`), that event itself, which nothing can change.
 */
import { encodeValidatedEventParts, eventDigest, isFrozenValidNewEvent, originPrevOf, validateNewEvent, type NewEvent } from '@strata/core';

export interface EncodedEvent {
  readonly stream: string;
  /** The event as `validateNewEvent` returned it (a fresh copy, never handed out before its append). */
  readonly event: NewEvent;
  /** encodeEventData(event.type, event.data) */
  readonly data: Uint8Array;
  /** encodeMeta(event.meta) */
  readonly meta: Uint8Array;
  /** eventDigest({stream, id, origin, originSeq, hlc, type}, data, meta) */
  readonly digest: Buffer;
  /** originPrevOf(event.meta) ?? null: the origin-chain link it carries, parsed once for its check and its append. */
  readonly originPrev: Uint8Array | null;
}

const encodedEvents = new WeakMap<object, EncodedEvent>();

/**
 * Validates, encodes and digests `event` as an append to `stream` would (the digest is the
 * origin-chain link its successor must carry) and remembers the result for that append.
 * Throws core's StrataError when the event is invalid.
 */
export function encodeAndDigestEvent(stream: string, event: NewEvent): EncodedEvent {
  const known = encodedEvents.get(event);
  if (known !== undefined && known.stream === stream) return known;
  // A decoder's frozen copy (core's isFrozenValidNewEvent) was validated and cannot have
  // changed since: taken as it is.
  const valid = known?.event ?? (isFrozenValidNewEvent(event) ? event : validateNewEvent(event));
  const { data, meta } = known ?? encodeValidatedEventParts(valid);
  const envelope = { stream, id: valid.id, origin: valid.origin, originSeq: valid.originSeq, hlc: valid.hlc, type: valid.type };
  const encoded: EncodedEvent = { stream, event: valid, data, meta, digest: eventDigest(envelope, data, meta), originPrev: known?.originPrev ?? originPrevOf(valid.meta) ?? null };
  encodedEvents.set(event, encoded);
  return encoded;
}

/** What `encodeAndDigestEvent` computed for this event object and stream, if anything. */
export function encodedEventOf(event: unknown, stream: string): EncodedEvent | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const known = encodedEvents.get(event);
  return known !== undefined && known.stream === stream ? known : undefined;
}
