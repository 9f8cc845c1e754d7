import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStrataError, type ErrorCode } from '@strata/core';
import { FsBlobStore } from '@strata/store';

let root: string;
let now: number;
let store: FsBlobStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'strata-blobs-'));
  now = Date.now();
  store = new FsBlobStore({ root, clock: { now: () => now } });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

function digest(algorithm: string, bytes: Uint8Array): string {
  return createHash(algorithm).update(bytes).digest('hex');
}

async function* chunks(...parts: (string | Uint8Array)[]): AsyncIterable<Uint8Array> {
  for (const part of parts) {
    await new Promise((resolve) => setImmediate(resolve));
    yield typeof part === 'string' ? Buffer.from(part) : part;
  }
}

/** Every file under root: what a crash or a reader could see. */
async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isStrataError(error) ? error.code : error).toBe(code);
}

describe('FsBlobStore', () => {
  it('stores a streamed body under blobs/ab/cd/<sha256> with all three checksums', async () => {
    const body = Buffer.from('hello, artifact\n'.repeat(1000));
    const lease = await store.put(chunks(body.subarray(0, 5000), body.subarray(5000)), { expectedSize: body.length });
    expect(lease).toMatchObject({ sha256: digest('sha256', body), sha1: digest('sha1', body), md5: digest('md5', body), size: body.length });
    lease.release();
    expect(await filesUnder(root)).toEqual([join(root, 'blobs', lease.sha256.slice(0, 2), lease.sha256.slice(2, 4), lease.sha256)]);
    expect(await store.read(lease.sha256)).toEqual(body);
    expect(await store.stat(lease.sha256)).toEqual({ size: body.length });
  });

  it('without syncWrites (PGlite) stores the same blob the same way, renamed into place', async () => {
    const unsynced = new FsBlobStore({ root, clock: { now: () => now }, syncWrites: false });
    const body = Buffer.from('not fsynced, still atomic\n'.repeat(100));
    const lease = await unsynced.put(chunks(body.subarray(0, 100), body.subarray(100)), { expectedSize: body.length });
    expect(lease).toMatchObject({ sha256: digest('sha256', body), size: body.length });
    lease.release();
    expect(await filesUnder(root)).toEqual([join(root, 'blobs', lease.sha256.slice(0, 2), lease.sha256.slice(2, 4), lease.sha256)]);
    expect(await store.read(lease.sha256)).toEqual(body);
  });

  it('a checksum mismatch is refused and leaves no file behind', async () => {
    const body = Buffer.from('content');
    await expectCode(store.put(chunks(body), { expected: { sha1: digest('sha1', Buffer.from('other')) } }), 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH');
    await expectCode(store.put(chunks(body), { expected: { sha256: '0'.repeat(64) } }), 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH');
    expect(await filesUnder(root)).toEqual([]);
    const lease = await store.put(chunks(body), { expected: { sha256: digest('sha256', body).toUpperCase(), md5: digest('md5', body) } });
    expect(lease.sha256).toBe(digest('sha256', body));
  });

  it('a body shorter than its declared length is refused as incomplete and leaves nothing', async () => {
    await expectCode(store.put(chunks('abc', 'def'), { expectedSize: 10 }), 'STRATA_ERR_BLOB_INCOMPLETE');
    await expectCode(store.put(chunks('abc', 'defghijklmn'), { expectedSize: 10 }), 'STRATA_ERR_BLOB_INCOMPLETE');
    expect(await filesUnder(root)).toEqual([]);
  });

  it('a body over the size limit is refused and leaves nothing', async () => {
    await expectCode(store.put(chunks('x'.repeat(600), 'y'.repeat(600)), { sizeBytesMax: 1000 }), 'STRATA_ERR_BLOB_TOO_LARGE');
    expect(await filesUnder(root)).toEqual([]);
  });

  it('a source that fails midway, or an aborted upload, leaves nothing', async () => {
    async function* broken(): AsyncIterable<Uint8Array> {
      yield Buffer.from('partial');
      throw new Error('client went away');
    }
    await expect(store.put(broken())).rejects.toThrow('client went away');
    const controller = new AbortController();
    const slow = Readable.from(
      (async function* () {
        yield Buffer.from('a');
        controller.abort();
        yield Buffer.from('b');
      })(),
    );
    await expect(store.put(slow, { signal: controller.signal })).rejects.toThrow();
    expect(await filesUnder(root)).toEqual([]);
  });

  it('concurrent puts of the same content all succeed and store one blob', async () => {
    const body = Buffer.alloc(256 * 1024, 7);
    const leases = await Promise.all(Array.from({ length: 12 }, () => store.put(chunks(body.subarray(0, 100_000), body.subarray(100_000)))));
    expect(new Set(leases.map((lease) => lease.sha256)).size).toBe(1);
    expect(await filesUnder(root)).toHaveLength(1);
    expect(await store.read(leases[0]!.sha256)).toEqual(body);
  });

  it('reads byte ranges, and reports a missing blob as not found', async () => {
    const lease = await store.put(chunks('0123456789'));
    const read = async (start: number, end: number) => Buffer.concat(await (await store.createReadStream(lease.sha256, { start, end })).toArray()).toString();
    expect(await read(2, 5)).toBe('2345');
    expect(await read(9, 9)).toBe('9');
    expect(Buffer.concat(await (await store.createReadStream(lease.sha256)).toArray()).toString()).toBe('0123456789');
    await expectCode(store.createReadStream('a'.repeat(64)), 'STRATA_ERR_BLOB_NOT_FOUND');
    await expectCode(store.read('../../etc/passwd'), 'STRATA_ERR_BLOB_NOT_FOUND');
    expect(await store.stat('a'.repeat(64))).toBeUndefined();
  });

  it('statMany reports the stored blobs with their sizes and leaves out missing, malformed and repeated names', async () => {
    const short = await store.put(chunks('abc'));
    const empty = await store.put(chunks(''));
    const missing = 'b'.repeat(64);
    const stats = await store.statMany([short.sha256, missing, '../../etc/passwd', empty.sha256, short.sha256, 'A'.repeat(64)]);
    expect([...stats].sort()).toEqual(
      [
        [short.sha256, { size: 3 }],
        [empty.sha256, { size: 0 }],
      ].sort(),
    );
    expect((await store.statMany([])).size).toBe(0);
    const aborted = new AbortController();
    aborted.abort(new Error('stop'));
    await expect(store.statMany([short.sha256], { signal: aborted.signal })).rejects.toThrow('stop');
  });

  it('lease() of a stored blob reports its checksums; of a missing one, undefined', async () => {
    const body = Buffer.from('checksum deploy');
    (await store.put(chunks(body))).release();
    const lease = await store.lease(digest('sha256', body));
    expect(lease).toMatchObject({ sha256: digest('sha256', body), sha1: digest('sha1', body), md5: digest('md5', body), size: body.length });
    expect(await store.lease('b'.repeat(64))).toBeUndefined();
  });

  it('collectGarbage removes old unreferenced blobs and spares leased, young and referenced ones', async () => {
    const put = async (text: string) => store.put(chunks(text));
    const unreferenced = await put('orphan');
    unreferenced.release();
    const referenced = await put('referenced');
    referenced.release();
    const leased = await put('in-flight deploy');
    const young = await put('just written');
    young.release();
    const old = new Date(now - 2 * 60 * 60 * 1000);
    for (const lease of [unreferenced, referenced, leased]) {
      await utimes(join(root, 'blobs', lease.sha256.slice(0, 2), lease.sha256.slice(2, 4), lease.sha256), old, old);
    }
    const asked: string[] = [];
    const { removed } = await store.collectGarbage({
      gracePeriodMs: 60 * 60 * 1000,
      isReferenced: async (sha256) => {
        asked.push(sha256);
        return sha256 === referenced.sha256;
      },
    });
    expect(removed).toEqual([unreferenced.sha256]);
    expect(asked).not.toContain(leased.sha256);
    expect(asked).not.toContain(young.sha256);
    expect(await store.stat(unreferenced.sha256)).toBeUndefined();
    for (const kept of [referenced, leased, young]) expect(await store.stat(kept.sha256)).toBeDefined();

    leased.release();
    const second = await store.collectGarbage({ gracePeriodMs: 60 * 60 * 1000, isReferenced: async (sha256) => sha256 === referenced.sha256 });
    expect(second.removed).toEqual([leased.sha256]);
  });

  it('a lease taken while GC asks about a blob keeps it', async () => {
    const lease = await store.put(chunks('raced'));
    lease.release();
    now += 2 * blobHour;
    let again: Awaited<ReturnType<FsBlobStore['lease']>>;
    const { removed } = await store.collectGarbage({
      gracePeriodMs: blobHour,
      isReferenced: async (sha256) => {
        again = await store.lease(sha256);
        return false;
      },
    });
    expect(removed).toEqual([]);
    expect(again!).toBeDefined();
    expect(await store.stat(lease.sha256)).toEqual({ size: 5 });
  });
});

const blobHour = 60 * 60 * 1000;
