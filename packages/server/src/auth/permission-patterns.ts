import { compileRepoPatterns } from '@strata/core';

/**
 * The include/exclude patterns of a permission target, compiled once when the target is
 * applied: core's repository pattern compiler (comma-separated Ant patterns; `**`, `*`, `?`;
 * a trailing `/` means `/**`; linear-time RegExps). A blank include list means "everything".
 */
export interface PermissionPatterns {
  /** Whether a normal repository path (no leading slash; see normalizeRepositoryPath) is covered. */
  matches(path: string): boolean;
}

export function compilePermissionPatterns(includesPattern: string, excludesPattern: string): PermissionPatterns {
  return compileRepoPatterns({ includesPattern: includesPattern.trim() === '' ? '**' : includesPattern, excludesPattern });
}
