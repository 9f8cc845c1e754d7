import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ArtifactTreeModel,
  ArtifactTreePaths,
  compareStamps,
  type ArtifactDeployedData,
  type DomainEvent,
  type EventStamp,
  type RecordedEvent,
} from '@strata/core';
import { arbitraryArtifactEvents, arbitraryDelivery, arbitraryEventsAndDelivery, TEST_ORIGINS } from './artifact-arbitraries.ts';

// ---- given / when / then ------------------------------------------------------------------

let sequence = 0;
function at(wall: number, event: DomainEvent, options: { origin?: string; logical?: number; repo?: string; actor?: string; id?: string } = {}): RecordedEvent {
  sequence++;
  return {
    ...event,
    id: options.id ?? `e${sequence}`,
    stream: `repo-${options.repo ?? 'libs'}`,
    revision: sequence,
    position: BigInt(sequence),
    origin: options.origin ?? 'site-a',
    originSeq: sequence,
    hlc: { wall, logical: options.logical ?? 0 },
    meta: { actor: options.actor ?? 'alice' },
  } as RecordedEvent;
}

const deployed = (path: string, extra: { sha?: string; size?: number; properties?: Record<string, string[]> } = {}): DomainEvent => ({
  type: 'ArtifactDeployed',
  data: {
    path,
    sha256: (extra.sha ?? 'a').repeat(64),
    sha1: (extra.sha ?? 'a').repeat(40),
    md5: (extra.sha ?? 'a').repeat(32),
    size: extra.size ?? 10,
    mimeType: 'application/octet-stream',
    properties: extra.properties ?? {},
  },
});
const deleted = (path: string): DomainEvent => ({ type: 'ArtifactDeleted', data: { path } });
const folderDeleted = (prefix: string): DomainEvent => ({ type: 'FolderDeleted', data: { prefix } });
const propertiesSet = (path: string, properties: Record<string, string[]>): DomainEvent => ({ type: 'PropertiesSet', data: { path, properties } });
const propertiesRemoved = (path: string, keys: string[]): DomainEvent => ({ type: 'PropertiesRemoved', data: { path, keys } });

function given(...events: RecordedEvent[]) {
  const model = new ArtifactTreeModel().applyAll(events);
  return {
    when(...more: RecordedEvent[]) {
      model.applyAll(more);
      return { then: (check: (model: ArtifactTreeModel) => void) => check(model) };
    },
    then: (check: (model: ArtifactTreeModel) => void) => check(model),
  };
}

// ---- content ------------------------------------------------------------------------------

describe('artifact content', () => {
  it('a deployed file is present with its checksums, creation and modification', () => {
    given().when(at(1000, deployed('org/app/1.0/app.jar', { size: 42 }), { actor: 'bob' })).then((model) => {
      expect(model.file('libs', 'org/app/1.0/app.jar')).toMatchObject({
        sha256: 'a'.repeat(64),
        size: 42,
        createdAt: 1000,
        createdBy: 'bob',
        lastModified: 1000,
        modifiedBy: 'bob',
      });
      expect(model.file('libs', 'org/app/1.0')).toBeUndefined();
      expect(model.file('other', 'org/app/1.0/app.jar')).toBeUndefined();
    });
  });

  it('the deploy stamped last wins whatever the arrival order, and created stays with the first', () => {
    const first = at(1000, deployed('a.txt', { sha: '1' }), { actor: 'alice' });
    const second = at(2000, deployed('a.txt', { sha: '2' }), { actor: 'bob' });
    for (const order of [[first, second], [second, first]]) {
      given(...order).then((model) => {
        expect(model.file('libs', 'a.txt')).toMatchObject({
          sha1: '2'.repeat(40),
          createdAt: 1000,
          createdBy: 'alice',
          lastModified: 2000,
          modifiedBy: 'bob',
        });
      });
    }
  });

  it('equal HLC stamps are ordered by origin', () => {
    const fromA = at(1000, deployed('a.txt', { sha: '1' }), { origin: 'site-a' });
    const fromB = at(1000, deployed('a.txt', { sha: '2' }), { origin: 'site-b' });
    given(fromB, fromA).then((model) => expect(model.file('libs', 'a.txt')?.sha1).toBe('2'.repeat(40)));
  });

  it('a delete stamped after the deploy hides the file, one stamped before does not', () => {
    given(at(1000, deployed('a.txt'))).when(at(2000, deleted('a.txt'))).then((model) => {
      expect(model.file('libs', 'a.txt')).toBeUndefined();
    });
    given(at(2000, deployed('a.txt'))).when(at(1000, deleted('a.txt'))).then((model) => {
      expect(model.file('libs', 'a.txt')).toBeDefined();
    });
  });

  it('a tombstone wins a tie with a deploy of the same stamp', () => {
    given(at(1000, deployed('a.txt'), { id: 'z' })).when(at(1000, deleted('a.txt'), { id: 'a' })).then((model) => {
      expect(model.file('libs', 'a.txt')).toBeUndefined();
    });
  });

  it('a deploy stamped before a folder delete stays hidden when it arrives after it', () => {
    given(at(2000, folderDeleted('org/app')))
      .when(at(1000, deployed('org/app/1.0/app.jar')))
      .then((model) => {
        expect(model.file('libs', 'org/app/1.0/app.jar')).toBeUndefined();
        expect(model.folderExists('libs', 'org')).toBe(false);
      });
  });

  it('a deploy stamped after a folder delete re-creates the path with a new life', () => {
    given(at(1000, deployed('org/app/app.jar'), { actor: 'alice' }), at(2000, folderDeleted('org')))
      .when(at(3000, deployed('org/app/app.jar'), { actor: 'bob' }))
      .then((model) => {
        expect(model.file('libs', 'org/app/app.jar')).toMatchObject({ createdAt: 3000, createdBy: 'bob', lastModified: 3000 });
      });
  });

  it('a folder delete covers the folder and what lies below it, not siblings sharing its name prefix', () => {
    given(at(1000, deployed('a/b')), at(1000, deployed('a/b/c')), at(1000, deployed('a/bc')), at(1000, deployed('ab')))
      .when(at(2000, folderDeleted('a/b')))
      .then((model) => {
        expect(model.file('libs', 'a/b')).toBeUndefined();
        expect(model.file('libs', 'a/b/c')).toBeUndefined();
        expect(model.file('libs', 'a/bc')).toBeDefined();
        expect(model.file('libs', 'ab')).toBeDefined();
      });
  });

  it('deleting the repository empties its tree and a later deploy starts afresh', () => {
    given(at(1000, deployed('x/y.jar')), at(1000, deployed('z.jar'), { repo: 'other' }))
      .when(at(2000, { type: 'RepositoryDeleted', data: { key: 'libs' } }), at(3000, deployed('new.jar')))
      .then((model) => {
        expect(model.files('libs').map((file) => file.path)).toEqual(['new.jar']);
        expect(model.file('other', 'z.jar')).toBeDefined();
      });
  });

  it('remote cached artifacts are files that remember their remote url', () => {
    given()
      .when(at(1000, { type: 'RemoteArtifactCached', data: { ...(deployed('r.jar').data as ArtifactDeployedData), remoteUrl: 'https://up/r.jar' } }))
      .then((model) => expect(model.file('libs', 'r.jar')?.remoteUrl).toBe('https://up/r.jar'));
  });

  it('events of other streams and other types are ignored', () => {
    const model = new ArtifactTreeModel();
    expect(model.apply({ ...at(1000, deployed('a')), stream: 'system' } as RecordedEvent)).toBe(false);
    expect(model.apply(at(1000, { type: 'RepositoryCreated', data: { key: 'libs', config: {} } }))).toBe(false);
    expect(model.snapshot()).toEqual({ files: [], folderTombstones: [], properties: [] });
  });

  it('applying the same event twice changes nothing', () => {
    const events = [at(1000, deployed('a/b.jar', { properties: { k: ['v'] } })), at(2000, deleted('a/b.jar')), at(3000, folderDeleted('a'))];
    const once = new ArtifactTreeModel().applyAll(events);
    const twice = new ArtifactTreeModel().applyAll([...events, ...events.reverse()]);
    expect(twice.snapshot()).toEqual(once.snapshot());
    expect(twice.digest()).toBe(once.digest());
  });
});

// ---- properties ---------------------------------------------------------------------------

describe('properties', () => {
  it("a deploy's initial properties are visible, and a later set of a key replaces only that key", () => {
    given(at(1000, deployed('a.jar', { properties: { build: ['1'], team: ['core'] } })))
      .when(at(2000, propertiesSet('a.jar', { build: ['2', '3'] })))
      .then((model) => expect(model.properties('libs', 'a.jar')).toEqual({ build: ['2', '3'], team: ['core'] }));
  });

  it('concurrent edits of different keys both survive', () => {
    const fromA = at(2000, propertiesSet('a.jar', { qa: ['passed'] }), { origin: 'site-a' });
    const fromB = at(2000, propertiesSet('a.jar', { release: ['yes'] }), { origin: 'site-b' });
    for (const order of [[fromA, fromB], [fromB, fromA]]) {
      given(at(1000, deployed('a.jar')), ...order).then((model) =>
        expect(model.properties('libs', 'a.jar')).toEqual({ qa: ['passed'], release: ['yes'] }),
      );
    }
  });

  it('a removal is a per-key tombstone: an older set arriving later stays removed, a newer one shows', () => {
    given(at(1000, deployed('a.jar', { properties: { k: ['1'], other: ['o'] } })), at(3000, propertiesRemoved('a.jar', ['k'])))
      .when(at(2000, propertiesSet('a.jar', { k: ['2'] })))
      .then((model) => expect(model.properties('libs', 'a.jar')).toEqual({ other: ['o'] }));
    given(at(1000, deployed('a.jar')), at(3000, propertiesRemoved('a.jar', ['k'])))
      .when(at(4000, propertiesSet('a.jar', { k: ['4'] })))
      .then((model) => expect(model.properties('libs', 'a.jar')).toEqual({ k: ['4'] }));
  });

  it('deleting and re-deploying a file does not bring its old properties back', () => {
    given(at(1000, deployed('a.jar', { properties: { old: ['1'] } })), at(2000, deleted('a.jar')))
      .when(at(3000, deployed('a.jar', { properties: { fresh: ['1'] } })))
      .then((model) => expect(model.properties('libs', 'a.jar')).toEqual({ fresh: ['1'] }));
  });

  it('properties set on a folder are visible until a covering folder delete', () => {
    given(at(1000, deployed('org/app/a.jar')), at(1500, propertiesSet('org/app', { owner: ['team'] })))
      .then((model) => expect(model.properties('libs', 'org/app')).toEqual({ owner: ['team'] }));
    given(at(1000, deployed('org/app/a.jar')), at(1500, propertiesSet('org/app', { owner: ['team'] })))
      .when(at(2000, folderDeleted('org')))
      .then((model) => expect(model.properties('libs', 'org/app')).toEqual({}));
  });
});

// ---- folders and listings ----------------------------------------------------------------

describe('folders and listings', () => {
  const tree = () =>
    given(
      at(1000, deployed('org/app/1.0/app-1.0.jar', { size: 100 })),
      at(1000, deployed('org/app/1.0/app-1.0.pom', { size: 5 })),
      at(1000, deployed('org/app/maven-metadata.xml', { size: 1 })),
      at(1000, deployed('org/lib/2.0/lib.jar', { size: 7 })),
      at(1000, deployed('readme.txt', { size: 3 })),
      at(1000, deployed('gone/x.jar')),
      at(2000, deleted('gone/x.jar')),
    );

  it('folders exist only while a present file lies below them', () => {
    tree().then((model) => {
      expect(model.folderExists('libs', '')).toBe(true);
      expect(model.folderExists('libs', 'org/app')).toBe(true);
      expect(model.folderExists('libs', '/org/app/')).toBe(true);
      expect(model.folderExists('libs', 'gone')).toBe(false);
      expect(model.folderExists('libs', 'readme.txt')).toBe(false);
    });
  });

  it('children are sorted by name, a folder before a file of the same name', () => {
    tree().then((model) => {
      expect(model.children('libs', '')).toEqual([
        { name: 'org', folder: true },
        { name: 'readme.txt', folder: false },
      ]);
      expect(model.children('libs', 'org/app')).toEqual([
        { name: '1.0', folder: true },
        { name: 'maven-metadata.xml', folder: false },
      ]);
    });
    given(at(1000, deployed('a')), at(1000, deployed('a/b'))).then((model) =>
      expect(model.children('libs', '')).toEqual([
        { name: 'a', folder: true },
        { name: 'a', folder: false },
      ]),
    );
  });

  it('a shallow list holds direct files only, deep lists respect depth and listFolders', () => {
    tree().then((model) => {
      expect(model.list('libs', 'org').map((entry) => entry.relativePath)).toEqual([]);
      expect(model.list('libs', 'org', { listFolders: true }).map((entry) => entry.relativePath)).toEqual(['app', 'lib']);
      expect(model.list('libs', 'org', { deep: true }).map((entry) => entry.relativePath)).toEqual([
        'app/1.0/app-1.0.jar',
        'app/1.0/app-1.0.pom',
        'app/maven-metadata.xml',
        'lib/2.0/lib.jar',
      ]);
      expect(model.list('libs', 'org', { deep: true, depth: 2, listFolders: true }).map((entry) => [entry.relativePath, entry.folder])).toEqual([
        ['app', true],
        ['app/1.0', true],
        ['app/maven-metadata.xml', false],
        ['lib', true],
        ['lib/2.0', true],
      ]);
    });
  });

  it('stats count present files, implicit folders below the root and bytes', () => {
    tree().then((model) => expect(model.stats('libs')).toEqual({ files: 5, folders: 5, bytes: 116 }));
  });
});

// ---- properties of the merge rules ----------------------------------------------------------

/** The rules stated directly over the set of events: the oracle the model must match. */
function oracle(events: readonly RecordedEvent[]) {
  const stamp = (event: RecordedEvent): EventStamp => ({ hlc: event.hlc, origin: event.origin });
  const byVersion = (a: RecordedEvent, b: RecordedEvent) => compareStamps(stamp(a), stamp(b)) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  const repoOf = (event: RecordedEvent) => (event.type === 'RepositoryDeleted' ? event.data.key : event.stream.slice(5));
  const tombstoneOf = (repo: string, path: string): EventStamp | null => {
    let best: EventStamp | null = null;
    for (const event of events) {
      if (repoOf(event) !== repo) continue;
      const hits =
        (event.type === 'ArtifactDeleted' && event.data.path === path) ||
        (event.type === 'FolderDeleted' && ArtifactTreePaths.covers(event.data.prefix, path)) ||
        event.type === 'RepositoryDeleted';
      if (hits && (best === null || compareStamps(stamp(event), best) > 0)) best = stamp(event);
    }
    return best;
  };
  return {
    present(repo: string, path: string): string | undefined {
      const deploys = events
        .filter((event) => repoOf(event) === repo && (event.type === 'ArtifactDeployed' || event.type === 'RemoteArtifactCached') && event.data.path === path)
        .sort(byVersion);
      const winner = deploys.at(-1);
      if (winner === undefined) return undefined;
      const tombstone = tombstoneOf(repo, path);
      return tombstone === null || compareStamps(stamp(winner), tombstone) > 0 ? winner.id : undefined;
    },
    property(repo: string, path: string, key: string): readonly string[] | undefined {
      let winner: { event: RecordedEvent; values: readonly string[] | undefined } | undefined;
      for (const event of events) {
        if (repoOf(event) !== repo) continue;
        let values: readonly string[] | undefined | null = null;
        if ((event.type === 'ArtifactDeployed' || event.type === 'RemoteArtifactCached' || event.type === 'PropertiesSet') && event.data.path === path && key in event.data.properties) {
          values = event.data.properties[key];
        } else if (event.type === 'PropertiesRemoved' && event.data.path === path && event.data.keys.includes(key)) {
          values = undefined;
        }
        if (values === null) continue;
        if (winner === undefined) winner = { event, values };
        else {
          const order = compareStamps(stamp(event), stamp(winner.event));
          // a removal wins a tie of stamps; two values tie-break by id
          const wins = order > 0 || (order === 0 && (values === undefined ? winner.values !== undefined : winner.values !== undefined && event.id > winner.event.id));
          if (wins) winner = { event, values };
        }
      }
      if (winner?.values === undefined) return undefined;
      const tombstone = tombstoneOf(repo, path);
      return tombstone === null || compareStamps(stamp(winner.event), tombstone) > 0 ? winner.values : undefined;
    },
  };
}

describe('merge rule properties', () => {
  it('any delivery order of a set of events, with duplicates, gives the identical snapshot', () => {
    fc.assert(
      fc.property(
        arbitraryArtifactEvents().chain((events) => fc.tuple(arbitraryDelivery(events), arbitraryDelivery(events))),
        ([one, other]) => {
          const a = new ArtifactTreeModel().applyAll(one);
          const b = new ArtifactTreeModel().applyAll(other);
          expect(b.snapshot()).toEqual(a.snapshot());
          expect(b.digest()).toBe(a.digest());
        },
      ),
      { numRuns: 500 },
    );
  });

  it('presence and property values match the rules stated over the set of events', () => {
    const paths = ['a', 'b', 'ab', 'a/a', 'a/b', 'a/ab', 'b/a', 'a/b/a', 'ab/ab/ab', 'a/a/a'];
    fc.assert(
      fc.property(arbitraryEventsAndDelivery(), ({ events, delivery }) => {
        const model = new ArtifactTreeModel().applyAll(delivery);
        const rules = oracle(events);
        for (const repo of ['libs', 'Libs2']) {
          for (const path of paths) {
            expect(model.file(repo, path)?.version.id, `${repo}/${path}`).toBe(rules.present(repo, path));
            const visible = model.properties(repo, path);
            for (const key of ['k1', 'k2', 'k3']) {
              expect(visible[key], `${repo}/${path} ${key}`).toEqual(rules.property(repo, path, key));
            }
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('concurrent edits of different property keys both survive', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TEST_ORIGINS),
        fc.constantFrom(...TEST_ORIGINS),
        fc.integer({ min: 1001, max: 1005 }),
        fc.integer({ min: 1001, max: 1005 }),
        fc.boolean(),
        (originA, originB, wallA, wallB, swap) => {
          const deploy = at(1000, deployed('p.jar'));
          const editA = at(wallA, propertiesSet('p.jar', { left: ['A'] }), { origin: originA });
          const editB = at(wallB, propertiesSet('p.jar', { right: ['B'] }), { origin: originB });
          const model = new ArtifactTreeModel().applyAll(swap ? [editB, deploy, editA] : [editA, editB, deploy]);
          expect(model.properties('libs', 'p.jar')).toEqual({ left: ['A'], right: ['B'] });
        },
      ),
    );
  });

  it('folders are exactly the ancestors of present files', () => {
    fc.assert(
      fc.property(arbitraryArtifactEvents(), (events) => {
        const model = new ArtifactTreeModel().applyAll(events);
        for (const repo of ['libs', 'Libs2']) {
          const files = model.files(repo).map((file) => file.path);
          const folders = new Set(files.flatMap((path) => ArtifactTreePaths.coveringPrefixes(path).slice(1, -1)));
          const listed = model.list(repo, '', { deep: true, listFolders: true });
          expect(listed.filter((entry) => entry.folder).map((entry) => entry.relativePath).sort()).toEqual([...folders].sort());
          expect(listed.filter((entry) => !entry.folder).map((entry) => entry.relativePath)).toEqual(files);
          expect(model.stats(repo).folders).toBe(folders.size);
        }
      }),
      { numRuns: 200 },
    );
  });
});
