import { StrataError } from '@strata/core';
import type { Properties } from '@strata/core';
import { normalisePath } from '../core-slice.ts';

/** A repository path as a request names it: `/{repo}/{path}` with optional matrix params. */
export interface ArtifactAddress {
  readonly repo: string;
  /** Normalised; '' for the repository root. */
  readonly path: string;
  /** `;key=value` matrix parameters found anywhere in the path (repeated keys collect values). */
  readonly matrix: Properties;
  /** The request ended in '/' (a folder). */
  readonly trailingSlash: boolean;
}

function decodeSegment(raw: string): string {
  let decoded = raw;
  try {
    if (raw.includes('%')) decoded = decodeURIComponent(raw);
  } catch {
    throw new StrataError('STRATA_ERR_PATH_INVALID', 'malformed percent-encoding in path');
  }
  // An encoded slash, backslash or NUL inside one segment would smuggle a different path past the router.
  if (decoded.includes('/') || decoded.includes('\\') || decoded.includes('\0')) {
    throw new StrataError('STRATA_ERR_PATH_INVALID', 'encoded slash, backslash or NUL in path');
  }
  return decoded;
}

/**
 * Parses the raw request URL after `prefix` (e.g. `/artifactory/` or `/artifactory/api/storage/`).
 * Works on the raw URL, not fastify's decoded params, so that matrix params and encoded
 * separators are seen exactly as the client sent them.
 */
export function parseArtifactAddress(rawUrl: string, prefix: string): ArtifactAddress {
  const queryAt = rawUrl.indexOf('?');
  const rawPath = queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt);
  if (!rawPath.startsWith(prefix)) throw new StrataError('STRATA_ERR_PATH_INVALID', 'unexpected path prefix');
  const rest = rawPath.slice(prefix.length);
  const trailingSlash = rest.endsWith('/');
  const matrix: Record<string, string[]> = {};
  const names: string[] = [];
  const rawSegments = rest.split('/');
  for (let index = 0; index < rawSegments.length; index++) {
    const rawSegment = rawSegments[index]!;
    if (rawSegment === '') {
      // Only the trailing slash may leave an empty segment: '//' would be a second spelling of a path.
      if (index === rawSegments.length - 1) continue;
      throw new StrataError('STRATA_ERR_PATH_INVALID', "invalid path: a path must not contain an empty segment ('//')");
    }
    const [rawName = '', ...params] = rawSegment.split(';');
    for (const param of params) {
      if (param === '') continue;
      const equals = param.indexOf('=');
      const key = decodeSegment(equals < 0 ? param : param.slice(0, equals)).trim();
      const value = equals < 0 ? '' : decodeSegment(param.slice(equals + 1));
      if (key === '') continue;
      (matrix[key] ??= []).push(value);
    }
    if (rawName !== '') names.push(decodeSegment(rawName));
  }
  const [repo, ...pathSegments] = names;
  if (repo === undefined || repo === '') throw new StrataError('STRATA_ERR_PATH_INVALID', 'missing repository key');
  for (const segment of names) {
    if (segment === '.' || segment === '..') throw new StrataError('STRATA_ERR_PATH_INVALID', "'.' and '..' are not allowed in paths");
  }
  return { repo, path: normalisePath(pathSegments.join('/')), matrix, trailingSlash };
}
