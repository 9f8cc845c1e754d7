import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDistributions, pip, pipMissing, twineForm } from './package-clients/python-distributions.ts';
import { ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

/**
 * An upstream laid out like pypi.org: a PEP 503 HTML index under /pypi/simple/ whose links are
 * relative and point at another tree, /files/packages/{hash}/{file} (files.pythonhosted.org),
 * as a plain static mirror serves it (HTML only, whatever the Accept).
 */
interface StaticUpstream {
  readonly url: string;
  readonly server: Server;
  /** GETs per file path. */
  readonly fetches: Map<string, number>;
}

interface UpstreamFile {
  readonly fileName: string;
  readonly bytes: Buffer;
  /** What the index says the sha256 is (default: the bytes' own). */
  readonly indexSha256?: string;
  readonly yanked?: string;
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function filePath(file: UpstreamFile): string {
  const digest = sha256(Buffer.from(file.fileName));
  return `/files/packages/${digest.slice(0, 2)}/${digest.slice(2, 4)}/${file.fileName}`;
}

async function startStaticUpstream(projects: Record<string, UpstreamFile[]>): Promise<StaticUpstream> {
  const fetches = new Map<string, number>();
  const files = new Map<string, Buffer>();
  for (const list of Object.values(projects)) for (const file of list) files.set(filePath(file), file.bytes);
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0]!;
    if (path === '/pypi/simple/') {
      response.setHeader('content-type', 'text/html');
      response.end(`<html><body>${Object.keys(projects).map((name) => `<a href="${name}/">${name}</a>`).join('\n')}</body></html>`);
      return;
    }
    const project = /^\/pypi\/simple\/([^/]+)\/$/.exec(path)?.[1];
    if (project !== undefined && projects[project] !== undefined) {
      const links = projects[project].map(
        (file) =>
          `<a href="../../..${filePath(file)}#sha256=${file.indexSha256 ?? sha256(file.bytes)}" data-requires-python="&gt;=3.8"${file.yanked === undefined ? '' : ` data-yanked="${file.yanked}"`}>${file.fileName}</a><br/>`,
      );
      // A file on another host cannot be fetched through the remote: it is left out.
      links.push(`<a href="https://elsewhere.invalid/${project}-9.9.tar.gz#sha256=${'0'.repeat(64)}">${project}-9.9.tar.gz</a>`);
      response.setHeader('content-type', 'text/html; charset=utf-8');
      response.end(`<!DOCTYPE html><html><body><h1>Links for ${project}</h1>\n${links.join('\n')}</body></html>`);
      return;
    }
    const bytes = files.get(path);
    if (bytes !== undefined) {
      fetches.set(path, (fetches.get(path) ?? 0) + 1);
      response.setHeader('content-type', 'application/octet-stream');
      response.end(bytes);
      return;
    }
    response.statusCode = 404;
    response.end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, server, fetches };
}

describe('PyPI remote repositories and virtuals over them, with the real pip client', () => {
  let dir: string;
  let server: SpawnedServer;
  let upstream: StaticUpstream;
  let missing: string | undefined;
  const built: Record<string, { wheel: string; sdist: string }> = {};
  let tampered: UpstreamFile;

  const index = (repo: string) => `http://admin:${ADMIN_PASSWORD}@127.0.0.1:${server.port}/artifactory/api/pypi/${repo}/simple/`;
  const json = async (path: string) => (await (await adminFetch(server, path, { headers: { accept: 'application/vnd.pypi.simple.v1+json' } })).json()) as { files: { filename: string; url: string; hashes: { sha256?: string }; yanked?: unknown }[] };
  const configure = async (key: string, config: Record<string, unknown>, method = 'PUT') => {
    const response = await adminFetch(server, `/artifactory/api/repositories/${key}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    expect(response.status, await response.clone().text()).toBe(200);
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-pypi-remote-'));
    missing = await pipMissing();
    if (missing !== undefined) {
      console.log(`skipping the PyPI remote e2e test: ${missing}`);
      return;
    }
    for (const version of ['0.5', '1.0', '2.0']) {
      const out = join(dir, `build-${version}`);
      await mkdir(out);
      built[version] = await buildDistributions(out, 'remote-demo', version);
    }
    const file = async (path: string, extra: Partial<UpstreamFile> = {}): Promise<UpstreamFile> => ({ fileName: basename(path), bytes: await readFile(path), ...extra });
    tampered = { fileName: 'remote_demo-3.0-py3-none-any.whl', bytes: Buffer.from('PK\u0003\u0004 not what the index says'), indexSha256: sha256(Buffer.from('other bytes')) };
    upstream = await startStaticUpstream({
      'remote-demo': [await file(built['1.0']!.wheel, { yanked: 'broken build' }), await file(built['2.0']!.wheel), await file(built['2.0']!.sdist), tampered],
    });
    server = await spawnServer({ dataDir: join(dir, 'data') });
    await configure('pypi-local', { rclass: 'local', packageType: 'pypi' });
    await configure('pypi-remote', { rclass: 'remote', packageType: 'pypi', url: `${upstream.url}/files`, pyPIRegistryUrl: `${upstream.url}/pypi` });
    await configure('pypi', { rclass: 'virtual', packageType: 'pypi', repositories: ['pypi-local', 'pypi-remote'], defaultDeploymentRepo: 'pypi-local' });
    // Another Strata as the upstream (here: this one, over loopback): PEP 691 JSON, absolute URLs.
    await configure('pypi-strata', { rclass: 'remote', packageType: 'pypi', url: `${server.url}/artifactory/api/pypi/pypi-local`, username: 'admin', password: ADMIN_PASSWORD });
    const wheel = built['0.5']!.wheel;
    const uploaded = await adminFetch(server, '/artifactory/api/pypi/pypi', { method: 'POST', body: twineForm(wheel, await readFile(wheel), { name: 'remote-demo', version: '0.5', filetype: 'bdist_wheel', pyversion: 'py3' }) });
    expect(uploaded.status, await uploaded.clone().text()).toBe(200);
  });
  afterAll(async () => {
    await server?.stop();
    upstream?.server.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('rewrites the upstream page to the remote, pip installs through it, and the file is fetched once and cached', async (context) => {
    if (missing !== undefined) return context.skip();
    const wheel = basename(built['2.0']!.wheel);
    const html = await (await adminFetch(server, '/artifactory/api/pypi/pypi-remote/simple/remote-demo/')).text();
    const upstreamPath = filePath({ fileName: wheel, bytes: Buffer.alloc(0) }).slice('/files/'.length);
    expect(html).toContain(`/artifactory/api/pypi/pypi-remote/packages/${upstreamPath}#sha256=${sha256(await readFile(built['2.0']!.wheel))}" data-requires-python="&#62;=3.8">${wheel}</a>`);
    expect(html).toMatch(/data-yanked="broken build">remote_demo-1\.0-py3-none-any\.whl/);
    expect(html).not.toContain('elsewhere.invalid');
    expect(html).not.toContain('9.9');
    const page = await json('/artifactory/api/pypi/pypi-remote/simple/remote-demo/');
    expect(page.files.map((file) => file.filename).sort()).toEqual([basename(built['1.0']!.wheel), basename(built['2.0']!.sdist), wheel, tampered.fileName].sort());
    expect(page.files.find((file) => file.filename.includes('1.0'))?.yanked).toBe('broken build');
    expect(await (await adminFetch(server, '/artifactory/api/pypi/pypi-remote/simple/')).text()).toContain('<a href="remote-demo/">remote-demo</a>');

    const target = join(dir, 'target');
    await pip(dir, index('pypi-remote'), ['install', '--no-deps', '--target', target, 'Remote_Demo==2.0']);
    expect(await readFile(join(target, 'remote_demo', '__init__.py'), 'utf8')).toContain('hello from remote-demo 2.0');
    const downloads = join(dir, 'remote-downloads');
    await pip(dir, index('pypi-remote'), ['download', '--no-deps', '--only-binary', ':all:', '-d', downloads, 'remote-demo==2.0']);
    expect(await readdir(downloads)).toEqual([wheel]);
    expect(upstream.fetches.get(`/files/${upstreamPath}`)).toBe(1);
    expect((await adminFetch(server, `/artifactory/api/storage/pypi-remote-cache/${upstreamPath}`)).status).toBe(200);
  });

  it('merges the local and the remote pages in a virtual, and pip installs both through it', async (context) => {
    if (missing !== undefined) return context.skip();
    const page = await json('/artifactory/api/pypi/pypi/simple/remote-demo/');
    const urls = Object.fromEntries(page.files.map((file) => [file.filename, file.url]));
    expect(urls[basename(built['0.5']!.wheel)]).toMatch(/\/artifactory\/api\/pypi\/pypi\/packages\/remote-demo\/0\.5\//);
    expect(urls[basename(built['2.0']!.sdist)]).toMatch(/\/artifactory\/api\/pypi\/pypi\/packages\/packages\/[0-9a-f]{2}\/[0-9a-f]{2}\//);
    const downloads = join(dir, 'virtual-downloads');
    await pip(dir, index('pypi'), ['download', '--no-deps', '--only-binary', ':all:', '-d', downloads, 'remote-demo==0.5']);
    await pip(dir, index('pypi'), ['download', '--no-deps', '--no-binary', ':all:', '--no-build-isolation', '-d', downloads, 'remote-demo==2.0']);
    expect((await readdir(downloads)).sort()).toEqual([basename(built['0.5']!.wheel), basename(built['2.0']!.sdist)].sort());
    expect(Buffer.compare(await readFile(join(downloads, basename(built['2.0']!.sdist))), await readFile(built['2.0']!.sdist))).toBe(0);
    expect((await adminFetch(server, '/artifactory/api/pypi/pypi/simple/')).status).toBe(200);
    expect(await (await adminFetch(server, '/artifactory/api/pypi/pypi/simple/')).text()).toContain('remote-demo/');
  });

  it('proxies another Strata (PEP 691 JSON pages with absolute URLs)', async (context) => {
    if (missing !== undefined) return context.skip();
    const page = await json('/artifactory/api/pypi/pypi-strata/simple/remote-demo/');
    expect(page.files.map((file) => file.url)).toEqual([expect.stringMatching(/\/api\/pypi\/pypi-strata\/packages\/packages\/remote-demo\/0\.5\/remote_demo-0\.5-py3-none-any\.whl$/)]);
    const downloads = join(dir, 'strata-downloads');
    await pip(dir, index('pypi-strata'), ['download', '--no-deps', '-d', downloads, 'remote-demo']);
    expect(await readdir(downloads)).toEqual([basename(built['0.5']!.wheel)]);
  });

  it('refuses to cache an upstream file that does not match the sha256 its index gave', async (context) => {
    if (missing !== undefined) return context.skip();
    const page = await json('/artifactory/api/pypi/pypi-remote/simple/remote-demo/');
    const url = new URL(page.files.find((file) => file.filename === tampered.fileName)!.url);
    const response = await adminFetch(server, url.pathname);
    expect(response.status).toBe(502);
    expect(await response.text()).toMatch(/does not match its declared checksums/);
    expect((await adminFetch(server, `/artifactory/api/storage/pypi-remote-cache/${url.pathname.split('/packages/').slice(1).join('/packages/')}`)).status).toBe(404);
  });

  it('leaves versions curation blocks out of the remote and virtual pages, and refuses their files', async (context) => {
    if (missing !== undefined) return context.skip();
    const policy = await adminFetch(server, '/artifactory/api/curation/policies/no-remote-demo-1', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ repositories: ['pypi-remote'], packages: ['remote-demo@1.0'] }),
    });
    expect(policy.status, await policy.clone().text()).toBe(200);
    try {
      for (const repo of ['pypi-remote', 'pypi']) {
        const names = (await json(`/artifactory/api/pypi/${repo}/simple/remote-demo/`)).files.map((file) => file.filename);
        expect(names, repo).toContain(basename(built['2.0']!.wheel));
        expect(names, repo).not.toContain(basename(built['1.0']!.wheel));
        expect(await (await adminFetch(server, `/artifactory/api/pypi/${repo}/simple/remote-demo/`)).text(), repo).not.toContain('remote_demo-1.0');
      }
      const blockedPath = filePath({ fileName: basename(built['1.0']!.wheel), bytes: Buffer.alloc(0) }).slice('/files/'.length);
      expect((await adminFetch(server, `/artifactory/api/pypi/pypi-remote/packages/${blockedPath}`)).status).toBe(403);
      const failed = await pip(dir, index('pypi-remote'), ['download', '--no-deps', '-d', join(dir, 'blocked'), 'remote-demo==1.0']).then(
        () => undefined,
        (error: { stderr?: string }) => error.stderr ?? '',
      );
      expect(failed).toMatch(/No matching distribution found for remote-demo==1\.0/);
    } finally {
      expect((await adminFetch(server, '/artifactory/api/curation/policies/no-remote-demo-1', { method: 'DELETE' })).status).toBe(204);
    }
  });

  it('serves the last page read and the cached files when the remote is offline', async (context) => {
    if (missing !== undefined) return context.skip();
    await configure('pypi-remote', { offline: true }, 'POST');
    try {
      const names = (await json('/artifactory/api/pypi/pypi-remote/simple/remote-demo/')).files.map((file) => file.filename);
      expect(names).toContain(basename(built['2.0']!.wheel));
      const downloads = join(dir, 'offline-downloads');
      await pip(dir, index('pypi-remote'), ['download', '--no-deps', '--only-binary', ':all:', '-d', downloads, 'remote-demo==2.0']);
      expect(await readdir(downloads)).toEqual([basename(built['2.0']!.wheel)]);
      const uncached = filePath({ fileName: basename(built['1.0']!.wheel), bytes: Buffer.alloc(0) }).slice('/files/'.length);
      expect((await adminFetch(server, `/artifactory/api/pypi/pypi-remote/packages/${uncached}`)).status).toBe(404);
    } finally {
      await configure('pypi-remote', { offline: false }, 'POST');
    }
  });
});
