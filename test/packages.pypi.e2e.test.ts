import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildDistributions, pip as runPip, pipMissing, twineForm } from './package-clients/python-distributions.ts';
import { ADMIN_AUTH, ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

describe('PyPI repositories with the real pip client', () => {
  let dir: string;
  let server: SpawnedServer;
  let missing: string | undefined;
  let wheel: string;
  let sdist: string;

  const upload = (repo: string, form: FormData, authorization = ADMIN_AUTH) =>
    fetch(`${server.url}/artifactory/api/pypi/${repo}`, { method: 'POST', body: form, headers: { authorization, 'user-agent': 'twine/6.1.0' } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-pypi-'));
    server = await spawnServer({ dataDir: join(dir, 'data') });
    missing = await pipMissing();
    if (missing !== undefined) console.log(`skipping the pip part of the PyPI e2e test: ${missing}`);
    const create = (key: string, config: Record<string, unknown>) =>
      adminFetch(server, `/artifactory/api/repositories/${key}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(config) });
    expect((await create('pypi-local', { rclass: 'local', packageType: 'pypi' })).status).toBe(200);
    expect((await create('pypi-team', { rclass: 'local', packageType: 'pypi' })).status).toBe(200);
    expect((await create('pypi', { rclass: 'virtual', packageType: 'pypi', repositories: ['pypi-team', 'pypi-local'], defaultDeploymentRepo: 'pypi-local' })).status).toBe(200);
    if (missing === undefined) ({ wheel, sdist } = await buildDistributions(dir, 'strata-demo', '0.3.1'));
  });
  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('uploads a wheel and an sdist as twine does, then pip installs and downloads them, all through a virtual', async (context) => {
    if (missing !== undefined) return context.skip();
    for (const [file, filetype, pyversion] of [
      [wheel, 'bdist_wheel', 'py3'],
      [sdist, 'sdist', 'source'],
    ] as const) {
      const bytes = await readFile(file);
      // Uploaded through the virtual: stored in its default deployment repository.
      const response = await upload('pypi', twineForm(file, bytes, { name: 'strata-demo', version: '0.3.1', filetype, pyversion }));
      expect(response.status, await response.clone().text()).toBe(200);
    }
    expect((await adminFetch(server, `/artifactory/api/storage/pypi-local/strata-demo/0.3.1/${basename(wheel)}`)).status).toBe(200);
    // Another member holds an older version: the virtual's page lists both.
    const olderDir = join(dir, 'older');
    await mkdir(olderDir);
    const { wheel: olderWheel } = await buildDistributions(olderDir, 'strata-demo', '0.2.0');
    const olderUpload = await upload('pypi-team', twineForm(olderWheel, await readFile(olderWheel), { name: 'strata-demo', version: '0.2.0', filetype: 'bdist_wheel', pyversion: 'py3' }));
    expect(olderUpload.status).toBe(200);
    const again = await upload('pypi-local', twineForm(wheel, await readFile(wheel), { name: 'strata-demo', version: '0.3.1', filetype: 'bdist_wheel', pyversion: 'py3' }));
    expect(again.status).toBe(409);
    expect(await again.text()).toContain('File already exists');

    const index = `http://admin:${ADMIN_PASSWORD}@127.0.0.1:${server.port}/artifactory/api/pypi/pypi/simple/`;
    const pip = (args: string[]) => runPip(dir, index, args);
    const target = join(dir, 'target');
    // The name as a user types it: pip normalises it, the server serves the normalised page.
    await pip(['install', '--no-deps', '--target', target, 'Strata_Demo==0.3.1']);
    expect(await readFile(join(target, 'strata_demo', '__init__.py'), 'utf8')).toContain('hello from strata-demo 0.3.1');
    const wheels = join(dir, 'wheels');
    await pip(['download', '--no-deps', '--only-binary', ':all:', '-d', wheels, 'strata-demo']);
    expect(await readdir(wheels)).toEqual([basename(wheel)]);
    await pip(['download', '--no-deps', '--only-binary', ':all:', '-d', wheels, 'strata-demo==0.2.0']);
    expect((await readdir(wheels)).sort()).toEqual([basename(olderWheel), basename(wheel)].sort());
    const sources = join(dir, 'sources');
    await pip(['download', '--no-deps', '--no-binary', ':all:', '--no-build-isolation', '-d', sources, 'strata-demo']);
    expect(await readdir(sources)).toEqual([basename(sdist)]);
    expect(Buffer.compare(await readFile(join(sources, basename(sdist))), await readFile(sdist))).toBe(0);
  });

  it('serves the PEP 503 page with sha256 fragments and data-requires-python, and PEP 691 JSON when asked', async (context) => {
    if (missing !== undefined) return context.skip();
    const root = await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/');
    expect(await root.text()).toContain('<a href="strata-demo/">strata-demo</a>');
    const html = await (await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/strata-demo/')).text();
    const sha256 = createHash('sha256').update(await readFile(wheel)).digest('hex');
    expect(html).toContain(`/artifactory/api/pypi/pypi-local/packages/strata-demo/0.3.1/${basename(wheel)}#sha256=${sha256}" data-requires-python="&#62;=3.8">${basename(wheel)}</a>`);
    const redirected = await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/Strata.Demo/', { redirect: 'manual' });
    expect(redirected.status).toBe(301);
    expect(redirected.headers.get('location')).toMatch(/\/simple\/strata-demo\/$/);
    const json = await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/strata-demo/', { headers: { accept: 'application/vnd.pypi.simple.v1+json' } });
    expect(json.headers.get('content-type')).toContain('application/vnd.pypi.simple.v1+json');
    const page = (await json.json()) as { name: string; files: { filename: string; hashes: { sha256: string }; 'requires-python': string }[] };
    expect(page.name).toBe('strata-demo');
    expect(page.files.map((file) => file.filename).sort()).toEqual([basename(sdist), basename(wheel)].sort());
    expect(page.files.find((file) => file.filename === basename(wheel))).toMatchObject({ hashes: { sha256 }, 'requires-python': '>=3.8' });
  });

  it('refuses a wheel of another project, a digest mismatch, a bad version and a file that is not a zip, storing nothing', async () => {
    const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(100)]);
    const cases: [string, Buffer, Record<string, string>, number, RegExp][] = [
      ['other_project-1.0-py3-none-any.whl', zip, { name: 'bad-demo', version: '1.0', filetype: 'bdist_wheel' }, 400, /belongs to project/],
      ['bad_demo-2.0-py3-none-any.whl', zip, { name: 'bad-demo', version: '1.0', filetype: 'bdist_wheel' }, 400, /version/],
      ['bad_demo-1.0-py3-none-any.whl', zip, { name: 'bad-demo', version: '1.0', filetype: 'bdist_wheel', sha256_digest: '0'.repeat(64) }, 400, /sha256/],
      ['bad_demo-1.0-py3-none-any.whl', Buffer.from('not a zip archive at all'), { name: 'bad-demo', version: '1.0', filetype: 'bdist_wheel' }, 400, /not a zip/],
      ['bad_demo-1.0.tar.gz', zip, { name: 'bad-demo', version: '1.0', filetype: 'sdist' }, 400, /not a gzip/],
      ['bad_demo-..-py3-none-any.whl', zip, { name: 'bad-demo', version: '..', filetype: 'bdist_wheel' }, 400, /PEP 440/],
      ['bad_demo-1.0-py3-none-any.whl', zip, { name: '../bad', version: '1.0', filetype: 'bdist_wheel' }, 400, /project name/],
      ['bad_demo-1.0-py3-none-any.whl', zip, { name: 'bad-demo', version: '1.0', filetype: 'sdist' }, 400, /filetype/],
    ];
    for (const [fileName, bytes, fields, status, message] of cases) {
      const response = await upload('pypi-local', twineForm(fileName, bytes, { pyversion: 'py3', ...fields }));
      expect(response.status, fileName).toBe(status);
      expect(((await response.json()) as { errors: { message: string }[] }).errors[0]!.message, fileName).toMatch(message);
    }
    expect((await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/bad-demo/')).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/storage/pypi-local/bad-demo')).status).toBe(404);
    expect((await upload('pypi-local', twineForm('bad_demo-1.0-py3-none-any.whl', zip, { name: 'bad-demo', version: '1.0', filetype: 'bdist_wheel' }), 'Basic ' + Buffer.from('nobody:wrong').toString('base64'))).status).toBe(401);
  });

  it("refuses a blake2_256 mismatch, a wheel whose METADATA names another project or version, and a wheel without METADATA, storing nothing", async (context) => {
    if (missing !== undefined) return context.skip();
    const out = join(dir, 'metadata-cases');
    await mkdir(out);
    const good = await buildDistributions(out, 'meta-demo', '1.0');
    const otherProjectDir = join(out, 'other-project');
    await mkdir(otherProjectDir);
    const otherProject = await buildDistributions(otherProjectDir, 'meta-demo', '1.0', { name: 'someone-else', version: '1.0' });
    const otherVersionDir = join(out, 'other-version');
    await mkdir(otherVersionDir);
    const otherVersion = await buildDistributions(otherVersionDir, 'meta-demo', '1.0', { name: 'Meta_Demo', version: '2.0' });
    const fields = { name: 'meta-demo', version: '1.0', filetype: 'bdist_wheel', pyversion: 'py3' };
    const emptyZip = Buffer.from([0x50, 0x4b, 0x05, 0x06, ...Buffer.alloc(18)]);
    const cases: [string, Buffer, Record<string, string>, RegExp][] = [
      [good.wheel, await readFile(good.wheel), { ...fields, blake2_256_digest: '0'.repeat(64) }, /blake2_256 is [0-9a-f]{64}, not the declared 0{64}/],
      [otherProject.wheel, await readFile(otherProject.wheel), fields, /METADATA of 'meta_demo-1.0-py3-none-any.whl' names project 'someone-else', not 'meta-demo'/],
      [otherVersion.wheel, await readFile(otherVersion.wheel), fields, /names version '2.0', not '1.0'/],
      [good.wheel, Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(100)]), fields, /not a readable zip/],
      // Readable, but an empty archive: no METADATA.
      [good.wheel, Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), emptyZip]), fields, /has no \.dist-info\/METADATA/],
    ];
    for (const [file, bytes, form, message] of cases) {
      const response = await upload('pypi-local', twineForm(file, bytes, form));
      expect(response.status, String(message)).toBe(400);
      expect(((await response.json()) as { errors: { message: string }[] }).errors[0]!.message, String(message)).toMatch(message);
    }
    expect((await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/meta-demo/')).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/storage/pypi-local/meta-demo')).status).toBe(404);
    // The same wheel with its true digests is accepted.
    expect((await upload('pypi-local', twineForm(good.wheel, await readFile(good.wheel), fields))).status).toBe(200);
  });
});
