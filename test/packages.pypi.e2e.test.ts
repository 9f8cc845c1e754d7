import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildArchive, buildDistributions, pip as runPip, pipMissing, twineForm } from './package-clients/python-distributions.ts';
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
    expect(html).toContain(`/artifactory/api/pypi/pypi-local/packages/strata-demo/0.3.1/${basename(wheel)}#sha256=${sha256}" data-requires-python="&#62;=3.8" data-dist-info-metadata="sha256=`);
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
  it("refuses an sdist whose PKG-INFO names another project or version, or that has none, storing nothing", async (context) => {
    if (missing !== undefined) return context.skip();
    const out = join(dir, 'sdist-cases');
    await mkdir(out);
    const build = async (sub: string, metadata?: { name: string; version: string }) => {
      await mkdir(join(out, sub));
      return buildDistributions(join(out, sub), 'sdist-demo', '1.0', metadata);
    };
    const otherProject = await build('other-project', { name: 'someone-else', version: '1.0' });
    const otherVersion = await build('other-version', { name: 'Sdist_Demo', version: '2.0' });
    const pkgInfo = (name: string, version: string) => `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n\n`;
    const archive = (sub: string, fileName: string, files: Record<string, string>) => buildArchive(join(out, `${sub}-${fileName}`), files);
    const fields = { name: 'sdist-demo', version: '1.0', filetype: 'sdist', pyversion: 'source' };
    const cases: [string, Buffer, RegExp][] = [
      ['sdist_demo-1.0.tar.gz', await readFile(otherProject.sdist), /PKG-INFO of 'sdist_demo-1.0.tar.gz' names project 'someone-else', not 'sdist-demo'/],
      ['sdist_demo-1.0.tar.gz', await readFile(otherVersion.sdist), /PKG-INFO of 'sdist_demo-1.0.tar.gz' names version '2.0', not '1.0'/],
      ['sdist_demo-1.0.tar.gz', await archive('none', 'sdist_demo-1.0.tar.gz', { 'sdist_demo-1.0/setup.py': 'print(1)\n' }), /has no PKG-INFO/],
      // Only the top folder's PKG-INFO counts (an egg-info's copy deeper down does not).
      ['sdist_demo-1.0.tar.gz', await archive('deep', 'sdist_demo-1.0.tar.gz', { 'sdist_demo-1.0/src/sdist_demo.egg-info/PKG-INFO': pkgInfo('sdist-demo', '1.0') }), /has no PKG-INFO/],
      ['sdist_demo-1.0.tar.gz', Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.alloc(64, 7)]), /not a readable \.tar\.gz/],
      ['sdist_demo-1.0.zip', await archive('zip-other', 'sdist_demo-1.0.zip', { 'sdist_demo-1.0/PKG-INFO': pkgInfo('someone-else', '1.0') }), /PKG-INFO of 'sdist_demo-1.0.zip' names project 'someone-else'/],
      ['sdist_demo-1.0.zip', await archive('zip-none', 'sdist_demo-1.0.zip', { 'sdist_demo-1.0/setup.py': '' }), /has no PKG-INFO/],
    ];
    for (const [fileName, bytes, message] of cases) {
      const response = await upload('pypi-local', twineForm(fileName, bytes, fields));
      expect(response.status, String(message)).toBe(400);
      const error = ((await response.json()) as { errors: { message: string }[] }).errors[0]!.message;
      expect(error, String(message)).toMatch(message);
    }
    expect((await adminFetch(server, '/artifactory/api/pypi/pypi-local/simple/sdist-demo/')).status).toBe(404);
    expect((await adminFetch(server, '/artifactory/api/storage/pypi-local/sdist-demo')).status).toBe(404);

    // Accepted: the name spelt otherwise (normalised alike), a .zip sdist, and a tarball whose
    // long entry names sit in pax headers before PKG-INFO.
    const longName = `sdist_demo-1.0/${'a'.repeat(120)}/module.py`;
    const tarball = await archive('good', 'sdist_demo-1.0.tar.gz', { [longName]: 'x = 1\n', 'sdist_demo-1.0/PKG-INFO': pkgInfo('Sdist.Demo', '1.0') });
    const zip = await archive('good', 'sdist_demo-1.0.zip', { 'sdist_demo-1.0/PKG-INFO': pkgInfo('sdist_demo', '1.0') });
    for (const [fileName, bytes] of [['sdist_demo-1.0.tar.gz', tarball], ['sdist_demo-1.0.zip', zip]] as const) {
      const response = await upload('pypi-local', twineForm(fileName, bytes, fields));
      expect(response.status, await response.clone().text()).toBe(200);
    }
  });

  it('advertises a wheel\'s METADATA (PEP 658/714) in both index forms and serves it, so pip resolves without downloading the wheel', async (context) => {
    if (missing !== undefined) return context.skip();
    const out = join(dir, 'lean');
    await mkdir(out);
    const lean = await buildDistributions(out, 'lean-demo', '1.0');
    for (const [file, filetype, pyversion] of [[lean.wheel, 'bdist_wheel', 'py3'], [lean.sdist, 'sdist', 'source']] as const) {
      expect((await upload('pypi-team', twineForm(file, await readFile(file), { name: 'lean-demo', version: '1.0', filetype, pyversion }))).status).toBe(200);
    }
    const wheelName = basename(lean.wheel);
    const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    for (const repo of ['pypi-team', 'pypi']) {
      const page = (await (await adminFetch(server, `/artifactory/api/pypi/${repo}/simple/lean-demo/`, { headers: { accept: 'application/vnd.pypi.simple.v1+json' } })).json()) as {
        files: { filename: string; url: string; 'core-metadata'?: { sha256: string }; 'dist-info-metadata'?: { sha256: string } }[];
      };
      const wheelEntry = page.files.find((file) => file.filename === wheelName)!;
      const sdistEntry = page.files.find((file) => file.filename === basename(lean.sdist))!;
      expect(sdistEntry['core-metadata']).toBeUndefined();
      const advertised = wheelEntry['core-metadata']?.sha256;
      expect(advertised, repo).toMatch(/^[0-9a-f]{64}$/);
      expect(wheelEntry['dist-info-metadata']?.sha256).toBe(advertised);
      const metadata = await adminFetch(server, new URL(`${wheelEntry.url}.metadata`).pathname);
      expect(metadata.status).toBe(200);
      const bytes = Buffer.from(await metadata.arrayBuffer());
      expect(sha256(bytes)).toBe(advertised);
      expect(bytes.toString('utf8')).toContain('Name: lean-demo');
      const html = await (await adminFetch(server, `/artifactory/api/pypi/${repo}/simple/lean-demo/`)).text();
      expect(html).toContain(`data-dist-info-metadata="sha256=${advertised}" data-core-metadata="sha256=${advertised}">${wheelName}</a>`);
      expect((await adminFetch(server, `/artifactory/api/pypi/${repo}/packages/lean-demo/1.0/${basename(lean.sdist)}.metadata`)).status).toBe(404);
      expect((await adminFetch(server, `/artifactory/api/pypi/${repo}/packages/lean-demo/1.0/missing-1.0-py3-none-any.whl.metadata`)).status).toBe(404);
    }

    // pip reads a candidate's dependencies from its METADATA alone. lean-demo 2.0 needs a
    // project no index has: pip gives it up after reading its METADATA, without downloading
    // that wheel, and takes 1.0.
    const newer = join(dir, 'lean-newer');
    await mkdir(newer);
    const { wheel: newerWheel } = await buildDistributions(newer, 'lean-demo', '2.0', undefined, ['lean-missing-dependency>=1']);
    expect((await upload('pypi-team', twineForm(newerWheel, await readFile(newerWheel), { name: 'lean-demo', version: '2.0', filetype: 'bdist_wheel', pyversion: 'py3' }))).status).toBe(200);
    const downloads = async (file: string) => {
      await sleep(1_500); // download counts are flushed each second
      const version = file === wheelName ? '1.0' : '2.0';
      const answer = (await (await adminFetch(server, `/artifactory/api/storage/pypi-team/lean-demo/${version}/${file}?stats`)).json()) as { downloadCount: number };
      return answer.downloadCount;
    };
    const teamIndex = `http://admin:${ADMIN_PASSWORD}@127.0.0.1:${server.port}/artifactory/api/pypi/pypi-team/simple/`;
    const target = join(dir, 'lean-download');
    const resolved = await runPip(dir, teamIndex, ['download', '--only-binary', ':all:', '-d', target, 'lean-demo']);
    expect(await readdir(target)).toEqual([wheelName]);
    expect(resolved.stdout).toContain('lean_demo-2.0-py3-none-any.whl.metadata');
    expect(await downloads(basename(newerWheel))).toBe(0);
    expect(await downloads(wheelName)).toBe(1);
  });
});
