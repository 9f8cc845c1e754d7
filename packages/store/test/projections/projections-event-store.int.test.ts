import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ArtifactTreeModel, RepositoryConfigModel, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  RepositoryConfigProjection,
  readArtifactTreeSnapshot,
  readProjectionCheckpoint,
  readRepositorySnapshot,
  rebuildProjections,
  type OpenedEventStore,
} from '@strata/store';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryRepositoryEvents } from '../../../core/test/artifact-arbitraries.ts';
import { newEvent, PROJECTION_BACKENDS } from './projection-databases.ts';

const RUNS = Number(process.env.PROJECTION_PROPERTY_RUNS ?? 20);

for (const backend of PROJECTION_BACKENDS) {
  describe(`projections inline in the SQL event store on ${backend.name}`, () => {
    let opened: OpenedEventStore;
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];

    beforeAll(async () => {
      opened = await backend.open(projections);
    });
    afterAll(async () => {
      await opened?.close();
    });

    it('concurrent appends of any delivery (with redelivered duplicates) project the model state, and a rebuild from zero equals it', async () => {
      let run = 0;
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(arbitraryArtifactEvents({ maxLength: 40 }), arbitraryRepositoryEvents({ maxLength: 8 })).chain(([tree, config]) => {
            const events = [...tree, ...config];
            return fc.record({ events: fc.constant(events), delivery: arbitraryDelivery(events, 6), writers: fc.integer({ min: 1, max: 16 }) });
          }),
          async ({ events, delivery, writers }) => {
            // Each run uses its own repositories, so runs never see each other's events.
            run++;
            const rename = (event: RecordedEvent): RecordedEvent => {
              const key = `${event.stream.slice(5)}-${run}`;
              const data = 'key' in event.data ? { ...event.data, key } : event.data;
              return { ...event, id: `${run}-${event.id}`, stream: `repo-${key}`, data } as RecordedEvent;
            };
            const renamed = events.map(rename);
            const renamedDelivery = delivery.map(rename);
            let next = 0;
            await Promise.all(
              Array.from({ length: writers }, async () => {
                for (;;) {
                  const event = renamedDelivery[next++];
                  if (event === undefined) return;
                  await opened.store.append(event.stream, [newEvent(event)], { expectedRevision: 'any' });
                }
              }),
            );
            // The tables hold every run so far: compare against the model of all of them.
            allEvents.push(...renamed);
            const tree = new ArtifactTreeModel().applyAll(allEvents).snapshot();
            const config = new RepositoryConfigModel().applyAll(allEvents).snapshot();
            expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
            expect(await readRepositorySnapshot(opened.db)).toEqual(config);
            if (run % 5 === 1) {
              // COPY path here; artifact-tree-projection.int.test.ts covers the INSERT path.
              const result = await rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, projections, { readBatchEventsMax: 50 });
              expect(result.events).toBe(new Set(allEvents.map((event) => event.id)).size);
              expect(await readArtifactTreeSnapshot(opened.db)).toEqual(tree);
              expect(await readRepositorySnapshot(opened.db)).toEqual(config);
              expect(await readProjectionCheckpoint(opened.db, 'artifact-tree')).toEqual(result.checkpoint);
            }
          },
        ),
        { numRuns: RUNS },
      );
    });
    const allEvents: RecordedEvent[] = [];
  });
}
