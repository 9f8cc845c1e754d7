/**
 * Include and exclude patterns of a repository: comma-separated Ant-style patterns, as
 * Artifactory reads them. `**` is any number of path segments (zero included), `*` any
 * characters within one segment, `?` one character within a segment; an entry ending in `/`
 * means `/**`. A path is allowed when some include matches and no exclude does.
 *
 * Patterns are compiled to one RegExp per list, once. Patterns come from configuration that
 * federation peers also send, and are matched against every request path, so the RegExp is
 * built to run in linear-ish time whatever the pattern: each `*` after the first in a
 * segment, and each block of segments between two `**`, commits to its earliest match
 * through a lookahead-and-backreference (an atomic group), which is exactly what the
 * greedy glob algorithm does and leaves nothing for the engine to backtrack into.
 */
import { StrataError } from './errors.ts';
import { repositoryPathCharsMax } from './repository-path.ts';

export const DEFAULT_INCLUDES_PATTERN = '**/*';
export const DEFAULT_EXCLUDES_PATTERN = '';
/** The longest pattern list (the whole comma-separated field). */
export const repositoryPatternCharsMax = 16 * 1024;
export const repositoryPatternEntriesMax = 256;

export type RepositoryPatternField = 'includesPattern' | 'excludesPattern';

export interface RepoPatternsOptions {
  /** Comma-separated Ant patterns; empty or blank means the default `**` + `/*` (all). */
  readonly includesPattern?: string;
  /** Comma-separated Ant patterns; empty means none. */
  readonly excludesPattern?: string;
}

export interface RepoPatternsExplanation {
  readonly allowed: boolean;
  /** When refused: the exclude entry that matched, or 'includesPattern' when no include did. */
  readonly pattern?: string;
}

export interface RepoPatterns {
  /** The include entries after trimming and normalisation. */
  readonly includes: readonly string[];
  readonly excludes: readonly string[];
  /** Whether a normal repository path (see normalizeRepositoryPath) is allowed. */
  matches(path: string): boolean;
  explain(path: string): RepoPatternsExplanation;
}

const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /\p{Cs}/u;
const SYNTAX_CHARACTER = /[\\^$.*+?()[\]{}|/]/;
const SEGMENT = '/[^/]+';

function refuse(field: RepositoryPatternField, message: string, entry?: string): never {
  throw new StrataError('STRATA_ERR_PATTERN_INVALID', `invalid ${field}: ${message}`, {
    field,
    ...(entry === undefined ? {} : { pattern: entry.slice(0, 256) }),
  });
}

/**
 * Splits a comma-separated list into normal entries: blank entries are ignored, whitespace
 * around entries trimmed, a leading `/` dropped, a trailing `/` read as `/**`, and runs of
 * `**` segments collapsed. Entries that can never match a valid path (control characters,
 * backslashes, empty, `.` or `..` segments) are refused with STRATA_ERR_PATTERN_INVALID.
 */
export function parsePatternList(list: string, field: RepositoryPatternField): string[] {
  if (typeof list !== 'string') refuse(field, 'must be a string');
  if (list.length > repositoryPatternCharsMax) refuse(field, `must be at most ${repositoryPatternCharsMax} characters`);
  const entries: string[] = [];
  for (const raw of list.split(',')) {
    const trimmed = raw.trim();
    if (trimmed === '') continue;
    if (trimmed.length > repositoryPathCharsMax) {
      refuse(field, `an entry must be at most ${repositoryPathCharsMax} characters`, trimmed);
    }
    if (CONTROL_CHARACTER.test(trimmed)) refuse(field, 'an entry must not contain control characters (NUL included)', trimmed);
    if (trimmed.includes('\\')) refuse(field, 'an entry must not contain a backslash', trimmed);
    if (LONE_SURROGATE.test(trimmed)) refuse(field, 'an entry must be well-formed Unicode', trimmed);
    let entry = trimmed.endsWith('/') ? `${trimmed}**` : trimmed;
    if (entry.startsWith('/')) entry = entry.slice(1);
    const segments: string[] = [];
    for (const segment of entry.split('/')) {
      if (segment === '') refuse(field, "an entry must not contain an empty segment ('//')", trimmed);
      if (segment === '.' || segment === '..') refuse(field, "an entry must not contain a '.' or '..' segment", trimmed);
      if (segment === '**' && segments.at(-1) === '**') continue;
      segments.push(segment);
    }
    entries.push(segments.join('/'));
    if (entries.length > repositoryPatternEntriesMax) {
      refuse(field, `must hold at most ${repositoryPatternEntriesMax} entries`);
    }
  }
  return entries;
}

class GroupNames {
  #next = 0;
  next(): string {
    return `g${this.#next++}`;
  }
}

/** Characters of a segment pattern without `*`: `?` is any one character but `/`. */
function literalSource(text: string): string {
  let source = '';
  for (const character of text) {
    if (character === '?') source += '[^/]';
    else source += SYNTAX_CHARACTER.test(character) ? `\\${character}` : character;
  }
  return source;
}

/** One segment; `**` inside a segment (as in `a**b`) is just `*`. */
function segmentSource(segment: string, names: GroupNames): string {
  const parts = segment.split(/\*+/);
  if (parts.length === 1) return literalSource(segment);
  let source = literalSource(parts[0] ?? '');
  for (const middle of parts.slice(1, -1)) {
    const name = names.next();
    source += `(?=(?<${name}>[^/]*?${literalSource(middle)}))\\k<${name}>`;
  }
  return `${source}[^/]*${literalSource(parts.at(-1) ?? '')}`;
}

function blockSource(segments: readonly string[], names: GroupNames): string {
  return segments.map((segment) => `/${segmentSource(segment, names)}`).join('');
}

/**
 * The RegExp source of one normal entry, matched against '/' + path (and '' for the root),
 * so every segment, `**` included, is "a slash and a name".
 */
function entrySource(entry: string, names: GroupNames): string {
  const blocks: string[][] = [[]];
  for (const segment of entry.split('/')) {
    if (segment === '**') blocks.push([]);
    else blocks.at(-1)?.push(segment);
  }
  const first = blocks[0] ?? [];
  if (blocks.length === 1) return blockSource(first, names);
  let source = blockSource(first, names);
  for (const block of blocks.slice(1, -1)) {
    const name = names.next();
    source += `(?=(?<${name}>(?:${SEGMENT})*?${blockSource(block, names)}(?![^/])))\\k<${name}>`;
  }
  return `${source}(?:${SEGMENT})*${blockSource(blocks.at(-1) ?? [], names)}`;
}

/** A RegExp matching '/' + path (or '' for the root) against any of the normal entries. */
function compileEntries(entries: readonly string[]): RegExp {
  const names = new GroupNames();
  if (entries.length === 0) return /(?!)/;
  return new RegExp(`^(?:${entries.map((entry) => entrySource(entry, names)).join('|')})$`, 'u');
}

function subject(path: string): string {
  return path === '' ? '' : `/${path}`;
}

/**
 * Compiles a repository's include and exclude patterns. Paths handed to `matches` and
 * `explain` must be normal (normalizeRepositoryPath); they are not re-validated here because
 * this runs on every request.
 */
export function compileRepoPatterns(options: RepoPatternsOptions = {}): RepoPatterns {
  let includes = parsePatternList(options.includesPattern ?? DEFAULT_INCLUDES_PATTERN, 'includesPattern');
  // A blank include field reads as the default, as in Artifactory's UI, not as "nothing".
  if (includes.length === 0) includes = [DEFAULT_INCLUDES_PATTERN];
  const excludes = parsePatternList(options.excludesPattern ?? DEFAULT_EXCLUDES_PATTERN, 'excludesPattern');
  const includesRegExp = compileEntries(includes);
  const excludesRegExp = compileEntries(excludes);
  const excludeRegExps = excludes.map((entry) => compileEntries([entry]));
  return {
    includes,
    excludes,
    matches(path: string): boolean {
      const text = subject(path);
      return includesRegExp.test(text) && !excludesRegExp.test(text);
    },
    explain(path: string): RepoPatternsExplanation {
      const text = subject(path);
      if (!includesRegExp.test(text)) return { allowed: false, pattern: 'includesPattern' };
      const index = excludeRegExps.findIndex((regExp) => regExp.test(text));
      return index === -1 ? { allowed: true } : { allowed: false, pattern: excludes[index] };
    },
  };
}

/**
 * Whether a pattern list matches a normal path. Compiles on every call: for repeated
 * matching, compile once with compileRepoPatterns.
 */
export function matchesAntPattern(pattern: string, path: string): boolean {
  return compileEntries(parsePatternList(pattern, 'includesPattern')).test(subject(path));
}
