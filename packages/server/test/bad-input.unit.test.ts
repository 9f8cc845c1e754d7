import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('bad input gets a clear 4xx and changes nothing', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
  });
  afterEach(async () => {
    await t.app.close();
  });

  const put = (url: string, body = 'x') => t.app.inject({ method: 'PUT', url, payload: body, headers: { 'content-type': 'application/octet-stream' } });

  // Literal '.' and '..' segments are normalised away by inject; the e2e test sends them raw.
  it.each([
    ['an encoded dot-dot segment', '/artifactory/libs/a/%2e%2e/%2e%2e/etc/passwd'],
    ['an encoded dot-dot-slash', '/artifactory/libs/%2e%2e%2fetc%2fpasswd'],
    ['an encoded NUL', '/artifactory/libs/a%00b.txt'],
    ['an encoded backslash', '/artifactory/libs/a%5c..%5cb.txt'],
    ['broken percent-encoding', '/artifactory/libs/a%zz.txt'],
    ['an over-long path', `/artifactory/libs/${'a/'.repeat(600)}x.txt`],
    ['an over-long segment', `/artifactory/libs/${'a'.repeat(300)}.txt`],
  ])('refuses a deploy with %s', async (_name, url) => {
    const before = t.store.all.length;
    const response = await put(url);
    expect(response.statusCode).toBeGreaterThanOrEqual(400);
    expect(response.statusCode).toBeLessThan(500);
    expect(response.json().errors[0].status).toBe(response.statusCode);
    expect(t.store.all.length).toBe(before);
    expect(t.blobs.blobs.size).toBe(0);
  });

  it('answers 404 for an unknown repository on deploy, download and storage', async () => {
    expect((await put('/artifactory/nope/a.txt')).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/nope/a.txt' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/nope/a.txt' })).statusCode).toBe(404);
    expect(t.blobs.blobs.size).toBe(0);
  });

  it('refuses an over-long repository key', async () => {
    const response = await t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${'k'.repeat(200)}`, payload: { rclass: 'local' } });
    expect(response.statusCode).toBe(400);
  });

  it('refuses a malformed checksum header before reading the body', async () => {
    const response = await t.app.inject({ method: 'PUT', url: '/artifactory/libs/a.txt', payload: 'x', headers: { 'content-type': 'text/plain', 'x-checksum-sha1': 'not-hex' } });
    expect(response.statusCode).toBe(400);
    expect(t.blobs.blobs.size).toBe(0);
  });

  it('refuses deploys to a virtual repository without a default deployment repository (405) and to a remote (400)', async () => {
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/virt', payload: { rclass: 'virtual', repositories: ['libs'] } });
    const virtual = await put('/artifactory/virt/a.txt');
    expect(virtual.statusCode).toBe(405);
    expect(virtual.json().errors[0].message).toMatch(/no default deployment repository/);
    await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/up', payload: { rclass: 'remote', url: 'http://127.0.0.1:9/' } });
    expect((await put('/artifactory/up/a.txt')).statusCode).toBe(400);
  });

  it('keeps one consistent artifact when the same path is deployed concurrently', async () => {
    const bodies = Array.from({ length: 16 }, (_, i) => `body-${i}`);
    const responses = await Promise.all(bodies.map((body) => put('/artifactory/libs/same.txt', body)));
    expect(responses.every((r) => r.statusCode === 201)).toBe(true);
    const events = (t.store.streams.get('repo-libs') ?? []).filter((e) => e.type === 'ArtifactDeployed');
    expect(events).toHaveLength(16);
    expect(events.map((e) => e.originSeq)).toEqual(Array.from({ length: 16 }, (_, i) => i + 2));
    const download = await t.app.inject({ method: 'GET', url: '/artifactory/libs/same.txt' });
    expect(bodies).toContain(download.body);
    const last = events.at(-1)!;
    expect(last.type === 'ArtifactDeployed' && download.headers['x-checksum-sha256']).toBe(last.type === 'ArtifactDeployed' ? last.data.sha256 : '');
  });

  it('refuses a file below a file and a file over a folder with 409', async () => {
    await put('/artifactory/libs/dir/file.txt');
    expect((await put('/artifactory/libs/dir/file.txt/child.txt')).statusCode).toBe(409);
    expect((await put('/artifactory/libs/dir')).statusCode).toBe(409);
  });

  it('refuses unknown query flags values and bad ranges politely', async () => {
    await put('/artifactory/libs/r.txt', '0123');
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs?list&deep=maybe' })).statusCode).toBe(400);
    const range = await t.app.inject({ method: 'GET', url: '/artifactory/libs/r.txt', headers: { range: 'bytes=9-' } });
    expect(range.statusCode).toBe(416);
    expect(range.headers['content-range']).toBe('bytes */4');
  });
});
