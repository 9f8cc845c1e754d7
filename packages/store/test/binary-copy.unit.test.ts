/**
 * The binary COPY writer (rebuilds) and the binary COPY reader (scans) against each other's
 * format: values round-trip, rows never span chunks, and the reader decodes a stream cut
 * anywhere into chunks of any size.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { pack } from 'msgpackr';
import type { RecordedEvent } from '@strata/core';
import { BINARY_COPY_HEADER, BINARY_COPY_TRAILER, BinaryCopyWriter, binaryCopyRows } from '../src/projections/binary-copy.ts';
import type { UnnestColumn } from '../src/projections/sql-values.ts';
import { decodeChainedEventCopy, decodeEventCopy } from '../src/event-copy-reader.ts';

type Field = { kind: 'null' } | { kind: 'bool'; value: boolean } | { kind: 'int4'; value: number } | { kind: 'int8'; value: number } | { kind: 'text'; value: string } | { kind: 'parts'; value: string } | { kind: 'hex'; value: Uint8Array };

/** Reads binary COPY rows back as [field bytes or null][] (the header and trailer included). */
function readRows(data: Buffer): (Buffer | null)[][] {
  expect(data.subarray(0, BINARY_COPY_HEADER.length)).toEqual(BINARY_COPY_HEADER);
  let at = BINARY_COPY_HEADER.length;
  const rows: (Buffer | null)[][] = [];
  for (;;) {
    const fields = data.readInt16BE(at);
    at += 2;
    if (fields === -1) break;
    const row: (Buffer | null)[] = [];
    for (let field = 0; field < fields; field++) {
      const length = data.readInt32BE(at);
      at += 4;
      row.push(length < 0 ? null : data.subarray(at, at + length));
      if (length > 0) at += length;
    }
    rows.push(row);
  }
  expect(at).toBe(data.length);
  return rows;
}

const field: fc.Arbitrary<Field> = fc.oneof(
  fc.constant({ kind: 'null' as const }),
  fc.boolean().map((value) => ({ kind: 'bool' as const, value })),
  fc.integer().map((value) => ({ kind: 'int4' as const, value })),
  fc.maxSafeInteger().chain((value) => fc.constantFrom(value, -value)).map((value) => ({ kind: 'int8' as const, value })),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((value) => ({ kind: 'text' as const, value })),
  fc.array(fc.constantFrom('a', 'é', '/', 'x', '𝄞'), { maxLength: 12 }).map((parts) => ({ kind: 'parts' as const, value: parts.join('') })),
  fc.uint8Array({ maxLength: 32 }).map((value) => ({ kind: 'hex' as const, value })),
);

function expected(value: Field): (Buffer | null)[] {
  switch (value.kind) {
    case 'null':
      return [null];
    case 'bool':
      return [Buffer.from([value.value ? 1 : 0])];
    case 'int4': {
      const bytes = Buffer.alloc(4);
      bytes.writeInt32BE(value.value);
      return [bytes];
    }
    case 'int8': {
      const bytes = Buffer.alloc(8);
      bytes.writeBigInt64BE(BigInt(value.value));
      return [bytes];
    }
    case 'text':
      return [Buffer.from(value.value, 'utf8')];
    case 'parts': {
      const cut = value.value.lastIndexOf('/');
      return [Buffer.from(value.value), Buffer.from(cut < 0 ? '' : value.value.slice(0, cut)), Buffer.from(value.value.slice(cut + 1))];
    }
    case 'hex':
      return [Buffer.from(Buffer.from(value.value).toString('hex'))];
  }
}

describe('binary COPY', () => {
  it('writes every value as PostgreSQL reads it, rows whole within chunks of any size', () => {
    fc.assert(
      fc.property(fc.array(fc.array(field, { maxLength: 8 }), { maxLength: 30 }), fc.integer({ min: 1, max: 200 }), (rows, chunkBytesMax) => {
        const out = new BinaryCopyWriter(chunkBytesMax);
        const chunks: Buffer[] = [];
        for (const row of rows) {
          out.row(row.reduce((count, value) => count + (value.kind === 'parts' ? 3 : 1), 0));
          for (const value of row) {
            if (value.kind === 'null') out.null();
            else if (value.kind === 'bool') out.bool(value.value);
            else if (value.kind === 'int4') out.int4(value.value);
            else if (value.kind === 'int8') out.int8(value.value);
            else if (value.kind === 'text') out.text(value.value);
            else if (value.kind === 'parts') out.textAndParts(value.value, value.value.lastIndexOf('/'));
            else out.hex(value.value, 0, value.value.length);
          }
          out.endRow();
          chunks.push(...out.take());
        }
        chunks.push(...out.take(true));
        expect(out.rows).toBe(rows.length);
        // Each chunk holds whole rows (PGlite copies chunk by chunk).
        const perChunk = chunks.map((chunk) => readRows(Buffer.concat([BINARY_COPY_HEADER, chunk, BINARY_COPY_TRAILER])));
        expect(perChunk.flat()).toEqual(rows.map((row) => row.flatMap(expected)));
      }),
      { numRuns: 300 },
    );
  });

  it('takes everything written at any row, and writes on after that into fresh chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(fc.string({ maxLength: 40 }), { maxLength: 5 }), fc.boolean()), { maxLength: 30 }),
        fc.integer({ min: 1, max: 200 }),
        (rows, chunkBytesMax) => {
          const out = new BinaryCopyWriter(chunkBytesMax);
          const chunks: Buffer[] = [];
          for (const [row, takeAll] of rows) {
            out.row(row.length);
            for (const value of row) out.text(value);
            out.endRow();
            chunks.push(...out.take(takeAll));
          }
          chunks.push(...out.take(true));
          expect(out.take(true)).toEqual([]);
          const read = chunks.map((chunk) => readRows(Buffer.concat([BINARY_COPY_HEADER, chunk, BINARY_COPY_TRAILER])));
          expect(read.flat()).toEqual(rows.map(([row]) => row.map((value) => Buffer.from(value, 'utf8'))));
        },
      ),
      { numRuns: 300 },
    );
  });

  it("writes a projection's rows by their columns' types, or declines rows holding values it does not take as they are", () => {
    type ColumnType = UnnestColumn[1];
    const types: ColumnType[] = ['text', 'int8', 'int4', 'bool', 'jsonb'];
    // Any value, in any column: what COPY's text format would hand the server, or undefined.
    const value = fc.oneof(
      fc.constantFrom(null, undefined, true, false, 0, -1, 1.5, 2 ** 31, -(2 ** 31), 2 ** 53, Number.NaN, 2n ** 63n, -(2n ** 63n), 2n ** 63n - 1n, 5n),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
      fc.string({ unit: 'grapheme', maxLength: 20 }),
      fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.integer())),
    );
    const encodedAs = (type: ColumnType, field: unknown): Buffer | null | undefined => {
      if (field === null || field === undefined) return null;
      if (type === 'text') return typeof field === 'string' ? Buffer.from(field, 'utf8') : undefined;
      if (type === 'bool') return typeof field === 'boolean' ? Buffer.from([field ? 1 : 0]) : undefined;
      if (type === 'int4') {
        if (typeof field !== 'number' || !Number.isInteger(field) || field < -(2 ** 31) || field >= 2 ** 31) return undefined;
        const bytes = Buffer.alloc(4);
        bytes.writeInt32BE(field);
        return bytes;
      }
      if (type === 'int8') {
        const big = typeof field === 'number' && Number.isSafeInteger(field) ? BigInt(field) : typeof field === 'bigint' ? field : undefined;
        if (big === undefined || big < -(2n ** 63n) || big >= 2n ** 63n) return undefined;
        const bytes = Buffer.alloc(8);
        bytes.writeBigInt64BE(big);
        return bytes;
      }
      const json = typeof field === 'string' ? field : typeof field === 'bigint' ? undefined : JSON.stringify(field);
      return json === undefined ? undefined : Buffer.concat([Buffer.from([1]), Buffer.from(json, 'utf8')]);
    };
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...types), { minLength: 1, maxLength: 6 }).chain((columnTypes) =>
          fc.tuple(fc.constant(columnTypes), fc.array(fc.array(value, { minLength: columnTypes.length, maxLength: columnTypes.length }), { maxLength: 20 })),
        ),
        ([columnTypes, rows]) => {
          const columns: UnnestColumn[] = columnTypes.map((type, index) => [`c${index}`, type]);
          const want = rows.map((row) => row.map((field, index) => encodedAs(columnTypes[index]!, field)));
          const written = binaryCopyRows(columns, rows);
          if (want.some((row) => row.includes(undefined))) expect(written).toBeUndefined();
          else expect(readRows(Buffer.concat(written!))).toEqual(want);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses integers its columns cannot hold', () => {
    const out = new BinaryCopyWriter(1024);
    out.row(1);
    expect(() => out.int4(2 ** 31)).toThrow(RangeError);
    expect(() => out.int8(1.5)).toThrow(RangeError);
    expect(() => out.int8(2 ** 53)).toThrow(RangeError);
  });

  it.each([false, true])('decodes scanned events from a stream cut into chunks anywhere (with prev_hash: %s)', async (chained) => {
    const events = Array.from({ length: 40 }, (_, index) => ({
      // Above 2^32 (an xid8 after epoch 0): the checkpoint keeps both halves.
      transactionId: (1n << 33n) + 1000n + BigInt(index >> 2),
      // A few past 2^32, 2^53 (no longer a number exactly) and below zero: bigints either way.
      position: ({ 10: (1n << 53n) + 7n, 11: (1n << 32n) + 1n, 12: (1n << 32n) - 1n, 13: 1n << 62n, 14: -5n, 15: -(1n << 60n) } as Record<number, bigint>)[index] ?? BigInt(index + 1),
      id: `event-${index}`,
      stream: index % 3 === 0 ? 'repo-libs' : 'repo-ünï',
      revision: index,
      origin: index % 5 === 0 ? 'site-b' : 'site-a',
      originSeq: index + 1,
      wall: 1_700_000_000_000 + index,
      logical: index % 2,
      type: index % 4 === 1 ? 'ArtifactDeleted' : 'ArtifactDeployed',
      data: { path: `org/ü/${index}/${'x'.repeat(index === 39 ? 20_000 : index * 37)}.jar`, size: index },
      // Short metas repeat (decoded once, shared); nested or long ones are each their own.
      meta:
        index % 7 === 3
          ? { actor: 'alice', tags: ['a', String(index)] }
          : index % 11 === 5
            ? { actor: 'x'.repeat(60 + index) }
            : { actor: index % 2 === 0 ? 'alice' : 'zoë' },
      // NULL for events stored before the chains; a whole 32-byte link, or an empty one.
      prevHash: index % 3 === 0 ? null : Buffer.alloc(index % 7 === 1 ? 0 : 32, index),
    }));
    const rows: Buffer[] = [BINARY_COPY_HEADER];
    const int = (bytes: number, value: bigint | number) => {
      const buffer = Buffer.alloc(4 + bytes);
      buffer.writeInt32BE(bytes);
      if (bytes === 8) buffer.writeBigInt64BE(BigInt(value), 4);
      else buffer.writeInt32BE(Number(value), 4);
      return buffer;
    };
    const bytes = (value: Buffer) => Buffer.concat([int(4, value.length).subarray(4), value]);
    for (const event of events) {
      const count = Buffer.alloc(2);
      count.writeInt16BE(chained ? 13 : 12);
      rows.push(
        count,
        int(8, event.transactionId),
        int(8, event.position),
        bytes(Buffer.from(event.id)),
        bytes(Buffer.from(event.stream)),
        int(4, event.revision),
        bytes(Buffer.from(event.origin)),
        int(4, event.originSeq),
        int(8, event.wall),
        int(4, event.logical),
        bytes(Buffer.from(event.type)),
        bytes(pack(event.data)),
        bytes(pack(event.meta)),
      );
      if (chained) rows.push(event.prevHash === null ? int(4, -1).subarray(4) : bytes(event.prevHash));
    }
    rows.push(BINARY_COPY_TRAILER);
    const data = Buffer.concat(rows);
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: data.length }), { maxLength: 40 }), fc.integer({ min: 1, max: 15 }), async (cuts, pageEventsMax) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const chunks = [0, ...points].map((start, index) => data.subarray(start, points[index] ?? data.length)).filter((chunk) => chunk.length > 0);
        const source = () => (async function* () { yield* chunks; })();
        if (chained) {
          const entries = await decodeChainedEventCopy(source());
          expect(entries.map(({ event, prevHash }) => [event.id, event.revision, event.position, event.data, event.meta, prevHash])).toEqual(
            events.map((event) => [event.id, event.revision, event.position, event.data, event.meta, event.prevHash === null ? undefined : event.prevHash.toString('hex')]),
          );
          return;
        }
        const decoded: RecordedEvent[] = [];
        const checkpoints: { transactionId: bigint; position: bigint }[] = [];
        for await (const page of decodeEventCopy(source(), pageEventsMax)) {
          expect(page.events.length).toBeLessThanOrEqual(pageEventsMax);
          decoded.push(...page.events);
          checkpoints.push(page.checkpoint);
          const last = events[decoded.length - 1]!;
          expect(page.checkpoint).toEqual({ transactionId: last.transactionId, position: last.position });
        }
        expect(checkpoints.at(-1)?.position).toBe(40n);
        expect(
          decoded.map((event) => [event.id, event.stream, event.origin, event.type, event.revision, event.position, event.hlc.wall, event.hlc.logical, event.data, event.meta]),
        ).toEqual(events.map((event) => [event.id, event.stream, event.origin, event.type, event.revision, event.position, event.wall, event.logical, event.data, event.meta]));
        // A shared meta is frozen: no event can change another's.
        for (const event of decoded) {
          const short = Object.keys(event.meta).length === 1 && (event.meta.actor === 'alice' || event.meta.actor === 'zoë');
          expect(Object.isFrozen(event.meta)).toBe(short);
        }
        const alices = decoded.filter((event) => Object.isFrozen(event.meta) && event.meta.actor === 'alice');
        expect(alices.length).toBeGreaterThan(1);
        expect(new Set(alices.map((event) => event.meta)).size).toBe(1);
      }),
      { numRuns: 200 },
    );
  });
});
