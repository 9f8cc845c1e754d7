import { createHash } from 'node:crypto';
import { StrataError } from '@strata/core';
import type { Properties } from '@strata/core';
import semver from 'semver';

/**
 * npm's registry model (pure): names, versions and tags as the registry accepts them, where
 * each lives in the repository, and the packument computed from what is stored.
 *
 * Layout (Artifactory's): a version's tarball is `{name}/-/{basename}-{version}.tgz` with
 * properties `npm.name`, `npm.version` and `npm.manifest` (the version's package.json as
 * published, without readme). Dist-tags are properties of the package folder `{name}`:
 * `npm.distTag.{tag}` = [version]. Each tag is its own last-writer-wins register, so two sites
 * moving different tags both win. The packument is computed from these on read.
 */
export const NPM_PROPERTY = {
  name: 'npm.name',
  version: 'npm.version',
  manifest: 'npm.manifest',
  distTagPrefix: 'npm.distTag.',
} as const;

/** Characters of one manifest chunk (a property value holds at most 4,000). */
const manifestChunkChars = 3_900;
/** Manifests longer than this (as ASCII JSON) are refused. */
export const manifestCharsMax = 256 * 1024;
export const packageNameCharsMax = 214;
const tagCharsMax = 128;

const NAME = /^(?:@([a-z0-9-~][a-z0-9-._~]*)\/)?[a-z0-9-~][a-z0-9-._~]*$/;
const TAG = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

/** Throws 400 unless `name` is a valid npm package name (scoped or not). */
export function checkPackageName(name: string): void {
  if (name.length === 0 || name.length > packageNameCharsMax || !NAME.test(name)) {
    throw invalid(`'${name}' is not a valid npm package name`);
  }
}

/** Throws 400 unless `version` is a strict semantic version (no path tricks, no 'v' prefix). */
export function checkVersion(version: string): void {
  if (version.length > 256 || semver.valid(version) !== version) throw invalid(`'${version}' is not a valid semantic version`);
}

export function checkTag(tag: string): void {
  // Nearly every publish names 'latest', which passes both checks: no range parse for it.
  if (tag === 'latest') return;
  if (tag.length > tagCharsMax || !TAG.test(tag)) throw invalid(`'${tag}' is not a valid dist-tag`);
  if (semver.validRange(tag) !== null) throw invalid(`dist-tag '${tag}' must not be a semantic version range`);
}

/** `@scope/name` → `name`. */
export function baseName(name: string): string {
  return name.slice(name.lastIndexOf('/') + 1);
}

export function tarballFileName(name: string, version: string): string {
  return `${baseName(name)}-${version}.tgz`;
}

export function tarballPath(name: string, version: string): string {
  return `${name}/-/${tarballFileName(name, version)}`;
}

export function distTagKey(tag: string): string {
  return `${NPM_PROPERTY.distTagPrefix}${tag}`;
}

/** JSON with every non-ASCII character escaped: chunks cut anywhere stay well-formed. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The manifest as property values: numbered chunks (`007:…`), reassembled by `manifestFromValues`. */
export function manifestValues(manifest: Readonly<Record<string, unknown>>): string[] {
  const json = asciiJson(manifest);
  if (json.length > manifestCharsMax) throw invalid(`the version's package.json is larger than ${manifestCharsMax} characters`);
  const values: string[] = [];
  for (let offset = 0, index = 0; offset < json.length; offset += manifestChunkChars, index++) {
    values.push(`${String(index).padStart(3, '0')}:${json.slice(offset, offset + manifestChunkChars)}`);
  }
  return values;
}

export function manifestFromValues(values: readonly string[] | undefined): Record<string, unknown> | undefined {
  if (values === undefined || values.length === 0) return undefined;
  const json = [...values]
    .sort()
    .map((value) => value.slice(value.indexOf(':') + 1))
    .join('');
  try {
    const parsed = JSON.parse(json) as unknown;
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Fields of a published version not kept in its stored manifest. */
const DROPPED_MANIFEST_FIELDS = ['readme', 'readmeFilename', '_attachments'] as const;

export function storedManifest(manifest: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const copy: Record<string, unknown> = { ...manifest };
  for (const field of DROPPED_MANIFEST_FIELDS) delete copy[field];
  const dist = typeof copy.dist === 'object' && copy.dist !== null ? { ...(copy.dist as Record<string, unknown>) } : {};
  delete dist.tarball;
  copy.dist = dist;
  return copy;
}

// ---- publish verification ---------------------------------------------------------------

const SRI_ALGORITHMS = new Set(['sha512', 'sha384', 'sha256', 'sha1']);

/**
 * Checks a tarball against what its version declares: gzip content, `dist.shasum` (sha1 hex)
 * and every known algorithm in `dist.integrity` (SRI). At least one digest must be declared.
 */
export function verifyTarball(bytes: Buffer, dist: Readonly<Record<string, unknown>>, label: string): { integrity: string } {
  if (bytes.length < 18 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) throw invalid(`the tarball of ${label} is not gzip data`);
  const shasum = typeof dist.shasum === 'string' ? dist.shasum.toLowerCase() : undefined;
  const integrity = typeof dist.integrity === 'string' ? dist.integrity.trim() : undefined;
  if (shasum === undefined && integrity === undefined) throw invalid(`${label} declares neither dist.integrity nor dist.shasum`);
  if (shasum !== undefined && createHash('sha1').update(bytes).digest('hex') !== shasum) {
    throw new StrataError('STRATA_ERR_PACKAGE_DIGEST_MISMATCH', `the tarball of ${label} does not match its dist.shasum`);
  }
  let checked = 0;
  for (const entry of integrity?.split(/\s+/) ?? []) {
    const dash = entry.indexOf('-');
    const algorithm = entry.slice(0, dash);
    if (dash < 0 || !SRI_ALGORITHMS.has(algorithm)) continue;
    const expected = entry.slice(dash + 1).split('?')[0];
    if (createHash(algorithm).update(bytes).digest('base64') !== expected) {
      throw new StrataError('STRATA_ERR_PACKAGE_DIGEST_MISMATCH', `the tarball of ${label} does not match its dist.integrity (${algorithm})`);
    }
    checked++;
  }
  if (integrity !== undefined && checked === 0) throw invalid(`${label}'s dist.integrity names no supported algorithm`);
  return { integrity: integrity ?? `sha512-${createHash('sha512').update(bytes).digest('base64')}` };
}

// ---- the packument ----------------------------------------------------------------------

export interface StoredVersion {
  readonly version: string;
  readonly manifest: Readonly<Record<string, unknown>>;
  readonly sha1: string;
  /** Epoch ms of the tarball's deploy event. */
  readonly created: number;
}

export interface Packument {
  readonly full: Record<string, unknown>;
  readonly abbreviated: Record<string, unknown>;
  readonly distTags: Record<string, string>;
  readonly rev: string;
}

/** Dist-tags from the package folder's properties (only tags naming a stored version). */
export function distTagsFrom(properties: Properties, versions: ReadonlySet<string>): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const [key, values] of Object.entries(properties)) {
    if (!key.startsWith(NPM_PROPERTY.distTagPrefix)) continue;
    const version = values[0];
    if (version !== undefined && versions.has(version)) tags[key.slice(NPM_PROPERTY.distTagPrefix.length)] = version;
  }
  return tags;
}

const ABBREVIATED_FIELDS = [
  'name',
  'version',
  'deprecated',
  'dependencies',
  'optionalDependencies',
  'devDependencies',
  'bundleDependencies',
  'bundledDependencies',
  'peerDependencies',
  'peerDependenciesMeta',
  'bin',
  'directories',
  'engines',
  'os',
  'cpu',
  'funding',
  'license',
  '_hasShrinkwrap',
  'hasInstallScript',
  'acceptDependencies',
] as const;

/**
 * The packument of `name` from its stored versions and dist-tags; `tarballBase` is the
 * registry URL tarballs are served under (`…/api/npm/{repo}`).
 */
export function buildPackument(name: string, stored: readonly StoredVersion[], folderProperties: Properties, tarballBase: string): Packument {
  const ordered = [...stored].sort((a, b) => semver.compare(a.version, b.version));
  const distTags = distTagsFrom(folderProperties, new Set(ordered.map((entry) => entry.version)));
  if (distTags.latest === undefined && ordered.length > 0) {
    const releases = ordered.filter((entry) => semver.prerelease(entry.version) === null);
    distTags.latest = (releases[releases.length - 1] ?? ordered[ordered.length - 1]!).version;
  }
  const versions: Record<string, unknown> = {};
  const abbreviatedVersions: Record<string, unknown> = {};
  const time: Record<string, string> = {};
  let created = Number.POSITIVE_INFINITY;
  let modified = 0;
  const revisionHash = createHash('sha1');
  for (const entry of ordered) {
    const dist = { ...((entry.manifest.dist as Record<string, unknown> | undefined) ?? {}), shasum: entry.sha1, tarball: `${tarballBase}/${tarballPath(name, entry.version)}` };
    const manifest = { ...entry.manifest, name, version: entry.version, _id: `${name}@${entry.version}`, dist };
    versions[entry.version] = manifest;
    const abbreviated: Record<string, unknown> = { dist };
    for (const field of ABBREVIATED_FIELDS) if (manifest[field as keyof typeof manifest] !== undefined) abbreviated[field] = manifest[field as keyof typeof manifest];
    abbreviatedVersions[entry.version] = abbreviated;
    time[entry.version] = new Date(entry.created).toISOString();
    created = Math.min(created, entry.created);
    modified = Math.max(modified, entry.created);
    revisionHash.update(`${entry.version}\0${entry.sha1}\0${String(entry.manifest.deprecated ?? '')}\n`);
  }
  for (const [tag, version] of Object.entries(distTags).sort()) revisionHash.update(`${tag}=${version}\n`);
  const rev = `${ordered.length}-${revisionHash.digest('hex').slice(0, 16)}`;
  const modifiedIso = new Date(modified).toISOString();
  const latest = distTags.latest === undefined ? undefined : (versions[distTags.latest] as Record<string, unknown> | undefined);
  const full: Record<string, unknown> = {
    _id: name,
    _rev: rev,
    name,
    ...(typeof latest?.description === 'string' ? { description: latest.description } : {}),
    'dist-tags': distTags,
    versions,
    time: { created: new Date(Number.isFinite(created) ? created : 0).toISOString(), modified: modifiedIso, ...time },
    ...(latest?.license === undefined ? {} : { license: latest.license }),
  };
  const abbreviated = { name, modified: modifiedIso, 'dist-tags': distTags, versions: abbreviatedVersions };
  return { full, abbreviated, distTags, rev };
}

/**
 * The versions and dist-tags of an upstream registry's packument, as stored versions: each
 * manifest keeps its dist (integrity, shasum) without the upstream's tarball URL, which is
 * rebuilt for this server. Versions that are not strict semver are dropped.
 */
export function upstreamPackumentVersions(name: string, json: string): { versions: StoredVersion[]; tags: Record<string, string> } {
  let document: unknown;
  try {
    document = JSON.parse(json);
  } catch {
    throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `the upstream packument of '${name}' is not JSON`);
  }
  if (typeof document !== 'object' || document === null) throw new StrataError('STRATA_ERR_REMOTE_UNAVAILABLE', `the upstream packument of '${name}' is not an object`);
  const { versions, time, 'dist-tags': distTags } = document as { versions?: unknown; time?: unknown; 'dist-tags'?: unknown };
  const times = typeof time === 'object' && time !== null ? (time as Record<string, unknown>) : {};
  const stored: StoredVersion[] = [];
  for (const [version, manifest] of Object.entries(typeof versions === 'object' && versions !== null ? versions : {})) {
    if (semver.valid(version) !== version || typeof manifest !== 'object' || manifest === null) continue;
    const kept = storedManifest(manifest as Record<string, unknown>);
    const dist = kept.dist as Record<string, unknown>;
    const created = Date.parse(String(times[version] ?? ''));
    stored.push({ version, manifest: kept, sha1: typeof dist.shasum === 'string' ? dist.shasum : '', created: Number.isFinite(created) ? created : 0 });
  }
  const tags: Record<string, string> = {};
  for (const [tag, version] of Object.entries(typeof distTags === 'object' && distTags !== null ? distTags : {})) {
    if (typeof version === 'string') tags[tag] = version;
  }
  return { versions: stored, tags };
}
