import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

const sha = (algorithm: string, bytes: Buffer | string) => createHash(algorithm).update(bytes).digest('hex');

describe('deploy, download and delete', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
  });
  afterEach(async () => {
    await t.app.close();
  });

  const deploy = (path: string, body: string | Buffer, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'PUT', url: `/artifactory/libs/${path}`, payload: body, headers: { 'content-type': 'application/octet-stream', ...headers } });

  it('deploys a file and answers 201 with ItemCreated JSON', async () => {
    const body = 'hello world';
    const response = await deploy('org/acme/app-1.0.jar', body, { 'x-checksum-sha1': sha('sha1', body) });
    expect(response.statusCode).toBe(201);
    expect(String(response.headers['content-type']).toLowerCase()).toContain('application/vnd.org.jfrog.artifactory.storage.itemcreated+json');
    expect(response.json()).toMatchObject({
      repo: 'libs',
      path: '/org/acme/app-1.0.jar',
      createdBy: 'admin',
      mimeType: 'application/java-archive',
      size: '11',
      checksums: { sha1: sha('sha1', body), md5: sha('md5', body), sha256: sha('sha256', body) },
      downloadUri: expect.stringMatching(/\/artifactory\/libs\/org\/acme\/app-1.0.jar$/),
      uri: expect.stringMatching(/\/artifactory\/api\/storage\/libs\/org\/acme\/app-1.0.jar$/),
    });
    const events = t.store.streams.get('repo-libs') ?? [];
    expect(events.at(-1)).toMatchObject({ type: 'ArtifactDeployed', originSeq: 2, data: { path: 'org/acme/app-1.0.jar', size: 11 } });
  });

  it('downloads with ETag, checksum headers, content type, ranges and 304', async () => {
    const body = '0123456789';
    await deploy('a/b.txt', body);
    const full = await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b.txt' });
    expect(full.statusCode).toBe(200);
    expect(full.body).toBe(body);
    expect(full.headers).toMatchObject({ etag: sha('sha1', body), 'x-checksum-sha1': sha('sha1', body), 'x-checksum-sha256': sha('sha256', body), 'x-checksum-md5': sha('md5', body) });
    expect(full.headers['content-type']).toContain('text/plain');
    const ranged = await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b.txt', headers: { range: 'bytes=2-4' } });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.body).toBe('234');
    expect(ranged.headers['content-range']).toBe('bytes 2-4/10');
    const suffix = await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b.txt', headers: { range: 'bytes=-3' } });
    expect(suffix.body).toBe('789');
    const unsatisfiable = await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b.txt', headers: { range: 'bytes=20-' } });
    expect(unsatisfiable.statusCode).toBe(416);
    const notModified = await t.app.inject({ method: 'GET', url: '/artifactory/libs/a/b.txt', headers: { 'if-none-match': `"${sha('sha1', body)}"` } });
    expect(notModified.statusCode).toBe(304);
    const head = await t.app.inject({ method: 'HEAD', url: '/artifactory/libs/a/b.txt' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('10');
    expect(head.body).toBe('');
  });

  it('refuses a deploy whose checksum header does not match with 409 and stores nothing', async () => {
    const response = await deploy('bad.bin', 'content', { 'x-checksum-sha256': 'a'.repeat(64) });
    expect(response.statusCode).toBe(409);
    expect(response.json().errors[0].status).toBe(409);
    expect(t.store.streams.get('repo-libs')).toHaveLength(1);
    expect(t.blobs.blobs.size).toBe(0);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/libs/bad.bin' })).statusCode).toBe(404);
  });

  it('deploys by checksum when the binary exists and answers 404 otherwise', async () => {
    const body = 'shared';
    await deploy('one.bin', body);
    const byChecksum = await deploy('two.bin', '', { 'x-checksum-deploy': 'true', 'x-checksum-sha256': sha('sha256', body), 'x-checksum-sha1': sha('sha1', body) });
    expect(byChecksum.statusCode).toBe(201);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/libs/two.bin' })).body).toBe(body);
    const missing = await deploy('three.bin', '', { 'x-checksum-deploy': 'true', 'x-checksum-sha256': 'b'.repeat(64) });
    expect(missing.statusCode).toBe(404);
  });

  it('turns matrix parameters into properties', async () => {
    await deploy('m/x.bin;build.name=app;build.number=7', 'x');
    const events = t.store.streams.get('repo-libs') ?? [];
    expect(events.at(-1)).toMatchObject({ type: 'ArtifactDeployed', data: { path: 'm/x.bin', properties: { 'build.name': ['app'], 'build.number': ['7'] } } });
  });

  it('deletes a file with ArtifactDeleted and a folder with one FolderDeleted', async () => {
    await deploy('f/1.txt', '1');
    await deploy('f/sub/2.txt', '2');
    await deploy('g.txt', 'g');
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/g.txt' })).statusCode).toBe(204);
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/f' })).statusCode).toBe(204);
    const types = (t.store.streams.get('repo-libs') ?? []).slice(4).map((e) => e.type);
    expect(types).toEqual(['ArtifactDeleted', 'FolderDeleted']);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/libs/f/sub/2.txt' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/libs/f' })).statusCode).toBe(404);
  });

  it('refuses a deploy outside the include patterns with 403 naming the pattern', async () => {
    await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/libs', payload: { includesPattern: 'org/**', excludesPattern: 'org/secret/**' } });
    expect((await deploy('org/ok.txt', 'ok')).statusCode).toBe(201);
    const excluded = await deploy('org/secret/x.txt', 'x');
    expect(excluded.statusCode).toBe(403);
    expect(excluded.json().errors[0].message).toContain('org/secret/**');
    const notIncluded = await deploy('com/x.txt', 'x');
    expect(notIncluded.statusCode).toBe(403);
    expect(notIncluded.json().errors[0].message).toContain('org/**');
  });
});

describe('limits and the repository root', () => {
  it('refuses a declared size over uploadBytesMax with 413 before reading the body, and indexes the root', async () => {
    const t = await buildUnitApp({ uploadBytesMax: 10 });
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
    const big = await t.app.inject({ method: 'PUT', url: '/artifactory/libs/big.bin', payload: 'x'.repeat(11), headers: { 'content-type': 'application/octet-stream' } });
    expect(big.statusCode).toBe(413);
    expect(t.blobs.blobs.size).toBe(0);
    await t.app.inject({ method: 'PUT', url: '/artifactory/libs/small.bin', payload: 'x', headers: { 'content-type': 'application/octet-stream' } });
    const root = await t.app.inject({ method: 'GET', url: '/artifactory/libs' });
    expect(root.statusCode).toBe(200);
    expect(root.body).toContain('small.bin');
    await t.app.close();
  });
});
