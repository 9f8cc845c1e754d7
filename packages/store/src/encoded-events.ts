/**
 * Encodings and digests of events computed before their append, kept so that the append does
 * not compute them again. The federation engine digests every event it receives (to check its
 * origin chain: core event-chain.ts) — the same msgpack encodings of data and meta and the
 * same sha256 the store's append computes for the site chain. Profiled on a receiver catching
 * up, both together were a fifth of its main thread's busy time.
 *
 * Keyed by the event object, and only for the stream named: an event is remembered as core's
 * validation returned it (`validateNewEvent`, or the codec's decode) and must not be mutated
 * afterwards. The append still validates every event; it only takes the bytes and the digest
 * from here instead of encoding and hashing again.
 */
import { eventDigest, encodeEventData, encodeMeta, type NewEvent } from '@strata/core';

export interface EncodedEvent {
  readonly stream: string;
  /** encodeEventData(type, data) */
  readonly data: Uint8Array;
  /** encodeMeta(meta) */
  readonly meta: Uint8Array;
  /** eventDigest({stream, id, origin, originSeq, hlc, type}, data, meta) */
  readonly digest: Buffer;
}

const encodedEvents = new WeakMap<object, EncodedEvent>();

/**
 * Encodes and digests `event` as an append to `stream` would (the digest is the origin-chain
 * link its successor must carry) and remembers the result for that append.
 */
export function encodeAndDigestEvent(stream: string, event: NewEvent): EncodedEvent {
  const known = encodedEvents.get(event);
  if (known !== undefined && known.stream === stream) return known;
  const data = encodeEventData(event.type, event.data as never);
  const meta = encodeMeta(event.meta);
  const envelope = { stream, id: event.id, origin: event.origin, originSeq: event.originSeq, hlc: event.hlc, type: event.type };
  const encoded: EncodedEvent = { stream, data, meta, digest: eventDigest(envelope, data, meta) };
  encodedEvents.set(event, encoded);
  return encoded;
}

/** What `encodeAndDigestEvent` computed for this event object and stream, if anything. */
export function encodedEventOf(event: unknown, stream: string): EncodedEvent | undefined {
  if (typeof event !== 'object' || event === null) return undefined;
  const known = encodedEvents.get(event);
  return known !== undefined && known.stream === stream ? known : undefined;
}
