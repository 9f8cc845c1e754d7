/**
 * A rebuild in one thread hands the artifact tree's fold the scan's ArtifactDeployed rows as
 * bytes (ProjectionRebuild.rowSink, the store's scanAllInto): the fold reads their data
 * without a decoded event, and any row not of the plain shape is decoded as before. The
 * tables equal those of a rebuild that decodes every row; a row that does not decode fails
 * the rebuild with the codec's error and leaves the tables as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { Packr } from 'msgpackr';
import type { NewEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  readArtifactTreeSnapshot,
  readRepositorySnapshot,
  rebuildProjections,
  type OpenedEventStore,
  type ProjectionRebuild,
} from '@strata/store';
import { PROJECTION_BACKENDS } from './projection-databases.ts';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });

let sequence = 0;
function event(type: string, data: Record<string, unknown>, overrides: Partial<NewEvent> = {}): NewEvent {
  sequence++;
  return { id: `bytes-${sequence}`, origin: 'site-s', originSeq: sequence, hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 }, meta: { actor: 'admin' }, type, data, ...overrides } as NewEvent;
}
const checksums = (digit: string) => ({ sha256: digit.repeat(64), sha1: digit.repeat(40), md5: digit.repeat(32) });
const deploy = (path: string, digit: string, size: number, properties: Record<string, string[]> = {}, overrides: Partial<NewEvent> = {}) =>
  event('ArtifactDeployed', { path, ...checksums(digit), size, mimeType: 'application/java-archive', properties }, overrides);

/** The artifact tree without the row sink: every row decoded, as before it. */
class DecodedArtifactTree extends ArtifactTreeProjection {
  override startRebuild(): ProjectionRebuild {
    const { add, write } = super.startRebuild();
    return { add, write };
  }
}

for (const backend of PROJECTION_BACKENDS) {
  describe(`a rebuild reading deploy rows from their bytes (${backend.name})`, () => {
    let opened: OpenedEventStore;
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    const decoded = [new DecodedArtifactTree(), new RepositoryConfigProjection()];
    const state = async () => ({ tree: await readArtifactTreeSnapshot(opened.db), repositories: await readRepositorySnapshot(opened.db) });
    /** The store, telling whether the rebuild scanned through a row sink. */
    const spied = (sinks: number[]) => {
      const store = opened.store as OpenedEventStore['store'] & { scanAllInto: NonNullable<OpenedEventStore['store']['scanAllInto']> };
      return {
        readAll: store.readAll.bind(store),
        scanAll: store.scanAll.bind(store),
        scanAllInto: ((sink, options) => (sinks.push(1), store.scanAllInto(sink, options))) as typeof store.scanAllInto,
      };
    };

    beforeAll(async () => {
      opened = await backend.open();
      for (const key of ['libs', 'other']) await opened.store.append(`repo-${key}`, [event('RepositoryCreated', { key, config: { rclass: 'local', packageType: 'maven' } })]);
      await opened.store.append('repo-libs', [
        deploy('org/a/1.0/a.jar', 'a', 0, { 'build.number': ['1'] }),
        deploy('org/a/1.0/a.jar', 'b', 70_000, { 'build.number': ['2'], qa: ['v'.repeat(300)] }),
        // Stamps tie with the one before: the higher id wins the content.
        deploy('org/a/1.0/a.jar', 'c', 3_000_000_000, {}, { hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 } }),
        deploy('ä/x.jar', 'd', 5, { k: ['ü'] }),
        deploy('org/b/2.0/b.pom', 'e', 12, {}, { meta: {} }),
        event('PropertiesSet', { path: 'org/b/2.0/b.pom', properties: { qa: ['passed'] } }),
        event('PropertiesRemoved', { path: 'org/a/1.0/a.jar', keys: ['qa'] }),
        deploy('org/c/3.0/c.jar', 'f', 1),
        event('ArtifactDeleted', { path: 'org/c/3.0/c.jar' }),
        deploy('org/d/4.0/d.jar', '1', 1),
        event('FolderDeleted', { prefix: 'org/d' }),
        deploy('org/d/4.0/e.jar', '2', 2),
      ]);
      await opened.store.append('repo-other', [deploy('org/a/1.0/a.jar', '9', 9, { 'build.number': ['9'] }), event('RepositoryDeleted', { key: 'other' }), deploy('late/x.jar', '8', 8)]);
      // Data the store would not accept at append (uppercase hex, an extra field), written in
      // place: those rows are decoded and folded as before.
      await sql`update events set data = ${Buffer.from(packr.pack({ path: 'org/odd/x.jar', ...checksums('A'), size: 3, mimeType: 'text/plain', properties: {}, extra: true }))}
        where id = ${`bytes-${sequence}`}`.execute(opened.db);
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('writes the tables a rebuild of decoded events writes, deploys beyond ASCII and odd rows among them', async () => {
      const sinks: number[] = [];
      const decodedResult = await rebuildProjections({ store: spied(sinks), db: opened.db, bulk: opened.bulk }, decoded);
      expect(sinks).toEqual([]);
      const expected = await state();
      expect(expected.tree.files.map((file) => file.path)).toEqual(expect.arrayContaining(['ä/x.jar', 'org/odd/x.jar', 'org/a/1.0/a.jar']));
      // Scribble over the tables so that a rebuild which wrote nothing would show.
      await sql`delete from artifacts where path = 'ä/x.jar'`.execute(opened.db);
      const result = await rebuildProjections({ store: spied(sinks), db: opened.db, bulk: opened.bulk }, projections);
      expect(sinks).toEqual([1]);
      expect(await state()).toEqual(expected);
      expect([result.events, result.checkpoint]).toEqual([decodedResult.events, decodedResult.checkpoint]);
    });

    it('fails with the codec error on a deploy row that does not decode, and leaves the tables as they were', async () => {
      await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections);
      const before = await state();
      const victim = (await sql<{ id: string; data: Buffer }>`select id, data from events where type = 'ArtifactDeployed' order by position limit 1`.execute(opened.db)).rows[0]!;
      try {
        // A map of seven entries cut after its first key.
        await sql`update events set data = ${Buffer.from([0x87, 0xa4, 0x70, 0x61, 0x74, 0x68])} where id = ${victim.id}`.execute(opened.db);
        await expect(rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections)).rejects.toMatchObject({ code: 'STRATA_ERR_CODEC_MALFORMED' });
        expect(await state()).toEqual(before);
      } finally {
        await sql`update events set data = ${victim.data} where id = ${victim.id}`.execute(opened.db);
      }
    });
  });
}
