/**
 * PostgreSQL's copyOut (a COPY … TO STDOUT read through CopyOutQuery): the same bytes as
 * pg-copy-streams reads, across many socket chunks; a statement failing midway rejects with
 * PostgreSQL's error and leaves the pool usable, as does a reader that stops midway; notices
 * sent during the COPY are skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { openEventStore, type OpenedEventStore } from '../src/index.ts';

const databaseUrl = process.env.DATABASE_URL;

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

describe.skipIf(databaseUrl === undefined)('copyOut on PostgreSQL', () => {
  const schema = `copy_out_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  let opened: OpenedEventStore;
  let client: pg.Client;

  beforeAll(async () => {
    opened = await openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 2 });
    client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
  });

  afterAll(async () => {
    await opened.close();
    try {
      await client.query(`drop schema if exists ${schema} cascade`);
    } finally {
      await client.end();
    }
  });

  // Rows of 0 to ~3,000 bytes (many per socket read, and rows cut by reads), 12 MB in all.
  const rows = `select n, repeat(md5(n::text), n % 97) as text, decode(repeat(md5(n::text), n % 13), 'hex') as bytes from generate_series(1, 12000) n`;

  it('reads the same bytes as pg-copy-streams, in binary and in text format', async () => {
    for (const format of ['binary', 'text']) {
      const statement = `copy (${rows}) to stdout (format ${format})`;
      const read = await collect(opened.copyOut((target) => `copy (${rows}) to ${target} (format ${format})`));
      const reference = await collect(client.query(copyTo(statement)) as AsyncIterable<Buffer>);
      expect(reference.length).toBeGreaterThan(1_000_000);
      expect(read.equals(reference)).toBe(true);
    }
  });

  it('rejects with the error of a statement that fails midway, and the next COPY and query work', async () => {
    const failing = opened.copyOut((target) => `copy (select n, 100 / (n - 5000) as quotient, repeat('x', 200) from generate_series(1, 6000) n) to ${target} (format binary)`);
    await expect(collect(failing)).rejects.toThrow(/division by zero/);
    const again = await collect(opened.copyOut((target) => `copy (select 42) to ${target} (format text)`));
    expect(again.toString()).toBe('42\n');
    const [row] = (await sql<{ one: number }>`select 1 as one`.execute(opened.db)).rows;
    expect(row?.one).toBe(1);
  });

  it('gives up its connection when the reader stops midway, and the pool serves the next COPY and query', async () => {
    let chunks = 0;
    for await (const chunk of opened.copyOut((target) => `copy (${rows}) to ${target} (format binary)`)) {
      expect(chunk.length).toBeGreaterThan(0);
      chunks++;
      break;
    }
    expect(chunks).toBe(1);
    const again = await collect(opened.copyOut((target) => `copy (select 'after' as word) to ${target} (format text)`));
    expect(again.toString()).toBe('after\n');
    const [row] = (await sql<{ one: number }>`select 1 as one`.execute(opened.db)).rows;
    expect(row?.one).toBe(1);
  });

  it('skips notices the backend sends between the rows', async () => {
    await client.query(`create function ${schema}.noisy(n int) returns int language plpgsql as $$ begin if n % 100 = 0 then raise notice 'row %', n; end if; return n; end $$`);
    const read = await collect(opened.copyOut((target) => `copy (select ${schema}.noisy(n) from generate_series(1, 1000) n) to ${target} (format text)`));
    expect(read.toString()).toBe(Array.from({ length: 1000 }, (_, index) => `${index + 1}\n`).join(''));
  });
});
