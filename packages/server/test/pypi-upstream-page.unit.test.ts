import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { distributionCoordinates, projectListHtml, projectListJson, projectPageHtml, projectPageJson } from '../src/formats/pypi/pypi-model.ts';
import type { IndexFile } from '../src/formats/pypi/pypi-model.ts';
import { parseProjectListHtml, parseProjectListJson, parseProjectPageHtml, parseProjectPageJson, pathUnderBase } from '../src/formats/pypi/pypi-upstream-page.ts';

const PAGE = 'https://pypi.example/simple/demo/';
const hex64 = fc.stringMatching(/^[0-9a-f]{64}$/);
// Text an attribute may carry, markup characters and entities included.
const text = fc.string({ minLength: 1, maxLength: 20, unit: fc.constantFrom('a', '>', '<', '=', '&', '"', "'", ' ', '3', '.', ',', '!', 'é', '&amp;') });
const fileName = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._+!-]{0,30}\.whl$/);
const indexFile = fc.record({
  fileName,
  sha256: fc.option(hex64, { nil: undefined }),
  requiresPython: fc.option(text, { nil: undefined }),
  yanked: fc.option(fc.oneof(fc.constant(true as const), text), { nil: undefined }),
});

function rendered(files: readonly { fileName: string; sha256: string | undefined; requiresPython: string | undefined; yanked: string | true | undefined }[]): IndexFile[] {
  return files.map((file) => ({
    fileName: file.fileName,
    url: `https://files.example/packages/ab/${encodeURIComponent(file.fileName)}`,
    sha256: file.sha256,
    requiresPython: file.requiresPython,
    ...(file.yanked === undefined ? {} : { yanked: file.yanked }),
  }));
}

describe('upstream simple index pages', () => {
  it('reads back every file of a page Strata renders, HTML (PEP 503) and JSON (PEP 691)', () => {
    fc.assert(
      fc.property(fc.array(indexFile, { maxLength: 8 }), (files) => {
        const expected = rendered(files).map((file) => ({ ...file, url: new URL(file.url).href }));
        expect(parseProjectPageHtml(projectPageHtml('demo', rendered(files)), PAGE)).toEqual(expected);
        expect(parseProjectPageJson(projectPageJson('demo', rendered(files)), PAGE)).toEqual(expected);
      }),
    );
  });

  it('reads back the project list, names normalised', () => {
    fc.assert(
      fc.property(fc.array(fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/), { maxLength: 10 }), (names) => {
        expect(parseProjectListHtml(projectListHtml(names))).toEqual(names.map((name) => name.replace(/-+/g, '-')));
        expect(parseProjectListJson(projectListJson(names))).toEqual(names.map((name) => name.replace(/-+/g, '-')));
      }),
    );
    expect(parseProjectListHtml('<a href="/simple/Foo.Bar/">Foo.Bar</a><a href="x">Baz__Qux</a>')).toEqual(['foo-bar', 'baz-qux']);
  });

  it('resolves relative links, a <base href>, single-quoted and unquoted attributes, and ignores what is not a file link', () => {
    const html = `<html><head><base href="https://mirror.example/root/"></head><body>
      <A HREF='../files/a-1.0.tar.gz#sha256=${'a'.repeat(64)}' data-requires-python=&gt;=3.8>a-1.0.tar.gz</A>
      <a href="files/b-1.0.whl#md5=abc" data-yanked>b-1.0.whl</a>
      <a name="anchor">no href</a>
      <a href="javascript:alert(1)">x</a>
      <a href="https://files.example/c-1.0.whl#sha256=NOTHEX">c-1.0.whl</a></body></html>`;
    expect(parseProjectPageHtml(html, PAGE)).toEqual([
      { fileName: 'a-1.0.tar.gz', url: 'https://mirror.example/files/a-1.0.tar.gz', sha256: 'a'.repeat(64), requiresPython: '>=3.8' },
      { fileName: 'b-1.0.whl', url: 'https://mirror.example/root/files/b-1.0.whl', sha256: undefined, requiresPython: undefined, yanked: true },
      { fileName: 'c-1.0.whl', url: 'https://files.example/c-1.0.whl', sha256: undefined, requiresPython: undefined },
    ]);
    expect(parseProjectPageJson('not json', PAGE)).toEqual([]);
    expect(parseProjectPageJson('{"files":[{"filename":"x.whl"},{"filename":"y.whl","url":"../y.whl","hashes":{"sha256":"' + 'B'.repeat(64) + '"}}]}', PAGE)).toEqual([
      { fileName: 'y.whl', url: 'https://pypi.example/simple/y.whl', sha256: 'b'.repeat(64), requiresPython: undefined },
    ]);
  });

  it('maps a file URL onto a path below the remote url, and refuses other hosts, folders, queries and path tricks', () => {
    const base = 'https://files.example/root';
    fc.assert(
      fc.property(fc.array(fc.string({ minLength: 1, maxLength: 12 }).filter((segment) => segment !== '.' && segment !== '..' && !/[/\\\0]/.test(segment)), { minLength: 1, maxLength: 4 }), (segments) => {
        expect(pathUnderBase(`${base}/${segments.map(encodeURIComponent).join('/')}`, base)).toBe(segments.join('/'));
      }),
    );
    expect(pathUnderBase('https://files.example/root/packages/a/x.whl', 'https://files.example/root/')).toBe('packages/a/x.whl');
    expect(pathUnderBase('https://other.example/root/x.whl', base)).toBeUndefined();
    expect(pathUnderBase('http://files.example/root/x.whl', base)).toBeUndefined();
    expect(pathUnderBase('https://files.example/rootless/x.whl', base)).toBeUndefined();
    expect(pathUnderBase('https://files.example/root/x.whl?sig=1', base)).toBeUndefined();
    expect(pathUnderBase('https://files.example/root/a/%2e%2e/%2e%2e/etc/passwd', base)).toBeUndefined();
    expect(pathUnderBase('https://files.example/root/a/..%2f..%2fx', base)).toBeUndefined();
    expect(pathUnderBase('https://files.example/root/a//x.whl', base)).toBeUndefined();
  });

  it('names the project and version of a distribution file (for curation of remote files)', () => {
    expect(distributionCoordinates('Remote_Demo-1.0-py3-none-any.whl')).toEqual({ name: 'remote-demo', version: '1.0' });
    expect(distributionCoordinates('remote_demo-2.0.tar.gz')).toEqual({ name: 'remote-demo', version: '2.0' });
    expect(distributionCoordinates('README.txt')).toBeUndefined();
  });
});
