import { afterEach, describe, expect, it } from 'vitest';
import { StrataError, type NewEvent } from '@strata/core';
import { int8AsText, openEventStore, openPgliteWorker, PgliteDatabaseError, type PgliteWorkerDatabase } from '@strata/store';

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

  it('carries PostgreSQL errors back with their SQLSTATE, and a failed batch stops at its error', async () => {
    database = await openPgliteWorker('memory');
    await database.query('create table t (id int primary key)');
    await database.query('insert into t values (1)');
    const error = await database.query('insert into t values (1)').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(PgliteDatabaseError);
    expect(error).toMatchObject({ code: '23505', constraint: 't_pkey', table: 't' });

    const batch = database.batch([
      { sql: 'begin', params: [] },
      { sql: 'insert into t values ($1)', params: [2] },
      { sql: 'insert into t values ($1)', params: [1] },
      { sql: 'insert into t values ($1)', params: [3] },
    ]);
    await expect(batch).rejects.toMatchObject({ code: '23505' });
    await database.query('rollback');
    expect((await database.query<{ id: number }>('select id from t order by id')).rows).toEqual([{ id: 1 }]);
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
