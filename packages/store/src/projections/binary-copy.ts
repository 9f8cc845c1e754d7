/**
 * PostgreSQL's binary COPY format, written field by field straight into buffers: no row
 * arrays, no number-to-text conversion and no escaping on this side, no text parsing on the
 * server's. A rebuild writes a million rows this way (see artifact-tree-projection.ts).
 *
 * Format: a header, then per row an int16 field count and per field an int32 byte length
 * (-1 for NULL) and the value in the type's binary form (text: UTF-8; int8/int4: big-endian
 * two's complement; bool: one byte; jsonb: a version byte 1 and the JSON text), then an
 * int16 -1 trailer.
 */
import type { UnnestColumn } from './sql-values.ts';

/** "PGCOPY\n\377\r\n\0", flags 0, header extension length 0. */
export const BINARY_COPY_HEADER: Buffer = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
export const BINARY_COPY_TRAILER: Buffer = Buffer.from([0xff, 0xff]);

const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (character) => character.charCodeAt(0));
const TWO_TO_32 = 4294967296;

/** Rows for a binary COPY into `table` (`columns` in the order each row writes its fields). */
export interface BinaryCopySource {
  readonly table: string;
  readonly columns: readonly UnnestColumn[];
  /** Writes the next row into `out` (`out.row(…)`, one call per field, `out.endRow()`); false when there is none left. */
  writeRow(out: BinaryCopyWriter): boolean;
}

/** A taken writer's buffer until its next row (`take`). */
const noBuffer = Buffer.alloc(0);

/**
 * Encodes rows into buffers of about `chunkBytesMax` bytes (a row never spans two, so each
 * chunk can also be a COPY statement of its own, as on PGlite). The header and the trailer
 * are the caller's.
 */
export class BinaryCopyWriter {
  readonly #chunkBytesMax: number;
  #buffer: Buffer;
  #at = 0;
  #rowStart = 0;
  readonly #ready: Buffer[] = [];
  /** Rows ended so far. */
  rows = 0;

  constructor(chunkBytesMax: number) {
    this.#chunkBytesMax = chunkBytesMax;
    this.#buffer = Buffer.allocUnsafe(chunkBytesMax + 64 * 1024);
  }

  /** True once a chunk is complete (take it with `take`). */
  get hasChunk(): boolean {
    return this.#ready.length > 0;
  }

  /** The complete chunks, and with `all` the rows written since (the last, partial chunk). */
  take(all = false): Buffer[] {
    const chunks = this.#ready.splice(0, this.#ready.length);
    if (all && this.#at > 0) {
      chunks.push(this.#buffer.subarray(0, this.#at));
      // The next buffer when a next row comes (#room): a writer taken whole is mostly done,
      // and a chunk-sized buffer allocated for nothing is external memory the garbage
      // collector answers (a receiver's every page of events).
      this.#buffer = noBuffer;
      this.#at = 0;
      this.#rowStart = 0;
    }
    return chunks;
  }

  row(fields: number): void {
    this.#rowStart = this.#at;
    this.#room(2);
    const buffer = this.#buffer;
    buffer[this.#at] = fields >>> 8;
    buffer[this.#at + 1] = fields & 0xff;
    this.#at += 2;
  }

  endRow(): void {
    this.rows++;
    if (this.#at >= this.#chunkBytesMax) {
      this.#ready.push(this.#buffer.subarray(0, this.#at));
      this.#buffer = Buffer.allocUnsafe(this.#chunkBytesMax + 64 * 1024);
      this.#at = 0;
      this.#rowStart = 0;
    }
  }

  null(): void {
    this.#room(4);
    this.#int32(-1);
  }

  bool(value: boolean): void {
    this.#room(5);
    this.#int32(1);
    this.#buffer[this.#at++] = value ? 1 : 0;
  }

  int4(value: number): void {
    if (!Number.isInteger(value) || value < -2147483648 || value > 2147483647) throw new RangeError(`not an int4: ${value}`);
    this.#room(8);
    this.#int32(4);
    this.#int32(value);
  }

  int8(value: number): void {
    if (!Number.isSafeInteger(value)) throw new RangeError(`not an int8 this writer encodes: ${value}`);
    this.#room(12);
    this.#int32(8);
    const high = Math.floor(value / TWO_TO_32);
    this.#int32(high | 0);
    this.#int32((value - high * TWO_TO_32) | 0);
  }

  /** A bigint within int8's range (the caller checks it). */
  int8Big(value: bigint): void {
    this.#room(12);
    this.#int32(8);
    const bits = BigInt.asUintN(64, value);
    this.#int32(Number(bits >> 32n) | 0);
    this.#int32(Number(bits & 0xffffffffn) | 0);
  }

  /** `value.slice(start, end)` as text (UTF-8), without slicing it. */
  text(value: string, start = 0, end = value.length): void {
    const length = end - start;
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    this.#room(4 + 3 * length);
    const buffer = this.#buffer;
    const lengthAt = this.#at;
    const from = lengthAt + 4;
    let at = from;
    for (let index = start; index < end; index++) {
      const code = value.charCodeAt(index);
      if (code >= 0x80) {
        // Short ASCII is most fields (ids, stamps, names); the rest goes through the encoder.
        at = from + buffer.write(start === 0 && end === value.length ? value : value.slice(start, end), from, 'utf8');
        break;
      }
      buffer[at++] = code;
    }
    this.#at = lengthAt;
    this.#int32(at - from);
    this.#at = at;
  }

  /**
   * Three text fields: `value`, the part before `cut` and the part after it (a path, its
   * parent and its name; `cut` < 0: '' and the whole value). When `value` is ASCII, the parts
   * are copies of its bytes rather than encoded again.
   */
  textAndParts(value: string, cut: number): void {
    this.#room(4 + 3 * value.length);
    const start = this.#at + 4;
    this.text(value);
    const bytes = this.#at - start;
    if (bytes !== value.length) {
      this.text(value, 0, cut < 0 ? 0 : cut);
      this.text(value, cut + 1);
      return;
    }
    const before = cut < 0 ? 0 : cut;
    const after = value.length - cut - 1;
    this.#room(8 + before + after);
    // #room may have moved the row to a new buffer: find the value's bytes again.
    const from = this.#at - bytes;
    this.#int32(before);
    this.#buffer.copyWithin(this.#at, from, from + before);
    this.#at += before;
    this.#int32(after);
    this.#buffer.copyWithin(this.#at, from + cut + 1, from + cut + 1 + after);
    this.#at += after;
  }

  /** `length` bytes of UTF-8 from `bytes[start]` as text (a fold's ids, kept as bytes). */
  utf8(bytes: Uint8Array, start: number, length: number): void {
    this.#room(4 + length);
    this.#int32(length);
    const buffer = this.#buffer;
    let at = this.#at;
    // Short (ids, paths): a loop costs less than a view and a call into the copy.
    if (length <= 128) for (let index = start; index < start + length; index++) buffer[at++] = bytes[index]!;
    else {
      buffer.set(bytes.subarray(start, start + length), at);
      at += length;
    }
    this.#at = at;
  }

  /**
   * Three text fields from `length` bytes of UTF-8 at `bytes[start]`: all of them, the part
   * before their last slash ('' without one) and the part after it (a path, its parent and its
   * name, as textAndParts).
   */
  utf8AndParts(bytes: Uint8Array, start: number, length: number): void {
    let cut = start + length - 1;
    while (cut >= start && bytes[cut] !== 0x2f) cut--;
    this.utf8(bytes, start, length);
    this.utf8(bytes, start, cut < start ? 0 : cut - start);
    this.utf8(bytes, cut + 1, start + length - cut - 1);
  }

  /** `length` bytes from `bytes[start]` as lowercase hex text. */
  hex(bytes: Uint8Array, start: number, length: number): void {
    this.#room(4 + 2 * length);
    this.#int32(2 * length);
    const buffer = this.#buffer;
    let at = this.#at;
    for (let index = start; index < start + length; index++) {
      const byte = bytes[index]!;
      buffer[at++] = HEX_DIGITS[byte >>> 4]!;
      buffer[at++] = HEX_DIGITS[byte & 0x0f]!;
    }
    this.#at = at;
  }

  /** Bytes as bytea (binary form: the bytes themselves). */
  bytea(bytes: Uint8Array): void {
    this.#room(4 + bytes.length);
    this.#int32(bytes.length);
    this.#buffer.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  /** JSON text as jsonb (format version 1, then the text). */
  jsonb(json: string): void {
    this.#room(5 + 3 * json.length);
    const lengthAt = this.#at;
    this.#at += 4;
    this.#buffer[this.#at++] = 1;
    const written = this.#buffer.write(json, this.#at, 'utf8');
    this.#at = lengthAt;
    this.#int32(written + 1);
    this.#at += written + 1;
  }

  #int32(value: number): void {
    const buffer = this.#buffer;
    const at = this.#at;
    buffer[at] = value >>> 24;
    buffer[at + 1] = (value >>> 16) & 0xff;
    buffer[at + 2] = (value >>> 8) & 0xff;
    buffer[at + 3] = value & 0xff;
    this.#at = at + 4;
  }

  /** Makes room for `bytes` more; a row that does not fit moves whole into a new buffer. */
  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buffer.length) return;
    const partial = this.#at - this.#rowStart;
    const next = Buffer.allocUnsafe(Math.max(this.#chunkBytesMax + 64 * 1024, partial + bytes + 64 * 1024));
    this.#buffer.copy(next, 0, this.#rowStart, this.#at);
    if (this.#rowStart > 0) this.#ready.push(this.#buffer.subarray(0, this.#rowStart));
    this.#buffer = next;
    this.#rowStart = 0;
    this.#at = partial;
  }
}

const INT8_MIN = -(2n ** 63n);
const INT8_MAX = 2n ** 63n - 1n;

/**
 * Rows (arrays in the order of `columns`; null and undefined are SQL NULL) as binary COPY data,
 * header and trailer included: what a large append batch hands its projections' rows over
 * with (sql-event-store.ts). The values each column takes as they are (text: a string; int8:
 * a safe integer or a bigint in range; int4: an integer in range; bool: a boolean; jsonb: JSON
 * text or a value to stringify) — the same values COPY's text format would give the server.
 * Undefined when a row holds any other value: the caller writes those rows as text, where the
 * server decides, as before.
 */
export function binaryCopyRows(columns: readonly UnnestColumn[], rows: readonly (readonly unknown[])[]): Uint8Array[] | undefined {
  const types = columns.map(([, type]) => type);
  const fields = types.length;
  const out = new BinaryCopyWriter(Math.min(4 * 1024 * 1024, 64 * 1024 + rows.length * fields * 24));
  for (const row of rows) {
    if (row.length !== fields) return undefined;
    out.row(fields);
    for (let index = 0; index < fields; index++) {
      const value = row[index];
      if (value === null || value === undefined) {
        out.null();
        continue;
      }
      switch (types[index]) {
        case 'text':
          if (typeof value !== 'string') return undefined;
          out.text(value);
          break;
        case 'int8':
          if (typeof value === 'number' && Number.isSafeInteger(value)) out.int8(value);
          else if (typeof value === 'bigint' && value >= INT8_MIN && value <= INT8_MAX) out.int8Big(value);
          else return undefined;
          break;
        case 'int4':
          if (typeof value !== 'number' || !Number.isInteger(value) || value < -2147483648 || value > 2147483647) return undefined;
          out.int4(value);
          break;
        case 'bool':
          if (typeof value !== 'boolean') return undefined;
          out.bool(value);
          break;
        case 'jsonb': {
          // A bigint anywhere throws in JSON.stringify: left to the text path, which throws as before.
          const json: string | undefined = typeof value === 'string' ? value : typeof value === 'bigint' ? undefined : JSON.stringify(value);
          if (typeof json !== 'string') return undefined;
          out.jsonb(json);
          break;
        }
        default:
          return undefined;
      }
    }
    out.endRow();
  }
  return [BINARY_COPY_HEADER, ...out.take(true), BINARY_COPY_TRAILER];
}
