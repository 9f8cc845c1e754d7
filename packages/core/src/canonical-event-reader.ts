/**
 * A reader for the one form in which events travel almost always: a new event's encoding
 * exactly as the codec writes it (event-codec.ts; msgpackr 2.1.3 with `useRecords: false`).
 * A receiver catching up used to decode each event with msgpackr, validate it, then encode
 * its data and meta again for storage and for its digest: those bytes are inside what it
 * received, when the sender wrote them as we would. This reader decodes such an encoding,
 * checks that every token is the one the codec writes for its value (so the bytes of data and
 * meta are `encode(value)` byte for byte), validates the event as the codec does and checks
 * that validation changed nothing (no field reordered or dropped): then data and meta are the
 * received bytes, not encoded again.
 *
 * Anything else — another token form, a non-ASCII string, a key JavaScript would reorder, a
 * refusal — gives undefined: the caller takes the general path (msgpackr, validation,
 * encoding), which decides, so results and refusals stay what they were.
 */
import type { NewEvent } from './events.ts';
import { validateNewEvent } from './event-validation.ts';

/** A new event as validation returned it, deeply frozen, with its data's and meta's canonical encodings. */
export interface CanonicalNewEvent {
  readonly event: NewEvent;
  /** encode(event.data): a view into the bytes read. */
  readonly data: Uint8Array;
  /** encode(event.meta): a view into the bytes read. */
  readonly meta: Uint8Array;
}

/** Not canonical (or not what this reader reads): the general path decides. */
const NOT_CANONICAL = Symbol('not canonical');

/** Nesting deeper than this is left to the general path (validation refuses data nested past 32). */
const depthMax = 40;

/** The envelope's keys, in the order validation returns them and so the codec writes them. */
const ENVELOPE_KEYS = ['id', 'origin', 'originSeq', 'hlc', 'type', 'data', 'meta'] as const;
const HLC_KEYS = ['wall', 'logical'] as const;

/** Where a float64's bytes are copied to be read (no DataView per event read). */
const floatBytes = new Uint8Array(8);
const floatView = new DataView(floatBytes.buffer);

/** Node's Buffer method that makes a string of one char per byte. */
type Latin1Slice = (this: Uint8Array, start: number, end: number) => string;

class Reader {
  position = 0;
  readonly #bytes: Uint8Array;
  readonly #latin1Slice: Latin1Slice | undefined;

  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#latin1Slice = (bytes as Uint8Array & { latin1Slice?: Latin1Slice }).latin1Slice;
  }

  get atEnd(): boolean {
    return this.position === this.#bytes.byteLength;
  }

  subarray(from: number, to: number): Uint8Array {
    return this.#bytes.subarray(from, to);
  }

  #byte(): number {
    const byte = this.#bytes[this.position++];
    if (byte === undefined) throw NOT_CANONICAL;
    return byte;
  }

  #need(count: number): void {
    if (this.position + count > this.#bytes.byteLength) throw NOT_CANONICAL;
  }

  #uint16(): number {
    this.#need(2);
    const bytes = this.#bytes;
    const at = this.position;
    this.position += 2;
    return (bytes[at]! << 8) | bytes[at + 1]!;
  }

  #uint32(): number {
    this.#need(4);
    const bytes = this.#bytes;
    const at = this.position;
    this.position += 4;
    return bytes[at]! * 0x1000000 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
  }

  /** A plain object's header: msgpackr writes every plain object as a map16. */
  mapHeader(): number {
    if (this.#byte() !== 0xde) throw NOT_CANONICAL;
    return this.#uint16();
  }

  /** The next key must be `key` (ASCII, shorter than 32: one fixstr). */
  expectKey(key: string): void {
    this.#need(1 + key.length);
    if (this.#bytes[this.position] !== (0xa0 | key.length)) throw NOT_CANONICAL;
    for (let index = 0; index < key.length; index++) {
      if (this.#bytes[this.position + 1 + index] !== key.charCodeAt(index)) throw NOT_CANONICAL;
    }
    this.position += 1 + key.length;
  }

  /** An ASCII string with the smallest header for its length. */
  string(): string {
    const token = this.#byte();
    let length: number;
    if (token >= 0xa0 && token <= 0xbf) length = token - 0xa0;
    else if (token === 0xd9) {
      length = this.#byte();
      if (length < 0x20) throw NOT_CANONICAL;
    } else if (token === 0xda) {
      length = this.#uint16();
      if (length < 0x100) throw NOT_CANONICAL;
    } else if (token === 0xdb) {
      length = this.#uint32();
      if (length < 0x10000) throw NOT_CANONICAL;
    } else throw NOT_CANONICAL;
    return this.#ascii(length);
  }

  #ascii(length: number): string {
    this.#need(length);
    const bytes = this.#bytes;
    const start = this.position;
    const end = start + length;
    for (let at = start; at < end; at++) {
      // UTF-8 beyond ASCII (and its validity) is the general path's.
      if (bytes[at]! >= 0x80) throw NOT_CANONICAL;
    }
    this.position = end;
    // ASCII: one char code per byte. A Buffer makes the string natively (as msgpackr does).
    if (this.#latin1Slice !== undefined) return this.#latin1Slice.call(bytes, start, end);
    const codes: number[] = [];
    for (let at = start; at < end; at++) codes.push(bytes[at]!);
    return String.fromCharCode(...codes);
  }

  /** A number as msgpackr writes it: integers of 32 bits in their smallest form, any other finite number as a float64. */
  number(): number {
    const token = this.#byte();
    if (token <= 0x7f) return token;
    if (token >= 0xe0) return token - 0x100;
    switch (token) {
      case 0xcc: {
        const value = this.#byte();
        if (value < 0x80) throw NOT_CANONICAL;
        return value;
      }
      case 0xcd: {
        const value = this.#uint16();
        if (value < 0x100) throw NOT_CANONICAL;
        return value;
      }
      case 0xce: {
        const value = this.#uint32();
        if (value < 0x10000) throw NOT_CANONICAL;
        return value;
      }
      case 0xd0: {
        const value = (this.#byte() << 24) >> 24;
        if (value >= -0x20) throw NOT_CANONICAL;
        return value;
      }
      case 0xd1: {
        const value = (this.#uint16() << 16) >> 16;
        if (value >= -0x80) throw NOT_CANONICAL;
        return value;
      }
      case 0xd2: {
        const value = this.#uint32() | 0;
        if (value >= -0x8000) throw NOT_CANONICAL;
        return value;
      }
      case 0xcb: {
        this.#need(8);
        floatBytes.set(this.#bytes.subarray(this.position, this.position + 8));
        const value = floatView.getFloat64(0);
        this.position += 8;
        // A 32-bit integer (and -0, written as 0) has a shorter form; NaN and the infinities
        // are refused by validation anyway.
        if (!Number.isFinite(value) || value >>> 0 === value || value >> 0 === value) throw NOT_CANONICAL;
        return value;
      }
      default:
        throw NOT_CANONICAL;
    }
  }

  /** Any value of JSON data (null, booleans, numbers, strings, arrays, plain objects), each in the codec's form. */
  value(depth: number): unknown {
    if (depth > depthMax) throw NOT_CANONICAL;
    const token = this.#bytes[this.position];
    if (token === undefined) throw NOT_CANONICAL;
    if (token <= 0x7f || token >= 0xe0 || (token >= 0xcb && token <= 0xce) || (token >= 0xd0 && token <= 0xd2)) return this.number();
    if ((token >= 0xa0 && token <= 0xbf) || (token >= 0xd9 && token <= 0xdb)) return this.string();
    if (token === 0xde) return this.object(depth);
    this.position++;
    if (token === 0xc0) return null;
    if (token === 0xc2) return false;
    if (token === 0xc3) return true;
    let length: number;
    if (token >= 0x90 && token <= 0x9f) length = token - 0x90;
    else if (token === 0xdc) {
      length = this.#uint16();
      if (length < 0x10) throw NOT_CANONICAL;
    } else if (token === 0xdd) {
      length = this.#uint32();
      if (length < 0x10000) throw NOT_CANONICAL;
    } else throw NOT_CANONICAL;
    // Every element takes a byte at least: a length beyond the bytes left is not read.
    this.#need(length);
    const array: unknown[] = [];
    for (let index = 0; index < length; index++) array.push(this.value(depth + 1));
    return array;
  }

  object(depth: number): Record<string, unknown> {
    const count = this.mapHeader();
    this.#need(count);
    const object: Record<string, unknown> = {};
    for (let index = 0; index < count; index++) {
      const key = this.string();
      // A key JavaScript orders before the others (an array index), one met twice, or the
      // prototype's name would make the object differ from its bytes.
      const first = key.charCodeAt(0);
      if ((first >= 0x30 && first <= 0x39) || key === '__proto__' || Object.hasOwn(object, key)) throw NOT_CANONICAL;
      object[key] = this.value(depth + 1);
    }
    return object;
  }
}

/**
 * Whether `copy` (what validation returned for `read`) holds exactly `read`: the same keys in
 * the same order, the same values. Freezes `copy` deeply on the way.
 */
function sameAndFrozen(read: unknown, copy: unknown): boolean {
  if (typeof copy !== 'object' || copy === null) return Object.is(read, copy);
  if (typeof read !== 'object' || read === null) return false;
  if (Array.isArray(copy)) {
    if (!Array.isArray(read) || read.length !== copy.length) return false;
    for (let index = 0; index < copy.length; index++) {
      if (!sameAndFrozen(read[index], copy[index])) return false;
    }
    Object.freeze(copy);
    return true;
  }
  if (Array.isArray(read)) return false;
  const readKeys = Object.keys(read);
  let index = 0;
  for (const key in copy) {
    if (readKeys[index++] !== key) return false;
    if (!sameAndFrozen((read as Record<string, unknown>)[key], (copy as Record<string, unknown>)[key])) return false;
  }
  if (index !== readKeys.length) return false;
  Object.freeze(copy);
  return true;
}

/**
 * The new event encoded in `bytes` when they are exactly the codec's encoding of a valid new
 * event: validation's copy of it, deeply frozen, with the bytes of its data and meta (views
 * into `bytes`, equal to what the codec would encode for them). Undefined for anything else,
 * valid or not: the general path decodes that. The caller checks the size limits first.
 */
export function readCanonicalNewEvent(bytes: Uint8Array): CanonicalNewEvent | undefined {
  const reader = new Reader(bytes);
  try {
    if (reader.mapHeader() !== ENVELOPE_KEYS.length) return undefined;
    reader.expectKey('id');
    const id = reader.string();
    reader.expectKey('origin');
    const origin = reader.string();
    reader.expectKey('originSeq');
    const originSeq = reader.number();
    reader.expectKey('hlc');
    if (reader.mapHeader() !== HLC_KEYS.length) return undefined;
    reader.expectKey('wall');
    const wall = reader.number();
    reader.expectKey('logical');
    const logical = reader.number();
    reader.expectKey('type');
    const type = reader.string();
    reader.expectKey('data');
    const dataStart = reader.position;
    const data = reader.value(1);
    const dataEnd = reader.position;
    reader.expectKey('meta');
    const metaStart = reader.position;
    const meta = reader.value(1);
    if (!reader.atEnd) return undefined;
    const read = { id, origin, originSeq, hlc: { wall, logical }, type, data, meta };
    let event: NewEvent;
    try {
      event = validateNewEvent(read);
    } catch {
      // Refused: the general path refuses it with the same error.
      return undefined;
    }
    if (!sameAndFrozen(read, event)) return undefined;
    return { event, data: reader.subarray(dataStart, dataEnd), meta: reader.subarray(metaStart, bytes.byteLength) };
  } catch (error) {
    if (error === NOT_CANONICAL) return undefined;
    throw error;
  }
}
