/**
 * Retention (issue 8) on the real SQL store (PGlite) and the filesystem blob store: binaries
 * of deleted and overwritten artifacts stay for the trash period, downloads as of an earlier
 * time work meanwhile, and a collection is recorded in the path's history.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsBlobStore, SqlBlobRetention, type BlobStore } from '@strata/store';
import { collectBlobGarbage } from '../src/audit/blob-collection.ts';
import { buildSqlApp, type SqlApp } from './support/sql-app.ts';

const HOUR = 3_600_000;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

// Files only, and with small deploys' blobs kept in the database (InlineBlobStore, as `strata serve` runs).
describe.each([
  { blobsAt: 'files', inlineBlobBytesMax: undefined },
  { blobsAt: 'inline rows', inlineBlobBytesMax: 64 * 1024 },
])('retention of binaries ($blobsAt)', ({ inlineBlobBytesMax }) => {
  let directory: string;
  let sqlApp: SqlApp;
  let blobs: BlobStore;
  let now: number;
  let retention: SqlBlobRetention;

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'strata-retention-'));
    now = Date.now();
    sqlApp = await buildSqlApp(new FsBlobStore({ root: directory }), { ...(inlineBlobBytesMax === undefined ? {} : { inlineBlobBytesMax }) });
    blobs = sqlApp.blobs;
    retention = new SqlBlobRetention(sqlApp.opened.db, { trashPeriodMs: HOUR, clock: { now: () => now } });
    await sqlApp.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', payload: { rclass: 'local' } });
  });
  afterEach(async () => {
    await sqlApp.close();
    await rm(directory, { recursive: true, force: true });
  });

  const inject = (method: 'GET' | 'PUT' | 'DELETE', url: string, payload?: string) => sqlApp.app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
  const collect = () =>
    collectBlobGarbage({
      blobStore: blobs,
      retention,
      gracePeriodMs: 0,
      recordCollected: (repo, path, sha) => sqlApp.app.recordBinaryCollected(repo, path, sha),
    });

  it('keeps a deleted artifact\'s binary for the trash period, then collects it and says so in its history', async () => {
    await inject('PUT', '/artifactory/libs/docs/a.txt', 'alpha');
    await inject('PUT', '/artifactory/libs/docs/kept.txt', 'kept');
    const deployed = (await inject('GET', '/artifactory/api/history/libs/docs/a.txt')).json().events.at(-1).position as string;
    await inject('DELETE', '/artifactory/libs/docs/a.txt');

    expect((await collect()).removed).toEqual([]);
    const early = await inject('GET', `/artifactory/libs/docs/a.txt?asOf=${deployed}`);
    expect(early.statusCode).toBe(200);
    expect(early.body).toBe('alpha');

    now += 2 * HOUR;
    const collected = await collect();
    expect(collected.removed).toEqual([sha256('alpha')]);
    expect(collected.failed).toEqual([]);
    const history = (await inject('GET', '/artifactory/api/history/libs/docs/a.txt')).json().events as { action: string; data: { sha256?: string }; actor: string }[];
    expect(history.map((event) => event.action)).toEqual(['repository-created', 'deployed', 'deleted', 'binary-collected']);
    expect(history.at(-1)).toMatchObject({ data: { sha256: sha256('alpha') }, actor: 'strata:blob-gc' });
    const late = await inject('GET', `/artifactory/libs/docs/a.txt?asOf=${deployed}`);
    expect(late.statusCode).toBe(404);
    expect(late.json().errors[0].message).toMatch(/no longer stored/);
    // A present artifact's binary is never collected, however old.
    expect((await inject('GET', '/artifactory/libs/docs/kept.txt')).body).toBe('kept');
    expect((await collect()).removed).toEqual([]);
  });

  it('keeps overwritten content for the trash period from when GC first finds it unreferenced', async () => {
    await inject('PUT', '/artifactory/libs/b.txt', 'first');
    const first = (await inject('GET', '/artifactory/api/history/libs/b.txt')).json().events.at(-1).position as string;
    await inject('PUT', '/artifactory/libs/b.txt', 'second');
    expect((await collect()).removed).toEqual([]);
    now += HOUR / 2;
    expect((await collect()).removed).toEqual([]);
    expect((await inject('GET', `/artifactory/libs/b.txt?asOf=${first}`)).body).toBe('first');
    now += HOUR;
    expect((await collect()).removed).toEqual([sha256('first')]);
    expect((await inject('GET', '/artifactory/libs/b.txt')).body).toBe('second');
  });

  it('a collection whose event cannot be recorded leaves the blob in place', async () => {
    await inject('PUT', '/artifactory/libs/c.txt', 'gamma');
    await inject('DELETE', '/artifactory/libs/c.txt');
    now += 2 * HOUR;
    const failing = await collectBlobGarbage({
      blobStore: blobs,
      retention,
      gracePeriodMs: 0,
      recordCollected: async () => {
        throw new Error('store unavailable');
      },
    });
    expect(failing.removed).toEqual([]);
    expect(failing.failed.map((entry) => entry.sha256)).toEqual([sha256('gamma')]);
    expect(await blobs.stat(sha256('gamma'))).toBeDefined();
    expect((await collect()).removed).toEqual([sha256('gamma')]);
  });
});
