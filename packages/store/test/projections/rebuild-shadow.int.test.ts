/**
 * On PostgreSQL a rebuild writes and indexes its new tables side by side in a shadow schema
 * (`<schema>__rebuild`) and swaps them in with one short transaction (rebuild-projections.ts,
 * swapThroughShadowSchema): the live tables are replaced (new relations), a leftover shadow
 * schema from a rebuild killed midway is dropped first, and a rebuild that fails before the
 * swap leaves the live tables and no shadow schema behind.
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
});
