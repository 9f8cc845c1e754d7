import { isStrataError } from '@strata/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson, validateDistributionStart, validateManifest } from '../src/distribution/release-bundle-model.ts';
import { artifactoryBaseOf } from '../src/distribution/edge-policy.ts';

const jsonValue = fc.jsonValue({ maxDepth: 4 });

function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((entry, index) => shuffleKeys(entry, seed + index));
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value);
  const rotated = entries.length === 0 ? entries : [...entries.slice(seed % entries.length), ...entries.slice(0, seed % entries.length)].reverse();
  return Object.fromEntries(rotated.map(([key, entry], index) => [key, shuffleKeys(entry, seed + index)]));
}

const manifest = {
  formatVersion: 1,
  name: 'app',
  version: '1.0',
  description: 'first',
  created: 1_700_000_000_000,
  createdBy: 'admin',
  sourceSite: 'site-a',
  signingKey: { alias: 'strata-site-a', fingerprint: `SHA256:${'A'.repeat(43)}=` },
  repositories: [{ key: 'libs', packageType: 'Generic' }],
  artifacts: [
    { repo: 'libs', path: 'a/b.bin', sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 3, mimeType: 'application/octet-stream', properties: { k: ['v'] } },
  ],
};

describe('canonical JSON of a release bundle manifest', () => {
  it('is the same text whatever order the keys were built in', () => {
    fc.assert(fc.property(jsonValue, fc.nat(20), (value, seed) => canonicalJson(shuffleKeys(value, seed)) === canonicalJson(value)));
  });

  it('parses back to the value plain JSON encodes (-0 is written as 0, as JSON does)', () => {
    fc.assert(
      fc.property(jsonValue, (value) => {
        expect(JSON.parse(canonicalJson(value))).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('refuses what JSON cannot hold exactly', () => {
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(/finite/);
    expect(() => canonicalJson({ a: () => 1 })).toThrow(/function/);
  });
});

describe('manifest validation at the trust boundary', () => {
  it('keeps a valid manifest as it is', () => {
    expect(validateManifest(manifest)).toEqual(manifest);
  });

  it('refuses anything else with STRATA_ERR_BUNDLE_INVALID, never another error', () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        try {
          validateDistributionStart(value);
          return false;
        } catch (error) {
          return isStrataError(error, 'STRATA_ERR_BUNDLE_INVALID');
        }
      }),
    );
  });

  it('refuses a manifest with one field broken', () => {
    const broken = [
      { ...manifest, formatVersion: 2 },
      { ...manifest, name: '../etc' },
      { ...manifest, artifacts: [] },
      { ...manifest, artifacts: [{ ...manifest.artifacts[0], sha256: 'A'.repeat(64) }] },
      { ...manifest, artifacts: [{ ...manifest.artifacts[0], path: '/a/../b' }] },
      { ...manifest, artifacts: [{ ...manifest.artifacts[0], repo: 'elsewhere' }] },
      { ...manifest, artifacts: [manifest.artifacts[0], manifest.artifacts[0]] },
      { ...manifest, extra: true },
    ];
    for (const candidate of broken) expect(() => validateManifest(candidate)).toThrow(expect.objectContaining({ code: 'STRATA_ERR_BUNDLE_INVALID' }));
  });
});

describe('the artifactory base of a remote URL', () => {
  it('is found in repository and package API URLs', () => {
    expect(artifactoryBaseOf('http://h:8081/artifactory/libs')).toBe('http://h:8081/artifactory');
    expect(artifactoryBaseOf('https://h/x/artifactory/api/npm/npm-remote/')).toBe('https://h/x/artifactory');
    expect(artifactoryBaseOf('http://h:8081/artifactory')).toBe('http://h:8081/artifactory');
    expect(artifactoryBaseOf('https://registry.npmjs.org/')).toBeUndefined();
    expect(artifactoryBaseOf('http://h/artifactory-like/libs')).toBeUndefined();
  });
});
