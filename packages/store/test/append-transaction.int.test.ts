/**
 * The append transactions of append-transaction.ts: parameters inlined as literals must mean
 * exactly what the same parameters mean (checked against PostgreSQL when DATABASE_URL is
 * set), a batch's statements commit together or not at all, and a failed batch leaves its
 * pooled connection usable. Hot statements run prepared and mean the same.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { inlineParameters, literal, pgAppendTransactions, preparedValueLiteral } from '../src/append-transaction.ts';
import type { StoreDatabase } from '../src/schema.ts';

const NASTY_TEXTS = [
  '',
  "it's",
  "''",
  'back\\slash',
  '\\x41',
  "\\'; drop table nothing; --",
  '$1 and $2',
  '"quoted", {braced}',
  'NULL',
  'null',
  'ünïcödé 🙂 \u2028 \t\n\r',
  ' E\'x\'',
];
const BYTES = [Buffer.from([0, 1, 0x27, 0x5c, 0x22, 0x7b, 0x7d, 0x2c, 0xff]), Buffer.alloc(0), new Uint8Array([0x5c, 0x5c, 0x78])];

describe('inlineParameters and literal', () => {
  const db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool: {} as never }) });

  it('quotes strings so that quotes and backslashes survive whatever standard_conforming_strings says', () => {
    expect(literal("it's")).toBe("'it''s'");
    expect(literal('a\\b')).toBe(" E'a\\\\b'");
    expect(literal(null)).toBe('null');
    expect(literal(undefined)).toBe('null');
    expect(literal(42)).toBe("'42'");
    expect(literal(12n)).toBe("'12'");
    expect(literal(true)).toBe("'true'");
    expect(literal(Buffer.from([0xde, 0xad]))).toBe(" E'\\\\xdead'");
  });

  it("writes arrays as pg's array text quoted: the plain arrays an append sends take a shorter way to the very same text", () => {
    const prepareValue = (pg as unknown as { utils: { prepareValue(value: unknown): string } }).utils.prepareValue;
    // The general way: pg's array text, then quoted as any string literal.
    const general = (values: readonly unknown[]) => {
      const text = prepareValue(values);
      const quoted = text.replace(/'/g, "''");
      return text.includes('\\') ? ` E'${quoted.replace(/\\/g, '\\\\')}'` : `'${quoted}'`;
    };
    expect(literal([Buffer.from([0xde, 0xad]), null])).toBe(" E'{\\\\\\\\xdead,NULL}'");
    expect(literal(['a', null, 3, 4n])).toBe(`'{"a",NULL,"3","4"}'`);
    const element = fc.oneof(
      fc.string({ unit: 'binary' }).filter((text) => !text.includes('\u0000')),
      fc.constantFrom('NULL', 'null', '', 'a,b', '{x}', '"', "'", '\\'),
      fc.integer(),
      fc.double({ noNaN: false }),
      fc.bigInt(),
      fc.constant(null),
    );
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 40 }).map((array) => Buffer.from(array)), fc.uint8Array({ maxLength: 40 }), fc.constant(null));
    fc.assert(fc.property(fc.oneof(fc.array(element, { maxLength: 12 }), fc.array(bytes, { maxLength: 12 })), (values) => {
      expect(literal(values)).toBe(general(values));
    }), { numRuns: 2000 });
  });

  it('writes exactly the text of pg\'s own conversion, quoted, for every value an append sends', () => {
    const text = fc.oneof(fc.string(), fc.constantFrom(...NASTY_TEXTS), fc.string({ unit: fc.constantFrom('\\', '"', "'", 'x', '{', ',', '}', ' ') }));
    const bytes = fc.uint8Array({ maxLength: 40 }).map((array) => (array.length % 2 === 0 ? Buffer.from(array) : array));
    const scalar = fc.oneof(text, fc.integer(), fc.double(), fc.bigInt(), fc.boolean(), bytes, fc.constantFrom(null, undefined));
    const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 12 }), fc.array(text), fc.array(bytes), fc.array(fc.array(scalar, { maxLength: 3 }), { maxLength: 3 }));
    fc.assert(
      fc.property(value, (candidate) => {
        expect(literal(candidate)).toBe(preparedValueLiteral(candidate));
      }),
      { numRuns: 2000 },
    );
    for (const texts of [NASTY_TEXTS, [...NASTY_TEXTS, null], BYTES, [Buffer.from([0x27]), null], [1, -2, 1.5], [true, false, null], [12n]]) {
      expect(literal(texts)).toBe(preparedValueLiteral(texts));
    }
    expect(literal([{ a: "it's" }])).toBe(preparedValueLiteral([{ a: "it's" }]));
  });

  it('refuses a NUL character (it would end the query text)', () => {
    expect(() => literal('a\u0000b')).toThrow(/NUL/);
    expect(() => literal(['a\u0000b'])).toThrow(/NUL/);
  });

  it('replaces each placeholder once, in order, and refuses anything else', () => {
    const compiled = sql`select ${'a'}::text, ${["x'y"]}::text[]`.compile(db);
    expect(inlineParameters(compiled)).toBe(`select 'a'::text, '{"x''y"}'::text[]`);
    expect(() => inlineParameters({ ...compiled, sql: 'select $2, $1' })).toThrow(/placeholder/);
    expect(() => inlineParameters({ ...compiled, sql: 'select $1' })).toThrow(/parameters/);
    expect(() => inlineParameters({ ...compiled, sql: 'select $1, $2, $3' })).toThrow(/placeholder/);
  });
});

const databaseUrl = process.env.DATABASE_URL;

describe.skipIf(databaseUrl === undefined)('pgAppendTransactions on PostgreSQL', () => {
  const schema = `append_tx_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  let pool: pg.Pool;
  let db: Kysely<StoreDatabase>;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.query(`create table ${schema}.t (k text primary key, v int not null)`);
    await admin.end();
    pool = new pg.Pool({ connectionString: databaseUrl, max: 2, options: `-c search_path=${schema}` });
    db = new Kysely<StoreDatabase>({ dialect: new PostgresDialect({ pool }) });
  });

  afterAll(async () => {
    await db?.destroy();
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    await admin.query(`drop schema if exists ${schema} cascade`);
    await admin.end();
  });

  it('inlined literals read back exactly as the same values sent as parameters', async () => {
    const statement = sql<Record<string, unknown>>`select
      ${NASTY_TEXTS}::text[] as texts,
      ${[...NASTY_TEXTS, null]}::text[] as texts_with_null,
      ${['plain', 'ünïcödé 🙂', '', 'NULL', 'null', 'a,b', '{x}', '$1', null, 'E']}::text[] as plain_texts,
      ${['', null]}::text[] as empty_text_and_null,
      ${BYTES.map((bytes) => Buffer.from(bytes))}::bytea[] as bytes,
      ${[Buffer.from([0x27]), null]}::bytea[] as bytes_with_null,
      ${Buffer.from([0, 0x27, 0x5c])}::bytea as one_bytes,
      ${[1, -2, 2147483647]}::int[] as ints,
      ${[1700000000000, -1]}::bigint[] as bigints,
      ${[true, false, null]}::bool[] as bools,
      ${[JSON.stringify({ "a'b": ['\\', '"', '🙂'] }), '[]']}::text[] as json_texts,
      ${NASTY_TEXTS[5]!}::text as one_text,
      ${null}::text as nothing,
      ${7} + 1 as untyped_number`;
    const compiled = statement.compile(db);
    const expected = (await db.executeQuery(compiled)).rows[0];
    const [rows] = await pgAppendTransactions(pool).run((session) => session.send([compiled], { commit: true }));
    expect(rows![0]).toEqual(expected);
  });

  it('runs hot statements prepared with the same meaning, and inlines those PostgreSQL will not prepare', async () => {
    const single = new pg.Pool({ connectionString: databaseUrl, max: 1, options: `-c search_path=${schema}` });
    try {
      const transactions = pgAppendTransactions(single, { prepareAfter: 2 });
      const typed = sql<Record<string, unknown>>`select ${NASTY_TEXTS}::text[] as texts, ${BYTES.map((bytes) => Buffer.from(bytes))}::bytea[] as bytes,
        ${[1700000000000, -1]}::bigint[] as bigints, ${[true, null]}::bool[] as bools, ${null}::text as nothing`.compile(db);
      // PREPARE cannot tell the type of a bare parameter: this one stays inlined (as text).
      const untyped = sql<Record<string, unknown>>`select ${"it's"} is null as v`.compile(db);
      const none = sql<Record<string, unknown>>`select 1 as one`.compile(db);
      const expected = (await db.executeQuery(typed)).rows[0];
      for (let round = 0; round < 4; round++) {
        const [typedRows, untypedRows, noneRows] = await transactions.run((session) => session.send([typed, untyped, none], { commit: true }));
        expect(typedRows![0]).toEqual(expected);
        expect(untypedRows).toEqual([{ v: false }]);
        expect(noneRows).toEqual([{ one: 1 }]);
      }
      const client = await single.connect();
      try {
        const prepared = await client.query<{ statement: string }>('select statement from pg_prepared_statements order by name');
        expect(prepared.rows.map((row) => row.statement)).toEqual([`prepare strata_append_1 as ${typed.sql}`, `prepare strata_append_3 as ${none.sql}`]);
      } finally {
        client.release();
      }
    } finally {
      await single.end();
    }
  });

  it('commits the statements of all sends together, or none of them when one fails', async () => {
    const transactions = pgAppendTransactions(pool);
    const insert = (k: string, v: number) => sql`insert into t (k, v) values (${k}, ${v})`.compile(db);
    await transactions.run(async (session) => {
      await session.send([insert('a', 1), insert("b'", 2)]);
      await session.send([insert('c\\', 3)], { commit: true });
    });
    await expect(
      transactions.run(async (session) => {
        await session.send([insert('d', 4)]);
        await session.send([insert('e', 5), insert('a', 6)], { commit: true });
      }),
    ).rejects.toMatchObject({ code: '23505' });
    // The failed transaction rolled back, and its connection still works.
    for (let attempt = 0; attempt < 3; attempt++) {
      const [rows] = await transactions.run((session) => session.send([sql`select k, v from t order by k`.compile(db)], { commit: true }));
      expect(rows).toEqual([
        { k: 'a', v: 1 },
        { k: "b'", v: 2 },
        { k: 'c\\', v: 3 },
      ]);
    }
  });

  it('rolls back when the work throws after sending, and lends the open transaction to Kysely', async () => {
    const transactions = pgAppendTransactions(pool);
    await expect(
      transactions.run(async (session) => {
        await session.send([sql`insert into t (k, v) values ('x', 1)`.compile(db)]);
        const seen = await sql<{ n: string }>`select count(*) as n from t where k = 'x'`.execute(session.db);
        expect(Number(seen.rows[0]!.n)).toBe(1);
        throw new Error('refused');
      }),
    ).rejects.toThrow('refused');
    const rows = await sql<{ n: string }>`select count(*) as n from t where k = 'x'`.execute(db);
    expect(Number(rows.rows[0]!.n)).toBe(0);
  });
});
