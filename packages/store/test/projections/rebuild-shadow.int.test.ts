/**
 * On PostgreSQL a rebuild writes and indexes its new tables side by side in a shadow schema
 * (`<schema>__rebuild`) and swaps them in with one short transaction (rebuild-projections.ts,
 * swapThroughShadowSchema): the live tables are replaced (new relations), a leftover shadow
 * schema from a rebuild killed midway is dropped first, and a rebuild that fails before the
 * swap leaves the live tables and no shadow schema behind. The artifact tree writes its
 * tables one transaction each (ProjectionRebuild.writeTables): a table's indexes are built
 * while the next table is written, with any pool size.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import { sql } from 'kysely';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  readArtifactTreeSnapshot,
  readRepositorySnapshot,
  rebuildProjections,
  type OpenedEventStore,
  type ProjectionRebuild,
} from '@strata/store';
import pg from 'pg';
import { openEventStore, type ShadowTableWriter } from '@strata/store';
import { postgresBackend } from './projection-databases.ts';

let sequence = 0;
function event(type: string, data: Record<string, unknown>): NewEvent {
  sequence++;
  return { id: `shadow-${sequence}`, origin: 'site-s', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'admin' }, type, data } as NewEvent;
}
const checksums = { sha256: 'd'.repeat(64), sha1: 'd'.repeat(40), md5: 'd'.repeat(32) };

/** The artifact tree projection, its rebuild failing once its rows are written. */
class FailingArtifactTreeProjection extends ArtifactTreeProjection {
  override startRebuild(): ProjectionRebuild {
    const rebuild = super.startRebuild();
    return {
      add: (events) => rebuild.add(events),
      async write(db, onRows, copy, options) {
        await rebuild.write(db, onRows, copy, options);
        throw new Error('the write failed after its rows');
      },
    };
  }
}

/**
 * The artifact tree projection whose rebuild, table by table, calls `beforeTable` before each
 * table after the first (the shadow schema's name and the tables written so far), or fails
 * in the `failAt`-th table's transaction once that table's rows are in.
 */
class TableByTableArtifactTreeProjection extends ArtifactTreeProjection {
  constructor(private readonly hooks: { beforeTable?: (table: string, written: readonly string[]) => Promise<void>; failAt?: number }) {
    super();
  }
  override startRebuild(): ProjectionRebuild {
    const rebuild = super.startRebuild();
    const { hooks } = this;
    return {
      add: (events) => rebuild.add(events),
      write: (db, onRows, copy, options) => rebuild.write(db, onRows, copy, options),
      async writeTables(writeTable: ShadowTableWriter, onRows) {
        const written: string[] = [];
        return rebuild.writeTables!(async (table, work) => {
          if (written.length > 0) await hooks.beforeTable?.(table, written);
          const rows = await writeTable(table, async (tx, copy) => {
            const rows = await work(tx, copy);
            if (written.length + 1 === hooks.failAt) throw new Error(`the write of ${table} failed after its rows`);
            return rows;
          });
          written.push(table);
          return rows;
        }, onRows);
      },
    };
  }
}

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') {
  console.log('rebuild-shadow.int.test.ts: skipped — the shadow-schema swap is PostgreSQL only (set DATABASE_URL)');
}

describe.skipIf(databaseUrl === undefined || databaseUrl === '')('rebuilding through a shadow schema (PostgreSQL)', () => {
  let opened: OpenedEventStore;
  const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
  const relation = async (table: string) => (await sql<{ oid: string }>`select ${table}::regclass::oid::text as oid`.execute(opened.db)).rows[0]!.oid;
  const shadowSchemas = async () =>
    (await sql<{ name: string }>`select nspname as name from pg_namespace where nspname = current_schema() || '__rebuild'`.execute(opened.db)).rows.map((row) => row.name);

  beforeAll(async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
    await opened.store.append('repo-libs', [
      event('ArtifactDeployed', { path: 'org/a/1/a.jar', ...checksums, size: 1, mimeType: 'text/plain', properties: { k: ['v'] } }),
      event('ArtifactDeployed', { path: 'org/a/2/a.jar', ...checksums, size: 2, mimeType: 'text/plain', properties: {} }),
      event('FolderDeleted', { prefix: 'org/a/1' }),
    ]);
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('swaps new tables in, after dropping a leftover shadow schema, and leaves none', async () => {
    const tree = await readArtifactTreeSnapshot(opened.db);
    const repositories = await readRepositorySnapshot(opened.db);
    const before = { artifacts: await relation('artifacts'), properties: await relation('artifact_properties') };
    // What a rebuild killed midway leaves: the shadow schema with a half-written table.
    const schema = (await sql<{ name: string }>`select current_schema() as name`.execute(opened.db)).rows[0]!.name;
    await sql`create schema ${sql.id(`${schema}__rebuild`)}`.execute(opened.db);
    await sql`create table ${sql.id(`${schema}__rebuild`, 'artifacts')} (junk int)`.execute(opened.db);

    const result = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections);
    expect(result.events).toBe(3);
    expect(await relation('artifacts')).not.toBe(before.artifacts);
    expect(await relation('artifact_properties')).not.toBe(before.properties);
    expect(await shadowSchemas()).toEqual([]);
    expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
    expect(await readRepositorySnapshot(opened.db)).toEqual(repositories);
    // Appends after the swap reach the new tables through the inline projection.
    await opened.store.append('repo-libs', [event('ArtifactDeployed', { path: 'org/b.jar', ...checksums, size: 3, mimeType: 'text/plain', properties: {} })]);
    expect((await readArtifactTreeSnapshot(opened.db)).files.map((file) => file.path)).toContain('org/b.jar');
  });

  it('leaves the live tables and no shadow schema when the write fails before the swap', async () => {
    const tree = await readArtifactTreeSnapshot(opened.db);
    const artifacts = await relation('artifacts');
    await expect(
      rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new FailingArtifactTreeProjection(), new RepositoryConfigProjection()]),
    ).rejects.toThrow('the write failed after its rows');
    expect(await relation('artifacts')).toBe(artifacts);
    expect(await shadowSchemas()).toEqual([]);
    expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
  });

  it('writes the artifact tree table by table and builds the artifacts indexes before the next table is written', async () => {
    const tree = await readArtifactTreeSnapshot(opened.db);
    const order: string[] = [];
    const projection = new TableByTableArtifactTreeProjection({
      async beforeTable(table, written) {
        order.push(table);
        if (written.length !== 1) return;
        // The artifacts table is committed: one of its index builds holds its lock or is
        // done. (Without the early builds nothing builds until every table is written, and
        // this waits until the test's timeout.)
        for (;;) {
          const seen = await sql<{ seen: boolean }>`
            select exists (select 1 from pg_locks l join pg_class c on c.oid = l.relation
                where c.relname = 'artifacts' and c.relnamespace = (current_schema() || '__rebuild')::regnamespace and l.mode = 'ShareLock' and l.granted)
              or exists (select 1 from pg_indexes where schemaname = current_schema() || '__rebuild' and tablename = 'artifacts') as seen`.execute(opened.db);
          if (seen.rows[0]!.seen) return;
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      },
    });
    await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [projection, new RepositoryConfigProjection()]);
    expect(order).toEqual(['folder_tombstones', 'artifact_properties']);
    expect(await shadowSchemas()).toEqual([]);
    expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
  });

  it('leaves the live tables and no shadow schema when a later table fails while the first one is indexed', async () => {
    const tree = await readArtifactTreeSnapshot(opened.db);
    const artifacts = await relation('artifacts');
    for (const failAt of [2, 3]) {
      await expect(
        rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new TableByTableArtifactTreeProjection({ failAt }), new RepositoryConfigProjection()]),
      ).rejects.toThrow('failed after its rows');
      expect(await relation('artifacts')).toBe(artifacts);
      expect(await shadowSchemas()).toEqual([]);
      expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
    }
  });

  it('rebuilds through the shadow schema on a pool of two connections (one besides the swap)', async () => {
    const schema = `proj_test_pool2_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
    const small = await openEventStore({ databaseUrl: databaseUrl!, schema, projections, poolConnectionsMax: 2 });
    try {
      expect(small.bulk?.concurrentTransactionsMax).toBe(1);
      await small.store.append('repo-libs', [
        event('ArtifactDeployed', { path: 'org/p/1/p.jar', ...checksums, size: 1, mimeType: 'text/plain', properties: { k: ['v'] } }),
        event('ArtifactDeployed', { path: 'org/p/2/p.jar', ...checksums, size: 2, mimeType: 'text/plain', properties: {} }),
        event('FolderDeleted', { prefix: 'org/p/1' }),
      ]);
      const tree = await readArtifactTreeSnapshot(small.db);
      const repositories = await readRepositorySnapshot(small.db);
      const before = (await sql<{ oid: string }>`select 'artifacts'::regclass::oid::text as oid`.execute(small.db)).rows[0]!.oid;
      await rebuildProjections({ store: small.store, db: small.db, bulk: small.bulk }, projections);
      // New relations: the shadow swap ran (not the one-transaction swap).
      expect((await sql<{ oid: string }>`select 'artifacts'::regclass::oid::text as oid`.execute(small.db)).rows[0]!.oid).not.toBe(before);
      expect(await readArtifactTreeSnapshot(small.db)).toEqual(tree);
      expect(await readRepositorySnapshot(small.db)).toEqual(repositories);
    } finally {
      await small.close();
      const cleanup = new pg.Client({ connectionString: databaseUrl! });
      await cleanup.connect();
      await cleanup.query(`drop schema if exists ${schema} cascade`);
      await cleanup.end();
    }
  });
});
