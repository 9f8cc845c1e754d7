import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkDistributionFile, checkProjectName, checkVersion, normalizeName, projectPageHtml, wantsJson } from '../src/formats/pypi/pypi-model.ts';

describe('PyPI model', () => {
  it('normalisation is idempotent and ignores case and separator runs', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$/), (name) => {
        const normalized = normalizeName(name);
        expect(normalizeName(normalized)).toBe(normalized);
        expect(normalizeName(name.toUpperCase().replaceAll('-', '_.'))).toBe(normalized);
        expect(normalized).not.toMatch(/[A-Z._]|--/);
      }),
    );
  });

  it('checks names, PEP 440 versions and distribution file names', () => {
    for (const version of ['1.0', '1.0.0rc1', '2!1.0.post3.dev4', '1.0+local.7', 'v1.2']) expect(() => checkVersion(version), version).not.toThrow();
    for (const version of ['..', '1.0/../x', '1..0', '', 'latest']) expect(() => checkVersion(version), version).toThrow();
    for (const name of ['../x', '-x', 'a/b', '']) expect(() => checkProjectName(name), name).toThrow();
    expect(checkDistributionFile('Strata_Demo-1.0-py3-none-any.whl', 'strata-demo', '1.0', 'bdist_wheel')).toBe('bdist_wheel');
    expect(checkDistributionFile('strata_demo-1.0-1-py3-none-any.whl', 'Strata.Demo', '1.0', 'bdist_wheel')).toBe('bdist_wheel');
    expect(checkDistributionFile('strata-demo-1.0.tar.gz', 'strata_demo', '1.0', 'sdist')).toBe('sdist');
    expect(() => checkDistributionFile('other-1.0-py3-none-any.whl', 'strata-demo', '1.0', 'bdist_wheel')).toThrow(/belongs to project/);
    expect(() => checkDistributionFile('strata_demo-1.0.exe', 'strata-demo', '1.0', 'sdist')).toThrow(/neither/);
    expect(() => checkDistributionFile('../strata_demo-1.0.tar.gz', 'strata-demo', '1.0', 'sdist')).toThrow(/file name/);
  });

  it('negotiates PEP 691 JSON only when the client ranks it at least as high as HTML', () => {
    expect(wantsJson('application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01')).toBe(true);
    expect(wantsJson('text/html')).toBe(false);
    expect(wantsJson(undefined)).toBe(false);
    expect(wantsJson('application/vnd.pypi.simple.v1+json;q=0.2, text/html')).toBe(false);
  });

  it('escapes what it renders into the project page', () => {
    const html = projectPageHtml('x', [{ fileName: 'x-1.0.tar.gz', url: 'http://h/p/x-1.0.tar.gz', sha256: 'ab', requiresPython: '>=3.8,<4' }]);
    expect(html).toContain('href="http://h/p/x-1.0.tar.gz#sha256=ab" data-requires-python="&#62;=3.8,&#60;4"');
  });
});
