/**
 * Paths inside a repository, as every event, projection and route sees them: segments
 * joined by `/`, no leading or trailing `/`, the repository root being ''. Nothing is
 * collapsed silently: a path that would need `..`, `.` or `//` resolved is refused, so two
 * spellings can never name one artifact (and one spelling never escapes its repository).
 */
import { StrataError } from './errors.ts';

export const repositoryPathCharsMax = 1024;
export const repositoryPathSegmentCharsMax = 255;

export const REPOSITORY_PATH_INVALID_REASONS = [
  'not-a-string',
  'too-long',
  'empty-segment',
  'dot-segment',
  'segment-too-long',
  'control-character',
  'backslash',
  'lone-surrogate',
] as const;
export type RepositoryPathInvalidReason = (typeof REPOSITORY_PATH_INVALID_REASONS)[number];

// C0 and C1 controls and DEL: never part of a name, and NUL in particular truncates paths in
// lower layers.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
// A lone UTF-16 surrogate has no UTF-8 form: it would not survive encoding or a URL.
const LONE_SURROGATE = /\p{Cs}/u;

const REASON_MESSAGES: Record<RepositoryPathInvalidReason, string> = {
  'not-a-string': 'a path must be a string',
  'too-long': `a path must be at most ${repositoryPathCharsMax} characters`,
  'empty-segment': "a path must not contain an empty segment ('//')",
  'dot-segment': "a path must not contain a '.' or '..' segment",
  'segment-too-long': `a path segment must be at most ${repositoryPathSegmentCharsMax} characters`,
  'control-character': 'a path must not contain control characters (NUL included)',
  backslash: 'a path must not contain a backslash',
  'lone-surrogate': 'a path must be well-formed Unicode (no lone surrogates)',
};

function refuse(reason: RepositoryPathInvalidReason): never {
  throw new StrataError('STRATA_ERR_PATH_INVALID', `invalid path: ${REASON_MESSAGES[reason]}`, { reason });
}

/**
 * The normal form of `raw`: one leading and one trailing `/` are dropped; anything else that
 * is not already normal is refused with STRATA_ERR_PATH_INVALID (details.reason says why).
 * '' and '/' are the repository root and normalise to ''.
 */
export function normalizeRepositoryPath(raw: string): string {
  if (typeof raw !== 'string') refuse('not-a-string');
  // Cheap refusal before any scanning of a hostile, huge input.
  if (raw.length > repositoryPathCharsMax + 2) refuse('too-long');
  let path = raw.startsWith('/') ? raw.slice(1) : raw;
  if (path === '') return '';
  if (path.endsWith('/')) {
    path = path.slice(0, -1);
    if (path === '') refuse('empty-segment'); // raw was '//'
  }
  if (path.length > repositoryPathCharsMax) refuse('too-long');
  if (CONTROL_CHARACTER.test(path)) refuse('control-character');
  if (path.includes('\\')) refuse('backslash');
  if (LONE_SURROGATE.test(path)) refuse('lone-surrogate');
  for (const segment of path.split('/')) {
    if (segment === '') refuse('empty-segment');
    if (segment === '.' || segment === '..') refuse('dot-segment');
    if (segment.length > repositoryPathSegmentCharsMax) refuse('segment-too-long');
  }
  return path;
}

/**
 * Whether `value` is a string already in normal form: `normalizeRepositoryPath(value) ===
 * value`, decided in one pass over its char codes (a property test holds the two equal).
 * Validation asks it of every path an event carries; normalizing to compare (two regular
 * expressions and a split) cost a receiver catching up a microsecond and more per event.
 */
export function isNormalRepositoryPath(value: unknown): value is string {
  if (typeof value !== 'string') return false;
  const length = value.length;
  if (length > repositoryPathCharsMax) return false;
  let segmentStart = 0;
  // One step past the end: the last segment ends there as at a '/'.
  for (let index = 0; index <= length; index++) {
    const code = index === length ? 0x2f : value.charCodeAt(index);
    if (code === 0x2f) {
      const segmentLength = index - segmentStart;
      // An empty segment: a leading, trailing or doubled '/' — or the root, ''.
      if (segmentLength === 0) return length === 0;
      if (segmentLength > repositoryPathSegmentCharsMax) return false;
      if (value.charCodeAt(segmentStart) === 0x2e && (segmentLength === 1 || (segmentLength === 2 && value.charCodeAt(segmentStart + 1) === 0x2e))) return false;
      segmentStart = index + 1;
      continue;
    }
    // CONTROL_CHARACTER, and the backslash.
    if (code <= 0x1f || (code >= 0x7f && code <= 0x9f) || code === 0x5c) return false;
    // LONE_SURROGATE: a high surrogate not followed by a low one, or a low one on its own.
    if (code >= 0xd800 && code <= 0xdfff) {
      if (code >= 0xdc00) return false;
      const next = value.charCodeAt(index + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return false;
      index++;
    }
  }
  return true;
}

/** The segments of a normal path; [] for the root. */
export function pathSegments(path: string): string[] {
  return path === '' ? [] : path.split('/');
}

/** The last segment of a normal path; '' for the root. */
export function pathName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

/** The folder holding a normal path: '' for a top-level entry, undefined for the root. */
export function parentPath(path: string): string | undefined {
  if (path === '') return undefined;
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

/**
 * The folders strictly between the root and `path`, outermost first:
 * 'a/b/c' → ['a', 'a/b']. Neither the root nor the path itself is included.
 */
export function ancestorPaths(path: string): string[] {
  const ancestors: string[] = [];
  let slash = path.indexOf('/');
  while (slash !== -1) {
    ancestors.push(path.slice(0, slash));
    slash = path.indexOf('/', slash + 1);
  }
  return ancestors;
}

/** Whether `path` is `prefix` itself or lies below it; the root '' covers every path. */
export function isPathUnder(path: string, prefix: string): boolean {
  if (prefix === '') return true;
  return path === prefix || (path.length > prefix.length && path.startsWith(prefix) && path[prefix.length] === '/');
}
