import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CompiledQuery, sql } from 'kysely';
import { ArtifactTreeModel, RepositoryConfigModel, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  ArtifactTreeQueries,
  RepositoryConfigProjection,
  RepositoryQueries,
  START_CHECKPOINT,
  readArtifactTreeSnapshot,
  readProjectionCheckpoint,
  readRepositorySnapshot,
  rebuildProjections,
  type Checkpoint,
  type EventStore,
  type OpenedEventStore,
  type ReadAllOptions,
  type ReadAllResult,
  type SqlProjection,
} from '@strata/store';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryRepositoryEvents, TEST_REPOS } from '../../../core/test/artifact-arbitraries.ts';
import { PROJECTION_BACKENDS } from './projection-databases.ts';

const RUNS = Number(process.env.PROJECTION_PROPERTY_RUNS ?? 25);

/** Splits a delivery into append batches of the given sizes (the rest in one last batch). */
function batches<T>(items: readonly T[], sizes: readonly number[]): T[][] {
  const result: T[][] = [];
  let index = 0;
  for (const size of sizes) {
    if (index >= items.length) break;
    result.push(items.slice(index, index + size));
    index += size;
  }
  if (index < items.length) result.push(items.slice(index));
  return result;
}

/** readAll over an array, the slice of EventStore that rebuildProjections reads. */
function arrayEventSource(events: readonly RecordedEvent[]): Pick<EventStore, 'readAll'> {
  const stored = events.map((event, index) => ({ ...event, position: BigInt(index) }));
  return {
    async readAll(options: ReadAllOptions = {}): Promise<ReadAllResult> {
      const after = options.after ?? START_CHECKPOINT;
      const from = Number(after.position) + 1;
      const slice = stored.slice(from, from + (options.maxCount ?? 1000));
      const last = slice.at(-1);
      const checkpoint: Checkpoint = last === undefined ? after : { transactionId: 0n, position: last.position };
      return { events: slice, checkpoint };
    },
  };
}

const treePaths = ['', 'a', 'b', 'ab', 'a/a', 'a/b', 'a/ab', 'b/a', 'b/b', 'ab/a', 'a/b/a', 'ab/ab/ab', 'a/a/a', 'zz'];

for (const backend of PROJECTION_BACKENDS) {
  describe(`SQL projections on ${backend.name}`, () => {
    let database: OpenedEventStore;
    const tree = new ArtifactTreeProjection();
    const config = new RepositoryConfigProjection();
    const projections: SqlProjection[] = [tree, config];

    beforeAll(async () => {
      database = await backend.open();
    });
    afterAll(async () => {
      await database?.close();
    });

    async function reset() {
      await database.db.transaction().execute(async (tx) => {
        for (const projection of projections) await projection.truncate(tx);
        await sql`truncate projection_checkpoints`.execute(tx);
      });
    }

    async function project(delivery: readonly RecordedEvent[], sizes: readonly number[]) {
      for (const batch of batches(delivery, sizes)) {
        await database.db.transaction().execute(async (tx) => {
          for (const projection of projections) await projection.apply(tx, batch);
        });
      }
    }

    it('a folder delete stamped between the first and the winning deploy, arriving last, moves created to the winning deploy', async () => {
      await reset();
      const event = (id: string, wall: number, actor: string, data: RecordedEvent['data'], type: RecordedEvent['type']) =>
        ({ id, type, data, stream: 'repo-libs', revision: 0, position: 0n, origin: 'site-a', originSeq: 1, hlc: { wall, logical: 0 }, meta: { actor } }) as RecordedEvent;
      const deploy = (path: string) => ({ path, sha256: 's', sha1: 's', md5: 'm', size: 3, mimeType: 'text/plain', properties: { k: ['v'] } });
      const first = event('e1', 1000, 'alice', deploy('org/a.txt'), 'ArtifactDeployed');
      const second = event('e2', 3000, 'bob', deploy('org/a.txt'), 'ArtifactDeployed');
      const hidden = event('e3', 1500, 'carol', deploy('org/b.txt'), 'ArtifactDeployed');
      const folderDelete = event('e4', 2000, 'dave', { prefix: 'org' }, 'FolderDeleted');
      await project([first, second, hidden, folderDelete], [1, 1, 1, 1]);
      const queries = new ArtifactTreeQueries(database.db);
      expect(await queries.getFile('libs', 'org/a.txt')).toMatchObject({ createdAt: 3000, createdBy: 'bob', lastModified: 3000, modifiedBy: 'bob' });
      expect(await queries.getFile('libs', 'org/b.txt')).toBeUndefined();
      expect(await queries.getProperties('libs', 'org/b.txt')).toEqual({});
      expect(await queries.getProperties('libs', 'org/a.txt')).toEqual({ k: ['v'] });
      expect(await readArtifactTreeSnapshot(database.db)).toEqual(new ArtifactTreeModel().applyAll([first, second, hidden, folderDelete]).snapshot());
    });

    it('rows the load did not return go in by plain inserts, rows it returned by upserts, and both give the model snapshot', async () => {
      await reset();
      const event = (id: string, wall: number, data: RecordedEvent['data'], type: RecordedEvent['type']) =>
        ({ id, type, data, stream: 'repo-libs', revision: 0, position: 0n, origin: 'site-a', originSeq: 1, hlc: { wall, logical: 0 }, meta: { actor: 'alice' } }) as RecordedEvent;
      const deploy = (path: string) => ({ path, sha256: 's', sha1: 's', md5: 'm', size: 3, mimeType: 'text/plain', properties: { k: ['v'] } });
      const texts = (projection: ArtifactTreeProjection, events: readonly RecordedEvent[], loaded: readonly { kind: string; row: unknown }[]) => {
        const plan = projection.planInline(events)!;
        return plan.apply(events, loaded).map((statement) => (statement as { compile(db: unknown): { sql: string } }).compile(database.db).sql);
      };
      const load = async (events: readonly RecordedEvent[]) => {
        const statement = tree.planInline(events)!.load as { compile(db: unknown): { sql: string; parameters: readonly unknown[] } };
        const { sql: text, parameters } = statement.compile(database.db);
        return (await database.db.executeQuery<{ kind: string; row: unknown }>(CompiledQuery.raw(text, [...parameters]))).rows;
      };
      const first = [event('e1', 1000, deploy('org/a.txt'), 'ArtifactDeployed'), event('e2', 1001, { prefix: 'old' }, 'FolderDeleted')];
      const fresh = texts(tree, first, await load(first));
      expect(fresh.join('\n')).not.toMatch(/on conflict/);
      expect(fresh.join('\n')).toMatch(/insert into artifacts/);
      expect(fresh.join('\n')).toMatch(/insert into artifact_properties/);
      expect(fresh.join('\n')).toMatch(/insert into folder_tombstones/);
      // Without the repositories' locks a row could appear between the load and the write: upserts.
      expect(texts(new ArtifactTreeProjection({ lockRepositories: false }), first, []).join('\n')).toMatch(/on conflict \(repo, path\)/);
      await project(first, [2]);
      const second = [event('e3', 2000, deploy('org/a.txt'), 'ArtifactDeployed'), event('e4', 2001, deploy('org/b.txt'), 'ArtifactDeployed'), event('e5', 2002, { prefix: 'old' }, 'FolderDeleted')];
      const loaded = await load(second);
      expect(loaded.map((row) => row.kind).sort()).toEqual(['a', 'f', 'p']);
      const again = texts(tree, second, loaded).join('\n');
      expect(again).toMatch(/on conflict \(repo, path\) do update/);
      expect(again).toMatch(/on conflict \(repo, path, key\) do update/);
      expect(again).toMatch(/on conflict \(repo, prefix\) do update/);
      await project(second, [3]);
      expect(await readArtifactTreeSnapshot(database.db)).toEqual(new ArtifactTreeModel().applyAll([...first, ...second]).snapshot());
    });

    it('any delivery of a set of tree events, in any batches, gives the model snapshot', async () => {
      await fc.assert(
        fc.asyncProperty(
          arbitraryArtifactEvents({ maxLength: 40 }).chain((events) =>
            fc.record({ events: fc.constant(events), delivery: arbitraryDelivery(events), sizes: fc.array(fc.integer({ min: 1, max: 6 }), { maxLength: 20 }) }),
          ),
          async ({ events, delivery, sizes }) => {
            await reset();
            await project(delivery, sizes);
            const expected = new ArtifactTreeModel().applyAll(events).snapshot();
            expect(await readArtifactTreeSnapshot(database.db)).toEqual(expected);
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('the read queries answer as the model does', async () => {
      const queries = new ArtifactTreeQueries(database.db);
      await fc.assert(
        fc.asyncProperty(arbitraryArtifactEvents({ maxLength: 40 }), async (events) => {
          await reset();
          await project(events, [3, 1, 7, 2]);
          const model = new ArtifactTreeModel().applyAll(events);
          for (const repo of TEST_REPOS) {
            expect(await queries.countRepository(repo)).toEqual(model.stats(repo));
            for (const path of treePaths) {
              expect(await queries.getFile(repo, path), `file ${repo}/${path}`).toEqual(model.file(repo, path));
              expect(await queries.getProperties(repo, path), `properties ${repo}/${path}`).toEqual(model.properties(repo, path));
              expect(await queries.folderExists(repo, path), `folder ${repo}/${path}`).toBe(model.folderExists(repo, path));
              const folder = await queries.getFolder(repo, path);
              expect(folder?.children, `children ${repo}/${path}`).toEqual(model.folderExists(repo, path) ? model.children(repo, path) : undefined);
              for (const options of [{}, { listFolders: true }, { deep: true }, { deep: true, listFolders: true }, { deep: true, depth: 2, listFolders: true }, { deep: true, depth: 1 }]) {
                expect(await queries.listFiles(repo, path, options), `list ${repo}/${path} ${JSON.stringify(options)}`).toEqual(model.list(repo, path, options));
              }
            }
          }
        }),
        { numRuns: Math.max(5, Math.floor(RUNS / 3)) },
      );
    });

    it('any delivery of a set of configuration events gives the model snapshot and views', async () => {
      const queries = new RepositoryQueries(database.db);
      await fc.assert(
        fc.asyncProperty(
          arbitraryRepositoryEvents().chain((events) =>
            fc.record({ events: fc.constant(events), delivery: arbitraryDelivery(events), sizes: fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 10 }) }),
          ),
          async ({ events, delivery, sizes }) => {
            await reset();
            await project(delivery, sizes);
            const model = new RepositoryConfigModel().applyAll(events);
            expect(await readRepositorySnapshot(database.db)).toEqual(model.snapshot());
            expect(await queries.list()).toEqual(model.list());
            expect(await queries.list({ rclass: 'local' })).toEqual(model.list({ rclass: 'local' }));
            for (const key of TEST_REPOS) {
              expect(await queries.get(key)).toEqual(model.get(key));
              expect(await queries.getByIdentity(key.toLowerCase())).toEqual(model.getByIdentity(key.toLowerCase()));
            }
          },
        ),
        { numRuns: RUNS },
      );
    });

    it('rebuilding from zero equals the incrementally maintained state', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(arbitraryArtifactEvents({ maxLength: 40 }), arbitraryRepositoryEvents({ maxLength: 10 })).chain(([treeEvents, configEvents]) => {
            const events = [...treeEvents, ...configEvents.map((event) => ({ ...event, id: `x-${event.id}` }))];
            return fc.record({ events: fc.constant(events), delivery: arbitraryDelivery(events, 0) });
          }),
          async ({ events, delivery }) => {
            await reset();
            await project(delivery, [1, 2, 3, 5, 8]);
            const incremental = { tree: await readArtifactTreeSnapshot(database.db), config: await readRepositorySnapshot(database.db) };
            // Scribble over the tables so that a rebuild which forgot to truncate would show.
            await project([...delivery].reverse().slice(0, 3), [1]);
            const result = await rebuildProjections({ store: arrayEventSource(delivery), db: database.db }, projections, { readBatchEventsMax: 7 });
            expect(result.events).toBe(delivery.length);
            expect({ tree: await readArtifactTreeSnapshot(database.db), config: await readRepositorySnapshot(database.db) }).toEqual(incremental);
            if (delivery.length > 0) {
              expect(await readProjectionCheckpoint(database.db, tree.name)).toEqual({ transactionId: 0n, position: BigInt(delivery.length - 1) });
            }
          },
        ),
        { numRuns: Math.max(5, Math.floor(RUNS / 2)) },
      );
    });
  });
}
