import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RepositoryConfigModel, type DomainEvent, type RecordedEvent } from '@strata/core';
import { arbitraryDelivery, arbitraryRepositoryEvents, TEST_ORIGINS } from './artifact-arbitraries.ts';

let sequence = 0;
function at(wall: number, event: DomainEvent, options: { origin?: string; id?: string } = {}): RecordedEvent {
  sequence++;
  const key = (event.data as { key: string }).key;
  return {
    ...event,
    id: options.id ?? `c${sequence}`,
    stream: `repo-${key}`,
    revision: sequence,
    position: BigInt(sequence),
    origin: options.origin ?? 'site-a',
    originSeq: sequence,
    hlc: { wall, logical: 0 },
    meta: { actor: 'admin' },
  } as RecordedEvent;
}
const created = (key: string, config: Record<string, unknown>): DomainEvent => ({ type: 'RepositoryCreated', data: { key, config } });
const changed = (key: string, patch: Record<string, unknown>): DomainEvent => ({ type: 'RepositoryConfigChanged', data: { key, patch } });
const deleted = (key: string): DomainEvent => ({ type: 'RepositoryDeleted', data: { key } });

function given(...events: RecordedEvent[]) {
  const model = new RepositoryConfigModel().applyAll(events);
  return {
    when: (...more: RecordedEvent[]) => ({ then: (check: (model: RepositoryConfigModel) => void) => check(model.applyAll(more)) }),
  };
}

describe('repository configuration', () => {
  it('a created repository shows its whole configuration', () => {
    given()
      .when(at(1000, created('Libs-Local', { rclass: 'local', packageType: 'maven' })))
      .then((model) => {
        expect(model.get('Libs-Local')).toEqual({
          key: 'Libs-Local',
          keyIdentity: 'libs-local',
          config: { packageType: 'maven', rclass: 'local' },
          createdAt: 1000,
          lastModified: 1000,
        });
        expect(model.getByIdentity('libs-local')?.key).toBe('Libs-Local');
        expect(model.get('libs-local')).toBeUndefined();
      });
  });

  it('concurrent changes of different fields both survive, the same field goes to the later stamp', () => {
    const base = at(1000, created('libs', { rclass: 'local', description: 'd0', includesPattern: '**/*' }));
    const fromA = at(2000, changed('libs', { description: 'from A' }), { origin: 'site-a' });
    const fromB = at(2000, changed('libs', { includesPattern: 'org/**', description: 'from B' }), { origin: 'site-b' });
    for (const order of [[base, fromA, fromB], [fromB, fromA, base]]) {
      given(...order).when().then((model) =>
        expect(model.get('libs')?.config).toEqual({ rclass: 'local', description: 'from B', includesPattern: 'org/**' }),
      );
    }
  });

  it('a delete hides the repository, and fields stamped before it do not survive a later re-create', () => {
    given(at(1000, created('libs', { rclass: 'local', description: 'old' })), at(1500, changed('libs', { notes: 'n' })))
      .when(at(2000, deleted('libs')))
      .then((model) => {
        expect(model.get('libs')).toBeUndefined();
        expect(model.list()).toEqual([]);
        model.apply(at(3000, created('libs', { rclass: 'remote' })));
        expect(model.get('libs')?.config).toEqual({ rclass: 'remote' });
      });
  });

  it('a create stamped before the delete arriving after it stays deleted', () => {
    given(at(2000, deleted('libs')))
      .when(at(1000, created('libs', { rclass: 'local' })))
      .then((model) => expect(model.get('libs')).toBeUndefined());
  });

  it('lists existing repositories by key, filtered by rclass', () => {
    given(at(1000, created('b', { rclass: 'local' })), at(1000, created('a', { rclass: 'remote' })), at(1000, created('c', { rclass: 'local' })))
      .when()
      .then((model) => {
        expect(model.list().map((view) => view.key)).toEqual(['a', 'b', 'c']);
        expect(model.list({ rclass: 'local' }).map((view) => view.key)).toEqual(['b', 'c']);
      });
  });

  it('any delivery order of a set of configuration events, with duplicates, gives the identical snapshot', () => {
    fc.assert(
      fc.property(
        arbitraryRepositoryEvents().chain((events) => fc.tuple(arbitraryDelivery(events), arbitraryDelivery(events))),
        ([one, other]) => {
          const a = new RepositoryConfigModel().applyAll(one);
          const b = new RepositoryConfigModel().applyAll(other);
          expect(b.snapshot()).toEqual(a.snapshot());
          expect(b.list()).toEqual(a.list());
          expect(b.digest()).toBe(a.digest());
        },
      ),
      { numRuns: 500 },
    );
  });

  it('concurrent edits of different config fields both survive', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TEST_ORIGINS),
        fc.constantFrom(...TEST_ORIGINS),
        fc.integer({ min: 1001, max: 1005 }),
        fc.integer({ min: 1001, max: 1005 }),
        fc.boolean(),
        (originA, originB, wallA, wallB, swap) => {
          const create = at(1000, created('libs', { rclass: 'local' }));
          const editA = at(wallA, changed('libs', { includesPattern: 'a/**' }), { origin: originA });
          const editB = at(wallB, changed('libs', { excludesPattern: 'b/**' }), { origin: originB });
          const model = new RepositoryConfigModel().applyAll(swap ? [editB, create, editA] : [editA, editB, create]);
          expect(model.get('libs')?.config).toEqual({ excludesPattern: 'b/**', includesPattern: 'a/**', rclass: 'local' });
        },
      ),
    );
  });
});
