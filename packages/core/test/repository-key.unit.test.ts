import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isPackageType,
  isRepositoryClass,
  isStrataError,
  isValidRepositoryKey,
  PACKAGE_TYPES,
  REPOSITORY_CLASSES,
  repositoryKeyIdentity,
  validateRepositoryKey,
} from '../src/index.ts';
import { catchStrataError } from './strata-error-assertions.ts';

describe('validateRepositoryKey', () => {
  it('accepts keys of letters, digits, dashes, underscores and dots', () => {
    for (const key of ['libs-release-local', 'npm_remote', 'maven.central', 'A', 'x'.repeat(64), '_private', 'Docker-2']) {
      expect(validateRepositoryKey(key)).toBe(key);
    }
  });

  it('refuses an empty key, a key over 64 characters and a key beginning with a digit', () => {
    expect(catchStrataError(() => validateRepositoryKey(''), 'STRATA_ERR_REPO_KEY_INVALID').message).toMatch(/empty/);
    expect(catchStrataError(() => validateRepositoryKey('x'.repeat(65)), 'STRATA_ERR_REPO_KEY_INVALID').message).toMatch(/64/);
    expect(catchStrataError(() => validateRepositoryKey('1libs'), 'STRATA_ERR_REPO_KEY_INVALID').message).toMatch(/digit/);
  });

  it('refuses spaces, slashes and other special characters', () => {
    for (const key of ['libs local', 'libs/local', 'libs@local', 'libé', 'a:b', 'a\u0000']) {
      expect(catchStrataError(() => validateRepositoryKey(key), 'STRATA_ERR_REPO_KEY_INVALID').message).toMatch(/only letters/);
    }
  });

  it('refuses keys that would read as dot segments or shadow the api routes', () => {
    for (const key of ['.', '..', '.hidden', 'api', 'API', 'ui', 'list']) {
      catchStrataError(() => validateRepositoryKey(key), 'STRATA_ERR_REPO_KEY_INVALID');
    }
  });

  it('refuses values that are not strings', () => {
    for (const key of [undefined, null, 42, ['a']]) catchStrataError(() => validateRepositoryKey(key), 'STRATA_ERR_REPO_KEY_INVALID');
  });

  it('either accepts a key or refuses it with a StrataError for any string', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 70 }), (key) => {
        try {
          validateRepositoryKey(key);
          expect(key).toMatch(/^[A-Za-z_-][A-Za-z0-9_.-]{0,63}$/);
        } catch (error) {
          expect(isStrataError(error, 'STRATA_ERR_REPO_KEY_INVALID')).toBe(true);
          expect(isValidRepositoryKey(key)).toBe(false);
        }
      }),
    );
  });

  it('gives keys differing only in case the same identity', () => {
    expect(repositoryKeyIdentity('Libs-Release-Local')).toBe(repositoryKeyIdentity('libs-release-local'));
    expect(repositoryKeyIdentity('libs-a')).not.toBe(repositoryKeyIdentity('libs-b'));
  });
});

describe('package types and repository classes', () => {
  it('recognise the package types Artifactory offers and nothing else', () => {
    expect(PACKAGE_TYPES).toContain('npm');
    expect(PACKAGE_TYPES).toHaveLength(17);
    for (const type of PACKAGE_TYPES) expect(isPackageType(type)).toBe(true);
    for (const value of ['NPM', 'bower', '', 42, undefined]) expect(isPackageType(value)).toBe(false);
  });

  it('recognise the four repository classes', () => {
    expect([...REPOSITORY_CLASSES]).toEqual(['local', 'remote', 'virtual', 'federated']);
    for (const value of REPOSITORY_CLASSES) expect(isRepositoryClass(value)).toBe(true);
    for (const value of ['Local', 'edge', null]) expect(isRepositoryClass(value)).toBe(false);
  });
});
