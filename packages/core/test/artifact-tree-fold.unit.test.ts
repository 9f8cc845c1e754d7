import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ArtifactTreeFold, ArtifactTreeModel, fileView, type ArtifactTreeRowOrder, type RecordedEvent } from '@strata/core';
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

  it('keeps thousands of paths apart, the same names in two repositories included, through its path table’s growth', () => {
    const events: RecordedEvent[] = [];
    for (let index = 0; index < 6000; index++) {
      const stream = index % 2 === 0 ? 'repo-libs' : 'repo-Libs2';
      const path = `org/g${index % 97}/a${index % 13}/${Math.floor(index / 2)}.jar`;
      const data = { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: index, mimeType: 'text/plain', properties: { n: [String(index)] } };
      events.push(at(1000 + index, `d${index}`, { type: 'ArtifactDeployed', data } as never, stream));
      // A second deploy of every third path, and deletes of others: lookups of known paths.
      if (index % 3 === 0) events.push(at(9000 + index, `r${index}`, { type: 'ArtifactDeployed', data: { ...data, size: -index } } as never, stream));
      if (index % 5 === 0) events.push(at(20_000 + index, `x${index}`, { type: 'ArtifactDeleted', data: { path } } as never, stream));
    }
    events.push(at(30_000, 'f', { type: 'FolderDeleted', data: { prefix: 'org/g5' } } as never, 'repo-Libs2'));
    const fold = new ArtifactTreeFold().applyAll([...events].reverse());
    expect(fold.snapshot()).toEqual(new ArtifactTreeModel().applyAll(events).snapshot());
    expect(fold.snapshot().files).toHaveLength(6000);
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

  it('finds the covering folder tombstone of each row, neighbours sharing a prefix or not, and again after a tombstone changes', () => {
    const deploy = (wall: number, id: string, path: string) =>
      at(wall, id, { type: 'ArtifactDeployed', data: { path, sha256: 'c'.repeat(64), sha1: 'c'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'text/plain', properties: {} } } as never);
    const folderDeleted = (wall: number, id: string, prefix: string) => at(wall, id, { type: 'FolderDeleted', data: { prefix } } as never);
    // In the fold's own order: 'org/aa/…' then 'org/aab/…' share the tombstone's 6 code units,
    // not the 7th; then two files of one folder; then one under no tombstone.
    const events = [deploy(1, 'd1', 'org/aa/x.jar'), deploy(2, 'd2', 'org/aab/x.jar'), deploy(3, 'd3', 'org/aa/y/z.jar'), deploy(4, 'd4', 'org/aa/y/w.jar'), deploy(5, 'd5', 'org/b/x.jar'), folderDeleted(10, 'f1', 'org/aa')];
    const fold = new ArtifactTreeFold().applyAll(events);
    const rows = (order: ArtifactTreeRowOrder) => {
      const row = fold.fileRows(order);
      const seen: string[] = [];
      while (row.next()) seen.push(`${row.path} ${row.present}`);
      return seen.sort();
    };
    for (const order of ['any', 'key'] as const) {
      expect(rows(order)).toEqual(['org/aa/x.jar false', 'org/aa/y/w.jar false', 'org/aa/y/z.jar false', 'org/aab/x.jar true', 'org/b/x.jar true']);
    }
    const later = [folderDeleted(11, 'f2', 'org/aab'), folderDeleted(12, 'f3', 'org/b/x.jar')];
    fold.applyAll(later);
    for (const order of ['any', 'key'] as const) {
      expect(rows(order)).toEqual(['org/aa/x.jar false', 'org/aa/y/w.jar false', 'org/aa/y/z.jar false', 'org/aab/x.jar false', 'org/b/x.jar false']);
    }
    expect(fold.snapshot()).toEqual(new ArtifactTreeModel().applyAll([...events, ...later]).snapshot());
  });

  it('keeps ids beyond ASCII as they came, and orders versions that tie on their stamps by them as strings', () => {
    // Stamps tie (wall 1, site-a): the higher id wins the content, the lower stays first; 'é' and
    // the surrogate pair sort above every ASCII id.
    const ids = ['e1', 'é2', '\u{1F600}3', 'e4'];
    const events = ids.map((id) => at(1, id, { type: 'ArtifactDeployed', data: { path: 'a/x.jar', sha256: 'a'.repeat(64), sha1: 'a'.repeat(40), md5: 'a'.repeat(32), size: 1, mimeType: 'text/plain', properties: { k: [id] } } } as never));
    for (const delivery of [events, [...events].reverse()]) {
      const fold = new ArtifactTreeFold().applyAll(delivery);
      expect(fold.snapshot()).toEqual(new ArtifactTreeModel().applyAll(events).snapshot());
      const row = fold.fileRows();
      expect(row.next()).toBe(true);
      expect([row.contentId, row.contentIdLength < 0, row.firstId, row.firstIdLength >= 0]).toEqual(['\u{1F600}3', true, 'e1', true]);
      const property = fold.propertyRows();
      expect(property.next()).toBe(true);
      expect([property.id, property.values]).toEqual(['\u{1F600}3', ['\u{1F600}3']]);
    }
  });

  it('keeps paths beyond ASCII apart from their ASCII look-alikes, under folder tombstones and in its rows', () => {
    const deploy = (wall: number, id: string, path: string) =>
      at(wall, id, { type: 'ArtifactDeployed', data: { path, sha256: 'b'.repeat(64), sha1: 'b'.repeat(40), md5: 'b'.repeat(32), size: wall, mimeType: 'text/plain', properties: { k: [path] } } } as never);
    const events = [
      deploy(1, 'd1', 'ä/x.jar'),
      deploy(2, 'd2', 'a/x.jar'),
      // 'ä' (U+00E4) and 'ä' as 'a' plus a combining mark, and U+0161 whose low byte is 'a' (0x61).
      deploy(3, 'd3', 'a\u0308/x.jar'),
      deploy(4, 'd4', '\u0161/x.jar'),
      at(5, 'f5', { type: 'FolderDeleted', data: { prefix: 'ä' } } as never),
      at(5, 'f6', { type: 'FolderDeleted', data: { prefix: '\u0161' } } as never),
      deploy(6, 'd7', '\u0161/y.jar'),
    ];
    for (const delivery of [events, [...events].reverse()]) {
      const fold = new ArtifactTreeFold().applyAll(delivery);
      expect(fold.snapshot()).toEqual(new ArtifactTreeModel().applyAll(events).snapshot());
      const rows: [string, boolean, boolean][] = [];
      for (const row = fold.fileRows(); row.next(); ) rows.push([row.path, row.present, row.pathLength >= 0]);
      expect(rows).toEqual([
        ['a/x.jar', true, true],
        ['a\u0308/x.jar', true, false],
        ['ä/x.jar', false, false],
        ['\u0161/x.jar', false, false],
        ['\u0161/y.jar', true, false],
      ]);
      const properties: string[] = [];
      for (const row = fold.propertyRows(); row.next(); ) properties.push(row.path);
      expect(properties).toEqual(['a/x.jar', 'a\u0308/x.jar', '\u0161/y.jar']);
    }
  });

  it('gives, through its row cursors, the rows of its sorted entries (key order, and the same rows in its own order)', () => {
    fc.assert(
      fc.property(arbitraryEventsAndDelivery(), ({ delivery }) => {
        const fold = new ArtifactTreeFold().applyAll(delivery);
        const expectedFiles: unknown[] = [];
        const expectedProperties: unknown[] = [];
        for (const repo of fold.repositories()) {
          const entries = fold.sortedEntries(repo);
          for (const { path, register, tombstone } of entries.files) {
            const view = fileView(register, tombstone);
            const content = register.content;
            expectedFiles.push({
              repo,
              path,
              present: view.present,
              content:
                content === null
                  ? null
                  : [content.version.hlc.wall, content.version.hlc.logical, content.version.origin, content.version.id, content.actor, content.size, content.mimeType, content.remoteUrl, content.sha256, content.sha1, content.md5],
              first: register.first === null ? null : [register.first.version.hlc.wall, register.first.version.hlc.logical, register.first.version.origin, register.first.version.id, register.first.actor],
              created: view.created === null ? null : [view.created.version.hlc.wall, view.created.actor],
              tombstone: tombstone === null ? null : [tombstone.hlc.wall, tombstone.hlc.logical, tombstone.origin],
            });
          }
          for (const { path, key, register } of entries.properties) {
            expectedProperties.push(
              register.kind === 'value'
                ? [repo, path, key, false, register.version.hlc.wall, register.version.hlc.logical, register.version.origin, register.version.id, register.values]
                : [repo, path, key, true, register.stamp.hlc.wall, register.stamp.hlc.logical, register.stamp.origin, null, []],
            );
          }
        }
        const hex = (bytes: Uint8Array, start: number, length: number) => Buffer.from(bytes.subarray(start, start + length)).toString('hex');
        const read = (order: ArtifactTreeRowOrder) => {
          const files: unknown[] = [];
          for (const row = fold.fileRows(order); row.next(); ) {
            const odd = row.oddChecksums;
            // The ids' bytes, where the fold keeps them as bytes, are the ids.
            if (row.hasContent && row.contentIdLength >= 0) expect(Buffer.from(row.idBytes.subarray(row.contentIdStart, row.contentIdStart + row.contentIdLength)).toString('latin1')).toBe(row.contentId);
            if (row.hasContent && row.firstIdLength >= 0) expect(Buffer.from(row.idBytes.subarray(row.firstIdStart, row.firstIdStart + row.firstIdLength)).toString('latin1')).toBe(row.firstId);
            files.push({
              repo: row.repo,
              path: row.path,
              present: row.present,
              content: row.hasContent
                ? [
                    row.contentWall, row.contentLogical, row.contentOrigin, row.contentId, row.contentActor, row.size, row.mimeType, row.remoteUrl,
                    odd?.sha256 ?? hex(row.checksumBytes.sha256, row.checksumIndex * 32, 32),
                    odd?.sha1 ?? hex(row.checksumBytes.sha1, row.checksumIndex * 20, 20),
                    odd?.md5 ?? hex(row.checksumBytes.md5, row.checksumIndex * 16, 16),
                  ]
                : null,
              first: row.hasContent ? [row.firstWall, row.firstLogical, row.firstOrigin, row.firstId, row.firstActor] : null,
              created: row.present ? [row.createdAt, row.createdBy] : null,
              tombstone: row.hasTombstone ? [row.tombstoneWall, row.tombstoneLogical, row.tombstoneOrigin] : null,
            });
          }
          const properties: unknown[] = [];
          for (const row = fold.propertyRows(order); row.next(); ) {
            if (!row.removed && row.idLength >= 0) expect(Buffer.from(row.idBytes.subarray(row.idStart, row.idStart + row.idLength)).toString('latin1')).toBe(row.id);
            properties.push([row.repo, row.path, row.key, row.removed, row.wall, row.logical, row.origin, row.id, row.values]);
          }
          return { files, properties };
        };
        expect(read('key')).toEqual({ files: expectedFiles, properties: expectedProperties });
        const any = read('any');
        const byKey = (row: unknown) => JSON.stringify(Array.isArray(row) ? row.slice(0, 3) : [(row as { repo: string }).repo, (row as { path: string }).path]);
        const sorted = (rows: unknown[]) => [...rows].sort((a, b) => (byKey(a) < byKey(b) ? -1 : byKey(a) > byKey(b) ? 1 : 0));
        expect(sorted(any.files)).toEqual(sorted(expectedFiles));
        expect(sorted(any.properties)).toEqual(sorted(expectedProperties));
      }),
      { numRuns: 500 },
    );
  });
});
