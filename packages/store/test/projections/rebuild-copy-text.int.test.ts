/**
 * A rebuild writes its rows with COPY text built byte by byte (bulk-copy.ts): paths and
 * property values with non-ASCII characters, tabs, newlines, backslashes and long values must
 * come back exactly as the inline projection wrote them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NewEvent } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection, readArtifactTreeSnapshot, rebuildProjections, type OpenedEventStore } from '@strata/store';
import { PROJECTION_BACKENDS } from './projection-databases.ts';

let sequence = 0;
function event(type: string, data: Record<string, unknown>): NewEvent {
  sequence++;
  return { id: `copy-text-${sequence}`, origin: 'site-u', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'zoë\\admin' }, type, data } as NewEvent;
}
const checksums = { sha256: 'c'.repeat(64), sha1: 'c'.repeat(40), md5: 'c'.repeat(32) };

for (const backend of PROJECTION_BACKENDS) {
  describe(`rebuild COPY text on ${backend.name}`, () => {
    let opened: OpenedEventStore;
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    beforeAll(async () => {
      opened = await backend.open(projections);
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('keeps unusual characters of paths, actors and property values through a rebuild', async () => {
      const values = ['tab\there', 'line\nbreak', 'back\\slash', 'cr\rhere', 'ünïcödé ✓ 𝄞', 'x'.repeat(4000), ''];
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
  });
}
