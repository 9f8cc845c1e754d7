/**
 * The history page's JSON rendered straight from binary COPY bytes (history-json-copy.ts)
 * against what the route rendered before: the events decoded from the same rows
 * (decodeChainedEventCopy), put in revision order, cut at the limit, and turned into JSON by
 * historyEventJson and JSON.stringify. Byte for byte, or the renderer declines (and the page
 * is rendered from decoded events).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { REPOSITORY_EVENT_TYPES } from '@strata/core';
import { BINARY_COPY_HEADER, BINARY_COPY_TRAILER } from '../src/projections/binary-copy.ts';
import { decodeChainedEventCopy } from '../src/event-copy-reader.ts';
import { renderHistoryJsonCopy } from '../src/audit/history-json-copy.ts';
import { historyEventJson } from '../src/audit/history-json.ts';

/** Core's codec options (event-codec.ts): what stored data and meta are packed with. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });
const SITE = 'site-a';

interface Row {
  position: bigint;
  id: string;
  revision: number;
  origin: string;
  originSeq: number;
  wall: number;
  logical: number;
  type: string;
  data: Buffer;
  meta: Buffer;
  prevHash: Buffer | null;
}

const int = (bytes: 4 | 8, value: bigint | number) => {
  const buffer = Buffer.alloc(4 + bytes);
  buffer.writeInt32BE(bytes);
  if (bytes === 8) buffer.writeBigInt64BE(BigInt(value), 4);
  else buffer.writeInt32BE(Number(value), 4);
  return buffer;
};
const field = (value: Buffer | null) => (value === null ? int(4, -1).subarray(4) : Buffer.concat([int(4, value.length).subarray(4), value]));
const count = (fields: number) => {
  const buffer = Buffer.alloc(2);
  buffer.writeInt16BE(fields);
  return buffer;
};

/** The rows as COPY_CHAINED_EVENT_COLUMNS (what the decoder reads) and as COPY_HISTORY_JSON_COLUMNS (the renderer). */
function copyBytes(rows: readonly Row[]): { chained: Buffer; json: Buffer } {
  const chained: Buffer[] = [BINARY_COPY_HEADER];
  const json: Buffer[] = [BINARY_COPY_HEADER];
  for (const row of rows) {
    const id = field(Buffer.from(row.id));
    const origin = field(Buffer.from(row.origin));
    const type = field(Buffer.from(row.type));
    chained.push(count(13), int(8, 77n), int(8, row.position), id, field(Buffer.from('repo-libs')), int(4, row.revision), origin, int(4, row.originSeq), int(8, row.wall), int(4, row.logical), type, field(row.data), field(row.meta), field(row.prevHash));
    json.push(count(11), int(8, row.position), id, int(4, row.revision), origin, int(4, row.originSeq), int(8, row.wall), int(4, row.logical), type, field(row.data), field(row.meta), field(row.prevHash));
  }
  chained.push(BINARY_COPY_TRAILER);
  json.push(BINARY_COPY_TRAILER);
  return { chained: Buffer.concat(chained), json: Buffer.concat(json) };
}

function chunked(data: Buffer, cuts: readonly number[]): AsyncIterable<Uint8Array> {
  const points = [...new Set(cuts.map((cut) => cut % data.length))].filter((cut) => cut > 0).sort((a, b) => a - b);
  const chunks = [0, ...points].map((start, index) => data.subarray(start, points[index] ?? data.length));
  return (async function* () {
    yield* chunks;
  })();
}

/** What the route sent before: decoded events, in revision order, cut at the limit, through JSON.stringify. */
async function expectedJson(chained: Buffer, limit: number): Promise<string | Error> {
  try {
    const entries = await decodeChainedEventCopy(chunked(chained, []));
    entries.sort((a, b) => a.event.revision - b.event.revision);
    if (entries.length > limit) entries.length = limit;
    return JSON.stringify(entries.map((entry) => historyEventJson(entry, SITE)));
  } catch (error) {
    return error as Error;
  }
}

/** No lone surrogate (UTF-8 cannot carry one: the decoder would read something else). */
const wellFormed = (text: string) => !/\p{Cs}/u.test(text);

// Values a JavaScript object holds as they were packed: keys without a leading digit (an
// array index goes first in an object) and other than __proto__; well-formed strings.
const plainKey = fc.string({ unit: 'binary-ascii', maxLength: 12 }).filter((key) => !/^[0-9]/.test(key) && key !== '__proto__');
const plainString = fc.string({ unit: 'binary', maxLength: 24 }).filter(wellFormed);
const { plain } = fc.letrec((tie) => ({
  plain: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    fc.double(),
    fc.maxSafeInteger(),
    plainString,
    fc.array(tie('plain'), { maxLength: 4 }),
    fc.dictionary(plainKey, tie('plain'), { maxKeys: 5 }),
  ),
}));
const plainMap = fc.dictionary(plainKey, plain, { maxKeys: 6 });
const event = (type: fc.Arbitrary<string>, data: fc.Arbitrary<unknown>, meta: fc.Arbitrary<unknown>, wall: fc.Arbitrary<number>) =>
  fc.record({
    type,
    data,
    meta,
    id: fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }).filter(wellFormed),
    foreign: fc.boolean(),
    originSeq: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
    wall,
    logical: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    position: fc.oneof(fc.bigInt({ min: 1n, max: 2n ** 40n }), fc.bigInt({ min: 2n ** 53n, max: 2n ** 63n - 1n })),
    prevHash: fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: null }),
  });
const pathData = fc.oneof(
  plainMap,
  fc.record({ path: fc.oneof(plainString, plain), size: fc.integer() }),
  fc.record({ prefix: plainString, path: plainString }),
);
// Times of years 0–9999 and the six-digit years around them (Date holds ±8.64e15 ms).
const wall = fc.oneof(fc.integer({ min: 0, max: 2 ** 44 }), fc.integer({ min: -8.64e15, max: 8.64e15 }));
const plainEvent = event(fc.constantFrom(...REPOSITORY_EVENT_TYPES), pathData, fc.oneof(plainMap, fc.record({ actor: plain, requestId: plainString })), wall);

interface RowInput {
  type: string;
  data: unknown;
  meta: unknown;
  id: string;
  foreign: boolean;
  originSeq: number;
  wall: number;
  logical: number;
  position: bigint;
  prevHash: Uint8Array | null;
  /** Stored bytes instead of packed data or meta. */
  rawData?: Buffer;
  rawMeta?: Buffer;
}

function rowsOf(inputs: readonly RowInput[], revisions: readonly number[]): Row[] {
  return inputs.map((value, index) => ({
    position: value.position,
    id: value.id,
    revision: revisions[index]!,
    origin: value.foreign ? 'site-b' : SITE,
    originSeq: value.originSeq,
    wall: value.wall,
    logical: value.logical,
    type: value.type,
    data: value.rawData ?? packr.pack(value.data),
    meta: value.rawMeta ?? packr.pack(value.meta),
    prevHash: value.prevHash === null ? null : Buffer.from(value.prevHash),
  }));
}

/** Maps packing an object never makes, as stored bytes. */
const RAW_MAPS = [
  // {"b":2,"1":1}: an object puts the index "1" first.
  Buffer.from([0x82, 0xa1, 0x62, 0x02, 0xa1, 0x31, 0x01]),
  // {"__proto__":1,"actor":"x"}: the decoder renames __proto__.
  Buffer.from([0x82, 0xa9, ...Buffer.from('__proto__'), 0x01, 0xa5, ...Buffer.from('actor'), 0xa1, 0x78]),
  // {"actor":"x","actor":"y"}: an object keeps the last value at the first key's place.
  Buffer.from([0x82, 0xa5, ...Buffer.from('actor'), 0xa1, 0x78, 0xa5, ...Buffer.from('actor'), 0xa1, 0x79]),
  // {"a":1.5 as float32}, {"é":1} (a non-ASCII key), {1:2} (an integer key).
  Buffer.from([0x81, 0xa1, 0x61, 0xca, 0x3f, 0xc0, 0x00, 0x00]),
  Buffer.from([0x81, 0xa2, 0xc3, 0xa9, 0x01]),
  Buffer.from([0x81, 0x01, 0x02]),
  // {"a": a surrogate encoded in UTF-8}, {"a": bytes that are not UTF-8}, {"a": "é😀"} (well formed: rendered).
  Buffer.from([0x81, 0xa1, 0x61, 0xa3, 0xed, 0xa0, 0x80]),
  Buffer.from([0x81, 0xa1, 0x61, 0xa2, 0xc3, 0x28]),
  Buffer.from([0x81, 0xa1, 0x61, 0xa6, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]),
  // A map with bytes after it, and one cut short.
  Buffer.from([0x81, 0xa1, 0x61, 0x01, 0x01]),
  Buffer.from([0x82, 0xa1, 0x61, 0x01]),
];

describe('history JSON rendered from binary COPY', () => {
  it('is byte for byte what historyEventJson and JSON.stringify make of the decoded events, in revision order, cut at the limit', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(plainEvent, { minLength: 0, maxLength: 12 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 14 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        async (events, shuffled, limit, cuts) => {
          // Rows in heap order may come out of revision order.
          const rows = rowsOf(events, events.map((_, index) => (shuffled ? (events.length - index) * 3 + (index % 2) : index)));
          const { chained, json } = copyBytes(rows);
          const expected = await expectedJson(chained, limit);
          const rendered = await renderHistoryJsonCopy(chunked(json, cuts), SITE, limit);
          expect(expected).not.toBeInstanceOf(Error);
          expect(rendered).toBeDefined();
          expect(Buffer.concat(rendered!.json).toString('hex')).toBe(Buffer.from(expected as string, 'utf8').toString('hex'));
          const sortedRevisions = [...rows.map((row) => row.revision)].sort((a, b) => a - b).slice(0, limit);
          expect([...rendered!.revisions]).toEqual(sortedRevisions);
          expect(rendered!.rowsRead).toBe(rows.length);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('declines what only the decoder shows exactly, and renders nothing else differently', async () => {
    // Keys an object reorders or renames, strings that are not well formed, bigints, dates,
    // binaries, undefined, payloads that are not maps, bytes that are not msgpack, unknown types.
    const awkward = fc.oneof(
      plain,
      fc.constantFrom(10n, undefined, new Date(0), Buffer.from('bin'), '\ud800x', JSON.parse('{"__proto__":1,"a":2}') as unknown, { '1': 'one', b: 'two' }, { é: 1 }, 2 ** 64),
      fc.dictionary(fc.string({ maxLength: 4 }), plain, { maxKeys: 4 }),
    );
    const awkwardEvent = event(
      fc.oneof(fc.constantFrom(...REPOSITORY_EVENT_TYPES), fc.constantFrom('NoSuchType', 'UserSaved')),
      fc.oneof(awkward, fc.dictionary(plainKey, awkward, { maxKeys: 4 })),
      fc.oneof(fc.dictionary(plainKey, awkward, { maxKeys: 3 }), fc.record({ actor: awkward })),
      // Past what Date holds: toISOString throws.
      fc.oneof(wall, fc.constant(8.64e15 + 1)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            event: fc.oneof(plainEvent, awkwardEvent),
            rawData: fc.option(fc.uint8Array({ maxLength: 12 }), { nil: undefined, freq: 6 }),
            rawMeta: fc.option(fc.constantFrom(...RAW_MAPS), { nil: undefined, freq: 3 }),
          }),
          { maxLength: 6 },
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (events, cuts) => {
          const inputs = events.map(
            ({ event: value, rawData, rawMeta }): RowInput => ({ ...value, ...(rawData === undefined ? {} : { rawData: Buffer.from(rawData) }), ...(rawMeta === undefined ? {} : { rawMeta }) }),
          );
          const rows = rowsOf(inputs, inputs.map((_, index) => index));
          const { chained, json } = copyBytes(rows);
          const expected = await expectedJson(chained, 100);
          const rendered = await renderHistoryJsonCopy(chunked(json, cuts), SITE, 100);
          if (rendered === undefined) return;
          expect(expected).not.toBeInstanceOf(Error);
          expect(Buffer.concat(rendered.json).toString('hex')).toBe(Buffer.from(expected as string, 'utf8').toString('hex'));
        },
      ),
      { numRuns: 400 },
    );
  });

  it.each(RAW_MAPS.map((bytes, index) => [index, bytes] as const))('declines stored map %i (one packing an object never makes) or renders it as the decoder reads it, as data and as meta', async (_, bytes) => {
    for (const raw of [{ rawData: bytes }, { rawMeta: bytes }]) {
      const plainRow: RowInput = { type: 'PropertiesSet', data: { path: 'a/b' }, meta: { actor: 'alice' }, id: 'e1', foreign: false, originSeq: 1, wall: 1, logical: 0, position: 1n, prevHash: null };
      const { chained, json } = copyBytes(rowsOf([plainRow, { ...plainRow, id: 'e2', ...raw }], [0, 1]));
      const expected = await expectedJson(chained, 10);
      const rendered = await renderHistoryJsonCopy(chunked(json, []), SITE, 10);
      if (rendered === undefined) continue;
      expect(expected).not.toBeInstanceOf(Error);
      expect(Buffer.concat(rendered.json).toString('hex')).toBe(Buffer.from(expected as string, 'utf8').toString('hex'));
    }
  });

  it('reuses the pieces of a released page and never those of a page still held', async () => {
    const page = async (actor: string) => {
      const rows = rowsOf(
        Array.from({ length: 1500 }, (_, index): RowInput => ({ type: 'ArtifactDeployed', data: { path: `a/${index}.jar`, size: index }, meta: { actor }, id: `e${index}`, foreign: false, originSeq: index + 1, wall: 1_700_000_000_000 + index, logical: 0, position: BigInt(index + 1), prevHash: null })),
        Array.from({ length: 1500 }, (_, index) => index),
      );
      const { chained, json } = copyBytes(rows);
      return { expected: Buffer.from((await expectedJson(chained, 2000)) as string), rendered: (await renderHistoryJsonCopy(chunked(json, [7, 70_000]), SITE, 2000))! };
    };
    const first = await page('alice');
    expect(Buffer.concat(first.rendered.json).equals(first.expected)).toBe(true);
    const firstPieces = new Set(first.rendered.json.map((piece) => piece.buffer));
    first.rendered.release();
    first.rendered.release();
    const second = await page('bob');
    expect(second.rendered.json.some((piece) => firstPieces.has(piece.buffer))).toBe(true);
    expect(Buffer.concat(second.rendered.json).equals(second.expected)).toBe(true);
    const third = await page('carol');
    expect(third.rendered.json.some((piece) => second.rendered.json.some((held) => held.buffer === piece.buffer))).toBe(false);
    expect(Buffer.concat(second.rendered.json).equals(second.expected)).toBe(true);
    expect(Buffer.concat(third.rendered.json).equals(third.expected)).toBe(true);
  });

  it('renders an empty page as []', async () => {
    const empty = await renderHistoryJsonCopy(chunked(copyBytes([]).json, [5]), SITE, 10);
    expect(Buffer.concat(empty!.json).toString()).toBe('[]');
  });

  it('refuses COPY data that ends without its trailer or is not binary COPY', async () => {
    const { json } = copyBytes(rowsOf([({ type: 'PropertiesSet', data: { path: 'a' }, meta: {}, id: 'e1', foreign: false, originSeq: 1, wall: 1, logical: 0, position: 1n, prevHash: null })], [0]));
    await expect(renderHistoryJsonCopy(chunked(json.subarray(0, json.length - 2), []), SITE, 10)).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_UNAVAILABLE' });
    await expect(renderHistoryJsonCopy(chunked(Buffer.from('not binary copy data at all'), []), SITE, 10)).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_UNAVAILABLE' });
  });
});
