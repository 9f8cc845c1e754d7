import { afterEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { StrataError, type NewEvent } from '@strata/core';
import { int8AsText, openEventStore, openPgliteWorker, PgliteDatabaseError, pgliteKysely, pgliteWorkerAppendTransactions, type PgliteWorkerDatabase } from '@strata/store';

describe('PGlite in a worker thread', () => {
  let database: PgliteWorkerDatabase | undefined;
  afterEach(async () => {
    await database?.close();
    database = undefined;
  });

  it('answers queries with the dialect row shapes: int8 as text, bytea as bytes', async () => {
    database = await openPgliteWorker('memory');
    const { rows } = await database.query<{ big: string; bytes: Uint8Array; small: number }>(
      'select $1::int8 as big, $2::bytea as bytes, 7::int as small',
      ['9007199254740993', new Uint8Array([1, 2, 255])],
      { parsers: { 20: int8AsText } },
    );
    expect(rows).toEqual([{ big: '9007199254740993', bytes: new Uint8Array([1, 2, 255]), small: 7 }]);
  });

  it('refuses a parser it cannot send to the worker, before sending anything', async () => {
    database = await openPgliteWorker('memory');
    expect(() => database!.query('select 1', [], { parsers: { 20: (value: string) => Number(value) } })).toThrow(StrataError);
  });

  it('carries PostgreSQL errors back with their SQLSTATE', async () => {
    database = await openPgliteWorker('memory');
    await database.query('create table t (id int primary key)');
    await database.query('insert into t values (1)');
    const error = await database.query('insert into t values (1)').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PgliteDatabaseError);
    expect(error).toMatchObject({ code: '23505', constraint: 't_pkey', table: 't' });
  });

  it('runs several statements as one exec, each with its result, and stops at the first error', async () => {
    database = await openPgliteWorker('memory');
    const results = await database.exec("create table t (id int primary key, big int8); insert into t values (1, 9007199254740993); select id, big from t; select 'x' as y");
    expect(results.map((result) => result.rows)).toEqual([[], [], [{ id: 1, big: '9007199254740993' }], [{ y: 'x' }]]);
    await expect(database.exec('begin; insert into t values (2, 0); insert into t values (1, 0); insert into t values (3, 0)')).rejects.toMatchObject({ code: '23505' });
    await database.exec('rollback');
    expect((await database.exec('select id from t order by id'))[0]!.rows).toEqual([{ id: 1 }]);
  });

  it('append transactions send each batch as one exec, hot statements prepared with the same meaning, and roll back a failed batch', async () => {
    database = await openPgliteWorker('memory');
    const db = pgliteKysely(database);
    try {
      await database.exec('create table t (k text primary key, v int not null)');
      const transactions = pgliteWorkerAppendTransactions(db, database, { prepareAfter: 2 });
      const texts = ['', "it's", 'back\\slash', '\\x41', '$1', '"q", {b}', 'NULL', 'ünï 🙂'];
      const bytes = [Buffer.from([0, 0x27, 0x5c, 0xff]), Buffer.alloc(0)];
      const typed = sql<Record<string, unknown>>`select ${texts}::text[] as texts, ${bytes}::bytea[] as bytes, ${[1700000000000, -1]}::bigint[] as bigints, ${null}::text as nothing`.compile(db);
      // PREPARE cannot tell the type of a bare parameter: this one stays inlined (as text).
      const untyped = sql<Record<string, unknown>>`select ${"it's"} is null as v`.compile(db);
      const expected = (await db.executeQuery(typed)).rows[0];
      for (let round = 0; round < 4; round++) {
        const [typedRows, untypedRows] = await transactions.run((session) => session.send([typed, untyped], { commit: true }));
        expect(typedRows![0]).toEqual(expected);
        expect(untypedRows).toEqual([{ v: false }]);
      }
      const prepared = await database.exec('select statement from pg_prepared_statements order by name');
      expect(prepared[0]!.rows).toEqual([{ statement: `prepare strata_append_1 as ${typed.sql}` }]);

      const insert = (k: string, v: number) => sql`insert into t (k, v) values (${k}, ${v})`.compile(db);
      await transactions.run(async (session) => {
        await session.send([insert('a', 1)]);
        await session.send([insert("b'", 2)], { commit: true });
      });
      await expect(
        transactions.run(async (session) => {
          await session.send([insert('c', 3)]);
          await session.send([insert('d', 4), insert('a', 5)], { commit: true });
        }),
      ).rejects.toMatchObject({ code: '23505' });
      expect((await database.exec('select k, v from t order by k'))[0]!.rows).toEqual([
        { k: 'a', v: 1 },
        { k: "b'", v: 2 },
      ]);
    } finally {
      await db.destroy();
      database = undefined;
    }
  });

  it('copies in from and out to /dev/blob', async () => {
    database = await openPgliteWorker('memory');
    await database.query('create table t (id int, name text)');
    await database.query(`copy t from '/dev/blob'`, [], { blob: new Blob(['1\tone\n2\ttwo\n']) });
    const out = await database.query(`copy (select * from t order by id) to '/dev/blob'`);
    expect(await out.blob?.text()).toBe('1\tone\n2\ttwo\n');
  });

  it('refuses calls once closed, with a typed error, and closing twice is harmless', async () => {
    const closing = await openPgliteWorker('memory');
    await closing.close();
    await closing.close();
    expect(closing.closed).toBe(true);
    await expect(closing.query('select 1')).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_UNAVAILABLE' });
  });

  it('an append whose transaction fails leaves nothing behind and the store keeps working', async () => {
    const opened = await openEventStore();
    try {
      const event = (id: string, originSeq: number): NewEvent =>
        ({ id, origin: 'site-a', originSeq, hlc: { wall: 1_700_000_000_000 + originSeq, logical: 0 }, type: 'ArtifactDeleted', data: { path: 'a.txt' }, meta: { actor: 'tester' } }) as NewEvent;
      await opened.store.append('repo-r', [event('e-1', 1)]);
      // The same id in another stream: refused by the store, nothing written.
      await expect(opened.store.append('repo-s', [event('e-1', 2)])).rejects.toBeInstanceOf(StrataError);
      expect((await opened.store.readAll()).events.map((recorded) => recorded.id)).toEqual(['e-1']);
      await opened.store.append('repo-r', [event('e-2', 2)]);
      expect((await opened.store.readAll()).events.map((recorded) => recorded.id)).toEqual(['e-1', 'e-2']);
    } finally {
      await opened.close();
    }
  });
});
