/**
 * Reads an ArtifactDeployed event's data straight from its msgpack bytes (as the store keeps
 * them) for ArtifactTreeFold.applyDeployedData: the path, the checksums and the mime type
 * stay byte ranges of the input (no string made for them), the size a number, the properties
 * their keys' byte ranges and their values as strings.
 *
 * Only the plain shape is read: a msgpack map of exactly the keys path, sha256, sha1, md5,
 * size, mimeType and properties (each once, any order), every string ASCII, the checksums
 * lowercase hex of their lengths, the size a msgpack integer of up to 32 bits or a float64,
 * the properties a map of string keys (none a digit-led or `__proto__` key: a decoded
 * object orders or renames those) to arrays of strings. Anything else — and any byte that
 * does not parse — reads as false, and the caller decodes the event as before (the generic
 * decoder and `apply`), so whatever the generic path would do or throw, it still does.
 *
 * `readDeleted` and `readPropertiesSet` read the data of an ArtifactDeleted (exactly `path`)
 * and of a PropertiesSet (exactly `path` and `properties`) the same way, for
 * ArtifactTreeFold.applyDeletedData and applyPropertiesSetData.
 */
import { Buffer } from 'node:buffer';
import { LOWERCASE_HEX_VALUES as HEX_VALUES } from './hex-values.ts';

/** Bytes of each checksum in the data (hex: twice as many characters). */
const CHECKSUM_HEX_LENGTHS = { sha256: 64, sha1: 40, md5: 32 } as const;

/** Which keys were seen, one bit each. */
const PATH = 1;
const SHA256 = 2;
const SHA1 = 4;
const MD5 = 8;
const SIZE = 16;
const MIME_TYPE = 32;
const PROPERTIES = 64;
const DEPLOYED_KEYS = 127;
const DELETED_KEYS = PATH;
const PROPERTIES_SET_KEYS = PATH | PROPERTIES;

/** Where each checksum's bytes are in `checksums`. */
export const DEPLOYED_SHA256_AT = 0;
export const DEPLOYED_SHA1_AT = 32;
export const DEPLOYED_MD5_AT = 52;

export class ArtifactDeployedDataReader {
  /** The bytes of the last data read (the ranges below are into them). */
  bytes: Buffer = Buffer.alloc(0);
  pathStart = 0;
  pathLength = 0;
  /** The checksums as bytes: sha256 at DEPLOYED_SHA256_AT, sha1 at DEPLOYED_SHA1_AT, md5 at DEPLOYED_MD5_AT. */
  readonly checksums: Buffer = Buffer.alloc(68);
  size = 0;
  mimeTypeStart = 0;
  mimeTypeLength = 0;
  /** The properties: `propertyCount` keys as byte ranges, each with its values. */
  propertyCount = 0;
  readonly keyStarts: number[] = [];
  readonly keyLengths: number[] = [];
  readonly values: string[][] = [];

  #at = 0;
  #end = 0;
  /** The last string's start and length (#string). */
  #stringStart = 0;
  #stringLength = 0;

  /** Reads ArtifactDeployed data at `bytes[start, end)`; false when it is not exactly the plain shape (see the module comment). */
  read(bytes: Buffer, start: number, end: number): boolean {
    return this.#read(bytes, start, end, DEPLOYED_KEYS, 7);
  }

  /** Reads ArtifactDeleted data (`path` alone), as `read`. */
  readDeleted(bytes: Buffer, start: number, end: number): boolean {
    return this.#read(bytes, start, end, DELETED_KEYS, 1);
  }

  /** Reads PropertiesSet data (`path` and `properties` alone), as `read`. */
  readPropertiesSet(bytes: Buffer, start: number, end: number): boolean {
    return this.#read(bytes, start, end, PROPERTIES_SET_KEYS, 2);
  }

  /** A map of exactly the `count` keys of `expected`. */
  #read(bytes: Buffer, start: number, end: number, expected: number, count: number): boolean {
    this.bytes = bytes;
    this.#at = start;
    this.#end = end;
    this.propertyCount = 0;
    const keys = this.#mapLength();
    if (keys !== count) return false;
    let seen = 0;
    for (let index = 0; index < keys; index++) {
      if (!this.#string()) return false;
      const key = this.#keyOf(this.#stringStart, this.#stringLength);
      if ((key & expected) === 0 || (seen & key) !== 0) return false;
      seen |= key;
      switch (key) {
        case PATH:
          if (!this.#asciiString()) return false;
          this.pathStart = this.#stringStart;
          this.pathLength = this.#stringLength;
          break;
        case SHA256:
          if (!this.#hex(CHECKSUM_HEX_LENGTHS.sha256, DEPLOYED_SHA256_AT)) return false;
          break;
        case SHA1:
          if (!this.#hex(CHECKSUM_HEX_LENGTHS.sha1, DEPLOYED_SHA1_AT)) return false;
          break;
        case MD5:
          if (!this.#hex(CHECKSUM_HEX_LENGTHS.md5, DEPLOYED_MD5_AT)) return false;
          break;
        case SIZE:
          if (!this.#number()) return false;
          break;
        case MIME_TYPE:
          if (!this.#asciiString()) return false;
          this.mimeTypeStart = this.#stringStart;
          this.mimeTypeLength = this.#stringLength;
          break;
        case PROPERTIES:
          if (!this.#properties()) return false;
          break;
      }
    }
    return seen === expected && this.#at === end;
  }

  /** The key bit of the string at `start`, 0 for any other key. */
  #keyOf(start: number, length: number): number {
    const bytes = this.bytes;
    switch (length) {
      case 3:
        return bytes[start] === 0x6d && bytes[start + 1] === 0x64 && bytes[start + 2] === 0x35 ? MD5 : 0; // md5
      case 4:
        if (bytes[start] === 0x70 && bytes[start + 1] === 0x61 && bytes[start + 2] === 0x74 && bytes[start + 3] === 0x68) return PATH; // path
        if (bytes[start] === 0x73 && bytes[start + 1] === 0x68 && bytes[start + 2] === 0x61 && bytes[start + 3] === 0x31) return SHA1; // sha1
        if (bytes[start] === 0x73 && bytes[start + 1] === 0x69 && bytes[start + 2] === 0x7a && bytes[start + 3] === 0x65) return SIZE; // size
        return 0;
      case 6:
        return equalsAscii(bytes, start, 'sha256') ? SHA256 : 0;
      case 8:
        return equalsAscii(bytes, start, 'mimeType') ? MIME_TYPE : 0;
      case 10:
        return equalsAscii(bytes, start, 'properties') ? PROPERTIES : 0;
      default:
        return 0;
    }
  }

  #properties(): boolean {
    const count = this.#mapLength();
    if (count < 0) return false;
    const bytes = this.bytes;
    for (let index = 0; index < count; index++) {
      if (!this.#asciiString()) return false;
      const start = this.#stringStart;
      const length = this.#stringLength;
      // A decoded object puts integer-like keys first and renames __proto__: left to it.
      if (length === 0 || (bytes[start]! >= 0x30 && bytes[start]! <= 0x39) || (length === 9 && equalsAscii(bytes, start, '__proto__'))) return false;
      // A key twice: the decoded object keeps the last; left to it.
      for (let other = 0; other < index; other++) if (this.keyLengths[other] === length && equalBytes(bytes, this.keyStarts[other]!, start, length)) return false;
      const valueCount = this.#arrayLength();
      if (valueCount < 0) return false;
      const values = new Array<string>(valueCount);
      for (let value = 0; value < valueCount; value++) {
        if (!this.#asciiString()) return false;
        values[value] = latin1(bytes, this.#stringStart, this.#stringLength);
      }
      this.keyStarts[index] = start;
      this.keyLengths[index] = length;
      this.values[index] = values;
    }
    this.propertyCount = count;
    return true;
  }

  /** A msgpack map header: its entry count, -1 for anything else. */
  #mapLength(): number {
    return this.#header(0x80, 0xde);
  }

  /** A msgpack array header: its length, -1 for anything else. */
  #arrayLength(): number {
    return this.#header(0x90, 0xdc);
  }

  /** The count of a header of the fix form (`fix` to `fix` + 15) or the 16-bit one (`head16`); -1 for anything else. */
  #header(fix: number, head16: number): number {
    if (this.#at >= this.#end) return -1;
    const bytes = this.bytes;
    const head = bytes[this.#at++]!;
    if (head >= fix && head <= fix + 0x0f) return head & 0x0f;
    if (head === head16 && this.#at + 2 <= this.#end) {
      this.#at += 2;
      return (bytes[this.#at - 2]! << 8) | bytes[this.#at - 1]!;
    }
    return -1;
  }

  /** A msgpack string: sets #stringStart and #stringLength; false for anything else or one past the end. */
  #string(): boolean {
    if (this.#at >= this.#end) return false;
    const bytes = this.bytes;
    const head = bytes[this.#at++]!;
    let length: number;
    if (head >= 0xa0 && head <= 0xbf) length = head & 0x1f;
    else if (head === 0xd9 && this.#at + 1 <= this.#end) length = bytes[this.#at++]!;
    else if (head === 0xda && this.#at + 2 <= this.#end) {
      length = (bytes[this.#at]! << 8) | bytes[this.#at + 1]!;
      this.#at += 2;
    } else return false;
    if (this.#at + length > this.#end) return false;
    this.#stringStart = this.#at;
    this.#stringLength = length;
    this.#at += length;
    return true;
  }

  /** A msgpack string of ASCII bytes only. */
  #asciiString(): boolean {
    if (!this.#string()) return false;
    const bytes = this.bytes;
    const end = this.#stringStart + this.#stringLength;
    for (let index = this.#stringStart; index < end; index++) if (bytes[index]! >= 0x80) return false;
    return true;
  }

  /** A msgpack string of `length` lowercase hex digits, as bytes into `checksums` at `at`. */
  #hex(length: number, at: number): boolean {
    if (!this.#string() || this.#stringLength !== length) return false;
    const bytes = this.bytes;
    const checksums = this.checksums;
    let from = this.#stringStart;
    for (let index = at; index < at + length / 2; index++) {
      const high = HEX_VALUES[bytes[from]!]!;
      const low = HEX_VALUES[bytes[from + 1]!]!;
      if ((high | low) < 0) return false;
      checksums[index] = (high << 4) | low;
      from += 2;
    }
    return true;
  }

  /** A msgpack integer of up to 32 bits or a float64 into `size` (as msgpackr decodes them). */
  #number(): boolean {
    if (this.#at >= this.#end) return false;
    const bytes = this.bytes;
    const at = this.#at;
    const head = bytes[at]!;
    if (head <= 0x7f || head >= 0xe0) {
      this.size = head <= 0x7f ? head : head - 0x100;
      this.#at = at + 1;
      return true;
    }
    const need = head === 0xcc || head === 0xd0 ? 2 : head === 0xcd || head === 0xd1 ? 3 : head === 0xce || head === 0xd2 ? 5 : head === 0xcb ? 9 : 0;
    if (need === 0 || at + need > this.#end) return false;
    if (head === 0xcb) this.size = bytes.readDoubleBE(at + 1);
    else if (head === 0xcc) this.size = bytes[at + 1]!;
    else if (head === 0xd0) this.size = bytes.readInt8(at + 1);
    else if (head === 0xcd) this.size = bytes.readUInt16BE(at + 1);
    else if (head === 0xd1) this.size = bytes.readInt16BE(at + 1);
    else if (head === 0xce) this.size = bytes.readUInt32BE(at + 1);
    else this.size = bytes.readInt32BE(at + 1);
    this.#at = at + need;
    return true;
  }
}

function equalsAscii(bytes: Buffer, start: number, text: string): boolean {
  for (let index = 0; index < text.length; index++) if (bytes[start + index] !== text.charCodeAt(index)) return false;
  return true;
}

function equalBytes(bytes: Buffer, a: number, b: number, length: number): boolean {
  for (let index = 0; index < length; index++) if (bytes[a + index] !== bytes[b + index]) return false;
  return true;
}

/** ASCII bytes as a string. */
function latin1(bytes: Buffer, start: number, length: number): string {
  return bytes.toString('latin1', start, start + length);
}
