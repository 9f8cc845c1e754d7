import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import pg from 'pg';
import { ArtifactTreeModel, type RecordedEvent } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection, readArtifactTreeSnapshot, rebuildProjections, type OpenedEventStore } from '@strata/store';
import { arbitraryArtifactEvents } from '../../../core/test/artifact-arbitraries.ts';
import { newEvent, postgresBackend } from './projection-databases.ts';

/** Two disjoint, non-empty lists of artifact events (ids made unique per list). */
function sampleEvents(): { before: RecordedEvent[]; after: RecordedEvent[] } {
  const lists = fc.sample(arbitraryArtifactEvents({ maxLength: 30, repositoryDeletes: false }), { seed: 20261123, numRuns: 50 }).filter((events) => events.length >= 5);
  const tag = (events: RecordedEvent[], prefix: string) => events.map((event) => ({ ...event, id: `${prefix}-${event.id}` }) as RecordedEvent);
  return { before: tag(lists[0]!, 'before'), after: tag(lists[1]!, 'after') };
}

const databaseUrl = process.env.DATABASE_URL;
if (databaseUrl === undefined || databaseUrl === '') {
  console.log('rebuild-horizon.int.test.ts: skipped — it needs a second PostgreSQL session holding a transaction open (set DATABASE_URL); PGlite has one connection');
}

describe.skipIf(databaseUrl === undefined || databaseUrl === '')('rebuilding projections while another transaction holds the PostgreSQL horizon back', () => {
  let opened: OpenedEventStore;
  const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];

  beforeAll(async () => {
    opened = await postgresBackend(databaseUrl!).open(projections);
  });
  afterAll(async () => {
    await opened?.close();
  });

  it('waits for that transaction and keeps the events committed behind it', async () => {
    const { before, after } = sampleEvents();
    for (const event of before) await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });

    // An open transaction with an id: every event committed after it is above readAll's horizon.
    const blocker = new pg.Client({ connectionString: databaseUrl });
    await blocker.connect();
    try {
      await blocker.query('begin');
      await blocker.query('select pg_current_xact_id()');
      for (const event of after) await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });

      let finished = false;
      const rebuilt = rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections).finally(() => {
        finished = true;
      });
      rebuilt.catch(() => undefined);
      // Not a timing assertion: the rebuild may not end at all while the blocker is open.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(finished).toBe(false);

      await blocker.query('commit');
      const result = await rebuilt;
      expect(result.events).toBe(before.length + after.length);
    } finally {
      await blocker.end();
    }
    const model = new ArtifactTreeModel().applyAll([...before, ...after]).snapshot();
    expect(await readArtifactTreeSnapshot(opened.db)).toEqual(model);
  });
});
