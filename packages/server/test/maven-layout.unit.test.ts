import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  artifactMetadataXml,
  compareMavenVersions,
  mavenRepositoryHandles,
  mavenVersionKindOf,
  parseArtifactPath,
  parseMavenPath,
  snapshotBuilds,
  snapshotMetadataXml,
} from '../src/formats/maven/maven-layout.ts';
import { checkPomMatchesPath } from '../src/formats/maven/maven-pom.ts';

describe('Maven layout', () => {
  it('parses release, classifier, multi-dot extension and unique snapshot file names', () => {
    expect(parseArtifactPath('org/example/lib/1.0/lib-1.0.jar')).toMatchObject({ groupId: 'org.example', artifactId: 'lib', version: '1.0', classifier: '', extension: 'jar' });
    expect(parseArtifactPath('org/example/lib/1.0/lib-1.0-sources.jar')).toMatchObject({ classifier: 'sources', extension: 'jar' });
    expect(parseArtifactPath('org/example/lib/1.0/lib-1.0.tar.gz')).toMatchObject({ classifier: '', extension: 'tar.gz' });
    expect(parseArtifactPath('org/example/lib/1.0-SNAPSHOT/lib-1.0-20240102.030405-7-tests.jar')).toMatchObject({
      version: '1.0-SNAPSHOT',
      fileVersion: '1.0-20240102.030405-7',
      timestamp: '20240102.030405',
      buildNumber: 7,
      classifier: 'tests',
      snapshot: true,
    });
    expect(parseArtifactPath('org/example/lib/1.0-SNAPSHOT/lib-1.0-SNAPSHOT.pom')).toMatchObject({ fileVersion: '1.0-SNAPSHOT', snapshot: true });
  });

  it('classifies sidecars and metadata and refuses paths outside the layout', () => {
    expect(parseMavenPath('org/example/lib/1.0/lib-1.0.jar.sha1')).toEqual({ kind: 'checksum', target: 'org/example/lib/1.0/lib-1.0.jar', algorithm: 'sha1' });
    expect(parseMavenPath('org/example/lib/maven-metadata.xml')).toEqual({ kind: 'metadata', folder: 'org/example/lib' });
    for (const bad of ['lib-1.0.jar', 'org/lib/1.0/lib-1.0.jar/x', 'org/example/lib/1.0/lib-2.0.jar', 'org/example/lib/1.0/lib-1.0', 'org/ex ample/lib/1.0/lib-1.0.jar', 'org/..x/lib/1.0/lib-1.0.jar']) {
      expect(() => parseArtifactPath(bad), bad).toThrow(/not a Maven path/);
    }
  });

  it('orders versions as Maven does', () => {
    const ordered = ['1.0-alpha-1', '1.0-beta', '1.0-rc1', '1.0-SNAPSHOT', '1.0', '1.0-sp1', '1.0.1', '1.2', '1.10', '2.0'];
    expect([...ordered].reverse().sort(compareMavenVersions)).toEqual(ordered);
  });

  it('version order is a total order (antisymmetric and transitive)', () => {
    const version = fc.stringMatching(/^[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-(alpha|beta|rc|SNAPSHOT|sp|foo)[0-9]?)?$/);
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        // `===`, not toBe: toBe tells 0 from -0, which equal versions (a, a) give here.
        expect(Math.sign(compareMavenVersions(a, b)) === -Math.sign(compareMavenVersions(b, a))).toBe(true);
        if (compareMavenVersions(a, b) <= 0 && compareMavenVersions(b, c) <= 0) expect(compareMavenVersions(a, c)).toBeLessThanOrEqual(0);
      }),
    );
  });

  it('artifact metadata lists versions in order with latest and release; snapshot metadata names the newest build', () => {
    const xml = artifactMetadataXml({ groupId: 'g', artifactId: 'a', versions: ['1.10', '1.2', '2.0-SNAPSHOT'], lastUpdated: Date.UTC(2024, 0, 2, 3, 4, 5) });
    expect(xml).toContain('<latest>2.0-SNAPSHOT</latest>');
    expect(xml).toContain('<release>1.10</release>');
    expect(xml).toMatch(/<version>1\.2<\/version>\s*<version>1\.10<\/version>/);
    expect(xml).toContain('<lastUpdated>20240102030405</lastUpdated>');
    const files = [1, 2].flatMap((build) =>
      ['jar', 'pom'].map((ext) => ({ coordinates: parseArtifactPath(`g/a/1.0-SNAPSHOT/a-1.0-20240101.00000${build}-${build}.${ext}`), lastModified: build * 1000 })),
    );
    expect(snapshotBuilds(files)).toEqual(['20240101.000001-1', '20240101.000002-2']);
    const snapshot = snapshotMetadataXml('g', 'a', '1.0-SNAPSHOT', files);
    expect(snapshot).toContain('<buildNumber>2</buildNumber>');
    expect(snapshot).toContain('<value>1.0-20240101.000002-2</value>');
    expect(snapshot).not.toContain('-1</value>');
  });

  it('checks POM coordinates against the path, inheriting groupId and version from the parent', () => {
    const path = parseArtifactPath('org/example/lib/1.0/lib-1.0.pom');
    expect(() => checkPomMatchesPath('<project><parent><groupId>org.example</groupId><version>1.0</version></parent><artifactId>lib</artifactId></project>', path)).not.toThrow();
    expect(() => checkPomMatchesPath('<project><groupId>org.other</groupId><artifactId>lib</artifactId><version>1.0</version></project>', path)).toThrow(/groupId/);
    expect(() => checkPomMatchesPath('<project><groupId>org.example</groupId><artifactId>lib</artifactId><version>${revision}</version></project>', path)).not.toThrow();
    expect(() => checkPomMatchesPath('not xml <', path)).toThrow(/well-formed/);
  });

  it('classifies a path by the kind of version it belongs to, for handleReleases / handleSnapshots', () => {
    expect(mavenVersionKindOf('org/example/lib/1.0/lib-1.0.jar')).toBe('release');
    expect(mavenVersionKindOf('org/example/lib/1.0/lib-1.0.jar.sha1')).toBe('release');
    expect(mavenVersionKindOf('org/example/lib/1.0-SNAPSHOT/lib-1.0-20240101.120000-3.pom')).toBe('snapshot');
    expect(mavenVersionKindOf('org/example/lib/1.0-SNAPSHOT/lib-1.0-SNAPSHOT.jar.md5')).toBe('snapshot');
    expect(mavenVersionKindOf('org/example/lib/1.0-SNAPSHOT/maven-metadata.xml')).toBe('snapshot');
    expect(mavenVersionKindOf('org/example/lib/1.0-SNAPSHOT/maven-metadata.xml.sha1')).toBe('snapshot');
    // Artifact- and group-level metadata span both kinds; a path outside the layout names none.
    expect(mavenVersionKindOf('org/example/lib/maven-metadata.xml')).toBeUndefined();
    expect(mavenVersionKindOf('org/example/maven-metadata.xml')).toBeUndefined();
    expect(mavenVersionKindOf('lib-1.0.jar')).toBeUndefined();
    expect(mavenRepositoryHandles({}, 'snapshot')).toBe(true);
    expect(mavenRepositoryHandles({ handleSnapshots: false }, 'snapshot')).toBe(false);
    expect(mavenRepositoryHandles({ handleSnapshots: false }, 'release')).toBe(true);
    expect(mavenRepositoryHandles({ handleReleases: false }, 'release')).toBe(false);
  });
});
