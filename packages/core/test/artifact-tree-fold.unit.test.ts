import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ArtifactTreeFold, ArtifactTreeModel, type RecordedEvent } from '@strata/core';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryEventsAndDelivery } from './artifact-arbitraries.ts';

const at = (wall: number, id: string, event: Pick<RecordedEvent, 'type' | 'data'>, stream = 'repo-libs'): RecordedEvent =>
  ({ ...event, id, stream, revision: 0, position: 0n, origin: 'site-a', originSeq: 1, hlc: { wall, logical: 0 }, meta: { actor: 'alice' } }) as RecordedEvent;

describe('the compact artifact tree fold (rebuilds and replays)', () => {
  it('gives the reference model’s snapshot for any delivery of a set of events, with duplicates', () => {
    fc.assert(
      fc.property(arbitraryEventsAndDelivery(), ({ events, delivery }) => {
        const reference = new ArtifactTreeModel().applyAll(events);
        const fold = new ArtifactTreeFold().applyAll(delivery);
        expect(fold.snapshot()).toEqual(reference.snapshot());
      }),
      { numRuns: 500 },
    );
  });

  it('agrees with the reference model where stamps tie all the time (one repository, two paths, two keys)', () => {
    const dense = fc
      .array(
        fc.record({
          wall: fc.integer({ min: 1, max: 2 }),
          origin: fc.constantFrom('site-a', 'site-b'),
          path: fc.constantFrom('a/x', 'a'),
          kind: fc.constantFrom('deploy', 'set', 'remove', 'delete', 'folder'),
          key: fc.constantFrom('k1', 'k2'),
        }),
        { maxLength: 25 },
      )
      .map((items) =>
        items.map(({ wall, origin, path, kind, key }, index): RecordedEvent => {
          const data =
            kind === 'deploy'
              ? { type: 'ArtifactDeployed', data: { path, sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32), size: index, mimeType: 'text/plain', properties: { [key]: [String(index)] } } }
              : kind === 'set'
                ? { type: 'PropertiesSet', data: { path, properties: { [key]: [String(index)] } } }
                : kind === 'remove'
                  ? { type: 'PropertiesRemoved', data: { path, keys: [key] } }
                  : kind === 'delete'
                    ? { type: 'ArtifactDeleted', data: { path } }
                    : { type: 'FolderDeleted', data: { prefix: 'a' } };
          return { ...at(wall, `e${String(index).padStart(2, '0')}`, data as never), origin };
        }),
      );
    fc.assert(
      fc.property(
        dense.chain((events) => arbitraryDelivery(events).map((delivery) => ({ events, delivery }))),
        ({ events, delivery }) => {
          expect(new ArtifactTreeFold().applyAll(delivery).snapshot()).toEqual(new ArtifactTreeModel().applyAll(events).snapshot());
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('any two deliveries of one event set fold to the same digest', () => {
    fc.assert(
      fc.property(
        arbitraryArtifactEvents().chain((events) => fc.tuple(arbitraryDelivery(events), arbitraryDelivery(events))),
        ([one, other]) => {
          expect(new ArtifactTreeFold().applyAll(other).digest()).toBe(new ArtifactTreeFold().applyAll(one).digest());
        },
      ),
      { numRuns: 300 },
    );
  });

  it('lists entries sorted by path and key, with properties hidden by a later folder delete dropped', () => {
    const deploy = (wall: number, id: string, path: string, properties: Record<string, string[]> = {}) =>
      at(wall, id, { type: 'ArtifactDeployed', data: { path, sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32), size: 1, mimeType: 'text/plain', properties } } as never);
    const fold = new ArtifactTreeFold().applyAll([
      deploy(3, 'e3', 'b/x.jar', { z: ['1'], a: ['2'] }),
      deploy(1, 'e1', 'a/y.jar', { k: ['v'] }),
      at(2, 'e2', { type: 'FolderDeleted', data: { prefix: 'a' } } as never),
      at(4, 'e4', { type: 'PropertiesSet', data: { path: 'a', properties: { folder: ['yes'] } } } as never),
      at(5, 'e5', { type: 'ArtifactDeleted', data: { path: 'c.jar' } } as never, 'system'),
    ]);
    expect(fold.repositories()).toEqual(['libs']);
    const entries = fold.sortedEntries('libs');
    expect([...entries.files].map((entry) => [entry.path, entry.tombstone?.hlc.wall ?? null])).toEqual([
      ['a/y.jar', 2],
      ['b/x.jar', null],
    ]);
    expect([...entries.properties].map((entry) => `${entry.path} ${entry.key}`)).toEqual(['a folder', 'b/x.jar a', 'b/x.jar z']);
    expect([...entries.folderTombstones].map((entry) => entry.prefix)).toEqual(['a']);
  });
});
