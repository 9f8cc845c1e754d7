/**
 * The mark behind `isFrozenValidNewEvent` (event-validation.ts): new events that validation
 * returned and that were then frozen deeply, so that whoever is handed one need not validate
 * it again. An event read from the codec's own encoding (canonical-event-reader.ts) also keeps
 * the bytes of its data and meta, which `encodeValidatedEventParts` then returns instead of
 * encoding them again. Internal to core: not exported from its index.
 */

/** The codec's encodings of an event's data and meta (`encodeEventData`, `encodeMeta`). */
export interface EncodedEventParts {
  readonly data: Uint8Array;
  readonly meta: Uint8Array;
}

const frozenValidNewEvents = new WeakMap<object, EncodedEventParts | null>();

/** Only for a new event that validation returned, deeply frozen since; `parts` only when they are its data's and meta's encodings. */
export function markFrozenValidNewEvent(event: object, parts: EncodedEventParts | null): void {
  frozenValidNewEvents.set(event, parts);
}

export function isMarkedFrozenValidNewEvent(value: object): boolean {
  return frozenValidNewEvents.has(value);
}

/** The encodings kept for a marked event, if it was read from them. */
export function encodedPartsOfFrozenValidNewEvent(value: object): EncodedEventParts | undefined {
  return frozenValidNewEvents.get(value) ?? undefined;
}
