import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

const run = promisify(execFile);

async function npmMissing(): Promise<string | undefined> {
  try {
    await run('npm', ['--version'], { timeout: 30_000 });
    return undefined;
  } catch {
    return 'npm is not installed';
  }
}

describe('npm repositories with the real npm client', () => {
  let dir: string;
  let server: SpawnedServer;
  let missing: string | undefined;
  let registry: string;
  let npmrc: string;

  const npm = async (args: readonly string[], cwd: string) => {
    try {
      return await run('npm', [...args, '--userconfig', npmrc, '--registry', registry], {
        cwd,
        timeout: 120_000,
        env: { ...process.env, npm_config_cache: join(dir, 'npm-cache'), npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' },
      });
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`npm ${args.join(' ')} failed: ${failed.message}\n${failed.stdout ?? ''}\n${failed.stderr ?? ''}`);
    }
  };

  async function writePackage(name: string, version: string, main: string): Promise<string> {
    const packageDir = join(dir, 'src', `${name.replace('/', '__')}-${version}`);
    await mkdir(packageDir, { recursive: true });
    await writeFile(join(packageDir, 'package.json'), JSON.stringify({ name, version, main: 'index.js', description: `${name} for tests`, license: 'MIT' }));
    await writeFile(join(packageDir, 'index.js'), main);
    return packageDir;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-npm-'));
    server = await spawnServer({ dataDir: join(dir, 'data') });
    missing = await npmMissing();
    if (missing !== undefined) console.log(`skipping the npm client part of the npm e2e test: ${missing}`);
    const create = (key: string, config: Record<string, unknown>) =>
      adminFetch(server, `/artifactory/api/repositories/${key}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    expect((await create('npm-local', { rclass: 'local', packageType: 'npm' })).status).toBe(200);
    expect((await create('npm-team', { rclass: 'local', packageType: 'npm' })).status).toBe(200);
    expect((await create('npm', { rclass: 'virtual', packageType: 'npm', repositories: ['npm-local', 'npm-team'], defaultDeploymentRepo: 'npm-local' })).status).toBe(200);
    // Every npm command goes through the virtual; publishes land in its default deployment repository.
    registry = `${server.url}/artifactory/api/npm/npm/`;
    npmrc = join(dir, '.npmrc');
  });
  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('logs in, publishes, tags, installs, refuses a republish and unpublishes with npm through a virtual repository', async (context) => {
    if (missing !== undefined) return context.skip();
    // npm login's request: the password is exchanged for a token that goes into .npmrc.
    const login = await fetch(`${registry}-/user/org.couchdb.user:admin`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ _id: 'org.couchdb.user:admin', name: 'admin', password: ADMIN_PASSWORD, type: 'user', roles: [] }),
    });
    expect(login.status).toBe(201);
    const { token } = (await login.json()) as { token: string };
    const badLogin = await fetch(`${registry}-/user/org.couchdb.user:admin`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: 'wrong' }) });
    expect(badLogin.status).toBe(401);
    await writeFile(npmrc, `registry=${registry}\n${registry.replace(/^http:/, '')}:_authToken=${token}\n`);
    expect((await npm(['whoami'], dir)).stdout.trim()).toBe('admin');

    await npm(['publish'], await writePackage('@demo/hello', '1.0.0', 'module.exports = () => "hello 1.0.0";\n'));
    await npm(['publish'], await writePackage('@demo/hello', '1.0.1', 'module.exports = () => "hello 1.0.1";\n'));
    await npm(['publish', '--tag', 'next'], await writePackage('@demo/hello', '2.0.0-beta.1', 'module.exports = () => "hello beta";\n'));
    await npm(['publish'], await writePackage('plain-strata', '0.1.0', 'module.exports = 42;\n'));

    // A second member holds another version of the same package: the virtual's packument merges them.
    const { gzipSync } = await import('node:zlib');
    const { createHash } = await import('node:crypto');
    const teamTarball = gzipSync(Buffer.from('team build'));
    const teamPublish = await adminFetch(server, '/artifactory/api/npm/npm-team/@demo%2fhello', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: '@demo/hello',
        'dist-tags': { team: '0.9.0' },
        versions: { '0.9.0': { name: '@demo/hello', version: '0.9.0', dist: { shasum: createHash('sha1').update(teamTarball).digest('hex') } } },
        _attachments: { 'hello-0.9.0.tgz': { data: teamTarball.toString('base64'), length: teamTarball.length } },
      }),
    });
    expect(teamPublish.status).toBe(201);

    const republish = npm(['publish'], await writePackage('@demo/hello', '1.0.1', 'module.exports = () => "other";\n'));
    await expect(republish).rejects.toThrow(/409|previously published/);

    await npm(['dist-tag', 'add', '@demo/hello@1.0.0', 'stable'], dir);
    const tags = (await npm(['dist-tag', 'ls', '@demo/hello'], dir)).stdout;
    expect(tags).toContain('latest: 1.0.1');
    expect(tags).toContain('next: 2.0.0-beta.1');
    expect(tags).toContain('stable: 1.0.0');
    await npm(['dist-tag', 'rm', '@demo/hello', 'stable'], dir);
    expect((await npm(['dist-tag', 'ls', '@demo/hello'], dir)).stdout).not.toContain('stable');

    const abbreviated = await fetch(`${registry}@demo%2fhello`, { headers: { accept: 'application/vnd.npm.install-v1+json', authorization: `Bearer ${token}` } });
    expect(abbreviated.headers.get('content-type')).toContain('application/vnd.npm.install-v1+json');
    const corgi = (await abbreviated.json()) as { versions: Record<string, { dist: { tarball: string; integrity: string } }> };
    expect(Object.keys(corgi.versions)).toEqual(['0.9.0', '1.0.0', '1.0.1', '2.0.0-beta.1']);
    expect(corgi.versions['1.0.1']!.dist.tarball).toBe(`${registry}@demo/hello/-/hello-1.0.1.tgz`);
    expect(corgi.versions['1.0.1']!.dist.integrity).toMatch(/^sha512-/);

    const consumer = join(dir, 'consumer');
    await mkdir(consumer, { recursive: true });
    await writeFile(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, dependencies: { '@demo/hello': '^1.0.0', 'plain-strata': '0.1.0' } }));
    await npm(['install'], consumer);
    const installed = JSON.parse(await readFile(join(consumer, 'node_modules', '@demo', 'hello', 'package.json'), 'utf8')) as { version: string };
    expect(installed.version).toBe('1.0.1');
    const { stdout } = await run(process.execPath, ['-e', 'console.log(require("@demo/hello")(), require("plain-strata"))'], { cwd: consumer });
    expect(stdout.trim()).toBe('hello 1.0.1 42');

    await npm(['unpublish', '@demo/hello@2.0.0-beta.1'], dir);
    const afterVersion = (await (await fetch(`${registry}@demo%2fhello`, { headers: { authorization: `Bearer ${token}` } })).json()) as { versions: Record<string, unknown>; 'dist-tags': Record<string, string> };
    expect(Object.keys(afterVersion.versions)).toEqual(['0.9.0', '1.0.0', '1.0.1']);
    expect(afterVersion['dist-tags']).toMatchObject({ latest: '1.0.1', team: '0.9.0' });
    // The virtual's publishes landed in npm-local.
    expect((await adminFetch(server, '/artifactory/api/storage/npm-local/@demo/hello/-/hello-1.0.1.tgz')).status).toBe(200);
    expect(afterVersion['dist-tags'].next).toBeUndefined();
    await npm(['unpublish', 'plain-strata', '--force'], dir);
    expect((await fetch(`${registry}plain-strata`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/storage/npm-local/plain-strata')).status).toBe(404);
    expect((await fetch(`${server.url}/artifactory/api/npm/npm-local/plain-strata`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
  });

  it('refuses a tarball that does not match its integrity, one that is not gzip, and path tricks, storing nothing', async () => {
    const { createHash } = await import('node:crypto');
    const { gzipSync } = await import('node:zlib');
    const tarball = gzipSync(Buffer.from('package/package.json'));
    const document = (version: string, bytes: Buffer, integrityOf: Buffer) => ({
      _id: 'bad-pkg',
      name: 'bad-pkg',
      'dist-tags': { latest: version },
      versions: {
        [version]: {
          name: 'bad-pkg',
          version,
          dist: { integrity: `sha512-${createHash('sha512').update(integrityOf).digest('base64')}`, shasum: createHash('sha1').update(integrityOf).digest('hex') },
        },
      },
      _attachments: { [`bad-pkg-${version}.tgz`]: { content_type: 'application/octet-stream', data: bytes.toString('base64'), length: bytes.length } },
    });
    const put = (name: string, body: unknown) =>
      adminFetch(server, `/artifactory/api/npm/npm-local/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const mismatch = await put('bad-pkg', document('1.0.0', tarball, Buffer.from('something else')));
    expect(mismatch.status).toBe(400);
    expect(((await mismatch.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/shasum|integrity/);
    const notGzip = Buffer.from('plain text, not a tarball');
    const plain = await put('bad-pkg', document('1.0.0', notGzip, notGzip));
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain('not gzip');
    const trick = await put('bad-pkg', document('1.0.0/../../x', tarball, tarball));
    expect(trick.status).toBe(400);
    expect((await put('..%2fevil', document('1.0.0', tarball, tarball))).status).toBe(400);
    expect((await put('Bad-Pkg', document('1.0.0', tarball, tarball))).status).toBe(400);
    expect((await adminFetch(server, '/artifactory/api/npm/npm-local/bad-pkg')).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/storage/npm-local/bad-pkg')).status).toBe(404);

    expect((await put('bad-pkg', document('1.0.0', tarball, tarball))).status).toBe(201);
    const again = await put('bad-pkg', document('1.0.0', tarball, tarball));
    expect(again.status).toBe(409);
  });

  it('proxies an upstream registry through a remote repository, rewriting tarball URLs, and merges it into a virtual', async () => {
    const { createHash } = await import('node:crypto');
    const { gzipSync } = await import('node:zlib');
    const tarball = gzipSync(Buffer.from('upstream content'));
    const published = await adminFetch(server, '/artifactory/api/npm/npm-local/@up%2fdemo', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: '@up/demo',
        'dist-tags': { latest: '3.0.0' },
        versions: { '3.0.0': { name: '@up/demo', version: '3.0.0', dist: { shasum: createHash('sha1').update(tarball).digest('hex') } } },
        _attachments: { 'demo-3.0.0.tgz': { data: tarball.toString('base64'), length: tarball.length } },
      }),
    });
    expect(published.status).toBe(201);
    // The upstream is this same server's npm-local registry (loopback only).
    const create = (key: string, config: Record<string, unknown>) =>
      adminFetch(server, `/artifactory/api/repositories/${key}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    expect((await create('npm-upstream', { rclass: 'remote', packageType: 'npm', url: `${server.url}/artifactory/api/npm/npm-local`, username: 'admin', password: ADMIN_PASSWORD })).status).toBe(200);
    expect((await create('npm-all', { rclass: 'virtual', packageType: 'npm', repositories: ['npm-team', 'npm-upstream'] })).status).toBe(200);

    const viaRemote = (await (await adminFetch(server, '/artifactory/api/npm/npm-upstream/@up%2fdemo')).json()) as { versions: Record<string, { dist: { tarball: string; shasum: string } }> };
    expect(viaRemote.versions['3.0.0']!.dist.tarball).toBe(`${server.url}/artifactory/api/npm/npm-upstream/@up/demo/-/demo-3.0.0.tgz`);
    const fetched = await adminFetch(server, '/artifactory/api/npm/npm-upstream/@up/demo/-/demo-3.0.0.tgz');
    expect(fetched.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await fetched.arrayBuffer()), tarball)).toBe(0);
    // Cached by the remote like any proxied file.
    expect((await adminFetch(server, '/artifactory/api/storage/npm-upstream-cache/@up/demo/-/demo-3.0.0.tgz')).status).toBe(200);

    const merged = (await (await adminFetch(server, '/artifactory/api/npm/npm-all/@demo%2fhello')).json()) as { versions: Record<string, { dist: { tarball: string } }>; 'dist-tags': Record<string, string> };
    expect(Object.keys(merged.versions)).toEqual(['0.9.0', '1.0.0', '1.0.1']);
    expect(merged['dist-tags']).toMatchObject({ latest: '1.0.1', team: '0.9.0' });
    expect(merged.versions['1.0.1']!.dist.tarball).toBe(`${server.url}/artifactory/api/npm/npm-all/@demo/hello/-/hello-1.0.1.tgz`);
    expect((await adminFetch(server, '/artifactory/api/npm/npm-all/@demo/hello/-/hello-1.0.1.tgz')).status).toBe(200);
    expect((await adminFetch(server, '/artifactory/api/npm/npm-upstream/not-there')).status).toBe(404);

    // A curation rule naming the package and version blocks the tarball through the remote (npm
    // coordinates registered), and the version disappears from the remote's and a virtual's packuments.
    const blockedTarball = gzipSync(Buffer.from('blocked content'));
    const republished = await adminFetch(server, '/artifactory/api/npm/npm-local/@up%2fdemo', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: '@up/demo',
        'dist-tags': { latest: '3.1.0' },
        versions: { '3.1.0': { name: '@up/demo', version: '3.1.0', dist: { shasum: createHash('sha1').update(blockedTarball).digest('hex') } } },
        _attachments: { 'demo-3.1.0.tgz': { data: blockedTarball.toString('base64'), length: blockedTarball.length } },
      }),
    });
    expect(republished.status).toBe(201);
    // A remote that reads its upstream's packument on every request (npm-upstream's copy is cached in memory).
    expect((await create('npm-curated', { rclass: 'remote', packageType: 'npm', url: `${server.url}/artifactory/api/npm/npm-local`, username: 'admin', password: ADMIN_PASSWORD, retrievalCachePeriodSecs: 0 })).status).toBe(200);
    expect((await create('npm-curated-all', { rclass: 'virtual', packageType: 'npm', repositories: ['npm-team', 'npm-curated'] })).status).toBe(200);
    type Packument = { versions: Record<string, unknown>; 'dist-tags': Record<string, string> };
    const packument = async (repo: string, accept = 'application/json') =>
      (await (await adminFetch(server, `/artifactory/api/npm/${repo}/@up%2fdemo`, { headers: { accept } })).json()) as Packument;
    const abbreviatedType = 'application/vnd.npm.install-v1+json';
    expect(Object.keys((await packument('npm-curated')).versions)).toEqual(['3.0.0', '3.1.0']);
    expect((await packument('npm-curated'))['dist-tags'].latest).toBe('3.1.0');
    const policy = await adminFetch(server, '/artifactory/api/curation/policies/no-demo-31', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ repositories: ['npm-upstream', 'npm-curated'], packages: ['@up/demo@3.1.0'], enabled: true }),
    });
    expect(policy.status).toBeLessThan(300);
    for (const [repo, accept] of [['npm-curated', 'application/json'], ['npm-curated', abbreviatedType], ['npm-curated-all', 'application/json'], ['npm-curated-all', abbreviatedType]] as const) {
      const curated = await packument(repo, accept);
      expect(Object.keys(curated.versions), `${repo} ${accept}`).toEqual(['3.0.0']);
      // The upstream's latest named the blocked version: the tag falls back to the newest release left.
      expect(curated['dist-tags'], `${repo} ${accept}`).toEqual({ latest: '3.0.0' });
    }
    // The local repository itself is not curated (policies attach to remotes).
    expect(Object.keys((await packument('npm-local')).versions)).toEqual(['3.0.0', '3.1.0']);
    expect((await adminFetch(server, '/artifactory/api/npm/npm-curated/@up/demo/3.1.0')).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/npm/npm-upstream/@up/demo/-/demo-3.1.0.tgz')).status).toBe(403);
  });
});
