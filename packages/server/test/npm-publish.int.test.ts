/**
 * npm publish on the real SQL store (PGlite, and PostgreSQL when DATABASE_URL is set) with
 * small blobs kept in the database, as `strata serve` wires it: the tarball is written in the
 * publish's own append transaction; "already published" and the tree-shape rules are checked
 * in the append transaction, after its locks (as `strata serve` wires it: a guard), or by the
 * batched lookup that generic deploys use (checksInAppend false); concurrent publishes of one
 * version store it once.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '@strata/store';
import { buildSqlApp, sqlAppBackends, type SqlApp } from './support/sql-app.ts';

const BACKENDS = sqlAppBackends('npm publish on SQL', 'npm_publish');

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

function tarballOf(name: string, version: string): Buffer {
  return gzipSync(Buffer.concat([Buffer.from(`package/package.json ${name}@${version}\n`), randomBytes(64)]));
}

/** The document `npm publish` sends: one version, its manifest and the base64 tarball. */
function publishDocument(name: string, version: string, tarball = tarballOf(name, version), declared = tarball): Record<string, unknown> {
  return {
    _id: name,
    name,
    'dist-tags': { latest: version },
    versions: {
      [version]: {
        name,
        version,
        dist: { integrity: `sha512-${createHash('sha512').update(declared).digest('base64')}`, shasum: createHash('sha1').update(declared).digest('hex') },
      },
    },
    _attachments: { [`${name}-${version}.tgz`]: { content_type: 'application/octet-stream', data: tarball.toString('base64'), length: tarball.length } },
  };
}

const CASES = BACKENDS.flatMap((backend) => [true, false].map((checksInAppend) => ({ ...backend, checksInAppend, checks: checksInAppend ? 'in the append' : 'by lookup' })));

describe.skipIf(!BACKENDS.some((backend) => backend.name === 'postgres'))('npm publish on two servers over one PostgreSQL database, checks in the append', () => {
  it('refuses the second of two concurrent publishes of one version, whichever server takes it', async () => {
    const postgres = BACKENDS.find((backend) => backend.name === 'postgres')!;
    const options = postgres.options();
    const directories = [await mkdtemp(join(tmpdir(), 'strata-npm-a-')), await mkdtemp(join(tmpdir(), 'strata-npm-b-'))];
    const first = await buildSqlApp(new FsBlobStore({ root: directories[0]! }), { ...options, inlineBlobBytesMax: 64 * 1024, checksInAppend: true });
    const second = await buildSqlApp(new FsBlobStore({ root: directories[1]! }), { ...options, inlineBlobBytesMax: 64 * 1024, checksInAppend: true });
    try {
      expect((await first.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/npm', payload: { rclass: 'local', packageType: 'npm' } })).statusCode).toBe(200);
      for (let attempt = 0; attempt < 5; attempt++) {
        const name = `raced-${attempt}`;
        // Each server's own stores and claims: only the stream's lock orders the two appends.
        const responses = await Promise.all(
          [first, second].map((server) => server.app.inject({ method: 'PUT', url: `/artifactory/api/npm/npm/${name}`, payload: publishDocument(name, '1.0.0') })),
        );
        expect(responses.map((response) => response.statusCode).sort()).toEqual([201, 409]);
        const events = (await first.opened.store.readStream('repo-npm')).filter((event) => event.type === 'ArtifactDeployed' && (event.data as { path: string }).path === `${name}/-/${name}-1.0.0.tgz`);
        expect(events).toHaveLength(1);
      }
    } finally {
      await second.close();
      await first.close();
      for (const directory of directories) await rm(directory, { recursive: true, force: true });
    }
  });
});

describe.each(CASES)('npm publish on $name, checks $checks', ({ options, checksInAppend }) => {
  let directory: string;
  let sqlApp: SqlApp;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'strata-npm-publish-'));
    sqlApp = await buildSqlApp(new FsBlobStore({ root: directory }), { ...options(), inlineBlobBytesMax: 64 * 1024, checksInAppend });
    expect((await sqlApp.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/npm', payload: { rclass: 'local', packageType: 'npm' } })).statusCode).toBe(200);
  });
  afterEach(async () => {
    await sqlApp.close();
    await rm(directory, { recursive: true, force: true });
  });

  const publish = (name: string, document: Record<string, unknown>) =>
    sqlApp.app.inject({ method: 'PUT', url: `/artifactory/api/npm/npm/${encodeURIComponent(name)}`, payload: document });
  const files = async () => {
    const entries = await readdir(join(directory, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
  };
  const rows = async () => (await sql<{ sha256: string }>`select sha256 from inline_blobs order by sha256`.execute(sqlApp.opened.db)).rows.map((row) => row.sha256);

  it('writes a small tarball with the publish event (no blob file) and serves it back byte for byte', async () => {
    const tarball = tarballOf('demo', '1.0.0');
    expect((await publish('demo', publishDocument('demo', '1.0.0', tarball))).statusCode).toBe(201);
    expect(await rows()).toEqual([sha256(tarball)]);
    expect(await files()).toEqual([]);
    const served = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/demo/-/demo-1.0.0.tgz' });
    expect(served.statusCode).toBe(200);
    expect(Buffer.compare(served.rawPayload, tarball)).toBe(0);
    const packument = (await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/demo' })).json() as { 'dist-tags': Record<string, string>; versions: Record<string, unknown> };
    expect(packument['dist-tags']).toEqual({ latest: '1.0.0' });
    expect(Object.keys(packument.versions)).toEqual(['1.0.0']);
  });

  it('refuses a republished version with 409, even when its attachment is bad, and stores nothing more', async () => {
    expect((await publish('demo', publishDocument('demo', '1.0.0'))).statusCode).toBe(201);
    const before = await rows();
    const again = await publish('demo', publishDocument('demo', '1.0.0'));
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ errors: [{ message: expect.stringMatching(/previously published/) }] });
    const notGzip = Buffer.from('not a tarball');
    expect((await publish('demo', publishDocument('demo', '1.0.0', notGzip, notGzip))).statusCode).toBe(409);
    // The same bad attachment for a new version is refused as what it is.
    expect((await publish('demo', publishDocument('demo', '1.0.1', notGzip, notGzip))).statusCode).toBe(400);
    expect(await rows()).toEqual(before);
  });

  it('stores one of several concurrent publishes of the same version and refuses the others with 409', async () => {
    const documents = Array.from({ length: 8 }, () => publishDocument('race', '1.0.0'));
    const statuses = (await Promise.all(documents.map((document) => publish('race', document)))).map((response) => response.statusCode);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 409)).toHaveLength(7);
    const winner = documents[statuses.indexOf(201)]!;
    const data = (winner._attachments as Record<string, { data: string }>)['race-1.0.0.tgz']!.data;
    expect(await rows()).toEqual([sha256(Buffer.from(data, 'base64'))]);
    const served = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/race/-/race-1.0.0.tgz' });
    expect(served.rawPayload.toString('base64')).toBe(data);
  });

  it('refuses, among concurrent publishes decided in one round, the version already stored alone and stores the others', async () => {
    expect((await publish('taken', publishDocument('taken', '1.0.0'))).statusCode).toBe(201);
    const before = await rows();
    const names = ['free-a', 'taken', 'free-b', 'free-c'];
    const documents = names.map((name) => publishDocument(name, '1.0.0'));
    const responses = await Promise.all(names.map((name, index) => publish(name, documents[index]!)));
    expect(responses.map((response) => response.statusCode)).toEqual([201, 409, 201, 201]);
    expect(responses[1]!.json()).toMatchObject({ errors: [{ message: expect.stringMatching(/previously published/) }] });
    for (const name of ['free-a', 'free-b', 'free-c']) {
      const packument = (await sqlApp.app.inject({ method: 'GET', url: `/artifactory/api/npm/npm/${name}` })).json() as { versions: Record<string, unknown> };
      expect(Object.keys(packument.versions)).toEqual(['1.0.0']);
    }
    expect(await rows()).toHaveLength(before.length + 3);
  });

  it('publishes concurrent new packages, each listed in its own packument', async () => {
    const names = Array.from({ length: 24 }, (_, index) => `pkg-${index}`);
    const statuses = await Promise.all(names.map(async (name) => (await publish(name, publishDocument(name, '1.0.0'))).statusCode));
    expect(statuses).toEqual(names.map(() => 201));
    for (const name of names) {
      const packument = (await sqlApp.app.inject({ method: 'GET', url: `/artifactory/api/npm/npm/${name}` })).json() as { versions: Record<string, unknown> };
      expect(Object.keys(packument.versions)).toEqual(['1.0.0']);
    }
    expect(await rows()).toHaveLength(names.length);
  });

  it('refuses, as a generic deploy does, a tarball whose path is a folder or lies below a file, storing nothing', async () => {
    const deploy = (path: string) => sqlApp.app.inject({ method: 'PUT', url: `/artifactory/npm/${path}`, payload: Buffer.from(path), headers: { 'content-type': 'application/octet-stream' } });
    expect((await deploy('folder-pkg/-/folder-pkg-1.0.0.tgz/inside.txt')).statusCode).toBe(201);
    const folder = await publish('folder-pkg', publishDocument('folder-pkg', '1.0.0'));
    expect(folder.statusCode).toBe(409);
    expect(folder.json()).toMatchObject({ errors: [{ message: expect.stringMatching(/is a folder/) }] });
    expect((await deploy('file-pkg/-')).statusCode).toBe(201);
    const below = await publish('file-pkg', publishDocument('file-pkg', '1.0.0'));
    expect(below.statusCode).toBe(409);
    expect(below.json()).toMatchObject({ errors: [{ message: expect.stringMatching(/is a file/) }] });
    expect(await rows()).toHaveLength(2); // the two generic deploys' blobs only
    expect((await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/folder-pkg' })).statusCode).toBe(404);
    expect((await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/npm/npm/file-pkg' })).statusCode).toBe(404);
  });
});
