/**
 * Three federated `strata serve` processes on PostgreSQL (one database each; PGlite when
 * DATABASE_URL is unset, which is printed): a site stopped for a while and a site killed with
 * kill -9 in the middle of deploys both catch up after restart, and nothing any site
 * acknowledged is lost (issue 4 item 7); binaries a receiver pulled survive its kill -9.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminFetch } from './support/spawned-server.ts';
import { freshPostgresDatabase } from './support/postgres-database.ts';
import { converged, createFederatedRepo, deploy, eventually, live, prepareSites, startSite, status, stopSites, until, type Site } from './support/federation-sites.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const KEY = 'fed-recovery';

describe('federated sites recover from stops and kill -9', () => {
  let sites: Site[] = [];
  let a: Site;
  let b: Site;
  let c: Site;
  const databases: { url: string; drop(): Promise<void> }[] = [];

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) {
      const database = await freshPostgresDatabase('strata_fed_recovery');
      if (database !== undefined) databases.push(database);
    }
    if (databases.length === 0) console.log('DATABASE_URL is unset: the federation recovery test runs on PGlite instead of PostgreSQL');
    sites = await prepareSites(['a', 'b', 'c'], databases.map((database) => database.url));
    [a, b, c] = sites as [Site, Site, Site];
    await Promise.all(sites.map((site) => startSite(site)));
    await createFederatedRepo(a, KEY, [b, c]);
    await eventually(() => Promise.all([b, c].map((site) => adminFetch(live(site), `/artifactory/api/repositories/${KEY}`).then((r) => r.status))), (codes) => codes.every((code) => code === 200));
  }, 180_000); // three servers starting: slow on a loaded 2-core machine

  afterAll(async () => {
    await stopSites(sites);
    for (const database of databases) await database.drop();
  });

  it('a site stopped while the others write catches up after restart', async () => {
    expect(await live(c).stop()).toBe(0);
    const expected: Record<string, string> = {};
    for (let i = 0; i < 20; i++) {
      await deploy(a, KEY, `stopped/a-${i}.txt`, `a${i}`);
      await deploy(b, KEY, `stopped/b-${i}.txt`, `b${i}`);
      expected[`/stopped/a-${i}.txt`] = sha256(`a${i}`);
      expected[`/stopped/b-${i}.txt`] = sha256(`b${i}`);
    }
    expect((await adminFetch(live(a), `/artifactory/${KEY}/stopped/a-0.txt`, { method: 'DELETE' })).status).toBe(204);
    delete expected['/stopped/a-0.txt'];
    // while c is down, its members say so
    const statusOfA = await eventually(
      () => status(a, KEY),
      (value) => value.members.some((member) => member.siteId === 'site-c' && member.state === 'OUT_OF_SYNC' && member.lagEvents > 0),
    );
    expect(statusOfA.members.find((member) => member.siteId === 'site-c')).toMatchObject({ state: 'OUT_OF_SYNC' });

    await startSite(c);
    const views = await converged(sites, KEY, 30_000);
    for (const view of views) expect(view).toEqual(expected);
    const after = await eventually(() => status(a, KEY), (value) => value.members.every((member) => member.lagEvents === 0 && member.state === 'SYNCING'));
    for (const member of after.members) expect(member).toMatchObject({ lagEvents: 0, state: 'SYNCING', lastError: null });
  });

  it('a site killed with kill -9 during deploys loses nothing it acknowledged, and catches up', async () => {
    const acknowledged = new Map<string, string>();
    let stop = false;
    const writer = async (site: Site, prefix: string) => {
      for (let i = 0; i < 400 && !stop; i++) {
        const path = `killed/${prefix}-${i}.txt`;
        try {
          const response = await adminFetch(live(site), `/artifactory/${KEY}/${path}`, { method: 'PUT', body: `${prefix}${i}` });
          if (response.status === 201) acknowledged.set(`/${path}`, sha256(`${prefix}${i}`));
          await response.arrayBuffer();
        } catch {
          // the server went away mid-request: nothing was promised
          if (site === b) return;
        }
      }
    };
    const writers = Promise.all([writer(a, 'a'), writer(b, 'b')]);
    // kill b once it acknowledged some deploys of its own
    await eventually(async () => [...acknowledged.keys()].filter((path) => path.startsWith('/killed/b-')).length, (count) => count >= 15, 20_000);
    await live(b).kill();
    await new Promise((resolve) => setTimeout(resolve, 300));
    stop = true;
    await writers;
    expect([...acknowledged.keys()].some((path) => path.startsWith('/killed/b-'))).toBe(true);

    await startSite(b);
    const views = await converged(sites, KEY, 40_000);
    for (const view of views) {
      for (const [path, digest] of acknowledged) expect(view?.[path], path).toBe(digest);
    }
    // and every binary can be downloaded everywhere
    const sample = [...acknowledged.keys()].filter((path) => path.startsWith('/killed/b-')).slice(0, 5);
    for (const site of sites) {
      for (const path of sample) {
        const response = await adminFetch(live(site), `/artifactory/${KEY}${path}`);
        expect(response.status).toBe(200);
        expect(sha256(await response.text())).toBe(acknowledged.get(path));
      }
    }
  });
  it('binaries a receiver pulled survive its kill -9 the instant they are there: it serves them after restart with every other site down', async () => {
    const contents = Array.from({ length: 12 }, (_, index) => `pulled binary ${index} ${'x'.repeat(index * 90)}`);
    await Promise.all(contents.map((content, index) => deploy(a, KEY, `pulled/${index}.txt`, content)));
    const origin = await status(a, KEY);
    // c holds every event and has no binary left to pull: kill it at once
    await until(
      'c to hold every event and binary',
      () => status(c, KEY),
      (value) => Object.entries(origin.vector).every(([site, count]) => (value.vector[site] ?? 0) >= count) && value.pendingBinaries === 0,
      30_000,
    );
    await live(c).kill();
    // nobody c could pull from again
    await Promise.all([live(a).stop(), live(b).stop()]);
    await startSite(c);
    for (const [index, content] of contents.entries()) {
      const response = await adminFetch(live(c), `/artifactory/${KEY}/pulled/${index}.txt`);
      expect(response.status, `pulled/${index}.txt`).toBe(200);
      expect(await response.text()).toBe(content);
    }
    expect((await status(c, KEY)).pendingBinaries).toBe(0);
  });
});
