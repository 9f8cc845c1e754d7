import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { htmlIndexChildren } from '../src/smart-remote/smart-remote-service.ts';

const folder = new URL('http://upstream.example/files/org/');
const safeName = fc.string({ minLength: 1, maxLength: 20 }).filter((name) => name !== '.' && name !== '..' && !/[/\\\u0000]/.test(name));

describe('children of an upstream HTML folder index (listRemoteFolderItems on a plain remote)', () => {
  it('names exactly the linked direct children, folders by their trailing slash, whatever the names', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.tuple(safeName, fc.boolean()), { selector: ([name]) => name, maxLength: 12 }), (entries) => {
        const links = entries.map(([name, isFolder]) => `<a href="${encodeURIComponent(name).replace(/"/g, '%22')}${isFolder ? '/' : ''}">x</a>`);
        const html = `<html><body><a href="../">../</a>${links.join('\n')}<a href="?C=N;O=D">sort</a></body></html>`;
        const children = htmlIndexChildren(html, folder);
        expect(new Map(children.map((child) => [child.uri, child.folder]))).toEqual(new Map(entries.map(([name, isFolder]) => [`/${name}`, isFolder])));
      }),
    );
  });

  it('drops parents, deeper paths, other hosts, queries and absolute paths outside the folder', () => {
    const html = [
      '<a href="../">up</a>',
      '<a href="a/b/c">deep</a>',
      '<a href="http://other.example/files/org/x">other host</a>',
      '<a href="/files/elsewhere/y">outside</a>',
      '<a href="?C=M;O=A">sort</a>',
      '<a href="%2e%2e/">dots</a>',
      "<a class='f' href='/files/org/kept.jar'>kept</a>",
    ].join('\n');
    expect(htmlIndexChildren(html, folder)).toEqual([{ uri: '/kept.jar', folder: false }]);
  });
});
