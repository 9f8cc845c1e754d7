import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildPackument,
  checkPackageName,
  checkTag,
  checkVersion,
  distTagKey,
  manifestFromValues,
  manifestValues,
  tarballPath,
  verifyTarball,
} from '../src/formats/npm/npm-model.ts';

describe('npm model', () => {
  it('a manifest survives its property encoding, in any value order, whatever its characters', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ unit: 'grapheme' }), fc.jsonValue({ maxDepth: 3 })), fc.string({ unit: 'binary', maxLength: 9000 }), (extra, text) => {
        const manifest = { ...extra, text };
        const values = manifestValues(manifest);
        for (const value of values) {
          expect(value.length).toBeLessThanOrEqual(4000);
          expect(/[^\x00-\x7f]/.test(value)).toBe(false);
        }
        const shuffled = [...values].reverse();
        expect(manifestFromValues(shuffled)).toEqual(JSON.parse(JSON.stringify(manifest)));
      }),
      { numRuns: 200 },
    );
  });

  it('accepts registry names, versions and tags and refuses path tricks', () => {
    for (const name of ['lodash', '@scope/pkg', 'a-b.c_d~e']) expect(() => checkPackageName(name)).not.toThrow();
    for (const name of ['', '.hidden', '_under', 'UPPER', '@scope/../x', '../x', '@scope', 'a/b', 'a b', 'x'.repeat(215)]) {
      expect(() => checkPackageName(name), name).toThrow();
    }
    for (const version of ['1.0.0', '2.0.0-beta.1']) expect(() => checkVersion(version)).not.toThrow();
    for (const version of ['1.0.0+build.5', 'v1.0.0', '1.0', '1.0.0/../../x', '../1.0.0', '']) expect(() => checkVersion(version), version).toThrow();
    for (const tag of ['latest', 'next', 'beta-2']) expect(() => checkTag(tag)).not.toThrow();
    for (const tag of ['1.0.0', '^1.0.0', '../x', '']) expect(() => checkTag(tag), tag).toThrow();
    expect(tarballPath('@scope/pkg', '1.2.3')).toBe('@scope/pkg/-/pkg-1.2.3.tgz');
  });

  it('verifies gzip, shasum and integrity', () => {
    const bytes = gzipSync(Buffer.from('content'));
    const integrity = `sha512-${createHash('sha512').update(bytes).digest('base64')}`;
    const shasum = createHash('sha1').update(bytes).digest('hex');
    expect(verifyTarball(bytes, { integrity, shasum }, 'x').integrity).toBe(integrity);
    expect(() => verifyTarball(bytes, { integrity: `sha512-${createHash('sha512').update('other').digest('base64')}` }, 'x')).toThrow(/integrity/);
    expect(() => verifyTarball(bytes, { shasum: '0'.repeat(40) }, 'x')).toThrow(/shasum/);
    expect(() => verifyTarball(Buffer.from('not gzip at all, really'), { shasum }, 'x')).toThrow(/gzip/);
    expect(() => verifyTarball(bytes, {}, 'x')).toThrow(/neither/);
  });

  it('builds the packument from stored versions and tags, whatever order they come in', () => {
    const stored = ['1.0.0', '1.1.0', '2.0.0-rc.1'].map((version, index) => ({
      version,
      manifest: { name: 'p', version, dependencies: { a: '^1' }, dist: { integrity: `sha512-${index}` } },
      sha1: String(index).repeat(40),
      created: 1_700_000_000_000 + index * 1000,
    }));
    const tags = { [distTagKey('next')]: ['2.0.0-rc.1'], [distTagKey('gone')]: ['9.9.9'] };
    const one = buildPackument('p', stored, tags, 'http://r');
    const two = buildPackument('p', [...stored].reverse(), tags, 'http://r');
    expect(JSON.stringify(one.full)).toBe(JSON.stringify(two.full));
    expect(one.distTags).toEqual({ latest: '1.1.0', next: '2.0.0-rc.1' });
    expect(Object.keys(one.abbreviated.versions as object)).toEqual(['1.0.0', '1.1.0', '2.0.0-rc.1']);
    expect((one.full.versions as Record<string, { dist: { tarball: string; shasum: string } }>)['1.1.0']!.dist).toEqual({
      integrity: 'sha512-1',
      shasum: '1'.repeat(40),
      tarball: 'http://r/p/-/p-1.1.0.tgz',
    });
  });
});
