import { compileRepoPatterns, normalizeRepositoryPath, PACKAGE_TYPES, REPOSITORY_CLASSES, validateRepositoryKey } from '@strata/core';

/**
 * The pieces of @strata/core the server uses for keys, paths and patterns, behind one small
 * surface so the routes do not depend on core's exact signatures.
 */
export const PACKAGE_TYPE_NAMES: readonly string[] = PACKAGE_TYPES;
export const REPOSITORY_CLASS_NAMES = REPOSITORY_CLASSES;

/** Throws STRATA_ERR_REPO_KEY_INVALID (400) unless `key` is a valid, unreserved key. */
export function checkRepositoryKey(key: string): void {
  validateRepositoryKey(key);
}

/** A path inside a repository, normalised (no leading or trailing slash); '' is the root. */
export function normalisePath(raw: string): string {
  return normalizeRepositoryPath(raw);
}

export interface PathFilter {
  /** The pattern that refuses `path` (the exclude entry that matches, or 'includesPattern'), or undefined. */
  refusal(path: string): string | undefined;
}

export function compilePathFilter(includesPattern: string, excludesPattern: string): PathFilter {
  const patterns = compileRepoPatterns({ includesPattern, excludesPattern });
  return {
    refusal(path) {
      if (patterns.matches(path)) return undefined;
      const explanation = patterns.explain(path);
      if (explanation.pattern === 'includesPattern') return `includesPattern ${patterns.includes.join(',')}`;
      return explanation.pattern;
    },
  };
}

/** Validates a pattern field at configuration time (400 STRATA_ERR_PATTERN_INVALID). */
export function checkPatterns(includesPattern: string, excludesPattern: string): void {
  compileRepoPatterns({ includesPattern, excludesPattern });
}
