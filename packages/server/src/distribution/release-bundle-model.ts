import { isNormalRepositoryPath, isValidRepositoryKey, StrataError } from '@strata/core';
import type { ArtifactDeployedData, Properties } from '@strata/core';

/**
 * Release bundles (seeds/edge-nodes.txt): an immutable, named, versioned set of artifacts
 * with their checksums and properties, signed by the source site's Ed25519 key. Everything
 * here is pure: shapes, validation at the trust boundary, and the canonical JSON that is
 * signed.
 */

export const bundleArtifactsMax = 10_000;
export const bundleDescriptionCharsMax = 4_096;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SHA1 = /^[0-9a-f]{40}$/;
const MD5 = /^[0-9a-f]{32}$/;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}=?$/;
export const manifestFormatVersion = 1;

/** One file of a bundle: what its ArtifactDeployed event holds (path, checksums, size, type, properties), and its repository. */
export interface BundleArtifact extends ArtifactDeployedData {
  readonly repo: string;
}

export interface BundleRepository {
  readonly key: string;
  readonly packageType: string;
}

/** What the source signs: the whole content of the bundle. */
export interface BundleManifest {
  readonly formatVersion: number;
  readonly name: string;
  readonly version: string;
  readonly description: string;
  /** Epoch ms at the source. */
  readonly created: number;
  readonly createdBy: string;
  readonly sourceSite: string;
  readonly signingKey: { readonly alias: string; readonly fingerprint: string };
  readonly repositories: readonly BundleRepository[];
  readonly artifacts: readonly BundleArtifact[];
}

export interface SignedManifest {
  readonly manifest: BundleManifest;
  /** Ed25519 signature of canonicalJson(manifest), base64. */
  readonly signature: string;
}

/**
 * One distribution of a bundle to one edge, signed separately so that a recorded
 * distribution cannot be played again: the edge refuses an id it has seen and an envelope
 * older than its replay window.
 */
export interface DistributionEnvelope {
  readonly distributionId: string;
  readonly name: string;
  readonly version: string;
  /** sha256 (hex) of canonicalJson(manifest). */
  readonly manifestSha256: string;
  /** Epoch ms at the source. */
  readonly issuedAt: number;
  readonly fingerprint: string;
}

export interface DistributionStart {
  readonly bundle: SignedManifest;
  readonly envelope: DistributionEnvelope;
  /** Ed25519 signature of canonicalJson(envelope), base64. */
  readonly envelopeSignature: string;
}

/**
 * JSON with object keys in code-point order and no whitespace: the bytes that are signed,
 * identical for equal values whatever order their keys were built in. Only JSON data is
 * accepted (no undefined, functions, NaN or infinities).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new StrataError('STRATA_ERR_BUNDLE_INVALID', 'canonical JSON holds finite numbers only');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map((entry) => canonicalJson(entry)).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const record = value as Record<string, unknown>;
    return `{${keys.filter((key) => record[key] !== undefined).map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
  }
  throw new StrataError('STRATA_ERR_BUNDLE_INVALID', `canonical JSON cannot hold a ${typeof value}`);
}

export function bundleId(name: string, version: string): string {
  return `${name}/${version}`;
}

function invalid(message: string): never {
  throw new StrataError('STRATA_ERR_BUNDLE_INVALID', message);
}

function object(value: unknown, field: string, known: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) invalid(`${field} must be an object`);
  for (const key of Object.keys(value)) if (!known.includes(key)) invalid(`${field}.${key} is not a known field`);
  return value as Record<string, unknown>;
}

function text(value: unknown, field: string, max: number, min = 0): string {
  if (typeof value !== 'string' || value.length < min || value.length > max) invalid(`${field} must be a string of ${min} to ${max} characters`);
  return value;
}

function matching(value: unknown, field: string, pattern: RegExp, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) invalid(`${field} must be ${what}`);
  return value;
}

function integer(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) invalid(`${field} must be a non-negative integer`);
  return value;
}

export function validateBundleName(value: unknown, field = 'name'): string {
  return matching(value, field, NAME, 'letters, digits, _ . + - (at most 128, starting with a letter or digit)');
}

function properties(value: unknown, field: string): Properties {
  const record = object(value, field, Object.keys(typeof value === 'object' && value !== null ? value : {}));
  const copy: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(record)) {
    if (key === '' || key.length > 255 || key === '__proto__') invalid(`${field} has an invalid key`);
    if (!Array.isArray(values) || !values.every((entry) => typeof entry === 'string' && entry.length <= 4_000)) invalid(`${field}.${key} must be an array of strings`);
    copy[key] = [...(values as string[])];
  }
  return copy;
}

const ARTIFACT_FIELDS = ['repo', 'path', 'sha256', 'sha1', 'md5', 'size', 'mimeType', 'properties'] as const;
const MANIFEST_FIELDS = ['formatVersion', 'name', 'version', 'description', 'created', 'createdBy', 'sourceSite', 'signingKey', 'repositories', 'artifacts'] as const;

/** A copy of a manifest received from a peer, checked field by field; refuses anything else. */
export function validateManifest(value: unknown): BundleManifest {
  const data = object(value, 'manifest', MANIFEST_FIELDS);
  if (data.formatVersion !== manifestFormatVersion) invalid(`manifest.formatVersion must be ${manifestFormatVersion}`);
  const signingKey = object(data.signingKey, 'manifest.signingKey', ['alias', 'fingerprint']);
  if (!Array.isArray(data.repositories) || data.repositories.length > bundleArtifactsMax) invalid('manifest.repositories must be an array');
  const repositories = data.repositories.map((entry: unknown, index) => {
    const repository = object(entry, `manifest.repositories[${index}]`, ['key', 'packageType']);
    const key = repository.key;
    if (!isValidRepositoryKey(key)) invalid(`manifest.repositories[${index}].key must be a repository key`);
    return { key, packageType: text(repository.packageType, `manifest.repositories[${index}].packageType`, 64, 1) };
  });
  const repositoryKeys = new Set(repositories.map((repository) => repository.key));
  if (repositoryKeys.size !== repositories.length) invalid('manifest.repositories names a repository twice');
  if (!Array.isArray(data.artifacts) || data.artifacts.length === 0 || data.artifacts.length > bundleArtifactsMax) {
    invalid(`manifest.artifacts must hold 1 to ${bundleArtifactsMax} artifacts`);
  }
  const seen = new Set<string>();
  const artifacts = data.artifacts.map((entry: unknown, index): BundleArtifact => {
    const field = `manifest.artifacts[${index}]`;
    const artifact = object(entry, field, ARTIFACT_FIELDS);
    const repo = artifact.repo;
    if (typeof repo !== 'string' || !repositoryKeys.has(repo)) invalid(`${field}.repo must be one of manifest.repositories`);
    const path = artifact.path;
    if (!isNormalRepositoryPath(path) || path === '') invalid(`${field}.path must be a normal file path`);
    const address = `${repo}/${path}`;
    if (seen.has(address)) invalid(`${field} repeats ${address}`);
    seen.add(address);
    return {
      repo,
      path,
      sha256: matching(artifact.sha256, `${field}.sha256`, SHA256, '64 lowercase hex characters'),
      sha1: matching(artifact.sha1, `${field}.sha1`, SHA1, '40 lowercase hex characters'),
      md5: matching(artifact.md5, `${field}.md5`, MD5, '32 lowercase hex characters'),
      size: integer(artifact.size, `${field}.size`),
      mimeType: text(artifact.mimeType, `${field}.mimeType`, 255, 1),
      properties: properties(artifact.properties, `${field}.properties`),
    };
  });
  return {
    formatVersion: manifestFormatVersion,
    name: validateBundleName(data.name, 'manifest.name'),
    version: validateBundleName(data.version, 'manifest.version'),
    description: text(data.description, 'manifest.description', bundleDescriptionCharsMax),
    created: integer(data.created, 'manifest.created'),
    createdBy: text(data.createdBy, 'manifest.createdBy', 255),
    sourceSite: text(data.sourceSite, 'manifest.sourceSite', 64, 1),
    signingKey: {
      alias: text(signingKey.alias, 'manifest.signingKey.alias', 255, 1),
      fingerprint: matching(signingKey.fingerprint, 'manifest.signingKey.fingerprint', FINGERPRINT, 'SHA256:<base64>'),
    },
    repositories,
    artifacts,
  };
}

const SIGNATURE = /^[A-Za-z0-9+/]{86}==$/;

export function validateDistributionStart(value: unknown): DistributionStart {
  const data = object(value, 'body', ['bundle', 'envelope', 'envelopeSignature']);
  const bundle = object(data.bundle, 'bundle', ['manifest', 'signature']);
  const envelope = object(data.envelope, 'envelope', ['distributionId', 'name', 'version', 'manifestSha256', 'issuedAt', 'fingerprint']);
  return {
    bundle: { manifest: validateManifest(bundle.manifest), signature: matching(bundle.signature, 'bundle.signature', SIGNATURE, 'an Ed25519 signature in base64') },
    envelope: {
      distributionId: matching(envelope.distributionId, 'envelope.distributionId', /^[A-Za-z0-9._~-]{8,64}$/, 'a url-safe id'),
      name: validateBundleName(envelope.name, 'envelope.name'),
      version: validateBundleName(envelope.version, 'envelope.version'),
      manifestSha256: matching(envelope.manifestSha256, 'envelope.manifestSha256', SHA256, '64 lowercase hex characters'),
      issuedAt: integer(envelope.issuedAt, 'envelope.issuedAt'),
      fingerprint: matching(envelope.fingerprint, 'envelope.fingerprint', FINGERPRINT, 'SHA256:<base64>'),
    },
    envelopeSignature: matching(data.envelopeSignature, 'envelopeSignature', SIGNATURE, 'an Ed25519 signature in base64'),
  };
}

/** The create request of a bundle on the source. */
export interface CreateBundleRequest {
  readonly name: string;
  readonly version: string;
  readonly description: string;
  readonly artifacts: readonly { readonly repo: string; readonly path: string }[];
}

export function validateCreateBundleRequest(value: unknown): CreateBundleRequest {
  const data = object(value, 'body', ['name', 'version', 'description', 'artifacts']);
  if (!Array.isArray(data.artifacts) || data.artifacts.length === 0 || data.artifacts.length > bundleArtifactsMax) {
    invalid(`artifacts must hold 1 to ${bundleArtifactsMax} entries of {repo, path}`);
  }
  return {
    name: validateBundleName(data.name),
    version: validateBundleName(data.version, 'version'),
    description: data.description === undefined ? '' : text(data.description, 'description', bundleDescriptionCharsMax),
    artifacts: data.artifacts.map((entry: unknown, index) => {
      const artifact = object(entry, `artifacts[${index}]`, ['repo', 'path']);
      return { repo: text(artifact.repo, `artifacts[${index}].repo`, 64, 1), path: text(artifact.path, `artifacts[${index}].path`, 8_192, 1) };
    }),
  };
}

/** `{url, username, password}` of one edge to distribute to. */
export interface DistributionTarget {
  readonly url: string;
  readonly username: string;
  readonly password: string;
}

export const distributionTargetsMax = 64;

export function validateDistributeRequest(value: unknown): readonly DistributionTarget[] {
  const data = object(value, 'body', ['targets']);
  if (!Array.isArray(data.targets) || data.targets.length === 0 || data.targets.length > distributionTargetsMax) {
    invalid(`targets must hold 1 to ${distributionTargetsMax} entries of {url, username, password}`);
  }
  return data.targets.map((entry: unknown, index) => {
    const target = object(entry, `targets[${index}]`, ['url', 'username', 'password']);
    const url = text(target.url, `targets[${index}].url`, 2_048, 1).replace(/\/+$/, '');
    if (!/^https?:\/\/[^/]+/.test(url)) invalid(`targets[${index}].url must be an http(s) URL such as http://edge:8081/artifactory`);
    return { url, username: text(target.username, `targets[${index}].username`, 255, 1), password: text(target.password, `targets[${index}].password`, 4_096) };
  });
}
