import { StrataError, validateEventType, type EventMeta, type EventType, type RecordedEvent } from '@strata/core';
import { Unpackr } from 'msgpackr';
import type { Checkpoint } from './event-store.ts';

/**
 * Runs a `COPY (select …) TO …` statement in PostgreSQL's binary format and hands over its
 * output in chunks of any size (`statement` ends in `to stdout (format binary)` or `to
 * '/dev/blob' (format binary)`, whichever the backend reads: see bulk-copy.ts).
 */
export type CopyOut = (statement: (target: string) => string, signal?: AbortSignal, transaction?: CopyOutTransaction) => AsyncIterable<Uint8Array>;

/**
 * Runs the COPY in a read-only repeatable-read transaction of its own that imports another
 * transaction's exported snapshot (`pg_export_snapshot()`), after `statements` (e.g. `set
 * local …`): several COPYs side by side on several connections, all of one moment. PostgreSQL
 * only; PGlite's copyOut refuses it (one connection: its caller's transaction holds it).
 */
export interface CopyOutTransaction {
  readonly snapshot: string;
  readonly statements: readonly string[];
}

/**
 * The events columns a bulk scan copies, in this order. data and meta travel as raw bytes
 * in the binary format (no hex text to decode, unlike the row protocol).
 */
export const COPY_EVENT_COLUMNS =
  'transaction_id, position, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta';
const FIELDS = 12;
/**
 * COPY_EVENT_COLUMNS followed by the site-chain link (`prev_hash`, NULL before issue 8's
 * chains): what a history page reads (decodeChainedEventCopy).
 */
export const COPY_CHAINED_EVENT_COLUMNS = `${COPY_EVENT_COLUMNS}, prev_hash`;

/** Bytes of the next chunk taken to complete a row cut at a chunk boundary (longer rows: the whole chunk). */
const boundaryRowBytesMax = 16 * 1024;

/** "PGCOPY\n\377\r\n\0": the signature of the binary COPY format. */
const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00];

/** The same msgpack options as core's codec (see sql-event-store.ts: stored data is only unpacked). */
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });

export interface EventCopyPage {
  readonly events: RecordedEvent[];
  /** Rows this page covers: its events and the rows a sink took (EventCopyRowSink). */
  readonly rows: number;
  /** The (transaction id, position) of the page's last row: the checkpoint after it. */
  readonly checkpoint: Checkpoint;
}

/** An event with its site-chain link (hex; undefined for a NULL prev_hash). */
export interface ChainedCopyEvent {
  readonly event: RecordedEvent;
  readonly prevHash: string | undefined;
}

/**
 * Decodes the binary COPY output of `select ${COPY_EVENT_COLUMNS} from events …` into pages
 * of at most `pageEventsMax` recorded events, in the order of the rows. Chunks may split
 * rows anywhere. Rows are decoded as the SQL event store decodes them (data and meta only
 * unpacked; a payload that is not a msgpack map fails with STRATA_ERR_CODEC_MALFORMED).
 */
export async function* decodeEventCopy(chunks: AsyncIterable<Uint8Array>, pageEventsMax: number, sink?: EventCopyRowSink): AsyncGenerator<EventCopyPage> {
  const decoder = new EventCopyDecoder(false, undefined, sink);
  let page: RecordedEvent[] = [];
  let rows = 0;
  for await (const chunk of chunks) {
    decoder.push(chunk, page, pageEventsMax);
    while (decoder.pageFull) {
      yield { events: page, rows: decoder.rowsRead - rows, checkpoint: decoder.takeCheckpoint() };
      rows = decoder.rowsRead;
      page = [];
      decoder.continue(page, pageEventsMax);
    }
  }
  decoder.finish();
  // (Rows a sink took count too: the last page may hold no event, its checkpoint still moves.)
  if (decoder.rowsRead > rows) yield { events: page, rows: decoder.rowsRead - rows, checkpoint: decoder.takeCheckpoint() };
}

/**
 * Decodes the binary COPY output of `select ${COPY_CHAINED_EVENT_COLUMNS} from events …`
 * into one list of events with their site-chain links, in the order of the rows (decoded as
 * decodeEventCopy decodes them). Meant for bounded reads (a history page): it holds every row.
 */
export async function decodeChainedEventCopy(chunks: AsyncIterable<Uint8Array>): Promise<ChainedCopyEvent[]> {
  const decoder = new EventCopyDecoder(true);
  const events: RecordedEvent[] = [];
  for await (const chunk of chunks) decoder.push(chunk, events, Infinity);
  decoder.finish();
  const links = decoder.prevHashes;
  const entries = new Array<ChainedCopyEvent>(events.length);
  for (let index = 0; index < events.length; index++) entries[index] = { event: events[index]!, prevHash: links[index] };
  return entries;
}

/**
 * Which rows a decoder decodes (`stream` and `type` are looked up by their bytes, nothing
 * else of the row is read); a rejected row is skipped, though it still moves the checkpoint.
 */
export type EventCopyRowFilter = (stream: string, type: EventType) => boolean;

/**
 * Takes rows of some event types without a decoded event (a rebuild's artifact-tree fold
 * reads ArtifactDeployed data straight from its bytes): `readData` reads a row's data (the
 * msgpack bytes `bytes[start, end)` of an event of `type`); when it returns true, `take`
 * gets the row's envelope and the row is in no page. False: the row is decoded as any other
 * (and fails as any other: a sink reads only what it can take and takes nothing it read
 * false for).
 */
export interface EventCopyRowSink {
  readData(type: EventType, bytes: Buffer, start: number, end: number): boolean;
  /** `revision`: the row's revision in its stream (a per-stream replay keeps the highest it read). */
  take(stream: string, id: string, origin: string, wall: number, logical: number, meta: EventMeta, revision: number): void;
}

/** `sink`, with `onTake(revision)` called before each row it takes (a scan's caller counts them or keeps their revisions). */
export function observeTakes(sink: EventCopyRowSink, onTake: (revision: number) => void): EventCopyRowSink {
  return {
    readData: (type, bytes, start, end) => sink.readData(type, bytes, start, end),
    take: (stream, id, origin, wall, logical, meta, revision) => {
      onTake(revision);
      sink.take(stream, id, origin, wall, logical, meta, revision);
    },
  };
}

/**
 * The incremental decoder behind decodeEventCopy and decodeChainedEventCopy, and a rebuild
 * worker's (rebuild-partition.ts: each decodes only its repositories' rows of one scan).
 */
export class EventCopyDecoder {
  #buffer: Buffer = Buffer.alloc(0);
  #offset = 0;
  #headerRead = false;
  #ended = false;
  /**
   * The last decoded row's transaction id and position as four 32-bit halves (numbers: a
   * Buffer.copy of 8 bytes twice per row cost ~3% of a rebuild).
   */
  #lastTransactionHigh = 0;
  #lastTransactionLow = 0;
  #lastPositionHigh = 0;
  #lastPositionLow = 0;
  #haveKey = false;
  pageFull = false;
  readonly #fields: number;
  readonly #fieldStarts: Int32Array;
  readonly #fieldLengths: Int32Array;
  /** Streams and origins repeat: one string each, decoded once (fewer live strings in whatever keeps the events). */
  readonly #strings = new ByteInterner<string>(100_000);
  readonly #types = new ByteInterner<EventType>(1000);
  readonly #metas = new ByteInterner<EventMeta>(10_000);
  /** With `chained`: each decoded row's prev_hash (hex), in row order. */
  readonly prevHashes: (string | undefined)[] = [];
  readonly #accept: EventCopyRowFilter | undefined;
  readonly #sink: EventCopyRowSink | undefined;
  /** Rows read so far, decoded, taken by the sink or skipped by the filter. */
  rowsRead = 0;

  /**
   * `chained`: rows carry a 13th column, the nullable prev_hash (COPY_CHAINED_EVENT_COLUMNS).
   * `accept`: decode only the rows it accepts (not with `chained`). `sink`: the rows it
   * takes are not decoded (not with `chained`).
   */
  constructor(chained = false, accept?: EventCopyRowFilter, sink?: EventCopyRowSink) {
    this.#accept = chained ? undefined : accept;
    this.#sink = chained ? undefined : sink;
    this.#fields = chained ? FIELDS + 1 : FIELDS;
    this.#fieldStarts = new Int32Array(this.#fields);
    this.#fieldLengths = new Int32Array(this.#fields);
  }

  push(chunk: Uint8Array, page: RecordedEvent[], pageEventsMax: number): void {
    if (this.#ended) {
      if (chunk.length > 0) throw malformed('bytes after the end of the COPY data');
      return;
    }
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const rest = this.#buffer.length - this.#offset;
    if (rest > 0 && this.#headerRead) {
      // A row is cut at the chunk boundary: complete it in a small buffer of its own, then
      // decode the chunk where it is (copying every chunk behind the cut row's bytes cost
      // ~5% of a rebuild).
      const head = Buffer.concat([this.#buffer.subarray(this.#offset), bytes.subarray(0, Math.min(bytes.length, boundaryRowBytesMax))]);
      this.#buffer = head;
      this.#offset = 0;
      this.#decode(page, pageEventsMax, 1);
      const consumed = this.#offset - rest;
      if (consumed > 0 && !this.#ended) {
        this.#buffer = bytes;
        this.#offset = consumed;
        this.#decode(page, pageEventsMax);
        return;
      }
      if (this.#ended) return;
      // A row longer than that (or the page was full): the whole chunk behind what is left.
      this.#buffer = Buffer.concat([head.subarray(this.#offset, rest), bytes]);
      this.#offset = 0;
      this.#decode(page, pageEventsMax);
      return;
    }
    this.#buffer = rest === 0 ? bytes : Buffer.concat([this.#buffer.subarray(this.#offset), bytes]);
    this.#offset = 0;
    this.#decode(page, pageEventsMax);
  }

  continue(page: RecordedEvent[], pageEventsMax: number): void {
    this.pageFull = false;
    this.#decode(page, pageEventsMax);
  }

  finish(): void {
    if (!this.#ended) throw malformed('the COPY data ended without its trailer');
  }

  /** The checkpoint after the last row read, undefined before the first. */
  get checkpoint(): Checkpoint | undefined {
    return this.#haveKey ? this.takeCheckpoint() : undefined;
  }

  takeCheckpoint(): Checkpoint {
    if (!this.#haveKey) throw malformed('no row decoded');
    return {
      transactionId: (BigInt(this.#lastTransactionHigh) << 32n) | BigInt(this.#lastTransactionLow),
      position: BigInt.asIntN(64, (BigInt(this.#lastPositionHigh) << 32n) | BigInt(this.#lastPositionLow)),
    };
  }

  /** Decodes rows of #buffer from #offset until the page is full, `rowsMax` rows are decoded, or a row is incomplete. */
  #decode(page: RecordedEvent[], pageEventsMax: number, rowsMax = Infinity): void {
    const buffer = this.#buffer;
    if (!this.#headerRead) {
      if (buffer.length < 19) return;
      for (let index = 0; index < SIGNATURE.length; index++) if (buffer[index] !== SIGNATURE[index]) throw malformed('not binary COPY data');
      const extension = buffer.readInt32BE(15);
      if (buffer.length < 19 + extension) return;
      this.#offset = 19 + extension;
      this.#headerRead = true;
    }
    const starts = this.#fieldStarts;
    const lengths = this.#fieldLengths;
    const fieldCount = this.#fields;
    const chained = fieldCount > FIELDS;
    const accept = this.#accept;
    const sink = this.#sink;
    let offset = this.#offset;
    let rows = 0;
    while (page.length < pageEventsMax && rows < rowsMax) {
      if (offset + 2 > buffer.length) break;
      const fields = buffer.readInt16BE(offset);
      if (fields === -1) {
        this.#ended = true;
        offset += 2;
        if (offset !== buffer.length) throw malformed('bytes after the COPY trailer');
        break;
      }
      if (fields !== fieldCount) throw malformed(`a row of ${fields} fields, expected ${fieldCount}`);
      let at = offset + 2;
      let complete = true;
      for (let field = 0; field < fieldCount; field++) {
        if (at + 4 > buffer.length) {
          complete = false;
          break;
        }
        let length = buffer.readInt32BE(at);
        if (length < 0) {
          // Only prev_hash may be NULL (length -1, no bytes follow).
          if (field < FIELDS || length !== -1) throw malformed('a NULL in a NOT NULL column');
          length = 0;
          starts[field] = -1;
        } else {
          starts[field] = at + 4;
        }
        lengths[field] = length;
        at += 4 + length;
        if (at > buffer.length) {
          complete = false;
          break;
        }
      }
      if (!complete) break;
      if (
        accept === undefined ||
        accept(this.#strings.get(buffer, starts[3]!, lengths[3]!, sameString), this.#types.get(buffer, starts[9]!, lengths[9]!, validateEventType))
      ) {
        if (sink === undefined || !this.#take(buffer, sink)) page.push(this.#row(buffer));
      }
      this.rowsRead++;
      if (chained) this.prevHashes.push(starts[FIELDS]! < 0 ? undefined : buffer.toString('hex', starts[FIELDS]!, starts[FIELDS]! + lengths[FIELDS]!));
      rows++;
      this.#lastTransactionHigh = buffer.readUInt32BE(starts[0]!);
      this.#lastTransactionLow = buffer.readUInt32BE(starts[0]! + 4);
      this.#lastPositionHigh = buffer.readUInt32BE(starts[1]!);
      this.#lastPositionLow = buffer.readUInt32BE(starts[1]! + 4);
      this.#haveKey = true;
      offset = at;
    }
    this.#offset = offset;
    this.pageFull = page.length >= pageEventsMax;
  }

  #row(buffer: Buffer): RecordedEvent {
    const starts = this.#fieldStarts;
    const lengths = this.#fieldLengths;
    const id = buffer.toString('utf8', starts[2]!, starts[2]! + lengths[2]!);
    const type = this.#types.get(buffer, starts[9]!, lengths[9]!, validateEventType);
    const dataStart = starts[10]!;
    const metaStart = starts[11]!;
    return {
      id,
      origin: this.#strings.get(buffer, starts[5]!, lengths[5]!, sameString),
      originSeq: buffer.readInt32BE(starts[6]!),
      hlc: { wall: buffer.readInt32BE(starts[7]!) * 4294967296 + buffer.readUInt32BE(starts[7]! + 4), logical: buffer.readInt32BE(starts[8]!) },
      type,
      data: unpack(buffer, dataStart, dataStart + lengths[10]!, 'data', id),
      meta: this.#meta(buffer, metaStart, lengths[11]!, id),
      stream: this.#strings.get(buffer, starts[3]!, lengths[3]!, sameString),
      revision: buffer.readInt32BE(starts[4]!),
      position: int64BigInt(buffer, starts[1]!),
    } as RecordedEvent;
  }

  /** Hands the row to `sink` if it reads the row's data; false (nothing taken) if it does not. */
  #take(buffer: Buffer, sink: EventCopyRowSink): boolean {
    const starts = this.#fieldStarts;
    const lengths = this.#fieldLengths;
    const type = this.#types.get(buffer, starts[9]!, lengths[9]!, validateEventType);
    const dataStart = starts[10]!;
    if (!sink.readData(type, buffer, dataStart, dataStart + lengths[10]!)) return false;
    const id = buffer.toString('utf8', starts[2]!, starts[2]! + lengths[2]!);
    sink.take(
      this.#strings.get(buffer, starts[3]!, lengths[3]!, sameString),
      id,
      this.#strings.get(buffer, starts[5]!, lengths[5]!, sameString),
      buffer.readInt32BE(starts[7]!) * 4294967296 + buffer.readUInt32BE(starts[7]! + 4),
      buffer.readInt32BE(starts[8]!),
      this.#meta(buffer, starts[11]!, lengths[11]!, id),
      buffer.readInt32BE(starts[4]!),
    );
    return true;
  }

  /**
   * The meta map: most events carry one of a few (an actor, nothing else), so a short one of
   * only primitive values is decoded once per distinct byte string and shared, frozen.
   */
  #meta(buffer: Buffer, start: number, length: number, id: string): EventMeta {
    if (length > sharedMetaBytesMax) return unpack(buffer, start, start + length, 'meta', id) as EventMeta;
    const known = this.#metas.find(buffer, start, length);
    if (known !== undefined) return known;
    const meta = unpack(buffer, start, start + length, 'meta', id);
    for (const key in meta) {
      const value = meta[key];
      if (value !== null && typeof value === 'object') return meta as EventMeta;
    }
    return this.#metas.add(buffer, start, length, Object.freeze(meta) as EventMeta);
  }
}

const sameString = (value: string): string => value;

/**
 * The big-endian int8 at `at` as a bigint: one BigInt of a number where it is exact (every
 * position below 2^53), where Buffer#readBigInt64BE makes four (two, a shift and a sum).
 */
function int64BigInt(buffer: Buffer, at: number): bigint {
  const high = buffer.readInt32BE(at);
  return high >= -0x200000 && high < 0x200000 ? BigInt(high * 4294967296 + buffer.readUInt32BE(at + 4)) : buffer.readBigInt64BE(at);
}
/** Meta maps up to this many bytes are shared between events with the same bytes. */
const sharedMetaBytesMax = 48;

/**
 * Values decoded from short byte strings that repeat (streams, origins, types, metas),
 * looked up by the bytes themselves: no string is decoded for a known one. At most
 * `entriesMax` are kept; a hash collision just decodes again.
 */
class ByteInterner<T> {
  readonly #entries = new Map<number, { readonly bytes: Buffer; readonly value: T }>();
  readonly #entriesMax: number;

  constructor(entriesMax: number) {
    this.#entriesMax = entriesMax;
  }

  /** The value for `buffer[start, start + length)`, decoding the bytes as UTF-8 with `make` when unknown. */
  get(buffer: Buffer, start: number, length: number, make: (text: string) => T): T {
    const known = length > internedBytesMax ? undefined : this.find(buffer, start, length);
    if (known !== undefined) return known;
    const value = make(buffer.toString('utf8', start, start + length));
    return length > internedBytesMax ? value : this.add(buffer, start, length, value);
  }

  find(buffer: Buffer, start: number, length: number): T | undefined {
    const entry = this.#entries.get(bytesHash(buffer, start, length));
    if (entry === undefined) return undefined;
    const bytes = entry.bytes;
    if (bytes.length !== length) return undefined;
    for (let index = 0; index < length; index++) if (bytes[index] !== buffer[start + index]) return undefined;
    return entry.value;
  }

  add(buffer: Buffer, start: number, length: number, value: T): T {
    const hash = bytesHash(buffer, start, length);
    if (this.#entries.size < this.#entriesMax && !this.#entries.has(hash)) {
      this.#entries.set(hash, { bytes: Buffer.from(buffer.subarray(start, start + length)), value });
    }
    return value;
  }
}

/** Byte strings longer than this are decoded every time (ids, paths: they do not repeat). */
const internedBytesMax = 128;

/** FNV-1a over the bytes, as a small integer (a Map key without a heap number). */
function bytesHash(buffer: Buffer, start: number, length: number): number {
  let hash = 2166136261 | 0;
  for (let index = start; index < start + length; index++) hash = Math.imul(hash ^ buffer[index]!, 16777619);
  return (hash ^ length) & 0x3fffffff;
}

/**
 * Unpacks `buffer[start, end)` in place: a subarray per field would cost a Buffer and the
 * DataView msgpackr caches on it, two per event.
 */
const range = { start: 0, end: 0 };

function unpack(buffer: Buffer, start: number, end: number, what: string, id: string): Record<string, unknown> {
  // msgpackr reads an `end` of 0 as "to the end of the buffer".
  if (end <= start) throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `stored ${what} of event '${id}' is empty`, { id });
  let value: unknown;
  try {
    range.start = start;
    range.end = end;
    value = unpackr.unpack(buffer, range);
  } catch (error) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `stored ${what} of event '${id}' does not unpack`, { id }, { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StrataError('STRATA_ERR_CODEC_MALFORMED', `stored ${what} of event '${id}' is not a msgpack map`, { id });
  }
  return value as Record<string, unknown>;
}

function malformed(message: string): StrataError {
  return new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `bulk read of events failed: ${message}`);
}
