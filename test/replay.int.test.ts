/**
 * `strata replay` (issue 8) on PGlite and PostgreSQL (when DATABASE_URL is set): replayAll
 * rebuilds every projection from zero through the store's bulk scan, and with `until` (a
 * position or a time) leaves the repositories as they were at that point; replayRepository
 * does the same for one repository.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent, type RecordedEvent } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection, isEventScanner, openEventStore, replayAll, replayRepository, type OpenedEventStore } from '@strata/store';
import { freshPostgresDatabase } from './support/postgres-database.ts';

const SITE = 'site-a';
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

const projections = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
const backends: { name: string; open(): Promise<OpenedEventStore> }[] = [
  {
    name: 'pglite',
    async open() {
      const dataDir = await mkdtemp(join(tmpdir(), 'strata-replay-test-'));
      cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
      return openEventStore({ dataDir, projections: projections(), store: { siteId: SITE } });
    },
  },
];
const postgres = await freshPostgresDatabase('strata_replay');
if (postgres !== undefined) {
  cleanups.push(() => postgres.drop());
  let schemas = 0;
  backends.push({ name: 'postgres', open: () => openEventStore({ databaseUrl: postgres.url, schema: `replay_${schemas++}`, projections: projections(), store: { siteId: SITE } }) });
} else {
  console.log('replay: DATABASE_URL is not set, PostgreSQL runs are skipped (PGlite runs)');
}

let ids = 0;
function event(type: NewEvent['type'], data: Record<string, unknown>, wall: number): NewEvent {
  ids++;
  return { id: `rp-${ids}`, origin: SITE, originSeq: ids, hlc: { wall, logical: 0 }, type, data, meta: { actor: 'alice' } } as NewEvent;
}
function deploy(path: string, wall: number): NewEvent {
  return event('ArtifactDeployed', { path, sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32), size: 3, mimeType: 'text/plain', properties: {} }, wall);
}

for (const backend of backends) {
  describe(`replay on ${backend.name}`, () => {
    it('replays every projection from zero, up to a position or a time, and one repository alone', async () => {
      ids = 0;
      const opened = await backend.open();
      try {
        expect(isEventScanner(opened.store)).toBe(true);
        const recorded: RecordedEvent[] = [];
        const append = async (repo: string, events: NewEvent[]) => recorded.push(...(await opened.store.append(repositoryStream(repo), events)).events);
        await append('libs', [event('RepositoryCreated', { key: 'libs', config: { rclass: 'local', packageType: 'generic' } }, 1_000), deploy('a.txt', 1_001)]);
        await append('other', [event('RepositoryCreated', { key: 'other', config: { rclass: 'local', packageType: 'generic' } }, 1_002), deploy('x.txt', 1_003)]);
        await append('libs', [deploy('b.txt', 1_004)]);
        await append('libs', [event('ArtifactDeleted', { path: 'a.txt' }, 1_005), deploy('c.txt', 1_006)]);
        const present = async () =>
          (await sql<{ repo: string; path: string }>`select repo, path from artifacts where present order by repo, path`.execute(opened.db)).rows.map((row) => `${row.repo}:${row.path}`);
        const today = ['libs:b.txt', 'libs:c.txt', 'other:x.txt'];
        expect(await present()).toEqual(today);
        const source = { store: opened.store, db: opened.db, bulk: opened.bulk };

        // Up to the deploy of b.txt (a position): a.txt not yet deleted, c.txt not yet there.
        const atB = await replayAll(source, projections(), { until: { kind: 'position', position: recorded[4]!.position } });
        expect(atB.events).toBe(5);
        expect(await present()).toEqual(['libs:a.txt', 'libs:b.txt', 'other:x.txt']);
        // Up to an instant: the origin's stamps at or before it.
        await replayAll(source, projections(), { until: { kind: 'time', wall: 1_003 } });
        expect(await present()).toEqual(['libs:a.txt', 'other:x.txt']);
        // Everything again.
        const all = await replayAll(source, projections());
        expect(all.events).toBe(recorded.length);
        expect(await present()).toEqual(today);

        // One repository back to a point; the other untouched.
        const one = await replayRepository(source, projections(), 'libs', { until: { kind: 'position', position: recorded[1]!.position } });
        expect(one.events).toBe(2);
        expect(await present()).toEqual(['libs:a.txt', 'other:x.txt']);
      } finally {
        await opened.close();
      }
    }, 60_000);
  });
}
