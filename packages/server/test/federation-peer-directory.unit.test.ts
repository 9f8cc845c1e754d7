import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizeBaseUrl, parseMemberUrl, PeerDirectory } from '../src/federation/peer-directory.ts';

describe('federation member urls and the peer directory', () => {
  it('a member url names a site base URL and the repository key', () => {
    expect(parseMemberUrl('HTTP://Host.Example:8081/artifactory/libs-fed/')).toEqual({ baseUrl: 'http://host.example:8081', repoKey: 'libs-fed' });
    expect(parseMemberUrl('https://h/prefix/artifactory/x')).toEqual({ baseUrl: 'https://h/prefix', repoKey: 'x' });
    expect(normalizeBaseUrl('http://h:80/')).toBe('http://h');
    for (const bad of ['ftp://h/artifactory/x', 'http://h/libs', 'http://h/artifactory/', 'http://u:p@h/artifactory/x', 'http://h/artifactory/x?y=1', 'not a url']) {
      expect(() => parseMemberUrl(bad), bad).toThrow();
    }
  });

  it('never throws anything but a StrataError on arbitrary input (property)', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          parseMemberUrl(text);
        } catch (error) {
          expect((error as { code?: string }).code).toBe('STRATA_ERR_REPO_CONFIG_INVALID');
        }
      }),
    );
  });

  it('maps member urls to the site ids it learned, itself included, and persists what it learns', async () => {
    const saved: string[] = [];
    const directory = new PeerDirectory({ siteId: 'site-a', baseUrl: 'http://127.0.0.1:9001/', save: async (base, site) => void saved.push(`${base}=${site}`) });
    expect(directory.peerIdOf('http://127.0.0.1:9001/artifactory/libs')).toBe('site-a');
    expect(directory.peerIdOf('http://127.0.0.1:9002/artifactory/libs')).toBeUndefined();
    expect(await directory.learn('http://127.0.0.1:9002', 'site-b')).toBe(true);
    expect(await directory.learn('http://127.0.0.1:9002/', 'site-b')).toBe(false);
    expect(directory.peerIdOf('http://127.0.0.1:9002/artifactory/libs')).toBe('site-b');
    expect(directory.baseUrlOf('site-b')).toBe('http://127.0.0.1:9002');
    // a site that moves: the old address no longer names it
    expect(await directory.learn('http://127.0.0.1:9012', 'site-b')).toBe(true);
    expect(directory.baseUrlOf('site-b')).toBe('http://127.0.0.1:9012');
    // nobody can claim this site's own address or id
    expect(await directory.learn('http://127.0.0.1:9001', 'site-x')).toBe(false);
    expect(saved).toEqual(['http://127.0.0.1:9002=site-b', 'http://127.0.0.1:9012=site-b']);
  });
});
