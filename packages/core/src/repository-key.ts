/**
 * Repository keys, package types and repository classes, as Artifactory names them.
 */
import { StrataError } from './errors.ts';

export const repositoryKeyCharsMax = 64;

const REPOSITORY_KEY = /^[A-Za-z0-9_.-]+$/;

/**
 * Keys that would shadow our own routes under `/artifactory/` (`/artifactory/api/...`,
 * `/artifactory/ui/...`) or Artifactory's reserved words. Compared case-insensitively.
 */
export const RESERVED_REPOSITORY_KEYS = ['api', 'ui', 'list', 'repo', 'webapp', 'favicon.ico'] as const;
const RESERVED_KEY_SET: ReadonlySet<string> = new Set(RESERVED_REPOSITORY_KEYS);

function refuse(key: unknown, message: string): never {
  throw new StrataError('STRATA_ERR_REPO_KEY_INVALID', `invalid repository key: ${message}`, {
    key: typeof key === 'string' ? key.slice(0, repositoryKeyCharsMax + 1) : undefined,
  });
}

/**
 * Returns `key` if it is a valid repository key, otherwise throws
 * STRATA_ERR_REPO_KEY_INVALID: non-empty, at most 64 characters, only letters, digits,
 * `-`, `_` and `.`, not beginning with a digit (Artifactory's rule) nor with `.` (so no key
 * can read as a `.` or `..` URL segment), and not a reserved word.
 */
export function validateRepositoryKey(key: unknown): string {
  if (typeof key !== 'string') refuse(key, 'must be a string');
  if (key === '') refuse(key, 'must not be empty');
  if (key.length > repositoryKeyCharsMax) refuse(key, `must be at most ${repositoryKeyCharsMax} characters`);
  if (!REPOSITORY_KEY.test(key)) {
    refuse(key, "may contain only letters, digits, '-', '_' and '.' (no spaces or other special characters)");
  }
  if (/^[0-9]/.test(key)) refuse(key, 'must not begin with a digit');
  if (key.startsWith('.')) refuse(key, "must not begin with '.'");
  if (RESERVED_KEY_SET.has(repositoryKeyIdentity(key))) refuse(key, `'${key}' is reserved`);
  return key;
}

export function isValidRepositoryKey(key: unknown): key is string {
  try {
    validateRepositoryKey(key);
    return true;
  } catch {
    return false;
  }
}

/** Keys are unique regardless of case: `Libs-Local` and `libs-local` are the same repository. */
export function repositoryKeyIdentity(key: string): string {
  return key.toLowerCase();
}

export const PACKAGE_TYPES = [
  'generic',
  'npm',
  'pypi',
  'maven',
  'gradle',
  'docker',
  'go',
  'nuget',
  'helm',
  'debian',
  'rpm',
  'conan',
  'cargo',
  'gems',
  'composer',
  'conda',
  'terraform',
] as const;
export type PackageType = (typeof PACKAGE_TYPES)[number];
const PACKAGE_TYPE_SET: ReadonlySet<string> = new Set(PACKAGE_TYPES);
export function isPackageType(value: unknown): value is PackageType {
  return typeof value === 'string' && PACKAGE_TYPE_SET.has(value);
}

export const REPOSITORY_CLASSES = ['local', 'remote', 'virtual', 'federated'] as const;
export type RepositoryClass = (typeof REPOSITORY_CLASSES)[number];
const REPOSITORY_CLASS_SET: ReadonlySet<string> = new Set(REPOSITORY_CLASSES);
export function isRepositoryClass(value: unknown): value is RepositoryClass {
  return typeof value === 'string' && REPOSITORY_CLASS_SET.has(value);
}
