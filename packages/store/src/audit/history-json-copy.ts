import { StrataError, eventTargetPath, validateEventType } from '@strata/core';
import { HISTORY_ACTIONS } from './history-json.ts';

/**
 * The columns a history page's JSON is rendered from (renderHistoryJsonCopy), in this order:
 * what historyEventJson reads of an event and its link, nothing else.
 */
export const COPY_HISTORY_JSON_COLUMNS = 'position, id, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, prev_hash';
const FIELDS = 11;
const [POSITION, ID, REVISION, ORIGIN, ORIGIN_SEQ, HLC_WALL, HLC_LOGICAL, TYPE, DATA, META, PREV_HASH] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10] as const;

/** What renderHistoryJsonCopy rendered: a JSON array and the revision of each of its events. */
export interface HistoryJsonRows {
  /**
   * `[{…},{…}]`: the bytes of `JSON.stringify(entries.map((entry) => historyEventJson(entry, siteId)))`
   * for the page's events in revision order, in pieces (each piece whole events).
   */
  readonly json: Buffer[];
  /** The revisions of the events in `json`, in order. */
  readonly revisions: Int32Array;
  /** Rows the COPY output held (more than `limit`: the page was cut). */
  readonly rowsRead: number;
  /**
   * Hands the pieces of `json` back for the next pages to write into; nothing may read
   * `json` after it. Optional (unreleased pieces are collected as garbage); idempotent.
   */
  release(): void;
}

/** "PGCOPY\n\377\r\n\0": the signature of the binary COPY format. */
const SIGNATURE = Buffer.from([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00]);
/** Deeper msgpack nesting is left to the decoder (the page is rendered from objects). */
const nestingDepthMax = 64;
const dayMs = 86_400_000;
/** Bytes of the next chunk taken to complete a row cut at a chunk boundary (longer rows: the whole chunk). */
const boundaryRowBytesMax = 16 * 1024;
/** Bytes of a piece of the output. */
const pieceBytes = 1 << 20;
/**
 * Pieces released by pages that were sent, reused by the next ones: a fresh megabyte is a
 * new mapping the kernel zeroes page by page on first touch (the launcher has glibc map every
 * allocation of 128 KiB and more), and V8 counts it as external memory, which brings the
 * next collection closer.
 */
const pooledPieces: Buffer[] = [];
const piecesPooledMax = 16;
/**
 * Data and meta of the row being rendered, shared by every renderer: a row is rendered
 * synchronously, and nothing of it is kept in here across rows.
 */
let sharedScratch = Buffer.allocUnsafe(1 << 16);

/** A pooled piece when `bytes` fit in one, else a new buffer of `size`. */
function takePiece(bytes: number, size: number): Buffer {
  if (bytes <= pieceBytes) {
    const pooled = pooledPieces.pop();
    if (pooled !== undefined) return pooled;
  }
  return Buffer.allocUnsafe(size);
}
/** The times toISOString writes with a four-digit year (0000–9999); others have six digits and a sign. */
const isoFourDigitYearsFrom = Date.parse('0000-01-01T00:00:00.000Z');
const isoFourDigitYearsUntil = Date.parse('+010000-01-01T00:00:00.000Z');
/** Output bytes one input byte can take at most ("false," for a one-byte false, "\u0000" for a control character), plus a row's fixed fields. */
const bytesPerInputByteMax = 6;
const rowFixedBytesMax = 1024;

/**
 * Renders the binary COPY output of `select ${COPY_HISTORY_JSON_COLUMNS} from events …` as
 * the history API's JSON, straight from the stored msgpack: no event objects, no decoded
 * data and meta maps, no JSON.stringify — the allocation that made a 10,000-event page
 * spend half its client time in the garbage collector. The rows are rendered as they
 * arrive (while the COPY still streams), then put in revision order and cut at `limit`.
 *
 * The output is byte for byte what historyEventJson and JSON.stringify make of the events
 * the SQL event store decodes. Where that is not plain to show from the bytes — a msgpack
 * type other than nil, booleans, 32-bit integers, float64, strings, arrays and maps with
 * string keys; a key that a JavaScript object would reorder (a leading digit), rename
 * (`__proto__`) or merge (a duplicate); a string that is not valid UTF-8; a NULL, a
 * malformed payload or an unknown type — it answers undefined, having read the rest of the
 * output, and the caller renders the page from decoded events instead (which throws the
 * errors decoding throws).
 */
export async function renderHistoryJsonCopy(chunks: AsyncIterable<Uint8Array>, siteId: string, limit: number): Promise<HistoryJsonRows | undefined> {
  const renderer = new HistoryJsonRenderer(siteId, limit);
  let pending: Buffer | undefined;
  for await (const chunk of chunks) {
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let from = 0;
    if (pending !== undefined) {
      // A row cut at a chunk boundary: completed in a small buffer of its own (with the
      // chunk's first bytes), then the chunk is read where it is.
      const head = Buffer.concat([pending, bytes.subarray(0, Math.min(bytes.length, boundaryRowBytesMax))]);
      const consumed = renderer.push(head, 0);
      if (consumed > pending.length) from = consumed - pending.length;
      else {
        // A row longer than that: the whole chunk behind it.
        const whole = Buffer.concat([pending, bytes]);
        const read = renderer.push(whole, consumed);
        pending = read === whole.length ? undefined : whole.subarray(read);
        continue;
      }
    }
    const read = renderer.push(bytes, from);
    pending = read === bytes.length ? undefined : Buffer.from(bytes.subarray(read));
  }
  if (!renderer.ended || pending !== undefined) throw malformed('the COPY data ended without its trailer');
  return renderer.result(limit);
}

const quote = 0x22;
const backslash = 0x5c;
const HEX = Buffer.from('0123456789abcdef');
const ACTOR = Buffer.from('actor');
/** The constant parts of a rendered event. */
const T_ID = Buffer.from('{"id":');
const T_ROOT_PATH = Buffer.from('"/"');
const T_FALSE = Buffer.from('false');
const T_TRUE = Buffer.from('true');
const T_NULL = Buffer.from('null');
const T_ACTOR = Buffer.from(',"actor":');
const T_HLC_WALL = Buffer.from(',"hlc":{"wall":');
const T_LOGICAL = Buffer.from(',"logical":');
const T_TIME = Buffer.from('},"time":"');
const T_ORIGIN = Buffer.from('","origin":');
const T_ORIGINSEQ = Buffer.from(',"originSeq":');
const T_REVISION = Buffer.from(',"revision":');
const T_POSITION = Buffer.from(',"position":"');
const T_DATA = Buffer.from('","data":');
const T_META = Buffer.from(',"meta":');
const T_PREVHASH_NULL = Buffer.from(',"prevHash":null}');
const T_PREVHASH = Buffer.from(',"prevHash":"');
const T_RECEIVED_FALSE = Buffer.from(',"received":false');
const T_RECEIVED_TRUE = Buffer.from(',"received":true');
const ESCAPES: Readonly<Record<number, string>> = { 0x08: '\\b', 0x09: '\\t', 0x0a: '\\n', 0x0c: '\\f', 0x0d: '\\r', 0x22: '\\"', 0x5c: '\\\\' };
/** JSON.stringify's escape of each byte below 0x80 (undefined: the byte itself). */
const ESCAPED = Array.from({ length: 128 }, (_, byte) =>
  ESCAPES[byte] !== undefined ? Buffer.from(ESCAPES[byte]!) : byte < 0x20 ? Buffer.from(`\\u00${byte.toString(16).padStart(2, '0')}`) : undefined,
);
/** 1 for a byte JSON.stringify writes as it is (printable ASCII but `"` and `\\`). */
const PLAIN = Uint8Array.from({ length: 256 }, (_, byte) => (byte >= 0x20 && byte < 0x80 && byte !== quote && byte !== backslash ? 1 : 0));

/** How the history shows an event type's path and action. */
interface TypeRendering {
  /** `,"action":…,"type":…,"path":` */
  readonly actionAndType: Buffer;
  /** The data key holding the path (a string value), '' for the repository's root, undefined for none. */
  readonly pathKey: Buffer | '' | undefined;
}

/** Thrown inside the renderer when the page must be rendered from decoded events. */
const BAIL = Symbol('bail');

class HistoryJsonRenderer {
  /** Finished pieces of the output. */
  readonly #pieces: Buffer[] = [];
  /** The piece being written (rows never span two) and where. */
  #out: Buffer;
  #at = 1;
  /** The piece of each row, its start and end in it. */
  #rowPieces: number[] = [];
  /** Data and meta of the row being rendered (their positions are needed before they are written): sharedScratch. */
  #scratch = sharedScratch;
  /** Pieces of pieceBytes this page took: handed back by release(). */
  readonly #owned: Buffer[] = [];
  #released = false;
  #scratchAt = 0;
  #rowStarts: number[] = [];
  #rowEnds: number[] = [];
  #revisions: number[] = [];
  #sorted = true;
  #headerRead = false;
  ended = false;
  #bailed = false;
  readonly #siteId: Buffer;
  readonly #starts = new Int32Array(FIELDS);
  readonly #lengths = new Int32Array(FIELDS);
  readonly #knownTypes: { readonly name: Buffer; readonly rendering: TypeRendering }[] = [];
  /** Key positions of the maps being rendered (duplicate checks), a stack across nesting. */
  #keyStarts = new Int32Array(256);
  #keyLengths = new Int32Array(256);
  #keyCount = 0;
  /** Where in #scratch the top-level data's path string (inside its quotes) and meta's actor value were written. */
  #pathStart = -1;
  #pathEnd = -1;
  #actorStart = -1;
  #actorEnd = -1;
  #lookFor: Buffer | '' | undefined;
  #day = Number.NaN;
  /** "YYYY-MM-DDT" of #day. */
  readonly #dayPrefix = Buffer.alloc(11);

  constructor(siteId: string, limit: number) {
    this.#siteId = Buffer.from(siteId, 'utf8');
    // Pieces of a megabyte (fewer for a short page): no output copied as it grows, and less
    // external memory than doubling (which makes V8 collect the whole heap sooner).
    const firstBytes = Math.min(pieceBytes, limit * 1024 + 1024);
    this.#out = this.#piece(firstBytes, firstBytes);
    this.#out[0] = 0x5b; // [
  }

  /** Renders the complete rows of `buffer` from `offset`; answers where the first incomplete one starts. */
  push(buffer: Buffer, offset: number): number {
    if (!this.#headerRead) {
      if (buffer.length < offset + 19) return offset;
      if (!bytesEqual(buffer, offset, SIGNATURE, 0, SIGNATURE.length)) throw malformed('not binary COPY data');
      const extension = buffer.readInt32BE(offset + 15);
      if (buffer.length < offset + 19 + extension) return offset;
      offset += 19 + extension;
      this.#headerRead = true;
    }
    const starts = this.#starts;
    const lengths = this.#lengths;
    for (;;) {
      if (this.ended) {
        if (offset !== buffer.length) throw malformed('bytes after the COPY trailer');
        return offset;
      }
      if (offset + 2 > buffer.length) return offset;
      const fields = buffer.readInt16BE(offset);
      if (fields === -1) {
        this.ended = true;
        offset += 2;
        continue;
      }
      if (fields !== FIELDS) throw malformed(`a row of ${fields} fields, expected ${FIELDS}`);
      let at = offset + 2;
      for (let field = 0; field < FIELDS; field++) {
        if (at + 4 > buffer.length) return offset;
        const length = buffer.readInt32BE(at);
        starts[field] = at + 4;
        lengths[field] = length;
        at += 4 + Math.max(0, length);
        if (at > buffer.length) return offset;
      }
      if (!this.#bailed) {
        try {
          this.#row(buffer);
        } catch (error) {
          if (error !== BAIL) throw error;
          this.#bailed = true;
        }
      }
      offset = at;
    }
  }

  result(limit: number): HistoryJsonRows | undefined {
    if (this.#bailed) {
      this.#release();
      return undefined;
    }
    const count = this.#revisions.length;
    const release = () => this.#release();
    if (count === 0) {
      release();
      return { json: [Buffer.from('[]')], revisions: new Int32Array(0), rowsRead: 0, release };
    }
    if (this.#sorted && count <= limit) {
      // Written in order, commas and all: close the array.
      this.#ensure(1);
      this.#out[this.#at++] = 0x5d; // ]
      this.#pieces.push(this.#out.subarray(0, this.#at));
      return { json: this.#pieces, revisions: Int32Array.from(this.#revisions), rowsRead: count, release };
    }
    this.#pieces.push(this.#out.subarray(0, this.#at));
    const order = Array.from({ length: count }, (_, index) => index);
    const revisions = this.#revisions;
    if (!this.#sorted) order.sort((a, b) => revisions[a]! - revisions[b]!);
    order.length = Math.min(count, limit);
    let bytes = 2;
    for (const index of order) bytes += this.#rowEnds[index]! - this.#rowStarts[index]! + 1;
    const json = Buffer.allocUnsafe(bytes);
    let at = 0;
    json[at++] = 0x5b;
    for (const index of order) {
      if (at > 1) json[at++] = 0x2c;
      at = copyBytes(this.#pieces[this.#rowPieces[index]!]!, this.#rowStarts[index]!, this.#rowEnds[index]!, json, at);
    }
    json[at++] = 0x5d;
    // Copied out of the pieces: they can serve the next page now.
    release();
    return { json: [json.subarray(0, at)], revisions: Int32Array.from(order, (index) => revisions[index]!), rowsRead: count, release };
  }

  #row(buffer: Buffer): void {
    const starts = this.#starts;
    const lengths = this.#lengths;
    for (let field = 0; field < FIELDS; field++) if (lengths[field]! < 0 && field !== PREV_HASH) throw BAIL;
    const rendering = this.#typeRendering(buffer, starts[TYPE]!, lengths[TYPE]!);
    const revision = buffer.readInt32BE(starts[REVISION]!);
    // Data and meta first, into the scratch buffer: the path and the actor come before them.
    const dataStart = starts[DATA]!;
    const dataEnd = dataStart + lengths[DATA]!;
    const metaStart = starts[META]!;
    const metaEnd = metaStart + lengths[META]!;
    this.#scratchAt = 0;
    this.#ensureScratch((dataEnd - dataStart + metaEnd - metaStart) * bytesPerInputByteMax + 16);
    this.#pathStart = -1;
    this.#pathEnd = -1;
    this.#actorStart = -1;
    this.#actorEnd = -1;
    this.#lookFor = rendering.pathKey;
    this.#document(buffer, dataStart, dataEnd, true);
    const renderedDataEnd = this.#scratchAt;
    this.#lookFor = undefined;
    this.#document(buffer, metaStart, metaEnd, false);
    const scratch = this.#scratch;

    // Data and meta, and the path and the actor copied out of them, at most.
    this.#ensure(2 * this.#scratchAt + (lengths[ID]! + lengths[ORIGIN]!) * bytesPerInputByteMax + rowFixedBytesMax);
    const out = this.#out;
    const rowCount = this.#revisions.length;
    if (rowCount > 0) out[this.#at++] = 0x2c; // ,
    const rowStart = this.#at;
    this.#rowPieces.push(this.#pieces.length);
    this.#bytes(T_ID);
    this.#string(buffer, starts[ID]!, starts[ID]! + lengths[ID]!);
    this.#at = copyShort(rendering.actionAndType, out, this.#at);
    if (rendering.pathKey === '') this.#bytes(T_ROOT_PATH);
    else if (this.#pathStart < 0) this.#bytes(T_NULL);
    else {
      out[this.#at++] = quote;
      out[this.#at++] = 0x2f; // /
      this.#at = copyBytes(scratch, this.#pathStart, this.#pathEnd, out, this.#at);
      out[this.#at++] = quote;
    }
    this.#bytes(T_ACTOR);
    if (this.#actorStart < 0) this.#bytes(T_NULL);
    else this.#at = copyBytes(scratch, this.#actorStart, this.#actorEnd, out, this.#at);
    // hlc_wall as the SQL event store decodes it (a number: exact below 2^53).
    const walls = starts[HLC_WALL]!;
    const wall = buffer.readInt32BE(walls) * 4294967296 + buffer.readUInt32BE(walls + 4);
    this.#bytes(T_HLC_WALL);
    this.#number(wall);
    this.#bytes(T_LOGICAL);
    this.#number(buffer.readInt32BE(starts[HLC_LOGICAL]!));
    this.#bytes(T_TIME);
    this.#time(wall);
    this.#bytes(T_ORIGIN);
    const originStart = starts[ORIGIN]!;
    const originEnd = originStart + lengths[ORIGIN]!;
    this.#string(buffer, originStart, originEnd);
    this.#bytes(T_ORIGINSEQ);
    this.#number(buffer.readInt32BE(starts[ORIGIN_SEQ]!));
    this.#bytes(lengths[ORIGIN] === this.#siteId.length && bytesEqual(buffer, originStart, this.#siteId, 0, this.#siteId.length) ? T_RECEIVED_FALSE : T_RECEIVED_TRUE);
    this.#bytes(T_REVISION);
    this.#number(revision);
    this.#bytes(T_POSITION);
    const positions = starts[POSITION]!;
    const high = buffer.readInt32BE(positions);
    if (high >= 0 && high < 0x200000) this.#number(high * 4294967296 + buffer.readUInt32BE(positions + 4));
    else this.#ascii(buffer.readBigInt64BE(positions).toString());
    this.#bytes(T_DATA);
    this.#at = copyBytes(scratch, 0, renderedDataEnd, out, this.#at);
    this.#bytes(T_META);
    this.#at = copyBytes(scratch, renderedDataEnd, this.#scratchAt, out, this.#at);
    if (lengths[PREV_HASH]! < 0) this.#bytes(T_PREVHASH_NULL);
    else {
      this.#bytes(T_PREVHASH);
      let at = this.#at;
      const end = starts[PREV_HASH]! + lengths[PREV_HASH]!;
      for (let index = starts[PREV_HASH]!; index < end; index++) {
        const byte = buffer[index]!;
        out[at++] = HEX[byte >> 4]!;
        out[at++] = HEX[byte & 15]!;
      }
      out[at++] = quote;
      out[at++] = 0x7d; // }
      this.#at = at;
    }
    this.#rowStarts.push(rowStart);
    this.#rowEnds.push(this.#at);
    if (rowCount > 0 && revision < this.#revisions[rowCount - 1]!) this.#sorted = false;
    this.#revisions.push(revision);
  }

  #typeRendering(buffer: Buffer, start: number, length: number): TypeRendering {
    // The page's few types by their bytes: no string decoded, nothing allocated for a known one.
    const known = this.#knownTypes;
    for (let index = 0; index < known.length; index++) {
      const type = known[index]!;
      if (type.name.length === length && bytesEqual(buffer, start, type.name, 0, length)) return type.rendering;
    }
    const rendering = typeRendering(buffer.toString('utf8', start, start + length));
    if (rendering === undefined) throw BAIL;
    known.push({ name: Buffer.from(buffer.subarray(start, start + length)), rendering });
    return rendering;
  }

  /** A top-level msgpack map (data or meta) into #scratch, consuming [start, end) exactly. */
  #document(source: Buffer, start: number, end: number, data: boolean): void {
    if (end <= start || ((source[start]! & 0xf0) !== 0x80 && source[start] !== 0xde && source[start] !== 0xdf)) throw BAIL;
    const finished = this.#value(source, start, end, 0, data ? 1 : 2);
    if (finished !== end) throw BAIL;
  }

  /**
   * One msgpack value at `at` into #scratch as JSON; answers where it ends. `top`: 1 for
   * data's own map (its path key is looked for), 2 for meta's (its actor), 0 below.
   */
  #value(source: Buffer, at: number, end: number, depth: number, top: number): number {
    if (at >= end) throw BAIL;
    const token = source[at]!;
    if (token < 0x80) return this.#integer(token, at + 1);
    if (token >= 0xe0) return this.#integer(token - 0x100, at + 1);
    if (token < 0x90) return this.#map(source, at + 1, end, token - 0x80, depth, top);
    if (token < 0xa0) return this.#array(source, at + 1, end, token - 0x90, depth);
    if (token < 0xc0) return this.#stringValue(source, at + 1, token - 0xa0, end);
    switch (token) {
      case 0xc0:
        return this.#scratchBytes(T_NULL, at + 1);
      case 0xc2:
        return this.#scratchBytes(T_FALSE, at + 1);
      case 0xc3:
        return this.#scratchBytes(T_TRUE, at + 1);
      case 0xcb: {
        if (at + 9 > end) throw BAIL;
        const value = source.readDoubleBE(at + 1);
        return this.#scratchAscii(Number.isFinite(value) ? String(value) : 'null', at + 9);
      }
      case 0xcc:
        if (at + 2 > end) throw BAIL;
        return this.#integer(source[at + 1]!, at + 2);
      case 0xcd:
        if (at + 3 > end) throw BAIL;
        return this.#integer(source.readUInt16BE(at + 1), at + 3);
      case 0xce:
        if (at + 5 > end) throw BAIL;
        return this.#integer(source.readUInt32BE(at + 1), at + 5);
      case 0xd0:
        if (at + 2 > end) throw BAIL;
        return this.#integer(source.readInt8(at + 1), at + 2);
      case 0xd1:
        if (at + 3 > end) throw BAIL;
        return this.#integer(source.readInt16BE(at + 1), at + 3);
      case 0xd2:
        if (at + 5 > end) throw BAIL;
        return this.#integer(source.readInt32BE(at + 1), at + 5);
      case 0xd9:
        if (at + 2 > end) throw BAIL;
        return this.#stringValue(source, at + 2, source[at + 1]!, end);
      case 0xda:
        if (at + 3 > end) throw BAIL;
        return this.#stringValue(source, at + 3, source.readUInt16BE(at + 1), end);
      case 0xdb:
        if (at + 5 > end) throw BAIL;
        return this.#stringValue(source, at + 5, source.readUInt32BE(at + 1), end);
      case 0xdc:
        if (at + 3 > end) throw BAIL;
        return this.#array(source, at + 3, end, source.readUInt16BE(at + 1), depth);
      case 0xdd:
        if (at + 5 > end) throw BAIL;
        return this.#array(source, at + 5, end, source.readUInt32BE(at + 1), depth);
      case 0xde:
        if (at + 3 > end) throw BAIL;
        return this.#map(source, at + 3, end, source.readUInt16BE(at + 1), depth, top);
      case 0xdf:
        if (at + 5 > end) throw BAIL;
        return this.#map(source, at + 5, end, source.readUInt32BE(at + 1), depth, top);
      default:
        // bin, ext (undefined, dates, …), float32, 64-bit integers (bigint): left to the decoder.
        throw BAIL;
    }
  }

  #map(source: Buffer, at: number, end: number, entries: number, depth: number, top: number): number {
    if (depth >= nestingDepthMax || entries > end - at) throw BAIL;
    const scratch = this.#scratch;
    scratch[this.#scratchAt++] = 0x7b; // {
    const keysFrom = this.#keyCount;
    if (keysFrom + entries > this.#keyStarts.length) {
      const grown = Math.max(this.#keyStarts.length * 2, keysFrom + entries);
      const keyStarts = new Int32Array(grown);
      keyStarts.set(this.#keyStarts);
      const keyLengths = new Int32Array(grown);
      keyLengths.set(this.#keyLengths);
      this.#keyStarts = keyStarts;
      this.#keyLengths = keyLengths;
    }
    const keyStarts = this.#keyStarts;
    const keyLengths = this.#keyLengths;
    for (let entry = 0; entry < entries; entry++) {
      if (entry > 0) scratch[this.#scratchAt++] = 0x2c;
      // The key: a string a JavaScript object keeps as it is, in insertion order.
      if (at >= end) throw BAIL;
      const token = source[at]!;
      let keyStart: number;
      let keyLength: number;
      if (token >= 0xa0 && token < 0xc0) {
        keyStart = at + 1;
        keyLength = token - 0xa0;
      } else if (token === 0xd9 && at + 2 <= end) {
        keyStart = at + 2;
        keyLength = source[at + 1]!;
      } else if (token === 0xda && at + 3 <= end) {
        keyStart = at + 3;
        keyLength = source.readUInt16BE(at + 1);
      } else throw BAIL;
      at = keyStart + keyLength;
      if (at > end) throw BAIL;
      // A leading digit may be an array index (a JavaScript object puts those first).
      if (keyLength > 0 && source[keyStart]! >= 0x30 && source[keyStart]! <= 0x39) throw BAIL;
      for (let index = keyStart; index < at; index++) if (source[index]! >= 0x80) throw BAIL;
      if (keyLength === 9 && source.toString('latin1', keyStart, at) === '__proto__') throw BAIL;
      for (let other = keysFrom; other < keysFrom + entry; other++) {
        if (keyLengths[other] === keyLength && bytesEqual(source, keyStarts[other]!, source, keyStart, keyLength)) throw BAIL;
      }
      keyStarts[keysFrom + entry] = keyStart;
      keyLengths[keysFrom + entry] = keyLength;
      this.#keyCount = keysFrom + entry + 1;
      this.#scratchAt = this.#escape(source, keyStart, at, scratch, this.#scratchAt);
      scratch[this.#scratchAt++] = 0x3a; // :
      const valueStart = this.#scratchAt;
      const lookFor = this.#lookFor;
      if (top === 1 && lookFor !== undefined && lookFor !== '' && keyLength === lookFor.length && bytesEqual(source, keyStart, lookFor, 0, keyLength)) {
        at = this.#value(source, at, end, depth + 1, 0);
        // eventTargetPath: the path only when it is a string.
        if (scratch[valueStart] === quote) {
          this.#pathStart = valueStart + 1;
          this.#pathEnd = this.#scratchAt - 1;
        }
      } else if (top === 2 && keyLength === ACTOR.length && bytesEqual(source, keyStart, ACTOR, 0, keyLength)) {
        at = this.#value(source, at, end, depth + 1, 0);
        this.#actorStart = valueStart;
        this.#actorEnd = this.#scratchAt;
      } else at = this.#value(source, at, end, depth + 1, 0);
    }
    this.#keyCount = keysFrom;
    scratch[this.#scratchAt++] = 0x7d; // }
    return at;
  }

  #array(source: Buffer, at: number, end: number, items: number, depth: number): number {
    if (depth >= nestingDepthMax || items > end - at) throw BAIL;
    const scratch = this.#scratch;
    scratch[this.#scratchAt++] = 0x5b;
    for (let item = 0; item < items; item++) {
      if (item > 0) scratch[this.#scratchAt++] = 0x2c;
      at = this.#value(source, at, end, depth + 1, 0);
    }
    scratch[this.#scratchAt++] = 0x5d;
    return at;
  }

  #stringValue(source: Buffer, start: number, length: number, end: number): number {
    const stop = start + length;
    if (stop > end) throw BAIL;
    this.#scratchAt = this.#escape(source, start, stop, this.#scratch, this.#scratchAt);
    return stop;
  }

  #integer(value: number, next: number): number {
    this.#scratchAt = writeInteger(this.#scratch, this.#scratchAt, value);
    return next;
  }

  #scratchAscii(text: string, next: number): number {
    this.#scratchAt += this.#scratch.write(text, this.#scratchAt, 'latin1');
    return next;
  }

  #scratchBytes(constant: Buffer, next: number): number {
    this.#scratchAt = copyShort(constant, this.#scratch, this.#scratchAt);
    return next;
  }

  /** A text column as a JSON string into #out. */
  #string(source: Buffer, start: number, end: number): void {
    this.#at = this.#escape(source, start, end, this.#out, this.#at);
  }

  /**
   * `source[start, end)` (UTF-8) as a JSON string at `target[at]`, escaped as JSON.stringify
   * escapes; answers where it ends. Bytes that are not valid UTF-8 bail (the decoder would
   * replace them).
   */
  #escape(source: Buffer, start: number, end: number, target: Buffer, at: number): number {
    target[at++] = quote;
    for (let index = start; index < end; ) {
      const byte = source[index]!;
      if (PLAIN[byte] === 1) {
        target[at++] = byte;
        index++;
        continue;
      }
      if (byte < 0x80) {
        const escaped = ESCAPED[byte];
        if (escaped === undefined) target[at++] = byte;
        else at = copyShort(escaped, target, at);
        index++;
        continue;
      }
      const length = utf8SequenceLength(source, index, end);
      if (length === 0) throw BAIL;
      for (let copied = 0; copied < length; copied++) target[at++] = source[index + copied]!;
      index += length;
    }
    target[at++] = quote;
    return at;
  }

  #number(value: number): void {
    this.#at = Number.isSafeInteger(value) ? writeInteger(this.#out, this.#at, value) : this.#at + this.#out.write(String(value), this.#at, 'latin1');
  }

  /** `new Date(wall).toISOString()`, the date part kept from the row before (rows of a page are close in time). */
  #time(wall: number): void {
    if (wall < isoFourDigitYearsFrom || wall >= isoFourDigitYearsUntil) {
      const time = new Date(wall);
      if (Number.isNaN(time.getTime())) throw BAIL; // toISOString throws: so does the decoded path
      this.#ascii(time.toISOString());
      return;
    }
    const day = Math.floor(wall / dayMs);
    if (day !== this.#day) {
      this.#day = day;
      this.#dayPrefix.write(new Date(day * dayMs).toISOString().slice(0, 11), 0, 'latin1');
    }
    const out = this.#out;
    let at = copyShort(this.#dayPrefix, out, this.#at);
    // Milliseconds into the day: below 2^31, so 32-bit arithmetic.
    let rest = (wall - day * dayMs) | 0;
    const milliseconds = rest % 1000;
    rest = (rest / 1000) | 0;
    const seconds = rest % 60;
    rest = (rest / 60) | 0;
    const minutes = rest % 60;
    const hours = (rest / 60) | 0;
    out[at++] = 0x30 + ((hours / 10) | 0);
    out[at++] = 0x30 + (hours % 10);
    out[at++] = 0x3a;
    out[at++] = 0x30 + ((minutes / 10) | 0);
    out[at++] = 0x30 + (minutes % 10);
    out[at++] = 0x3a;
    out[at++] = 0x30 + ((seconds / 10) | 0);
    out[at++] = 0x30 + (seconds % 10);
    out[at++] = 0x2e;
    out[at++] = 0x30 + ((milliseconds / 100) | 0);
    out[at++] = 0x30 + (((milliseconds / 10) | 0) % 10);
    out[at++] = 0x30 + (milliseconds % 10);
    out[at++] = 0x5a; // Z
    this.#at = at;
  }

  #ascii(text: string): void {
    this.#at += this.#out.write(text, this.#at, 'latin1');
  }

  #bytes(constant: Buffer): void {
    this.#at = copyShort(constant, this.#out, this.#at);
  }

  /** A piece of at least `bytes` (a pooled one when it fits). */
  #piece(bytes: number, size: number): Buffer {
    const piece = takePiece(bytes, size);
    if (piece.length === pieceBytes) this.#owned.push(piece);
    return piece;
  }

  #release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const piece of this.#owned) if (pooledPieces.length < piecesPooledMax) pooledPieces.push(piece);
    this.#owned.length = 0;
  }

  #ensure(bytes: number): void {
    if (this.#at + bytes <= this.#out.length) return;
    this.#pieces.push(this.#out.subarray(0, this.#at));
    this.#out = this.#piece(bytes, Math.max(pieceBytes, bytes));
    this.#at = 0;
  }

  #ensureScratch(bytes: number): void {
    if (bytes > this.#scratch.length) sharedScratch = this.#scratch = Buffer.allocUnsafe(Math.max(this.#scratch.length * 2, bytes));
    else this.#scratch = sharedScratch;
  }
}

/** How an event type's action, type and path are shown (historyEventJson's rules); undefined for an unknown type. */
function typeRendering(type: string): TypeRendering | undefined {
  try {
    validateEventType(type);
  } catch {
    return undefined;
  }
  // Which data key eventTargetPath takes the path from: ask it, with data that records what is read.
  const read: string[] = [];
  const marker = '\u0000marker';
  const data = new Proxy({}, { get: (_, key) => (typeof key === 'string' ? (read.push(key), marker) : undefined) });
  const target = eventTargetPath({ type, data });
  let pathKey: Buffer | '' | undefined;
  if (target === undefined) pathKey = undefined;
  else if (target === '' && read.length === 0) pathKey = '';
  else if (target === marker && read.length > 0 && read.every((key) => key === read[0])) pathKey = Buffer.from(read[0]!, 'latin1');
  else return undefined;
  const action = Object.hasOwn(HISTORY_ACTIONS, type) ? HISTORY_ACTIONS[type]! : type;
  return { actionAndType: Buffer.from(`,"action":${JSON.stringify(action)},"type":${JSON.stringify(type)},"path":`, 'utf8'), pathKey };
}

/** Bytes of the valid UTF-8 sequence at `index` (no overlong forms, surrogates or code points past U+10FFFF); 0 if invalid. */
function utf8SequenceLength(source: Buffer, index: number, end: number): number {
  const first = source[index]!;
  const continuation = (at: number) => at < end && (source[at]! & 0xc0) === 0x80;
  if (first >= 0xc2 && first <= 0xdf) return continuation(index + 1) ? 2 : 0;
  if (first >= 0xe0 && first <= 0xef) {
    if (!continuation(index + 1) || !continuation(index + 2)) return 0;
    const second = source[index + 1]!;
    if (first === 0xe0 && second < 0xa0) return 0; // overlong
    if (first === 0xed && second >= 0xa0) return 0; // surrogate
    return 3;
  }
  if (first >= 0xf0 && first <= 0xf4) {
    if (!continuation(index + 1) || !continuation(index + 2) || !continuation(index + 3)) return 0;
    const second = source[index + 1]!;
    if (first === 0xf0 && second < 0x90) return 0; // overlong
    if (first === 0xf4 && second >= 0x90) return 0; // past U+10FFFF
    return 4;
  }
  return 0;
}

/**
 * `source[start, end)` to `target[at]`; answers where it ends. A loop for the short copies of
 * a row (Buffer#copy costs a view per call); a row's data and meta (~500 bytes) by copy.
 */
function copyBytes(source: Buffer, start: number, end: number, target: Buffer, at: number): number {
  if (end - start > 96) return at + source.copy(target, at, start, end);
  for (let index = start; index < end; index++) target[at++] = source[index]!;
  return at;
}

function bytesEqual(a: Buffer, aStart: number, b: Buffer, bStart: number, length: number): boolean {
  for (let index = 0; index < length; index++) if (a[aStart + index] !== b[bStart + index]) return false;
  return true;
}

/** Copies a short constant (a loop beats a native call for a few bytes). */
function copyShort(constant: Buffer, target: Buffer, at: number): number {
  for (let index = 0; index < constant.length; index++) target[at++] = constant[index]!;
  return at;
}

/** A safe integer in decimal at `target[at]`; answers where it ends. */
function writeInteger(target: Buffer, at: number, value: number): number {
  if (value < 0) {
    target[at++] = 0x2d;
    value = -value;
  }
  if (value < 10) {
    target[at++] = 0x30 + value;
    return at;
  }
  if (value < 0x80000000) {
    // Small integers (revisions, sequence numbers, sizes): 32-bit arithmetic.
    let small = value | 0;
    let digits = 1;
    for (let scale = 10; scale <= small && digits < 10; scale *= 10) digits++;
    const end = at + digits;
    for (let position = end - 1; position >= at; position--) {
      const rest = (small / 10) | 0;
      target[position] = 0x30 + small - rest * 10;
      small = rest;
    }
    return end;
  }
  let digits = 1;
  for (let scale = 10; scale <= value && digits < 16; scale *= 10) digits++;
  const end = at + digits;
  // Past 2^53 digits are not exact in this loop: the caller passes safe integers only.
  for (let position = end - 1; position >= at; position--) {
    target[position] = 0x30 + (value % 10);
    value = Math.floor(value / 10);
  }
  return end;
}

function malformed(message: string): StrataError {
  return new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `bulk read of events failed: ${message}`);
}
