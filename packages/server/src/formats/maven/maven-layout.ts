import { StrataError } from '@strata/core';

/**
 * The Maven 2 repository layout (pure): `group/as/path/{artifactId}/{version}/{file}` with
 * `{file} = {artifactId}-{fileVersion}[-{classifier}].{extension}`, where a SNAPSHOT
 * folder's files carry either the base version (`1.0-SNAPSHOT`) or a unique timestamped one
 * (`1.0-20240102.030405-7`).
 */
export interface MavenCoordinates {
  readonly groupId: string;
  readonly artifactId: string;
  /** The version folder: `1.0` or `1.0-SNAPSHOT`. */
  readonly version: string;
  /** The version in the file name: equal to `version`, or a timestamped snapshot version. */
  readonly fileVersion: string;
  readonly classifier: string;
  readonly extension: string;
  readonly snapshot: boolean;
  /** For a unique snapshot: `yyyyMMdd.HHmmss` and the build number. */
  readonly timestamp?: string;
  readonly buildNumber?: number;
}

export const CHECKSUM_ALGORITHMS = { sha1: 'sha1', md5: 'md5', sha256: 'sha256', sha512: 'sha512' } as const;
export type ChecksumAlgorithm = keyof typeof CHECKSUM_ALGORITHMS;

export type MavenPath =
  | { readonly kind: 'checksum'; readonly target: string; readonly algorithm: ChecksumAlgorithm }
  | { readonly kind: 'metadata'; readonly folder: string }
  | { readonly kind: 'artifact'; readonly coordinates: MavenCoordinates };

export const METADATA_FILE = 'maven-metadata.xml';
const SNAPSHOT_SUFFIX = '-SNAPSHOT';
const TIMESTAMPED = /^(\d{8}\.\d{6})-(\d{1,9})$/;
/** Group segments, artifact ids and versions: no path tricks, no whitespace or control characters. */
const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.+~-]*$/;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

export function isSnapshotVersion(version: string): boolean {
  return version.endsWith(SNAPSHOT_SUFFIX);
}

/** Which kind of version a path belongs to: the files, sidecars and metadata of one version folder. */
export type MavenVersionKind = 'release' | 'snapshot';

/**
 * The kind of version a Maven path addresses, or undefined when it addresses none (artifact- or
 * group-level metadata, a folder, a path outside the layout). A version folder's own
 * `maven-metadata.xml` (snapshot level) counts as that version's.
 */
export function mavenVersionKindOf(path: string): MavenVersionKind | undefined {
  let parsed: MavenPath;
  try {
    parsed = parseMavenPath(path);
  } catch {
    return undefined;
  }
  if (parsed.kind === 'checksum') return mavenVersionKindOf(parsed.target);
  if (parsed.kind === 'artifact') return parsed.coordinates.snapshot ? 'snapshot' : 'release';
  const last = parsed.folder.slice(parsed.folder.lastIndexOf('/') + 1);
  return isSnapshotVersion(last) && parsed.folder.split('/').length >= 3 ? 'snapshot' : undefined;
}

/**
 * Whether a repository with this configuration handles a version of this kind
 * (`handleReleases` / `handleSnapshots`, both true unless set to false). A repository that
 * does not handle a kind refuses its deploys and is skipped when a virtual resolves it.
 */
export function mavenRepositoryHandles(config: Readonly<Record<string, unknown>>, kind: MavenVersionKind): boolean {
  return kind === 'snapshot' ? config.handleSnapshots !== false : config.handleReleases !== false;
}

/** Classifies a repository path of a Maven repository; throws 400 on a path outside the layout. */
export function parseMavenPath(path: string): MavenPath {
  const slash = path.lastIndexOf('/');
  const name = path.slice(slash + 1);
  const extension = name.slice(name.lastIndexOf('.') + 1);
  if (name.includes('.') && extension in CHECKSUM_ALGORITHMS) {
    return { kind: 'checksum', target: path.slice(0, path.length - extension.length - 1), algorithm: extension as ChecksumAlgorithm };
  }
  if (name === METADATA_FILE) {
    if (slash <= 0) throw invalid(`'${path}' is not a Maven path: ${METADATA_FILE} belongs in a group, artifact or version folder`);
    return { kind: 'metadata', folder: path.slice(0, slash) };
  }
  return { kind: 'artifact', coordinates: parseArtifactPath(path) };
}

/** The coordinates of an artifact file path, or a 400 naming what does not fit. */
export function parseArtifactPath(path: string): MavenCoordinates {
  const segments = path.split('/');
  if (segments.length < 4) {
    throw invalid(`'${path}' is not a Maven path: expected groupId/as/path/artifactId/version/artifactId-version[-classifier].extension`);
  }
  for (const segment of segments.slice(0, -1)) {
    if (!SEGMENT.test(segment)) throw invalid(`'${path}' is not a Maven path: '${segment}' is not a valid group, artifact or version segment`);
  }
  const file = segments[segments.length - 1]!;
  const version = segments[segments.length - 2]!;
  const artifactId = segments[segments.length - 3]!;
  const groupId = segments.slice(0, -3).join('.');
  const prefix = `${artifactId}-`;
  if (!file.startsWith(prefix)) throw invalid(`'${path}' is not a Maven path: the file name must start with '${prefix}${version}'`);
  const rest = file.slice(prefix.length);
  const snapshot = isSnapshotVersion(version);
  let fileVersion: string | undefined;
  let timestamp: string | undefined;
  let buildNumber: number | undefined;
  if (rest.startsWith(version) && /^[.-]/.test(rest.slice(version.length))) {
    fileVersion = version;
  } else if (snapshot) {
    const base = version.slice(0, -SNAPSHOT_SUFFIX.length);
    if (rest.startsWith(`${base}-`)) {
      const unique = /^(\d{8}\.\d{6}-\d{1,9})(?=[.-])/.exec(rest.slice(base.length + 1));
      if (unique !== null) {
        const match = TIMESTAMPED.exec(unique[1]!)!;
        fileVersion = `${base}-${unique[1]!}`;
        timestamp = match[1]!;
        buildNumber = Number(match[2]!);
      }
    }
  }
  if (fileVersion === undefined) {
    throw invalid(`'${path}' is not a Maven path: the file name's version does not match the version folder '${version}'`);
  }
  const tail = rest.slice(fileVersion.length);
  let classifier = '';
  let extension: string;
  if (tail.startsWith('.')) extension = tail.slice(1);
  else {
    const dot = tail.indexOf('.');
    if (dot < 0) throw invalid(`'${path}' is not a Maven path: the file name has no extension`);
    classifier = tail.slice(1, dot);
    extension = tail.slice(dot + 1);
  }
  if (extension === '' || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(extension) || (tail.startsWith('-') && !/^[A-Za-z0-9][A-Za-z0-9_.~-]*$/.test(classifier))) {
    throw invalid(`'${path}' is not a Maven path: bad classifier or extension`);
  }
  return {
    groupId,
    artifactId,
    version,
    fileVersion,
    classifier,
    extension,
    snapshot,
    ...(timestamp === undefined ? {} : { timestamp, buildNumber: buildNumber as number }),
  };
}

// ---- version order (Maven's ComparableVersion, the parts package versions use) ----------

type VersionItem = number | string;

const QUALIFIER_RANK: Readonly<Record<string, number>> = {
  alpha: 1,
  a: 1,
  beta: 2,
  b: 2,
  milestone: 3,
  m: 3,
  rc: 4,
  cr: 4,
  snapshot: 5,
  '': 6,
  ga: 6,
  final: 6,
  release: 6,
  sp: 7,
};

function versionItems(version: string): VersionItem[] {
  const items: VersionItem[] = [];
  for (const token of version.toLowerCase().match(/\d+|[a-z]+/g) ?? []) items.push(/^\d/.test(token) ? Number(token) : token);
  // Trailing zeros and release qualifiers do not count: 1.0 == 1 == 1.0.0-ga.
  while (items.length > 0 && (items[items.length - 1] === 0 || QUALIFIER_RANK[String(items[items.length - 1])] === 6)) items.pop();
  return items;
}

function compareItems(a: VersionItem | undefined, b: VersionItem | undefined): number {
  if (a === undefined && b === undefined) return 0;
  if (a === undefined) return -compareItems(b, a);
  if (typeof a === 'number') {
    if (b === undefined) return a === 0 ? 0 : 1;
    if (typeof b === 'number') return a - b;
    return 1; // a number is newer than any qualifier
  }
  if (typeof b === 'number') return -1;
  const rankA = QUALIFIER_RANK[a] ?? 8;
  const rankB = QUALIFIER_RANK[b ?? ''] ?? 8;
  if (rankA !== rankB) return rankA - rankB;
  if (rankA === 8) return a < (b ?? '') ? -1 : a > (b ?? '') ? 1 : 0;
  return 0;
}

/** Orders Maven versions the way Maven does for ordinary release and snapshot versions. */
export function compareMavenVersions(a: string, b: string): number {
  const left = versionItems(a);
  const right = versionItems(b);
  for (let index = 0; index < Math.max(left.length, right.length); index++) {
    const order = compareItems(left[index], right[index]);
    if (order !== 0) return order;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- maven-metadata.xml -----------------------------------------------------------------

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** `yyyyMMddHHmmss` in UTC. */
export function metadataTimestamp(epochMs: number): string {
  return new Date(epochMs).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

export interface ArtifactMetadataInput {
  readonly groupId: string;
  readonly artifactId: string;
  readonly versions: readonly string[];
  /** Epoch ms of the newest file among the versions. */
  readonly lastUpdated: number;
}

/** Artifact-level metadata: every deployed version in Maven order, latest and release. */
export function artifactMetadataXml(input: ArtifactMetadataInput): string {
  const versions = [...new Set(input.versions)].sort(compareMavenVersions);
  const releases = versions.filter((version) => !isSnapshotVersion(version));
  const latest = versions[versions.length - 1];
  const release = releases[releases.length - 1];
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<metadata>',
    `  <groupId>${escapeXml(input.groupId)}</groupId>`,
    `  <artifactId>${escapeXml(input.artifactId)}</artifactId>`,
    '  <versioning>',
    ...(latest === undefined ? [] : [`    <latest>${escapeXml(latest)}</latest>`]),
    ...(release === undefined ? [] : [`    <release>${escapeXml(release)}</release>`]),
    '    <versions>',
    ...versions.map((version) => `      <version>${escapeXml(version)}</version>`),
    '    </versions>',
    `    <lastUpdated>${metadataTimestamp(input.lastUpdated)}</lastUpdated>`,
    '  </versioning>',
    '</metadata>',
    '',
  ].join('\n');
}

/** A Maven plugin as group-level metadata lists it (the plugin-prefix index of a groupId). */
export interface GroupPlugin {
  readonly name: string;
  readonly prefix: string;
  readonly artifactId: string;
}

/**
 * Group-level maven-metadata.xml (`{groupId path}/maven-metadata.xml`): the plugins of the
 * group, by artifactId order, so `mvn {prefix}:{goal}` finds a plugin from its prefix.
 */
export function groupMetadataXml(plugins: readonly GroupPlugin[]): string {
  const sorted = [...plugins].sort((a, b) => (a.artifactId < b.artifactId ? -1 : a.artifactId > b.artifactId ? 1 : 0));
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<metadata>',
    '  <plugins>',
    ...sorted.flatMap((plugin) => [
      '    <plugin>',
      `      <name>${escapeXml(plugin.name)}</name>`,
      `      <prefix>${escapeXml(plugin.prefix)}</prefix>`,
      `      <artifactId>${escapeXml(plugin.artifactId)}</artifactId>`,
      '    </plugin>',
    ]),
    '  </plugins>',
    '</metadata>',
    '',
  ].join('\n');
}

/** Maven's default goal prefix of a plugin artifactId (PluginDescriptor.getGoalPrefixFromArtifactId). */
export function defaultGoalPrefix(artifactId: string): string {
  if (artifactId === 'maven-plugin-plugin') return 'plugin';
  return artifactId.replace(/-?maven-?/g, '').replace(/-?plugin-?/g, '');
}

export interface SnapshotFile {
  readonly coordinates: MavenCoordinates;
  /** Epoch ms the file was deployed (its event's stamp). */
  readonly lastModified: number;
}

/** Distinct unique builds of a snapshot folder, oldest first: `timestamp-buildNumber`. */
export function snapshotBuilds(files: readonly SnapshotFile[]): string[] {
  const builds = new Map<string, { timestamp: string; buildNumber: number }>();
  for (const { coordinates } of files) {
    if (coordinates.timestamp === undefined) continue;
    builds.set(`${coordinates.timestamp}-${coordinates.buildNumber}`, { timestamp: coordinates.timestamp, buildNumber: coordinates.buildNumber ?? 0 });
  }
  return [...builds.entries()]
    .sort(([, a], [, b]) => (a.buildNumber - b.buildNumber) || (a.timestamp < b.timestamp ? -1 : a.timestamp > b.timestamp ? 1 : 0))
    .map(([key]) => key);
}

/** Snapshot-level metadata: the newest unique build and, per classifier and extension, its newest file. */
export function snapshotMetadataXml(groupId: string, artifactId: string, version: string, files: readonly SnapshotFile[]): string {
  let newest: MavenCoordinates | undefined;
  let lastUpdated = 0;
  const perKind = new Map<string, { coordinates: MavenCoordinates; lastModified: number }>();
  for (const file of files) {
    lastUpdated = Math.max(lastUpdated, file.lastModified);
    const { coordinates } = file;
    if (coordinates.timestamp === undefined) continue;
    if (newest === undefined || (coordinates.buildNumber ?? 0) > (newest.buildNumber ?? 0)) newest = coordinates;
    const kind = `${coordinates.classifier}\u0000${coordinates.extension}`;
    const current = perKind.get(kind);
    if (current === undefined || (coordinates.buildNumber ?? 0) > (current.coordinates.buildNumber ?? 0)) perKind.set(kind, file);
  }
  const kinds = [...perKind.values()].sort((a, b) =>
    a.coordinates.extension === b.coordinates.extension
      ? a.coordinates.classifier < b.coordinates.classifier ? -1 : 1
      : a.coordinates.extension < b.coordinates.extension ? -1 : 1,
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<metadata modelVersion="1.1.0">',
    `  <groupId>${escapeXml(groupId)}</groupId>`,
    `  <artifactId>${escapeXml(artifactId)}</artifactId>`,
    `  <version>${escapeXml(version)}</version>`,
    '  <versioning>',
    ...(newest === undefined
      ? []
      : ['    <snapshot>', `      <timestamp>${newest.timestamp}</timestamp>`, `      <buildNumber>${newest.buildNumber}</buildNumber>`, '    </snapshot>']),
    `    <lastUpdated>${metadataTimestamp(lastUpdated)}</lastUpdated>`,
    ...(kinds.length === 0
      ? []
      : [
          '    <snapshotVersions>',
          ...kinds.flatMap(({ coordinates, lastModified }) => [
            '      <snapshotVersion>',
            ...(coordinates.classifier === '' ? [] : [`        <classifier>${escapeXml(coordinates.classifier)}</classifier>`]),
            `        <extension>${escapeXml(coordinates.extension)}</extension>`,
            `        <value>${escapeXml(coordinates.fileVersion)}</value>`,
            `        <updated>${metadataTimestamp(lastModified)}</updated>`,
            '      </snapshotVersion>',
          ]),
          '    </snapshotVersions>',
        ]),
    '  </versioning>',
    '</metadata>',
    '',
  ].join('\n');
}
