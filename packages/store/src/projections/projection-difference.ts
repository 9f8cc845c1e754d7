import { isDeepStrictEqual } from 'node:util';
import { sql, type Kysely } from 'kysely';
import { StrataError } from '@strata/core';
import type { StoreDatabase } from '../schema.ts';
import { BINARY_COPY_HEADER, BinaryCopyWriter, type BinaryCopySource } from './binary-copy.ts';
import type { CopyRows } from './bulk-copy.ts';
import { quoteIdentifier, sqlTextLiteral } from './sql-values.ts';

/** Bytes of our rows encoded at a time (a row never spans two chunks). */
const chunkBytesMax = 4 * 1024 * 1024;

/** What writeDifference needs of the bulk transaction's COPY. */
export type DifferenceCopy = Pick<CopyRows, 'out' | 'encoded'>;

/**
 * The tables a replay brings to the replayed state by difference, and how many of their
 * leading columns make a row's key (the repository first).
 */
export const DIFFERENCE_KEY_FIELDS: ReadonlyMap<string, number> = new Map([
  ['artifacts', 2],
  ['folder_tombstones', 2],
  ['artifact_properties', 3],
]);

export interface DifferenceResult {
  /** Rows of the replayed state. */
  readonly rows: number;
  /** Live rows deleted plus replayed rows inserted. */
  readonly changed: number;
}

interface RowRef {
  readonly chunk: Buffer;
  readonly start: number;
  readonly end: number;
}

/**
 * Brings `source.table`'s rows of one repository to `source`'s rows, writing only what
 * differs: the replayed rows are encoded (binary COPY rows), the live rows read by one
 * COPY … TO in the same transaction and compared row by row, keyed by the first columns of
 * DIFFERENCE_KEY_FIELDS (the repository, then the table's key); a live row with no identical
 * replayed row is deleted (one statement), a replayed row with no identical live row inserted
 * (one COPY). Rows compare by their bytes; jsonb fields, which PostgreSQL gives back in its
 * own layout, by JSON value when the bytes differ.
 */
export async function writeDifference(tx: Kysely<StoreDatabase>, copy: DifferenceCopy, source: BinaryCopySource, repo: string): Promise<DifferenceResult> {
  const keyFields = DIFFERENCE_KEY_FIELDS.get(source.table);
  if (keyFields === undefined) throw new StrataError('STRATA_ERR_INVARIANT', `a replay copies rows into ${source.table}, which it does not compare`);
  const { out, encoded } = copy;
  if (out === undefined || encoded === undefined) throw new StrataError('STRATA_ERR_INVARIANT', 'a replay by difference needs COPY in and out');
  const columns = source.columns;
  const jsonbFields = columns.flatMap(([, type], index) => (type === 'jsonb' ? [index] : []));

  // The replayed rows, by key.
  const replayed = new Map<string, RowRef>();
  const writer = new BinaryCopyWriter(chunkBytesMax);
  let rows = 0;
  for (;;) {
    const more = source.writeRow(writer);
    if (writer.hasChunk || !more) {
      for (const chunk of writer.take(!more)) {
        for (let at = 0; at < chunk.length; ) {
          const end = rowEnd(chunk, at, columns.length);
          if (end < 0) throw new StrataError('STRATA_ERR_INVARIANT', `a replayed ${source.table} row spans two chunks`);
          replayed.set(chunk.toString('latin1', at + 2, keyEnd(chunk, at + 2, keyFields)), { chunk, start: at, end });
          rows++;
          at = end;
        }
      }
    }
    if (!more) break;
  }

  // The live rows, compared as they stream in.
  const names = columns.map(([name]) => quoteIdentifier(name)).join(', ');
  const statement = (target: string) => `copy (select ${names} from ${quoteIdentifier(source.table)} where repo = ${sqlTextLiteral(repo)}) to ${target} (format binary)`;
  const deletes: string[][] = Array.from({ length: keyFields }, () => []);
  let pending: Buffer = Buffer.alloc(0);
  let headerRead = false;
  let ended = false;
  for await (const piece of out(statement)) {
    const bytes = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength);
    const buffer = pending.length === 0 ? bytes : Buffer.concat([pending, bytes]);
    let at = 0;
    if (!headerRead) {
      // The header, then its extension (of the length its last field gives).
      const headerEnd = buffer.length < BINARY_COPY_HEADER.length ? -1 : BINARY_COPY_HEADER.length + buffer.readInt32BE(BINARY_COPY_HEADER.length - 4);
      if (headerEnd < 0 || buffer.length < headerEnd) {
        pending = Buffer.from(buffer);
        continue;
      }
      at = headerEnd;
      headerRead = true;
    }
    for (;;) {
      if (buffer.length - at < 2) break;
      if (buffer.readInt16BE(at) === -1) {
        ended = true;
        at += 2;
        break;
      }
      const end = rowEnd(buffer, at, columns.length);
      if (end < 0) break;
      const key = buffer.toString('latin1', at + 2, keyEnd(buffer, at + 2, keyFields));
      const ours = replayed.get(key);
      if (ours !== undefined && sameRow(ours, buffer, at, end, columns.length, jsonbFields)) {
        replayed.delete(key);
      } else {
        let field = at + 2;
        for (let index = 0; index < keyFields; index++) {
          const length = buffer.readInt32BE(field);
          deletes[index]!.push(buffer.toString('utf8', field + 4, field + 4 + length));
          field += 4 + length;
        }
      }
      at = end;
    }
    // What is left is part of a row: keep a copy (the chunk may be reused by the reader).
    pending = at >= buffer.length ? Buffer.alloc(0) : Buffer.from(buffer.subarray(at));
  }
  if (!ended || pending.length > 0) throw new StrataError('STRATA_ERR_INVARIANT', `the COPY of ${source.table} ended early`);

  const deleted = deletes[0]!.length;
  if (deleted > 0) {
    const keys = columns.slice(0, keyFields).map(([name]) => sql.ref(name));
    const arrays = deletes.map((values) => sql`${values}::text[]`);
    await sql`delete from ${sql.table(source.table)} where (${sql.join(keys)}) in (select * from unnest(${sql.join(arrays)}))`.execute(tx);
  }
  if (replayed.size > 0) await encoded(source.table, columns, concatenated(replayed.values()));
  return { rows, changed: deleted + replayed.size };
}

/** The end of the binary COPY row at `at` (its field count, then each field's length and bytes), or -1 when `buffer` holds only part of it. */
function rowEnd(buffer: Buffer, at: number, fields: number): number {
  if (buffer.length - at < 2) return -1;
  const count = buffer.readInt16BE(at);
  if (count !== fields) throw new StrataError('STRATA_ERR_INVARIANT', `a COPY row of ${count} fields where ${fields} were expected`);
  let offset = at + 2;
  for (let index = 0; index < count; index++) {
    if (buffer.length - offset < 4) return -1;
    const length = buffer.readInt32BE(offset);
    offset += 4 + (length < 0 ? 0 : length);
    if (offset > buffer.length) return -1;
  }
  return offset;
}

/** The end of the first `fields` fields from `at` (the key's bytes, lengths included). */
function keyEnd(buffer: Buffer, at: number, fields: number): number {
  let offset = at;
  for (let index = 0; index < fields; index++) {
    const length = buffer.readInt32BE(offset);
    offset += 4 + (length < 0 ? 0 : length);
  }
  return offset;
}

function sameRow(ours: RowRef, live: Buffer, start: number, end: number, fields: number, jsonbFields: readonly number[]): boolean {
  if (ours.end - ours.start === end - start && ours.chunk.compare(live, start, end, ours.start, ours.end) === 0) return true;
  if (jsonbFields.length === 0) return false;
  // Field by field: jsonb by value, everything else by bytes.
  let a = ours.start + 2;
  let b = start + 2;
  for (let index = 0; index < fields; index++) {
    const lengthA = ours.chunk.readInt32BE(a);
    const lengthB = live.readInt32BE(b);
    const endA = a + 4 + Math.max(0, lengthA);
    const endB = b + 4 + Math.max(0, lengthB);
    if (jsonbFields.includes(index) && lengthA > 0 && lengthB > 0) {
      // Version byte 1, then the JSON text.
      if (ours.chunk[a + 4] !== 1 || live[b + 4] !== 1) return false;
      const valueA: unknown = JSON.parse(ours.chunk.toString('utf8', a + 5, endA));
      const valueB: unknown = JSON.parse(live.toString('utf8', b + 5, endB));
      if (!isDeepStrictEqual(valueA, valueB)) return false;
    } else if (lengthA !== lengthB || ours.chunk.compare(live, b + 4, endB, a + 4, endA) !== 0) {
      return false;
    }
    a = endA;
    b = endB;
  }
  return true;
}

/** The rows' bytes in chunks of about chunkBytesMax (a row never spans two), for CopyRows.encoded. */
async function* concatenated(rows: Iterable<RowRef>): AsyncGenerator<Uint8Array> {
  let parts: Buffer[] = [];
  let bytes = 0;
  for (const row of rows) {
    parts.push(row.chunk.subarray(row.start, row.end));
    bytes += row.end - row.start;
    if (bytes >= chunkBytesMax) {
      yield Buffer.concat(parts, bytes);
      parts = [];
      bytes = 0;
    }
  }
  if (bytes > 0) yield Buffer.concat(parts, bytes);
}

/**
 * Locks the tables a replay compares against writes (inline projections of appends wait;
 * readers go on reading the old rows) until the transaction ends: the rows it compares stay
 * as it read them.
 */
export async function lockForDifference(tx: Kysely<StoreDatabase>): Promise<void> {
  await sql`lock table ${sql.join([...DIFFERENCE_KEY_FIELDS.keys()].map((table) => sql.table(table)))} in exclusive mode`.execute(tx);
}
