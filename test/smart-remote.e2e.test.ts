import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

/**
 * An origin and a site with smart remotes of it, both real `strata serve` processes on
 * loopback; statistics are reported every 200 ms (STRATA_SMART_REMOTE_STATS_INTERVAL_MS).
 */

const json = { 'content-type': 'application/json' };

/** Polls `probe` until it returns a defined value (bounded: the report interval is 200 ms). */
async function eventually<T>(probe: () => Promise<T | undefined>, what: string, attempts = 100): Promise<T> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not happen within ${attempts} polls`);
}

describe('smart remote repositories between two sites', () => {
  let dir: string;
  let origin: SpawnedServer;
  let site: SpawnedServer;
  let plainHttp: Server;
  let plainUrl: string;

  const deployToOrigin = async (path: string, body: string) => expect((await adminFetch(origin, `/artifactory/libs/${path}`, { method: 'PUT', body })).status).toBe(201);
  const config = async (key: string) => (await (await adminFetch(site, `/artifactory/api/repositories/${key}`)).json()) as Record<string, unknown>;
  const properties = async (server: SpawnedServer, repoPath: string) => {
    const response = await adminFetch(server, `/artifactory/api/storage/${repoPath}?properties`);
    return response.status === 404 ? {} : (((await response.json()) as { properties: Record<string, string[]> }).properties);
  };
  const stats = async (repoPath: string) =>
    (await (await adminFetch(origin, `/artifactory/api/storage/${repoPath}?stats`)).json()) as { downloadCount: number; remoteDownloadCount: number; remoteLastDownloaded: number; remoteLastDownloadedBy?: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-smart-'));
    [origin, site] = await Promise.all([
      spawnServer({ dataDir: join(dir, 'origin') }),
      spawnServer({ dataDir: join(dir, 'site'), env: { STRATA_SMART_REMOTE_STATS_INTERVAL_MS: '200' } }),
    ]);
    plainHttp = createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve));
    const address = plainHttp.address();
    plainUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    expect((await adminFetch(origin, '/artifactory/api/repositories/libs', { method: 'PUT', headers: json, body: '{"rclass":"local"}' })).status).toBe(200);
    expect((await adminFetch(origin, '/artifactory/api/repositories/libs-virtual', { method: 'PUT', headers: json, body: '{"rclass":"virtual","repositories":["libs"]}' })).status).toBe(200);
    await deployToOrigin('a/one.bin;team=core', 'one');
    await deployToOrigin('a/two.bin', 'two');
    await deployToOrigin('b/three.bin', 'three');
    await deployToOrigin('v/four.bin', 'four');
    const remote = (key: string, url: string) =>
      adminFetch(site, `/artifactory/api/repositories/${key}`, {
        method: 'PUT',
        headers: json,
        body: JSON.stringify({ rclass: 'remote', url, username: 'admin', password: ADMIN_PASSWORD }),
      });
    expect((await remote('libs-smart', `${origin.url}/artifactory/libs`)).status).toBe(200);
    expect((await remote('virtual-smart', `${origin.url}/artifactory/libs-virtual`)).status).toBe(200);
    expect((await remote('plain', `${plainUrl}/files`)).status).toBe(200);
  });
  afterAll(async () => {
    await Promise.all([origin?.stop(), site?.stop(), new Promise((resolve) => plainHttp?.close(resolve))]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('detects a remote on another Strata as smart and shows contentSynchronisation', async () => {
    expect((await config('libs-smart')).contentSynchronisation).toEqual({ enabled: true, statistics: { enabled: false }, properties: { enabled: false }, source: { originAbsenceDetection: false } });
    expect(((await config('plain')).contentSynchronisation as { enabled: boolean }).enabled).toBe(false);
    const update = await adminFetch(site, '/artifactory/api/repositories/libs-smart', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ contentSynchronisation: { statistics: { enabled: true }, properties: { enabled: true }, source: { originAbsenceDetection: true } } }),
    });
    expect(update.status).toBe(200);
    expect((await config('libs-smart')).contentSynchronisation).toEqual({ enabled: true, statistics: { enabled: true }, properties: { enabled: true }, source: { originAbsenceDetection: true } });
    const bad = await adminFetch(site, '/artifactory/api/repositories/libs-smart', { method: 'POST', headers: json, body: JSON.stringify({ contentSynchronisation: { statistics: { enabled: 'yes' } } }) });
    expect(bad.status).toBe(400);
  });

  it('reports downloads served from the cache to the origin as remote downloads', async () => {
    expect((await (await adminFetch(site, '/artifactory/libs-smart/a/two.bin')).text())).toBe('two');
    const before = await stats('libs/a/two.bin');
    expect(before.remoteDownloadCount).toBe(0);
    for (let download = 0; download < 3; download++) expect((await adminFetch(site, '/artifactory/libs-smart/a/two.bin')).status).toBe(200);
    const reported = await eventually(async () => {
      const current = await stats('libs/a/two.bin');
      return current.remoteDownloadCount >= 3 ? current : undefined;
    }, 'the statistics report');
    expect(reported.remoteDownloadCount).toBe(3);
    expect(reported.remoteLastDownloadedBy).toBe('admin');
    expect(reported.remoteLastDownloaded).toBeGreaterThan(0);
    // The one fetch from the origin is an ordinary download there, not a remote one.
    expect(reported.downloadCount).toBe(before.downloadCount);
  });

  it('brings property changes made at the origin over on download', async () => {
    await adminFetch(site, '/artifactory/libs-smart/a/one.bin');
    await eventually(async () => ((await properties(site, 'libs-smart/a/one.bin')).team?.[0] === 'core' ? true : undefined), 'the first property sync');
    expect((await adminFetch(origin, '/artifactory/api/storage/libs/a/one.bin?properties=team=edge;stage=prod', { method: 'PUT' })).status).toBe(204);
    expect((await adminFetch(site, '/artifactory/libs-smart/a/one.bin')).status).toBe(200);
    expect(await properties(site, 'libs-smart/a/one.bin')).toEqual({ team: ['edge'], stage: ['prod'] });
    expect((await adminFetch(origin, '/artifactory/api/storage/libs/a/one.bin?properties=team', { method: 'DELETE' })).status).toBe(204);
    expect((await adminFetch(site, '/artifactory/libs-smart/a/one.bin')).status).toBe(200);
    expect(await properties(site, 'libs-smart/a/one.bin')).toEqual({ stage: ['prod'] });
  });

  it('lists the origin folders and files without caching them', async () => {
    const folder = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/b')).json()) as { children: { uri: string; folder: boolean }[] };
    expect(folder.children).toEqual([{ uri: '/three.bin', folder: false }]);
    const root = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/')).json()) as { children: { uri: string; folder: boolean }[] };
    expect(root.children).toEqual(expect.arrayContaining([{ uri: '/a', folder: true }, { uri: '/b', folder: true }, { uri: '/v', folder: true }]));
    expect((await adminFetch(site, '/artifactory/api/storage/libs-smart/b/three.bin')).status).toBe(404);
    // The File List (?list) shows them too: a folder only the origin has, and a deep list of the root merging cache and origin.
    const listed = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/b?list&deep=1')).json()) as { files: { uri: string; folder: boolean; size: number; sha2?: string }[] };
    expect(listed.files).toEqual([expect.objectContaining({ uri: '/three.bin', folder: false, size: 5, sha2: expect.stringMatching(/^[0-9a-f]{64}$/) })]);
    const deep = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/?list&deep=1&listFolders=1')).json()) as { files: { uri: string; folder: boolean }[] };
    expect(deep.files.map((entry) => entry.uri)).toEqual(expect.arrayContaining(['/a', '/a/one.bin', '/a/two.bin', '/b', '/b/three.bin', '/v/four.bin']));
    expect(new Set(deep.files.map((entry) => entry.uri)).size).toBe(deep.files.length);
    expect((await adminFetch(site, '/artifactory/api/storage/libs-smart/b/three.bin')).status).toBe(404);
    // Browsing the HTML index shows them too.
    const index = await adminFetch(site, '/artifactory/libs-smart/b/');
    expect(index.status).toBe(200);
    expect(await index.text()).toContain('>three.bin</a>');
    const rootIndex = await (await adminFetch(site, '/artifactory/libs-smart/')).text();
    expect(rootIndex).toContain('>b/</a>');
    expect((await adminFetch(site, '/artifactory/api/storage/libs-smart/b/three.bin')).status).toBe(404);
    // A plain remote lists only its cache.
    expect((await adminFetch(site, '/artifactory/api/storage/plain/b')).status).toBe(404);
    expect((await adminFetch(site, '/artifactory/api/storage/plain/b?list')).status).toBe(404);
  });

  it('tells whether the origin still has a cached file', async () => {
    expect((await adminFetch(site, '/artifactory/libs-smart/b/three.bin')).status).toBe(200);
    const present = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/b/three.bin')).json()) as { originDeleted?: boolean };
    expect(present.originDeleted).toBe(false);
    expect((await adminFetch(origin, '/artifactory/libs/b/three.bin', { method: 'DELETE' })).status).toBe(204);
    const gone = (await (await adminFetch(site, '/artifactory/api/storage/libs-smart/b/three.bin')).json()) as { originDeleted?: boolean };
    expect(gone.originDeleted).toBe(true);
    // Still served from the cache, and copyable to a local repository.
    expect(await (await adminFetch(site, '/artifactory/libs-smart/b/three.bin')).text()).toBe('three');
  });

  it('works over a virtual repository at the origin, and counts downloads only from the time the option was set', async () => {
    expect((await config('virtual-smart')).contentSynchronisation).toMatchObject({ enabled: true });
    // Statistics off: the fetch that fills the cache and a download served from the cache are not reported.
    expect(await (await adminFetch(site, '/artifactory/virtual-smart/v/four.bin')).text()).toBe('four');
    expect((await adminFetch(site, '/artifactory/virtual-smart/v/four.bin')).status).toBe(200);
    expect((await adminFetch(site, '/artifactory/api/repositories/virtual-smart', { method: 'POST', headers: json, body: JSON.stringify({ contentSynchronisation: { statistics: { enabled: true } } }) })).status).toBe(200);
    expect((await adminFetch(site, '/artifactory/virtual-smart/v/four.bin')).status).toBe(200);
    const reported = await eventually(async () => {
      const current = await stats('libs/v/four.bin');
      return current.remoteDownloadCount >= 1 ? current : undefined;
    }, 'the statistics report through the virtual');
    expect(reported.remoteDownloadCount).toBe(1);
    // Several report rounds later, still only the download made after the option was set.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await stats('libs/v/four.bin')).remoteDownloadCount).toBe(1);
  });

  it('works over a remote repository at the origin (a proxy of a proxy)', async () => {
    // The origin's remote proxies the origin's own local repository; the site's smart remote proxies that remote.
    expect((await adminFetch(origin, '/artifactory/api/repositories/libs-proxy', { method: 'PUT', headers: json, body: JSON.stringify({ rclass: 'remote', url: `${origin.url}/artifactory/libs`, username: 'admin', password: ADMIN_PASSWORD }) })).status).toBe(200);
    await deployToOrigin('r/six.bin;stage=dev', 'six');
    const created = await adminFetch(site, '/artifactory/api/repositories/proxy-smart', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ rclass: 'remote', url: `${origin.url}/artifactory/libs-proxy`, username: 'admin', password: ADMIN_PASSWORD, contentSynchronisation: { statistics: { enabled: true }, properties: { enabled: true }, source: { originAbsenceDetection: true } } }),
    });
    expect(created.status).toBe(200);
    expect((await config('proxy-smart')).contentSynchronisation).toMatchObject({ enabled: true });
    expect(await (await adminFetch(site, '/artifactory/proxy-smart/r/six.bin')).text()).toBe('six');
    const info = (await (await adminFetch(site, '/artifactory/api/storage/proxy-smart/r/six.bin')).json()) as { originDeleted?: boolean };
    expect(info.originDeleted).toBe(false);
    // A download from the site's cache is reported to the origin's remote, which shows it in ?stats.
    expect((await adminFetch(site, '/artifactory/proxy-smart/r/six.bin')).status).toBe(200);
    const reported = await eventually(async () => {
      const current = await stats('libs-proxy/r/six.bin');
      return current.remoteDownloadCount >= 1 ? current : undefined;
    }, 'the statistics report to a remote origin');
    expect(reported.remoteDownloadCount).toBe(1);
  });

  it('keeps downloads queued while the origin refuses the report, across a kill -9, and reports them once it accepts', async () => {
    await deployToOrigin('q/five.bin', 'five');
    const update = (password: string) =>
      adminFetch(site, '/artifactory/api/repositories/queued-smart', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ password, contentSynchronisation: { enabled: true, statistics: { enabled: true } } }),
      });
    expect(
      (
        await adminFetch(site, '/artifactory/api/repositories/queued-smart', {
          method: 'PUT',
          headers: json,
          body: JSON.stringify({ rclass: 'remote', url: `${origin.url}/artifactory/libs`, username: 'admin', password: ADMIN_PASSWORD, contentSynchronisation: { statistics: { enabled: true } } }),
        })
      ).status,
    ).toBe(200);
    expect(await (await adminFetch(site, '/artifactory/queued-smart/q/five.bin')).text()).toBe('five');
    expect((await update('wrong-password')).status).toBe(200);
    for (let download = 0; download < 2; download++) expect((await adminFetch(site, '/artifactory/queued-smart/q/five.bin')).status).toBe(200);
    // Several report rounds fail (401 at the origin) meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect((await stats('libs/q/five.bin')).remoteDownloadCount).toBe(0);
    await site.kill();
    site = await spawnServer({ dataDir: join(dir, 'site'), env: { STRATA_SMART_REMOTE_STATS_INTERVAL_MS: '200' } });
    expect((await update(ADMIN_PASSWORD)).status).toBe(200);
    const reported = await eventually(async () => {
      const current = await stats('libs/q/five.bin');
      return current.remoteDownloadCount >= 2 ? current : undefined;
    }, 'the queued report after the restart');
    expect(reported.remoteDownloadCount).toBe(2);
  });
});
