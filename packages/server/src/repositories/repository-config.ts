import { StrataError } from '@strata/core';
import { checkPatterns, checkRepositoryKey, PACKAGE_TYPE_NAMES, REPOSITORY_CLASS_NAMES } from '../core-slice.ts';

/**
 * Artifactory's repository configuration JSON (REFERENCE.md): which fields we accept, their
 * JSON types and defaults. Unknown fields are dropped, wrong types refused with a 400.
 */
type FieldType = 'string' | 'boolean' | 'integer' | 'string[]' | 'object' | 'object[]';

const COMMON_FIELDS: Record<string, FieldType> = {
  key: 'string',
  rclass: 'string',
  packageType: 'string',
  description: 'string',
  notes: 'string',
  includesPattern: 'string',
  excludesPattern: 'string',
  repoLayoutRef: 'string',
  handleReleases: 'boolean',
  handleSnapshots: 'boolean',
  maxUniqueSnapshots: 'integer',
  suppressPomConsistencyChecks: 'boolean',
  blackedOut: 'boolean',
  propertySets: 'string[]',
  xrayIndex: 'boolean',
  priorityResolution: 'boolean',
  archiveBrowsingEnabled: 'boolean',
  checksumPolicyType: 'string',
  snapshotVersionBehavior: 'string',
  // remote
  url: 'string',
  username: 'string',
  password: 'string',
  proxy: 'string',
  hardFail: 'boolean',
  offline: 'boolean',
  storeArtifactsLocally: 'boolean',
  socketTimeoutMillis: 'integer',
  retrievalCachePeriodSecs: 'integer',
  missedRetrievalCachePeriodSecs: 'integer',
  assumedOfflinePeriodSecs: 'integer',
  listRemoteFolderItems: 'boolean',
  contentSynchronisation: 'object',
  // remote, pypi: where the simple index is (url is where the files are)
  pyPIRegistryUrl: 'string',
  pyPIRepositorySuffix: 'string',
  // virtual
  repositories: 'string[]',
  defaultDeploymentRepo: 'string',
  artifactoryRequestsCanRetrieveRemoteArtifacts: 'boolean',
  // federated
  members: 'object[]',
};

/** Fields fixed at creation: an update that changes them is refused. */
const IMMUTABLE_FIELDS = ['key', 'rclass', 'packageType'] as const;

const DEFAULTS_BY_CLASS: Record<string, Record<string, unknown>> = {
  local: {
    handleReleases: true,
    handleSnapshots: true,
    maxUniqueSnapshots: 0,
    suppressPomConsistencyChecks: false,
    checksumPolicyType: 'client-checksums',
    snapshotVersionBehavior: 'unique',
  },
  federated: {
    handleReleases: true,
    handleSnapshots: true,
    maxUniqueSnapshots: 0,
    suppressPomConsistencyChecks: false,
    checksumPolicyType: 'client-checksums',
    snapshotVersionBehavior: 'unique',
    members: [],
  },
  remote: {
    handleReleases: true,
    handleSnapshots: true,
    maxUniqueSnapshots: 0,
    hardFail: false,
    offline: false,
    storeArtifactsLocally: true,
    socketTimeoutMillis: 15_000,
    retrievalCachePeriodSecs: 7_200,
    missedRetrievalCachePeriodSecs: 1_800,
    assumedOfflinePeriodSecs: 300,
    listRemoteFolderItems: true,
  },
  virtual: {
    repositories: [],
    artifactoryRequestsCanRetrieveRemoteArtifacts: false,
  },
};

const COMMON_DEFAULTS: Record<string, unknown> = {
  description: '',
  notes: '',
  includesPattern: '**/*',
  excludesPattern: '',
  repoLayoutRef: 'simple-default',
  blackedOut: false,
  propertySets: [],
  xrayIndex: false,
  priorityResolution: false,
  archiveBrowsingEnabled: false,
};

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', message);
}

function checkType(field: string, type: FieldType, value: unknown): void {
  const ok =
    (type === 'string' && typeof value === 'string') ||
    (type === 'boolean' && typeof value === 'boolean') ||
    (type === 'integer' && typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) ||
    (type === 'string[]' && Array.isArray(value) && value.every((v) => typeof v === 'string')) ||
    (type === 'object' && typeof value === 'object' && value !== null && !Array.isArray(value)) ||
    (type === 'object[]' && Array.isArray(value) && value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v)));
  if (!ok) throw invalid(`field '${field}' must be ${type === 'string[]' ? 'an array of strings' : type === 'object[]' ? 'an array of objects' : `a${type === 'integer' ? 'n' : ''} ${type}`}`);
}

/** Keeps the known fields of a request body, type-checked. */
function pickKnownFields(body: unknown): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the configuration must be a JSON object');
  const picked: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(body)) {
    const type = COMMON_FIELDS[field];
    if (type === undefined || value === null || value === undefined) continue;
    checkType(field, type, value);
    picked[field] = value;
  }
  return picked;
}

const PACKAGE_TYPE_BY_LOWER = new Map(PACKAGE_TYPE_NAMES.map((name) => [name.toLowerCase(), name]));

/** The full configuration of a repository about to be created, defaults filled in. */
export function configForCreate(key: string, body: unknown): Record<string, unknown> {
  checkRepositoryKey(key);
  const fields = pickKnownFields(body);
  if (fields.key !== undefined && fields.key !== key) throw invalid(`the key in the body ('${String(fields.key)}') differs from the key in the URL ('${key}')`);
  const rclass = fields.rclass;
  if (typeof rclass !== 'string' || !(REPOSITORY_CLASS_NAMES as readonly string[]).includes(rclass)) {
    throw invalid(`rclass must be one of ${REPOSITORY_CLASS_NAMES.join(', ')}`);
  }
  const packageType = PACKAGE_TYPE_BY_LOWER.get(String(fields.packageType ?? 'generic').toLowerCase());
  if (packageType === undefined) throw invalid(`unknown packageType '${String(fields.packageType)}'`);
  if (rclass === 'remote' && (typeof fields.url !== 'string' || !/^https?:\/\//.test(fields.url))) {
    throw invalid('a remote repository needs an http(s) url');
  }
  if (fields.pyPIRegistryUrl !== undefined && !/^https?:\/\//.test(String(fields.pyPIRegistryUrl))) throw invalid('pyPIRegistryUrl must be an http(s) url');
  const config: Record<string, unknown> = { ...COMMON_DEFAULTS, ...DEFAULTS_BY_CLASS[rclass], ...fields, key, rclass, packageType };
  checkPatterns(String(config.includesPattern), String(config.excludesPattern));
  return config;
}

/** The fields an update changes (only those that differ), or a 400 for immutable fields. */
export function patchForUpdate(current: Readonly<Record<string, unknown>>, body: unknown): Record<string, unknown> {
  const fields = pickKnownFields(body);
  for (const field of IMMUTABLE_FIELDS) {
    const value = fields[field];
    if (value === undefined) continue;
    const same = field === 'packageType' ? String(value).toLowerCase() === String(current[field]).toLowerCase() : value === current[field];
    if (!same) throw invalid(`${field} cannot be changed after creation (is '${String(current[field])}')`);
    delete fields[field];
  }
  if (current.rclass === 'remote' && fields.url !== undefined && !/^https?:\/\//.test(String(fields.url))) {
    throw invalid('a remote repository needs an http(s) url');
  }
  if (fields.pyPIRegistryUrl !== undefined && !/^https?:\/\//.test(String(fields.pyPIRegistryUrl))) throw invalid('pyPIRegistryUrl must be an http(s) url');
  checkPatterns(String(fields.includesPattern ?? current.includesPattern ?? ''), String(fields.excludesPattern ?? current.excludesPattern ?? ''));
  const patch: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) {
    if (JSON.stringify(current[field]) !== JSON.stringify(value)) patch[field] = value;
  }
  return patch;
}

/** What GET shows: secrets are never echoed back. */
export function configForDisplay(config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const shown: Record<string, unknown> = { ...config };
  if (typeof shown.password === 'string' && shown.password !== '') shown.password = '';
  return shown;
}
