import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileRepoPatterns, isStrataError, matchesAntPattern, parsePatternList } from '../src/index.ts';
import { arbitraryRepositoryPath, arbitraryRepositoryPathOrRoot } from './arbitraries.ts';
import { catchStrataError } from './strata-error-assertions.ts';

/** Ant matching written the obvious, exponential way, to check the compiled RegExp against. */
function referenceMatch(pattern: string, path: string): boolean {
  const patternSegments = pattern.split('/');
  const pathSegments = path === '' ? [] : path.split('/');
  const segmentMatch = (p: string, s: string): boolean => {
    if (p === '') return s === '';
    if (p[0] === '*') return segmentMatch(p.slice(1), s) || (s !== '' && segmentMatch(p, s.slice(1)));
    if (s === '') return false;
    return (p[0] === '?' || p[0] === s[0]) && segmentMatch(p.slice(1), s.slice(1));
  };
  const match = (i: number, j: number): boolean => {
    if (i === patternSegments.length) return j === pathSegments.length;
    const p = patternSegments[i] ?? '';
    if (p === '**') return match(i + 1, j) || (j < pathSegments.length && match(i, j + 1));
    return j < pathSegments.length && segmentMatch(p, pathSegments[j] ?? '') && match(i + 1, j + 1);
  };
  return match(0, 0);
}

// Small alphabets so that random patterns and paths actually meet.
const arbitraryTinySegment = fc.string({ unit: fc.constantFrom('a', 'b', '.'), minLength: 1, maxLength: 4 }).filter((s) => s !== '.' && s !== '..');
const arbitraryTinyPath = fc.array(arbitraryTinySegment, { maxLength: 5 }).map((segments) => segments.join('/'));
const arbitraryTinyPatternSegment = fc.oneof(
  fc.constant('**'),
  fc.string({ unit: fc.constantFrom('a', 'b', '*', '?', '.'), minLength: 1, maxLength: 4 }).filter((s) => s !== '.' && s !== '..' && s !== '**'),
);
const arbitraryTinyPattern = fc.array(arbitraryTinyPatternSegment, { minLength: 1, maxLength: 5 }).map((segments) => segments.join('/'));

describe('compileRepoPatterns', () => {
  it('subtracts the excludes from the includes as in the Artifactory example', () => {
    const patterns = compileRepoPatterns({ includesPattern: 'org/apache/**,com/acme/**', excludesPattern: 'com/acme/exp-project/**' });
    expect(patterns.matches('org/apache/maven/parent/1/1.pom')).toBe(true);
    expect(patterns.matches('com/acme/project-x/core/1.0/nit-1.0.jar')).toBe(true);
    expect(patterns.matches('com/acme/exp-project/core/1.1/san-1.1.jar')).toBe(false);
    expect(patterns.matches('net/other/lib.jar')).toBe(false);
  });

  it('explains which pattern refused a path', () => {
    const patterns = compileRepoPatterns({ includesPattern: 'org/apache/**, com/acme/**', excludesPattern: '**/*.tmp, com/acme/exp-project/**' });
    expect(patterns.explain('com/acme/exp-project/core/1.1/san-1.1.jar')).toEqual({ allowed: false, pattern: 'com/acme/exp-project/**' });
    expect(patterns.explain('org/apache/x.tmp')).toEqual({ allowed: false, pattern: '**/*.tmp' });
    expect(patterns.explain('net/other/lib.jar')).toEqual({ allowed: false, pattern: 'includesPattern' });
    expect(patterns.explain('org/apache/maven/parent/1/1.pom')).toEqual({ allowed: true });
  });

  it('keeps internal npm packages away from a remote with the namespace-shadowing excludes', () => {
    const byPrefix = compileRepoPatterns({ excludesPattern: '.npm/almo*/**' });
    expect(byPrefix.matches('.npm/almo-encoder/package.json')).toBe(false);
    expect(byPrefix.matches('.npm/almost/-/almost-1.0.0.tgz')).toBe(false);
    expect(byPrefix.matches('.npm/lodash/package.json')).toBe(true);

    const byScope = compileRepoPatterns({ excludesPattern: '.npm/@almo/*' });
    expect(byScope.matches('.npm/@almo/package.json')).toBe(false);
    expect(byScope.matches('.npm/@almo/encoder/package.json')).toBe(true);
    expect(byScope.matches('.npm/@other/package.json')).toBe(true);

    const byName = compileRepoPatterns({ excludesPattern: '.npm/almo-encoder/**' });
    expect(byName.matches('.npm/almo-encoder/package.json')).toBe(false);
    expect(byName.matches('.npm/almo-encoder')).toBe(false);
    expect(byName.matches('.npm/almo-encoder-2/package.json')).toBe(true);
  });

  it('matches every entry but the root with the default **/*', () => {
    const patterns = compileRepoPatterns();
    expect(patterns.includes).toEqual(['**/*']);
    expect(patterns.excludes).toEqual([]);
    fc.assert(
      fc.property(arbitraryRepositoryPath, (path) => {
        expect(patterns.matches(path)).toBe(true);
      }),
    );
    expect(patterns.matches('')).toBe(false);
  });

  it('reads a blank include field as the default rather than as nothing', () => {
    expect(compileRepoPatterns({ includesPattern: ' , ' }).includes).toEqual(['**/*']);
    expect(compileRepoPatterns({ includesPattern: '' }).matches('a/b')).toBe(true);
  });

  it('trims entries, ignores empty ones, reads a trailing slash as /** and drops a leading slash', () => {
    expect(parsePatternList(' org/apache/ ,, /com/acme/**/**/x ,', 'includesPattern')).toEqual(['org/apache/**', 'com/acme/**/x']);
    const patterns = compileRepoPatterns({ includesPattern: 'org/' });
    expect(patterns.matches('org')).toBe(true);
    expect(patterns.matches('org/a/b')).toBe(true);
    expect(patterns.matches('organisation/a')).toBe(false);
  });

  it('lets ** match zero segments, * stay within a segment and ? match exactly one character', () => {
    expect(matchesAntPattern('a/**/b', 'a/b')).toBe(true);
    expect(matchesAntPattern('a/**/b', 'a/x/y/b')).toBe(true);
    expect(matchesAntPattern('**/b', 'b')).toBe(true);
    expect(matchesAntPattern('a/*', 'a/x/y')).toBe(false);
    expect(matchesAntPattern('a/*.jar', 'a/lib.jar')).toBe(true);
    expect(matchesAntPattern('a/?.jar', 'a/ab.jar')).toBe(false);
    expect(matchesAntPattern('a/?.jar', 'a/😀.jar')).toBe(true);
    expect(matchesAntPattern('a/b**c', 'a/bxyc')).toBe(true);
    expect(matchesAntPattern('a/b**c', 'a/bx/yc')).toBe(false);
  });

  it('takes regular expression characters in patterns literally', () => {
    expect(matchesAntPattern('a/(b)+[c]{2}|$.^', 'a/(b)+[c]{2}|$.^')).toBe(true);
    expect(matchesAntPattern('a/b.c', 'a/bxc')).toBe(false);
  });

  it('refuses patterns with NUL or other control characters, backslashes, empty or dot segments', () => {
    for (const pattern of ['org/\u0000/**', 'a\nb', 'a\\b', 'a//b', 'a/../b', './a', 'a\ud800']) {
      const error = catchStrataError(() => compileRepoPatterns({ includesPattern: pattern }), 'STRATA_ERR_PATTERN_INVALID');
      expect(error.details?.['field']).toBe('includesPattern');
    }
    catchStrataError(() => compileRepoPatterns({ excludesPattern: 'ok/**,bad\u0000' }), 'STRATA_ERR_PATTERN_INVALID');
    catchStrataError(() => compileRepoPatterns({ includesPattern: 'x/'.repeat(10_000) }), 'STRATA_ERR_PATTERN_INVALID');
    catchStrataError(() => compileRepoPatterns({ includesPattern: 42 as unknown as string }), 'STRATA_ERR_PATTERN_INVALID');
  });

  it('matches in linear time patterns that make a naive regular expression backtrack for ever', () => {
    const patterns = compileRepoPatterns({ includesPattern: '**/*a*a*a*a*a*a*a*a*a*a*b/**/a*a*a*a*a*a*b/**/x' });
    const path = Array.from({ length: 20 }, () => 'a'.repeat(49)).join('/');
    // A backtracking matcher would not return within the test's timeout (it needs ~49^10 steps);
    // the linear matcher answers at once. No wall-clock assertion: the machine may be loaded.
    expect(patterns.matches(path)).toBe(false);
  });
});

describe('Ant pattern properties', () => {
  it('agree with a reference matcher on random patterns and paths', () => {
    fc.assert(
      fc.property(arbitraryTinyPattern, arbitraryTinyPath, (pattern, path) => {
        expect(matchesAntPattern(pattern, path)).toBe(referenceMatch(parsePatternList(pattern, 'includesPattern')[0] ?? '', path));
      }),
      { numRuns: 2000 },
    );
  });

  it('let ** match every valid path, the root included', () => {
    const patterns = compileRepoPatterns({ includesPattern: '**' });
    fc.assert(
      fc.property(arbitraryRepositoryPathOrRoot, (path) => {
        expect(patterns.matches(path)).toBe(true);
      }),
    );
  });

  it('never let * cross a slash', () => {
    fc.assert(
      fc.property(arbitraryRepositoryPath, (path) => {
        expect(matchesAntPattern('*', path)).toBe(!path.includes('/'));
        expect(matchesAntPattern('*/*', path)).toBe(path.split('/').length === 2);
      }),
    );
  });

  it('let a pattern written as a path match that path', () => {
    const withoutListSyntax = arbitraryRepositoryPath.filter((path) => !path.includes(',') && path.trim() === path);
    fc.assert(
      fc.property(withoutListSyntax, (path) => {
        expect(compileRepoPatterns({ includesPattern: path }).matches(path)).toBe(true);
      }),
    );
  });

  it('never widen what the includes allow by adding excludes', () => {
    const list = fc.array(arbitraryTinyPattern, { maxLength: 3 }).map((entries) => entries.join(','));
    fc.assert(
      fc.property(list, list, arbitraryTinyPath, (includesPattern, excludesPattern, path) => {
        const withExcludes = compileRepoPatterns({ includesPattern, excludesPattern });
        const without = compileRepoPatterns({ includesPattern });
        if (withExcludes.matches(path)) expect(without.matches(path)).toBe(true);
        expect(withExcludes.explain(path).allowed).toBe(withExcludes.matches(path));
      }),
    );
  });

  it('either compile or refuse with a StrataError whatever the input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 30 }), fc.string({ unit: fc.constantFrom('a', '/', '*', ',', ' ', '.', '\\', '\u0000'), maxLength: 12 }), (a, b) => {
        for (const pattern of [a, b]) {
          try {
            compileRepoPatterns({ includesPattern: pattern, excludesPattern: pattern }).matches('a/b');
          } catch (error) {
            expect(isStrataError(error, 'STRATA_ERR_PATTERN_INVALID')).toBe(true);
          }
        }
      }),
    );
  });
});
