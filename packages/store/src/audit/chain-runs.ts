import { CHAIN_GENESIS, StrataError } from '@strata/core';

/**
 * The columns `strata verify`'s single pass copies out of each range of the events table, in
 * this order: the site chain (revision, stored link, the row's own link recomputed from its
 * stored digest), the origin chain (origin, originSeq, originPrev, stored digest) and whether
 * the row's content still matches its stored digest. The caller supplies the two hash
 * expressions (they are SQL).
 */
export function chainRunColumns(link: string, altered: string): string {
  return `stream, revision, prev_hash, ${link} as link, origin, origin_seq, origin_prev, digest, ${altered} as altered`;
}
const FIELDS = 9;

/** "PGCOPY\n\377\r\n\0": the signature of the binary COPY format. */
const SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00];
const GENESIS = Buffer.from(CHAIN_GENESIS);

/**
 * A maximal stretch of one chain met in row order whose links all held: revisions (site
 * chain) or originSeqs (origin chain) each one above the one before. Runs from every range
 * of the table are put in order and joined at the end, so the rows may come in any order.
 */
interface Run {
  readonly first: number;
  /** The first row's link to the row before it: prev_hash (site) or originPrev (origin; null when it carries none). */
  readonly firstLink: Buffer | null;
  last: number;
  /** What the next row must link to: the last row's own link (site) or stored digest (origin). */
  lastHash: Buffer | null;
}

/** Per stream: what the pass found, and whether its site chain, origin chains or digests need the exact statements. */
export interface StreamScan {
  events: number;
  chained: number;
  altered: number;
  siteBroken: boolean;
  originBroken: boolean;
}

/**
 * Reads the binary COPY output of `select ${chainRunColumns(…)} from events …` — any number of
 * ranges, rows in any order — and decides per stream whether its chains are intact. It only
 * says "intact" where the exact statements (SqlEventAudit's site-chain window, origin-chain
 * join and digest scan) would find nothing: each chain's rows must form one gapless sequence
 * from revision 0 / originSeq 1, each link equal to the hash it names; anything else (a gap, a
 * duplicate, a NULL, a mismatch) marks the stream for the exact statements, which then
 * report exactly what they always reported.
 */
export class ChainRunScanner {
  readonly #site = new Map<string, Run[]>();
  readonly #origin = new Map<string, Run[]>();
  readonly #streams = new Map<string, StreamScan>();

  /** Reads one range's whole output (ranges may be read side by side). */
  async scanRange(chunks: AsyncIterable<Uint8Array>): Promise<void> {
    const range = new RangeReader(this.#site, this.#origin, this.#streams);
    for await (const chunk of chunks) range.push(chunk);
    range.end();
  }

  /**
   * Joins each chain's runs in order and returns what the pass found per stream: a stream is
   * marked broken unless its runs make one gapless sequence from the start whose joints hold.
   */
  result(): Map<string, StreamScan> {
    for (const [stream, runs] of this.#site) {
      const scan = this.#streams.get(stream)!;
      if (!joined(runs, 0, true)) scan.siteBroken = true;
    }
    for (const [key, runs] of this.#origin) {
      const scan = this.#streams.get(key.slice(0, key.indexOf("\0")))!;
      if (!joined(runs, 1, false)) scan.originBroken = true;
    }
    return this.#streams;
  }
}

/** A stream met in one range: its bytes (rows are matched without making strings), its open site run and origins. */
interface StreamEntry {
  readonly bytes: Buffer;
  readonly scan: StreamScan;
  readonly key: string;
  openSite: Run | undefined;
  readonly origins: Map<number, OriginEntry[]>;
}

/** An origin of a stream met in one range, and its open run. */
interface OriginEntry {
  readonly bytes: Buffer;
  readonly key: string;
  open: Run | undefined;
}

/** Bytes of the next chunk joined to a row cut at a chunk boundary, at first (doubled until the row is whole). */
const boundaryBytesFirst = 4096;

/** One COPY's output, chunk by chunk: its rows, in their order, extend or start runs. */
class RangeReader {
  readonly #site: Map<string, Run[]>;
  readonly #origin: Map<string, Run[]>;
  readonly #streams: Map<string, StreamScan>;
  readonly #entries = new Map<number, StreamEntry[]>();
  readonly #offsets = new Array<number>(FIELDS).fill(0);
  readonly #lengths = new Array<number>(FIELDS).fill(0);
  #pending: Buffer | undefined;
  #headerRead = false;
  #ended = false;

  constructor(site: Map<string, Run[]>, origin: Map<string, Run[]>, streams: Map<string, StreamScan>) {
    this.#site = site;
    this.#origin = origin;
    this.#streams = streams;
  }

  push(chunk: Uint8Array): void {
    let buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let offset = 0;
    if (!this.#headerRead) {
      if (this.#pending !== undefined) {
        buffer = Buffer.concat([this.#pending, buffer]);
        this.#pending = undefined;
      }
      if (buffer.length < 19) {
        this.#pending = Buffer.from(buffer);
        return;
      }
      for (let index = 0; index < SIGNATURE.length; index++) if (buffer[index] !== SIGNATURE[index]) throw malformed('not binary COPY data');
      const extension = buffer.readUInt32BE(15);
      if (buffer.length < 19 + extension) {
        this.#pending = Buffer.from(buffer);
        return;
      }
      offset = 19 + extension;
      this.#headerRead = true;
    } else if (this.#pending !== undefined) {
      // The row cut at the boundary: joined with as much of this chunk as it needs (not the
      // whole chunk, which would copy every byte once more).
      const pending = this.#pending;
      for (let taken = Math.min(boundaryBytesFirst, buffer.length); ; taken = Math.min(taken * 2, buffer.length)) {
        const joined = Buffer.concat([pending, buffer.subarray(0, taken)]);
        const consumed = this.#row(joined, 0);
        if (consumed > 0) {
          this.#pending = undefined;
          offset = consumed - pending.length;
          break;
        }
        if (taken === buffer.length) {
          this.#pending = joined;
          return;
        }
      }
    }
    while (offset < buffer.length) {
      if (this.#ended) throw malformed('data after the trailer');
      const consumed = this.#row(buffer, offset);
      if (consumed === 0) {
        this.#pending = Buffer.from(buffer.subarray(offset));
        return;
      }
      offset += consumed;
    }
  }

  end(): void {
    if (this.#pending !== undefined || !this.#ended) throw malformed('the COPY output ended inside a row');
  }

  /** Reads the row at `start`; returns its length, 0 when the buffer ends inside it. */
  #row(buffer: Buffer, start: number): number {
    const end = buffer.length;
    if (start + 2 > end) return 0;
    const fields = buffer.readInt16BE(start);
    if (fields === -1) {
      this.#ended = true;
      return 2;
    }
    if (fields !== FIELDS) throw malformed(`a row of ${fields} fields, not ${FIELDS}`);
    // Where each field's bytes start (-1 for NULL) and their length.
    let at = start + 2;
    const offsets = this.#offsets;
    const lengths = this.#lengths;
    for (let field = 0; field < FIELDS; field++) {
      if (at + 4 > end) return 0;
      const length = buffer.readInt32BE(at);
      at += 4;
      if (length < 0) {
        offsets[field] = -1;
        lengths[field] = 0;
        continue;
      }
      if (at + length > end) return 0;
      offsets[field] = at;
      lengths[field] = length;
      at += length;
    }
    if (offsets[0]! < 0 || offsets[1]! < 0 || lengths[1] !== 4 || offsets[4]! < 0 || offsets[5]! < 0 || lengths[5] !== 4 || offsets[8]! < 0 || lengths[8] !== 1) {
      throw malformed('a row without its stream, revision, origin, originSeq or digest check');
    }
    const entry = this.#stream(buffer, offsets[0]!, lengths[0]!);
    const revision = buffer.readInt32BE(offsets[1]!);
    const originSeq = buffer.readInt32BE(offsets[5]!);
    const chained = offsets[6]! >= 0;
    const scan = entry.scan;
    scan.events++;
    if (chained) scan.chained++;
    if (buffer[offsets[8]!] !== 0) scan.altered++;

    // Site chain: prev_hash (field 2) must be the link (field 3) of the revision before.
    const site = entry.openSite;
    if (site !== undefined && revision === site.last + 1) {
      if (!sameBytes(buffer, offsets[2]!, lengths[2]!, site.lastHash)) scan.siteBroken = true;
      site.last = revision;
      site.lastHash = copyInto(site.lastHash, buffer, offsets[3]!, lengths[3]!);
    } else {
      const run: Run = { first: revision, firstLink: copyOf(buffer, offsets[2]!, lengths[2]!), last: revision, lastHash: copyOf(buffer, offsets[3]!, lengths[3]!) };
      entry.openSite = run;
      pushRun(this.#site, entry.key, run);
    }

    // Origin chain: originPrev (field 6), when present, must be the digest (field 7) of the
    // origin's event before (originSeq - 1) in this stream.
    const origin = this.#originOf(entry, buffer, offsets[4]!, lengths[4]!);
    const chain = origin.open;
    if (chain !== undefined && originSeq === chain.last + 1) {
      if (chained && !sameBytes(buffer, offsets[6]!, lengths[6]!, chain.lastHash)) scan.originBroken = true;
      chain.last = originSeq;
      chain.lastHash = copyInto(chain.lastHash, buffer, offsets[7]!, lengths[7]!);
    } else {
      const run: Run = { first: originSeq, firstLink: chained ? copyOf(buffer, offsets[6]!, lengths[6]!) : null, last: originSeq, lastHash: copyOf(buffer, offsets[7]!, lengths[7]!) };
      origin.open = run;
      pushRun(this.#origin, origin.key, run);
    }
    return at - start;
  }

  /** The stream whose name is the field's bytes (found by a hash of them: no string per row). */
  #stream(buffer: Buffer, offset: number, length: number): StreamEntry {
    const hash = hashBytes(buffer, offset, length, 0x811c9dc5);
    let list = this.#entries.get(hash);
    if (list !== undefined) {
      for (const entry of list) if (sameBytes(buffer, offset, length, entry.bytes)) return entry;
    } else {
      list = [];
      this.#entries.set(hash, list);
    }
    const bytes = Buffer.from(buffer.subarray(offset, offset + length));
    const key = bytes.toString('utf8');
    let scan = this.#streams.get(key);
    if (scan === undefined) {
      scan = { events: 0, chained: 0, altered: 0, siteBroken: false, originBroken: false };
      this.#streams.set(key, scan);
    }
    const entry: StreamEntry = { bytes, scan, key, openSite: undefined, origins: new Map() };
    list.push(entry);
    return entry;
  }

  #originOf(stream: StreamEntry, buffer: Buffer, offset: number, length: number): OriginEntry {
    const hash = hashBytes(buffer, offset, length, 0x811c9dc5);
    let list = stream.origins.get(hash);
    if (list !== undefined) {
      for (const entry of list) if (sameBytes(buffer, offset, length, entry.bytes)) return entry;
    } else {
      list = [];
      stream.origins.set(hash, list);
    }
    const bytes = Buffer.from(buffer.subarray(offset, offset + length));
    // Text never holds a NUL: the key cannot be confused with another (stream, origin).
    const entry: OriginEntry = { bytes, key: `${stream.key}\0${bytes.toString('utf8')}`, open: undefined };
    list.push(entry);
    return entry;
  }
}

/** FNV-1a over the bytes. */
function hashBytes(buffer: Buffer, offset: number, length: number, seed: number): number {
  let hash = seed;
  for (let index = offset; index < offset + length; index++) hash = Math.imul(hash ^ buffer[index]!, 0x01000193);
  return hash;
}

/**
 * Whether `runs` (one chain's) make one gapless sequence starting at `start`: each run begins
 * one past the last of the run before and links to its hash; the first links to the genesis
 * (the site chain always; an origin chain when its first event carries a link).
 */
function joined(runs: Run[], start: number, firstLinkRequired: boolean): boolean {
  runs.sort((a, b) => a.first - b.first);
  let before: Run | undefined;
  for (const run of runs) {
    if (before === undefined) {
      if (run.first !== start) return false;
      if (run.firstLink === null ? firstLinkRequired : !run.firstLink.equals(GENESIS)) return false;
    } else {
      if (run.first !== before.last + 1) return false;
      if (run.firstLink === null ? firstLinkRequired : before.lastHash === null || !run.firstLink.equals(before.lastHash)) return false;
    }
    before = run;
  }
  return true;
}

function pushRun(runs: Map<string, Run[]>, key: string, run: Run): void {
  const list = runs.get(key);
  if (list === undefined) runs.set(key, [run]);
  else list.push(run);
}

/** Whether the field at `offset` (-1: NULL) holds exactly `expected`'s bytes (a NULL on either side never matches). */
function sameBytes(buffer: Buffer, offset: number, length: number, expected: Buffer | null): boolean {
  if (offset < 0 || expected === null || length !== expected.length) return false;
  // A loop: for 32 bytes cheaper than a call into Buffer.compare.
  for (let index = 0; index < length; index++) if (buffer[offset + index] !== expected[index]) return false;
  return true;
}

function copyOf(buffer: Buffer, offset: number, length: number): Buffer | null {
  return offset < 0 ? null : Buffer.from(buffer.subarray(offset, offset + length));
}

/** The field's bytes in `target` when it has their length (no allocation per row), else in a new buffer. */
function copyInto(target: Buffer | null, buffer: Buffer, offset: number, length: number): Buffer | null {
  if (offset < 0) return null;
  if (target === null || target.length !== length) return copyOf(buffer, offset, length);
  for (let index = 0; index < length; index++) target[index] = buffer[offset + index]!;
  return target;
}

function malformed(message: string): StrataError {
  return new StrataError('STRATA_ERR_CODEC_MALFORMED', `verify COPY output: ${message}`);
}
