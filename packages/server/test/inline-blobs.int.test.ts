/**
 * Deploys over HTTP with small blobs kept in the database (InlineBlobStore, as `strata serve`
 * wires it; docs/storage.md, "Inline blobs"), on PGlite and — when DATABASE_URL is set —
 * PostgreSQL: written with the deploy's event and read back by every read path; large
 * artifacts still go to files; a refused deploy leaves no row.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore } from '@strata/store';
import { buildSqlApp, sqlAppBackends, type SqlApp } from './support/sql-app.ts';

const BACKENDS = sqlAppBackends('inline blobs over HTTP', 'inline_http');

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const inlineBlobBytesMax = 4096;

describe.each(BACKENDS)('inline blobs over HTTP on $name', ({ options }) => {
  let directory: string;
  let sqlApp: SqlApp;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'strata-inline-http-'));
    sqlApp = await buildSqlApp(new FsBlobStore({ root: directory }), { ...options(), inlineBlobBytesMax });
    await sqlApp.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
  });
  afterEach(async () => {
    await sqlApp.close();
    await rm(directory, { recursive: true, force: true });
  });

  const files = async () => {
    const entries = await readdir(join(directory, 'blobs'), { recursive: true, withFileTypes: true }).catch(() => []);
    return entries.filter((entry) => entry.isFile()).map((entry) => entry.name).sort();
  };
  const rows = async () => (await sql<{ sha256: string }>`select sha256 from inline_blobs order by sha256`.execute(sqlApp.opened.db)).rows.map((row) => row.sha256);
  const put = (url: string, payload: Buffer, headers: Record<string, string> = {}) =>
    sqlApp.app.inject({ method: 'PUT', url: `/artifactory/libs/${url}`, payload, headers: { 'content-type': 'application/octet-stream', ...headers } });

  it('a small deploy is a row, no file; GET, HEAD, Range and the storage API read it', async () => {
    const body = randomBytes(1024);
    const deployed = await put('org/small.bin', body);
    expect(deployed.statusCode).toBe(201);
    expect(deployed.json()).toMatchObject({ checksums: { sha256: sha256(body) }, size: '1024' });
    expect(await files()).toEqual([]);
    expect(await rows()).toEqual([sha256(body)]);

    const got = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/libs/org/small.bin' });
    expect(got.statusCode).toBe(200);
    expect(got.rawPayload).toEqual(body);
    expect(got.headers['x-checksum-sha256']).toBe(sha256(body));
    const ranged = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/libs/org/small.bin', headers: { range: 'bytes=100-199' } });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.rawPayload).toEqual(body.subarray(100, 200));
    const head = await sqlApp.app.inject({ method: 'HEAD', url: '/artifactory/libs/org/small.bin' });
    expect(head.statusCode).toBe(200);
    const info = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/api/storage/libs/org/small.bin' });
    expect(info.json()).toMatchObject({ checksums: { sha256: sha256(body) }, size: '1024' });
  });

  it('a checksum deploy of an inline blob needs no body, and reads back', async () => {
    const body = Buffer.from('content deployed once, then by checksum');
    expect((await put('a/first.txt', body)).statusCode).toBe(201);
    const again = await put('b/second.txt', Buffer.alloc(0), { 'x-checksum-deploy': 'true', 'x-checksum-sha256': sha256(body) });
    expect(again.statusCode).toBe(201);
    const got = await sqlApp.app.inject({ method: 'GET', url: '/artifactory/libs/b/second.txt' });
    expect(got.rawPayload).toEqual(body);
    expect(await rows()).toEqual([sha256(body)]);
    expect(await files()).toEqual([]);
  });

  it('artifacts over the threshold still go to files', async () => {
    const large = randomBytes(inlineBlobBytesMax + 1);
    expect((await put('big/large.bin', large)).statusCode).toBe(201);
    expect(await files()).toEqual([sha256(large)]);
    expect(await rows()).toEqual([]);
    expect((await sqlApp.app.inject({ method: 'GET', url: '/artifactory/libs/big/large.bin' })).rawPayload).toEqual(large);
  });

  it('a refused deploy (its path is a folder) leaves no row', async () => {
    expect((await put('dir/inside.txt', Buffer.from('inside'))).statusCode).toBe(201);
    const refused = Buffer.from('would replace a folder');
    const response = await put('dir', refused);
    expect(response.statusCode).toBe(409);
    expect(await rows()).toEqual([sha256(Buffer.from('inside'))]);
    expect(await sqlApp.blobs.stat(sha256(refused))).toBeUndefined();
  });

  it('concurrent deploys of one round each get their row, identical content one row', async () => {
    const bodies = Array.from({ length: 12 }, (_, index) => Buffer.from(`concurrent ${index % 6}`));
    const responses = await Promise.all(bodies.map((body, index) => put(`many/${index}.txt`, body)));
    expect(responses.map((response) => response.statusCode)).toEqual(bodies.map(() => 201));
    expect(await rows()).toEqual([...new Set(bodies.map(sha256))].sort());
    for (const [index, body] of bodies.entries()) {
      expect((await sqlApp.app.inject({ method: 'GET', url: `/artifactory/libs/many/${index}.txt` })).rawPayload).toEqual(body);
    }
  });
});
