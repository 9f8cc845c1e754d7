import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('virtual repositories', () => {
  let t: UnitApp;
  const createRepo = (key: string, body: Record<string, unknown>) => t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: body });
  const deploy = (url: string, body: string) => t.app.inject({ method: 'PUT', url: `/artifactory/${url}`, payload: body, headers: { 'content-type': 'text/plain' } });
  const get = (url: string) => t.app.inject({ method: 'GET', url: `/artifactory/${url}` });

  beforeEach(async () => {
    t = await buildUnitApp();
    for (const key of ['libs-a', 'libs-b', 'libs-c']) expect((await createRepo(key, { rclass: 'local' })).statusCode).toBe(200);
  });
  afterEach(async () => {
    await t.app.close();
  });

  it('resolves a path from the first member that has it, in configured order', async () => {
    await deploy('libs-b/x/same.txt', 'from b');
    await deploy('libs-c/x/same.txt', 'from c');
    await deploy('libs-c/x/only-c.txt', 'only c');
    await createRepo('all', { rclass: 'virtual', repositories: ['libs-a', 'libs-b', 'libs-c'] });
    expect((await get('all/x/same.txt')).body).toBe('from b');
    expect((await get('all/x/only-c.txt')).body).toBe('only c');
    const missing = await get('all/x/none.txt');
    expect(missing.statusCode).toBe(404);
    expect(missing.json().errors[0].status).toBe(404);
  });

  it('shows the flattened resolution order on GET /api/repositories/{virtual}, locals before remotes, nested virtuals flattened', async () => {
    await createRepo('up', { rclass: 'remote', url: 'http://127.0.0.1:9/artifactory/x' });
    await createRepo('inner', { rclass: 'virtual', repositories: ['libs-c', 'up', 'libs-a'] });
    await createRepo('outer', { rclass: 'virtual', repositories: ['libs-b', 'inner'] });
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories/outer' });
    expect(response.json()).toMatchObject({ key: 'outer', rclass: 'virtual', repositories: ['libs-b', 'inner'], resolvedRepositories: ['libs-b', 'libs-c', 'libs-a', 'up'] });
  });

  it('refuses a cycle at configuration time with a clear error, on create and on update', async () => {
    await createRepo('v1', { rclass: 'virtual', repositories: ['libs-a'] });
    await createRepo('v2', { rclass: 'virtual', repositories: ['v1'] });
    const cycle = await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/v1', payload: { repositories: ['libs-a', 'v2'] } });
    expect(cycle.statusCode).toBe(400);
    expect(cycle.json().errors[0].message).toBe("virtual repository 'v1' would form a cycle: v1 → v2 → v1");
    const self = await createRepo('v3', { rclass: 'virtual', repositories: ['v3'] });
    expect(self.statusCode).toBe(400);
    expect(self.json().errors[0].message).toMatch(/cannot include itself/);
    const unknown = await createRepo('v4', { rclass: 'virtual', repositories: ['nope'] });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().errors[0].message).toMatch(/'nope', which does not exist/);
    // v1 is unchanged
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories/v1' })).json().repositories).toEqual(['libs-a']);
  });

  it('includes only repositories of its own package type, unless it is generic', async () => {
    await createRepo('npm-local', { rclass: 'local', packageType: 'npm' });
    const mixed = await createRepo('npm-virtual', { rclass: 'virtual', packageType: 'npm', repositories: ['npm-local', 'libs-a'] });
    expect(mixed.statusCode).toBe(400);
    expect(mixed.json().errors[0].message).toMatch(/cannot include 'libs-a' \(generic\): members must have the virtual's package type/);
    expect((await createRepo('npm-virtual', { rclass: 'virtual', packageType: 'npm', repositories: ['npm-local'] })).statusCode).toBe(200);
    expect((await createRepo('anything', { rclass: 'virtual', repositories: ['npm-local', 'libs-a'] })).statusCode).toBe(200);
  });

  it('deploys through a virtual to its defaultDeploymentRepo, and refuses one that is not a local member', async () => {
    await createRepo('dev', { rclass: 'virtual', repositories: ['libs-a', 'libs-b'], defaultDeploymentRepo: 'libs-b' });
    const put = await deploy('dev/p/new.txt', 'deployed via virtual');
    expect(put.statusCode).toBe(201);
    expect(put.json()).toMatchObject({ repo: 'libs-b', path: '/p/new.txt' });
    expect((await get('libs-b/p/new.txt')).body).toBe('deployed via virtual');
    expect((await get('dev/p/new.txt')).body).toBe('deployed via virtual');
    const bad = await createRepo('dev2', { rclass: 'virtual', repositories: ['libs-a'], defaultDeploymentRepo: 'libs-c' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().errors[0].message).toMatch(/defaultDeploymentRepo 'libs-c' must be a local repository included/);
  });

  it('asks only the members whose include/exclude patterns accept the path', async () => {
    // A file deployed before the exclude was set is still stored, but libs-a is no longer asked for it.
    await deploy('libs-a/com/acme/exp-project/core/1.1/san-1.1.jar', 'a');
    await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/libs-a', payload: { excludesPattern: 'com/acme/exp-project/**' } });
    await deploy('libs-b/com/acme/exp-project/core/1.1/san-1.1.jar', 'b');
    await deploy('libs-a/org/apache/maven/parent/1/1.pom', 'a');
    await createRepo('v', { rclass: 'virtual', repositories: ['libs-a', 'libs-b'] });
    expect((await get('v/com/acme/exp-project/core/1.1/san-1.1.jar')).body).toBe('b');
    expect((await get('v/org/apache/maven/parent/1/1.pom')).body).toBe('a');
  });

  it('merges member listings (first member wins per path) in folder info, ?list and the HTML index', async () => {
    await deploy('libs-a/d/one.txt', 'a1');
    await deploy('libs-b/d/one.txt', 'b1-longer');
    await deploy('libs-b/d/two.txt', 'b2');
    await deploy('libs-c/d/sub/three.txt', 'c3');
    await createRepo('v', { rclass: 'virtual', repositories: ['libs-a', 'libs-b', 'libs-c'] });
    const info = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/v/d' });
    expect(info.statusCode).toBe(200);
    expect(info.json()).toMatchObject({ repo: 'v', path: '/d', children: [{ uri: '/one.txt', folder: false }, { uri: '/sub', folder: true }, { uri: '/two.txt', folder: false }] });
    const list = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/v/d?list&deep=1' });
    expect(list.json().files.map((file: { uri: string; size: number }) => `${file.uri}:${file.size}`)).toEqual(['/one.txt:2', '/sub/three.txt:2', '/two.txt:2']);
    const index = await get('v/d/');
    expect(index.statusCode).toBe(200);
    expect(index.body).toContain('>one.txt<');
    expect(index.body).toContain('>sub/<');
    const fileInfo = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/v/d/two.txt' });
    expect(fileInfo.json()).toMatchObject({ repo: 'libs-b', path: '/d/two.txt', size: '2' });
  });
});

describe('virtual resolution with the metadata cache on', () => {
  it('finds a file deployed after a miss was remembered (this server invalidates its misses on writes)', async () => {
    const t = await buildUnitApp({ metadataCacheTtlMs: 60_000 });
    try {
      for (const key of ['a', 'b']) await t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: { rclass: 'local' } });
      await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/v', payload: { rclass: 'virtual', repositories: ['a', 'b'], defaultDeploymentRepo: 'a' } });
      await t.app.inject({ method: 'PUT', url: '/artifactory/b/x/y.txt', payload: 'from b' });
      expect((await t.app.inject({ method: 'GET', url: '/artifactory/v/x/y.txt' })).body).toBe('from b');
      expect((await t.app.inject({ method: 'GET', url: '/artifactory/v/x/z.txt' })).statusCode).toBe(404);
      await t.app.inject({ method: 'PUT', url: '/artifactory/v/x/y.txt', payload: 'from a' });
      await t.app.inject({ method: 'PUT', url: '/artifactory/a/x/z.txt', payload: 'z' });
      expect((await t.app.inject({ method: 'GET', url: '/artifactory/v/x/y.txt' })).body).toBe('from a');
      expect((await t.app.inject({ method: 'GET', url: '/artifactory/v/x/z.txt' })).body).toBe('z');
      await t.app.inject({ method: 'DELETE', url: '/artifactory/a/x' });
      expect((await t.app.inject({ method: 'GET', url: '/artifactory/v/x/y.txt' })).body).toBe('from b');
    } finally {
      await t.app.close();
    }
  });
});

describe('virtual listing merge (property)', () => {
  it('lists, for every path any member holds, the entry of the first member in resolution order', async () => {
    const arbitraryDeploys = fc.array(
      fc.record({ member: fc.constantFrom(0, 1, 2), path: fc.constantFrom('a.txt', 'd/b.txt', 'd/c.txt', 'd/e/f.txt', 'g.txt'), body: fc.string({ minLength: 1, maxLength: 8 }) }),
      { maxLength: 12 },
    );
    const t = await buildUnitApp();
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(arbitraryDeploys, fc.shuffledSubarray([0, 1, 2], { minLength: 1 }), async (deploys, order) => {
          // Fresh repositories per run, one app for all runs.
          run++;
          const members = [0, 1, 2].map((index) => `r${run}-m${index}`);
          for (const key of members) await t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: { rclass: 'local' } });
          const ordered = order.map((index) => members[index]!);
          await t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/r${run}-v`, payload: { rclass: 'virtual', repositories: ordered } });
          const latest = new Map<string, string>();
          for (const deploy of deploys) {
            const repo = members[deploy.member]!;
            await t.app.inject({ method: 'PUT', url: `/artifactory/${repo}/${deploy.path}`, payload: deploy.body });
            latest.set(`${repo}/${deploy.path}`, deploy.body);
          }
          const expected = new Map<string, { size: number; body: string }>();
          for (const repo of ordered) {
            for (const [key, body] of latest) {
              if (!key.startsWith(`${repo}/`)) continue;
              const path = key.slice(repo.length);
              if (!expected.has(path)) expected.set(path, { size: Buffer.byteLength(body), body });
            }
          }
          const response = await t.app.inject({ method: 'GET', url: `/artifactory/api/storage/r${run}-v?list&deep=1` });
          const files = (response.json() as { files: { uri: string; size: number }[] }).files;
          expect(files.map((file) => [file.uri, file.size])).toEqual([...expected.entries()].map(([path, entry]) => [path, entry.size]).sort(([a], [b]) => (String(a) < String(b) ? -1 : 1)));
          for (const [path, entry] of expected) expect((await t.app.inject({ method: 'GET', url: `/artifactory/r${run}-v${path}` })).body).toBe(entry.body);
        }),
        { numRuns: 25 },
      );
    } finally {
      await t.app.close();
    }
  }, 120_000);
});
