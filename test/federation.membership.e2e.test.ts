/**
 * The members list is one field of a federated repository's configuration (issue 4 item 1):
 * edited on any member it replicates like every other field (per-field LWW); a member added
 * gets a full sync and joins; a member removed gets no more traffic.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminFetch } from './support/spawned-server.ts';
import { converged, createFederatedRepo, deploy, eventually, until, live, memberUrl, prepareSites, snapshot, startSite, status, stopSites, type Site } from './support/federation-sites.ts';

const KEY = 'fed-members';

async function config(site: Site): Promise<Record<string, unknown> | undefined> {
  const response = await adminFetch(live(site), `/artifactory/api/repositories/${KEY}`);
  return response.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
}

async function update(site: Site, patch: Record<string, unknown>): Promise<void> {
  const response = await adminFetch(live(site), `/artifactory/api/repositories/${KEY}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(patch),
  });
  expect(response.status).toBe(200);
}

const urls = (value: Record<string, unknown> | undefined) => ((value?.['members'] ?? []) as { url: string }[]).map((member) => member.url).sort();

describe('federation membership and configuration (PGlite)', () => {
  let sites: Site[] = [];
  let a: Site;
  let b: Site;
  let c: Site;

  beforeAll(async () => {
    sites = await prepareSites(['a', 'b', 'c']);
    [a, b, c] = sites as [Site, Site, Site];
    await Promise.all(sites.map((site) => startSite(site)));
  }, 180_000); // three servers starting: slow on a loaded 2-core machine

  afterAll(async () => {
    await stopSites(sites);
  });

  it('a member added on one site gets a full sync and joins with everything written before', async () => {
    await createFederatedRepo(a, KEY, [b]);
    for (let i = 0; i < 5; i++) await deploy(a, KEY, `early/${i}.txt`, `early ${i}`);
    await converged([a, b], KEY);
    expect(await config(c)).toBeUndefined();

    // the edit is made on b, not on the site that created the repository
    await update(b, { members: [{ url: memberUrl(a, KEY), enabled: true }, { url: memberUrl(b, KEY), enabled: true }, { url: memberUrl(c, KEY), enabled: true }] });
    const views = await converged(sites, KEY, 30_000);
    expect(Object.keys(views[2] ?? {}).length).toBe(5);
    for (const site of sites) expect(urls(await eventually(() => config(site), (value) => urls(value).length === 3))).toEqual([memberUrl(a, KEY), memberUrl(b, KEY), memberUrl(c, KEY)].sort());
    // and c's own writes reach the others
    await deploy(c, KEY, 'from-c.txt', 'c');
    await converged(sites, KEY);
  });

  it('concurrent edits of different configuration fields on two sites both survive everywhere', async () => {
    await Promise.all([update(b, { description: 'edited on b' }), update(c, { notes: 'edited on c' })]);
    const configs = await eventually(
      () => Promise.all(sites.map((site) => config(site))),
      (all) => all.every((value) => value?.['description'] === 'edited on b' && value?.['notes'] === 'edited on c'),
    );
    for (const value of configs) expect(value).toMatchObject({ description: 'edited on b', notes: 'edited on c' });
  });

  it('a member removed gets no more traffic', async () => {
    await update(a, { members: [{ url: memberUrl(a, KEY), enabled: true }, { url: memberUrl(b, KEY), enabled: true }] });
    await until('b to list two members', () => config(b), (value) => urls(value).length === 2);
    const statusOfA = await until('a to list one member', () => status(a, KEY), (value) => value.members.length === 1);
    expect(statusOfA.members.map((member) => member.url)).toEqual([memberUrl(b, KEY)]);
    await deploy(a, KEY, 'after-removal.txt', 'not for c');
    await eventually(() => snapshot(b, KEY), (view) => view?.['/after-removal.txt'] !== undefined);
    // b has it; neither a nor b has c among its peers any more, so nothing can carry it to c
    const statusOfB = await until('b to list one member', () => status(b, KEY), (value) => value.members.length === 1);
    expect(statusOfB.members.map((member) => member.url)).toEqual([memberUrl(a, KEY)]);
    expect((await snapshot(c, KEY))?.['/after-removal.txt']).toBeUndefined();
  });

  it('the removed member learns it was removed: its status says so and it stops pushing to the others', async () => {
    // The edit removing c reached c (its farewell), so c lists two members without itself.
    await until('c to list two members', () => config(c), (value) => urls(value).length === 2);
    const statusOfC = await until('c to know it was removed', () => status(c, KEY), (value) => value.removed === true);
    expect(statusOfC.members.map((member) => member.state)).toEqual(['DISABLED', 'DISABLED']);
    expect(statusOfC.members[0]?.lastError).toMatch(/removed from the members/);
    // c's own writes stay on c: it no longer pushes them (nor is it refused for trying)
    await deploy(c, KEY, 'after-removal-on-c.txt', 'c only');
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // longer than the 1.5 s anti-entropy interval
    expect((await snapshot(a, KEY))?.['/after-removal-on-c.txt']).toBeUndefined();
    expect((await snapshot(b, KEY))?.['/after-removal-on-c.txt']).toBeUndefined();
    const statusOfA = await status(a, KEY);
    expect(statusOfA.members.map((member) => member.lastInboundError)).toEqual([null]);
  });

  it('deleting a federated repository on one member deletes it there only: that site leaves, the others keep it and its content', async () => {
    const key = 'fed-leaving';
    await createFederatedRepo(a, key, [b, c]);
    await deploy(a, key, 'kept.txt', 'kept');
    await converged(sites, key, 30_000);
    const removed = await adminFetch(live(c), `/artifactory/api/repositories/${key}`, { method: 'DELETE' });
    expect(removed.status).toBe(200);
    expect((await adminFetch(live(c), `/artifactory/api/repositories/${key}`)).status).toBe(404);
    for (const site of [a, b]) {
      const members = await until(`${site.name} to drop c from ${key}`, async () => {
        const response = await adminFetch(live(site), `/artifactory/api/repositories/${key}`);
        return response.status === 200 ? ((await response.json()) as Record<string, unknown>) : undefined;
      }, (value) => urls(value).length === 2);
      expect(urls(members)).toEqual([memberUrl(a, key), memberUrl(b, key)].sort());
      expect((await snapshot(site, key))?.['/kept.txt']).toBeDefined();
    }
    await deploy(a, key, 'later.txt', 'later');
    await eventually(() => snapshot(b, key), (view) => view?.['/later.txt'] !== undefined);
    expect((await status(a, key)).members.map((member) => member.url)).toEqual([memberUrl(b, key)]);
    expect((await adminFetch(live(c), `/artifactory/api/repositories/${key}`)).status).toBe(404);
  });
});
