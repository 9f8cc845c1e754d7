/**
 * A rebuild writes its rows with binary COPY built field by field (binary-copy.ts) into
 * tables whose keys and indexes it drops and creates again afterwards: paths and property
 * values with non-ASCII characters, tabs, newlines, backslashes and long values must come
 * back exactly as the inline projection wrote them, and the tables must end with the same
 * keys and indexes they had.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import { sql } from 'kysely';
import { ArtifactTreeProjection, RepositoryConfigProjection, readArtifactTreeSnapshot, readRepositorySnapshot, rebuildProjections, type OpenedEventStore } from '@strata/store';
import { PROJECTION_BACKENDS } from './projection-databases.ts';

let sequence = 0;
function event(type: string, data: Record<string, unknown>): NewEvent {
  sequence++;
  return { id: `copy-text-${sequence}`, origin: 'site-u', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'zoë\\admin' }, type, data } as NewEvent;
}
const checksums = { sha256: 'c'.repeat(64), sha1: 'c'.repeat(40), md5: 'c'.repeat(32) };

for (const backend of PROJECTION_BACKENDS) {
  describe(`rebuild COPY on ${backend.name}`, () => {
    let opened: OpenedEventStore;
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    beforeAll(async () => {
      opened = await backend.open(projections);
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('keeps unusual characters of paths, actors and property values through a rebuild', async () => {
      // Quotes of both kinds and JSON text inside a value too (a manifest is one): the inline write-back sends the values as one jsonb array.
      const values = ['tab\there', 'line\nbreak', 'back\\slash', 'cr\rhere', 'ünïcödé ✓ 𝄞', 'x'.repeat(4000), '', `it's "quoted", {a,b}`, JSON.stringify({ name: 'p', 'say "hi"': ['a\\b', "o'k"] })];
      await opened.store.append('repo-libs', [
        event('ArtifactDeployed', { path: 'org/ünï/𝄞 file (1).jar', ...checksums, size: 3, mimeType: 'application/x-ü', properties: { 'kéy 1': values } }),
        event('PropertiesSet', { path: 'org/ünï', properties: { folder: ['a\\b\nc'] } }),
        event('ArtifactDeployed', { path: 'plain.jar', ...checksums, size: 4, mimeType: 'text/plain', properties: {} }),
      ]);
      const inline = await readArtifactTreeSnapshot(opened.db);
      expect(inline.properties.find((property) => property.key === 'kéy 1')?.values).toEqual(values);
      await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections);
      expect(await readArtifactTreeSnapshot(opened.db)).toEqual(inline);
    });

    it('leaves every key, index and constraint of the rebuilt tables as the migrations made them', async () => {
      const schema = async () =>
        (
          await sql<{ name: string; definition: string }>`
            select indexname as name, indexdef as definition from pg_indexes
            where schemaname = current_schema() and tablename in ('artifacts', 'folder_tombstones', 'artifact_properties', 'repositories')
            union all
            select conname, pg_get_constraintdef(c.oid) from pg_constraint c join pg_class t on t.oid = c.conrelid
            where t.relnamespace = current_schema()::regnamespace and t.relname in ('artifacts', 'folder_tombstones', 'artifact_properties', 'repositories')
            order by 1, 2`.execute(opened.db)
        ).rows;
      const before = await schema();
      expect(before.map((row) => row.name)).toEqual(
        expect.arrayContaining(['artifacts_pkey', 'artifacts_present_parent', 'artifacts_sha256', 'artifacts_sha256_absent', 'artifact_properties_pkey', 'folder_tombstones_pkey', 'repositories_pkey', 'repositories_key_identity']),
      );
      await opened.store.append('repo-libs', [
        event('ArtifactDeployed', { path: 'org/a/1/a.jar', ...checksums, size: 1, mimeType: 'text/plain', properties: { k: ['v'] } }),
        event('ArtifactDeployed', { path: 'org/a/2/a.jar', ...checksums, size: 2, mimeType: 'text/plain', properties: {} }),
        event('FolderDeleted', { prefix: 'org/a/1' }),
        event('ArtifactDeleted', { path: 'org/b.jar' }),
        event('PropertiesRemoved', { path: 'org/a/2/a.jar', keys: ['gone'] }),
      ]);
      const tree = await readArtifactTreeSnapshot(opened.db);
      const repositories = await readRepositorySnapshot(opened.db);
      await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections);
      expect(await schema()).toEqual(before);
      expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
      expect(await readRepositorySnapshot(opened.db)).toEqual(repositories);
      // The keys hold again: a duplicate is refused.
      await expect(sql`insert into folder_tombstones (repo, prefix, wall, logical, origin) select repo, prefix, wall, logical, origin from folder_tombstones`.execute(opened.db)).rejects.toThrow();
    });
  });
}
