import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ancestorPaths,
  isNormalRepositoryPath,
  isPathUnder,
  isStrataError,
  normalizeRepositoryPath,
  parentPath,
  pathName,
  pathSegments,
  repositoryPathCharsMax,
  repositoryPathSegmentCharsMax,
} from '../src/index.ts';
import { arbitraryPathSegment, arbitraryRepositoryPath, arbitraryRepositoryPathOrRoot } from './arbitraries.ts';
import { catchStrataError } from './strata-error-assertions.ts';

function refusalReason(raw: string): unknown {
  return catchStrataError(() => normalizeRepositoryPath(raw), 'STRATA_ERR_PATH_INVALID').details?.['reason'];
}

describe('normalizeRepositoryPath', () => {
  it('drops one leading and one trailing slash and keeps everything else as it is', () => {
    expect(normalizeRepositoryPath('/org/acme/lib-1.0.jar')).toBe('org/acme/lib-1.0.jar');
    expect(normalizeRepositoryPath('org/acme/')).toBe('org/acme');
    expect(normalizeRepositoryPath('/@scope/pkg/-/pkg-1.0.0.tgz/')).toBe('@scope/pkg/-/pkg-1.0.0.tgz');
    expect(normalizeRepositoryPath('a b/ c /é😀')).toBe('a b/ c /é😀');
  });

  it('reads the empty string and a lone slash as the repository root', () => {
    expect(normalizeRepositoryPath('')).toBe('');
    expect(normalizeRepositoryPath('/')).toBe('');
  });

  it('refuses dot segments instead of resolving them', () => {
    for (const raw of ['..', '.', 'a/../b', 'a/./b', '../etc/passwd', 'a/..', '/./']) {
      expect(refusalReason(raw)).toBe('dot-segment');
    }
  });

  it('refuses empty segments instead of collapsing them', () => {
    for (const raw of ['a//b', '//', '//a', 'a//', '///']) expect(refusalReason(raw)).toBe('empty-segment');
  });

  it('refuses NUL, other control characters, backslashes and lone surrogates', () => {
    expect(refusalReason('a\u0000b')).toBe('control-character');
    expect(refusalReason('a/b\nc')).toBe('control-character');
    expect(refusalReason('a\u007f')).toBe('control-character');
    expect(refusalReason('a\u0085')).toBe('control-character');
    expect(refusalReason('a\\b')).toBe('backslash');
    expect(refusalReason('a\ud800b')).toBe('lone-surrogate');
  });

  it('refuses segments over 255 characters and paths over 1024 characters', () => {
    expect(normalizeRepositoryPath('x'.repeat(repositoryPathSegmentCharsMax))).toHaveLength(255);
    expect(refusalReason('x'.repeat(repositoryPathSegmentCharsMax + 1))).toBe('segment-too-long');
    const longest = Array.from({ length: 8 }, () => 'y'.repeat(127)).join('/');
    expect(longest.length).toBeLessThanOrEqual(repositoryPathCharsMax);
    expect(normalizeRepositoryPath(`/${longest}/`)).toBe(longest);
    expect(refusalReason(`${longest}/${'z'.repeat(repositoryPathCharsMax - longest.length)}`)).toBe('too-long');
    expect(refusalReason('a/'.repeat(10_000))).toBe('too-long');
  });

  it('names the reason in the error message', () => {
    expect(catchStrataError(() => normalizeRepositoryPath('a/../b')).message).toMatch(/'\.\.'/);
  });

  it('is idempotent on valid paths', () => {
    fc.assert(
      fc.property(arbitraryRepositoryPathOrRoot, (path) => {
        expect(normalizeRepositoryPath(path)).toBe(path);
        expect(normalizeRepositoryPath(`/${path}`)).toBe(path);
        expect(isNormalRepositoryPath(path)).toBe(true);
      }),
    );
  });

  it('refuses any path with a .. segment wherever it stands', () => {
    fc.assert(
      fc.property(fc.array(arbitraryPathSegment, { maxLength: 5 }), fc.nat(), (segments, at) => {
        const withDots = [...segments];
        withDots.splice(at % (segments.length + 1), 0, '..');
        expect(refusalReason(withDots.join('/'))).toBe('dot-segment');
      }),
    );
  });

  it('either returns a normal path or throws a StrataError for any string at all', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: fc.constantFrom('a', '/', '.', '\\', '\u0000'), maxLength: 12 })), (raw) => {
        try {
          const path = normalizeRepositoryPath(raw);
          expect(normalizeRepositoryPath(path)).toBe(path);
          expect(path.startsWith('/') || path.endsWith('/')).toBe(false);
        } catch (error) {
          expect(isStrataError(error, 'STRATA_ERR_PATH_INVALID')).toBe(true);
        }
      }),
    );
  });

  it('isNormalRepositoryPath says exactly whether normalizing gives the same string, for any string', () => {
    const normalizes = (value: string): boolean => {
      try {
        return normalizeRepositoryPath(value) === value;
      } catch {
        return false;
      }
    };
    const unit = fc.constantFrom('a', 'b', '/', '.', '\\', '\u0000', '\u001f', '\u007f', '\u009f', '\u00a0', '\ud800', '\udbff', '\udc00', '\udfff', '\u00e9', '\ud83d\ude00');
    const segment = (length: number): fc.Arbitrary<string> => fc.constantFrom('x', '.').map((char) => char.repeat(length));
    const anyPath = fc.oneof(
      fc.string({ unit, maxLength: 24 }),
      fc.string({ maxLength: 24 }),
      arbitraryRepositoryPathOrRoot,
      // Around the limits: segments of 254 to 256 characters, paths of 1,023 to 1,026.
      fc.tuple(fc.integer({ min: 254, max: 256 }), fc.constantFrom('', '/', 'a/')).chain(([length, before]) => segment(length).map((long) => before + long)),
      fc.integer({ min: 1021, max: 1026 }).map((length) => `${'a'.repeat(200)}/`.repeat(6).slice(0, length)),
      fc.integer({ min: 1021, max: 1026 }).map((length) => `/${`${'a'.repeat(200)}/`.repeat(6)}`.slice(0, length)),
    );
    fc.assert(
      fc.property(anyPath, (value) => {
        expect(isNormalRepositoryPath(value)).toBe(normalizes(value));
      }),
      { numRuns: 3000 },
    );
    for (const value of ['', '/', '//', 'a', 'a/', '/a', 'a//b', '.', '..', 'a/./b', 'a/../b', '...', 'a/.b', '.a/..b', 'a\\b', '\ud800', '\udc00a', '\ud83d\ude00']) {
      expect(isNormalRepositoryPath(value), JSON.stringify(value)).toBe(normalizes(value));
    }
  });

  it('refuses a value that is not a string even when the types were bypassed', () => {
    catchStrataError(() => normalizeRepositoryPath(42 as unknown as string), 'STRATA_ERR_PATH_INVALID');
  });
});

describe('path helpers', () => {
  it('split a path into segments, the root having none', () => {
    expect(pathSegments('a/b/c')).toEqual(['a', 'b', 'c']);
    expect(pathSegments('')).toEqual([]);
  });

  it('give the parent folder, the root for a top-level entry, and nothing for the root', () => {
    expect(parentPath('a/b/c')).toBe('a/b');
    expect(parentPath('a')).toBe('');
    expect(parentPath('')).toBeUndefined();
    expect(pathName('a/b/c.jar')).toBe('c.jar');
    expect(pathName('')).toBe('');
  });

  it('list the ancestors strictly between the root and the path, outermost first', () => {
    expect(ancestorPaths('a/b/c')).toEqual(['a', 'a/b']);
    expect(ancestorPaths('a')).toEqual([]);
    expect(ancestorPaths('')).toEqual([]);
  });

  it('treat a path as under itself, its ancestors and the root, but not under a sibling sharing a prefix', () => {
    expect(isPathUnder('a/b', 'a/b')).toBe(true);
    expect(isPathUnder('a/b/c', 'a')).toBe(true);
    expect(isPathUnder('a/b', '')).toBe(true);
    expect(isPathUnder('', '')).toBe(true);
    expect(isPathUnder('ab/c', 'a')).toBe(false);
    expect(isPathUnder('a', 'a/b')).toBe(false);
    expect(isPathUnder('', 'a')).toBe(false);
  });

  it('make every ancestor a segment prefix that the path lies under, in order', () => {
    fc.assert(
      fc.property(arbitraryRepositoryPath, (path) => {
        const segments = pathSegments(path);
        const ancestors = ancestorPaths(path);
        expect(ancestors).toEqual(segments.slice(0, -1).map((_, index) => segments.slice(0, index + 1).join('/')));
        for (const ancestor of ancestors) expect(isPathUnder(path, ancestor)).toBe(true);
        expect(parentPath(path)).toBe(ancestors.at(-1) ?? '');
        expect(pathSegments(path).join('/')).toBe(path);
      }),
    );
  });

  it('agree with segment prefixes for isPathUnder', () => {
    fc.assert(
      fc.property(arbitraryRepositoryPathOrRoot, arbitraryRepositoryPathOrRoot, (path, prefix) => {
        const p = pathSegments(path);
        const q = pathSegments(prefix);
        const expected = q.length <= p.length && q.every((segment, index) => p[index] === segment);
        expect(isPathUnder(path, prefix)).toBe(expected);
      }),
    );
  });
});
