import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, pgliteKysely, pgliteTemplatePath, type StoreDatabase } from '@strata/store';
import { existsSync } from 'node:fs';

describe('PGlite dialect', () => {
  let db: Kysely<StoreDatabase>;
  beforeAll(async () => {
    db = pgliteKysely(await openPglite('memory'));
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('returns int8 as strings and bytea as bytes, as pg does', async () => {
    const row = await sql<{ big: string; bytes: Uint8Array }>`select 9007199254740993::bigint as big, '\\x00ff'::bytea as bytes`.execute(db);
    expect(row.rows[0]!.big).toBe('9007199254740993');
    expect([...row.rows[0]!.bytes]).toEqual([0, 255]);
  });

  it('serialises a transaction against concurrent queries on the one connection', async () => {
    await sql`create temporary table counter (value int)`.execute(db);
    await sql`insert into counter values (0)`.execute(db);
    const order: string[] = [];
    const transaction = db.transaction().execute(async (tx) => {
      order.push('tx start');
      await sql`update counter set value = value + 1`.execute(tx);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await sql`update counter set value = value + 1`.execute(tx);
      order.push('tx end');
    });
    const outside = sql<{ value: number }>`select value from counter`.execute(db).then((result) => {
      order.push(`read ${result.rows[0]!.value}`);
    });
    await Promise.all([transaction, outside]);
    // The read waits for the transaction and never sees its middle state.
    expect(order).toEqual(['tx start', 'tx end', 'read 2']);
  });

  it('rolls back a failed transaction and the connection stays usable', async () => {
    await sql`create temporary table items (name text)`.execute(db);
    await expect(
      db.transaction().execute(async (tx) => {
        await sql`insert into items values ('lost')`.execute(tx);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    await expect(sql`select nonsense from nowhere`.execute(db)).rejects.toThrow();
    const rows = await sql<{ count: string }>`select count(*) as count from items`.execute(db);
    expect(rows.rows[0]!.count).toBe('0');
  });

  it('runs migrations: the events and streams tables exist', async () => {
    const tables = await db.introspection.getTables();
    expect(tables.map((table) => table.name)).toEqual(expect.arrayContaining(['events', 'streams']));
  });
});

describe('openPglite', () => {
  let directory: string;
  beforeAll(async () => {
    directory = await mkdtemp(join(tmpdir(), 'strata-pglite-open-'));
  });
  afterAll(async () => {
    await rm(directory, { recursive: true, force: true });
  });

  it('creates databases from a cached template and reopens a data directory with its data', async () => {
    await (await openPglite('memory')).close();
    expect(existsSync(pgliteTemplatePath())).toBe(true);
    // How much faster a template copy opens than a fresh initdb is a benchmark matter, not a test's.
    const pglite = await openPglite(join(directory, 'pg'));
    await pglite.query(`insert into streams values ('repo-kept', 4)`);
    await pglite.close();
    const reopened = await openPglite(join(directory, 'pg'));
    const rows = await reopened.query<{ revision: number }>(`select revision from streams where stream = 'repo-kept'`);
    expect(rows.rows).toEqual([{ revision: 4 }]);
    await reopened.close();
  });

  it('runs every database with its small memory settings (shared_buffers 16MB, not 128MB)', async () => {
    const show = async (pglite: Awaited<ReturnType<typeof openPglite>>) => {
      const result = await pglite.query<{ shared_buffers: string }>('show shared_buffers');
      await pglite.close();
      return result.rows[0]?.shared_buffers;
    };
    expect(await show(await openPglite('memory'))).toBe('16MB');
    expect(await show(await openPglite(join(directory, 'settings')))).toBe('16MB');
    expect(await show(await openPglite(join(directory, 'settings')))).toBe('16MB');
  });

  it('builds the template directory a new data directory is copied from, and leaves no temporary copies', async () => {
    const templateDir = join(directory, 'templates');
    const pglite = await openPglite(join(directory, 'data', 'pg'), { templateDir });
    await pglite.query(`insert into streams values ('repo-new', 1)`);
    await pglite.close();
    const second = await openPglite(join(directory, 'data', 'second'), { templateDir });
    // A copy of the template: the first database's rows are not in it.
    expect((await second.query(`select stream from streams where stream = 'repo-new'`)).rows).toEqual([]);
    await second.close();
    const templates = await readdir(templateDir);
    expect(templates.filter((name) => name.endsWith('.tmp'))).toEqual([]);
    expect(templates.some((name) => name.endsWith('.dir'))).toBe(true);
    expect((await readdir(join(directory, 'data'))).sort()).toEqual(['pg', 'second']);
  });
});
