/**
 * The COPY text of projection rows (copyChunks): the rows' text exactly, in chunks that each
 * hold whole rows, whatever the rows' sizes — small batches in one small buffer, large ones
 * through its growth and across chunks.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { copyChunks } from '../src/projections/bulk-copy.ts';

const escapeText = (text: string) => text.replace(/[\\\t\n\r]/g, (character) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[character]!);
const field = (value: string | number | null) => (value === null ? '\\N' : typeof value === 'number' ? String(value) : escapeText(value));

describe('copyChunks', () => {
  it('gives the rows as COPY text, each chunk whole rows, for rows from a few bytes to megabytes in all', () => {
    const value = fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 30 }), fc.string({ unit: 'grapheme', maxLength: 30 }));
    fc.assert(
      fc.property(
        fc.array(fc.array(value, { minLength: 1, maxLength: 6 }), { maxLength: 40 }),
        // Rows of a large field, so that most runs grow the first buffer (64 KiB) once or more.
        fc.array(fc.integer({ min: 0, max: 120_000 }), { maxLength: 6 }),
        (small, large) => {
          const rows: (string | number | null)[][] = [...small];
          for (const [index, length] of large.entries()) rows.splice((index * 7) % (rows.length + 1), 0, [index, 'x\t'.repeat(length / 2), null]);
          const counter = { rows: 0 };
          const chunks = [...copyChunks(rows, counter)];
          expect(counter.rows).toBe(rows.length);
          for (const chunk of chunks) expect(chunk[chunk.length - 1]).toBe(0x0a);
          const text = Buffer.concat(chunks).toString('utf8');
          expect(text).toBe(rows.map((row) => `${row.map(field).join('\t')}\n`).join(''));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('cuts megabytes of rows into chunks of whole rows, none much larger than 4 MiB', () => {
    const rows = Array.from({ length: 40 }, (_, index) => [index, `${index}:`.padEnd(200_000 + 7 * index, 'é\\t'), index % 3 === 0 ? null : 'x']);
    const counter = { rows: 0 };
    const chunks = [...copyChunks(rows, counter)];
    expect(chunks.length).toBeGreaterThan(1);
    for (const chunk of chunks) {
      expect(chunk[chunk.length - 1]).toBe(0x0a);
      expect(chunk.length).toBeLessThan(4 * 1024 * 1024 + 1024 * 1024);
    }
    expect(Buffer.concat(chunks).toString('utf8')).toBe(rows.map((row) => `${row.map(field).join('\t')}\n`).join(''));
  });
});
