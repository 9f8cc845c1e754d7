/**
 * InlineBlobStore: small deploys' blobs written into `inline_blobs` by the append of the event
 * that references them (docs/storage.md, "Inline blobs"), on PGlite and — when DATABASE_URL
 * is set — PostgreSQL (its two-round-trip append transactions), with real files for the rest.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isStrataError, type ErrorCode, type NewEvent } from '@strata/core';
import { FsBlobStore, InlineBlobStaging, InlineBlobStore, openEventStore, type OpenedEventStore } from '@strata/store';

const databaseUrl = process.env['DATABASE_URL'];
const schemas: string[] = [];
const BACKENDS: { name: string; open(staging: InlineBlobStaging): Promise<OpenedEventStore> }[] = [
  { name: 'pglite', open: (staging) => openEventStore({ store: { appendWrites: [staging] } }) },
];
if (databaseUrl === undefined) console.log('inline blobs: DATABASE_URL is not set, PostgreSQL backend skipped');
else {
  BACKENDS.push({
    name: 'postgres',
    open(staging) {
      const schema = `inline_blobs_test_${process.pid}_${schemas.length}`;
      schemas.push(schema);
      return openEventStore({ databaseUrl, schema, poolConnectionsMax: 4, store: { appendWrites: [staging] } });
    },
  });
}

afterAll(async () => {
  if (databaseUrl === undefined || schemas.length === 0) return;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  for (const schema of schemas) await client.query(`drop schema if exists ${schema} cascade`);
  await client.end();
});

const digest = (algorithm: string, bytes: Uint8Array) => createHash(algorithm).update(bytes).digest('hex');
let sequence = 0;

function deployed(path: string, sha256: string, size: number): NewEvent {
  sequence++;
  return {
    id: `inline-${process.pid}-${sequence}`,
    origin: 'site-a',
    originSeq: sequence,
    hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
    type: 'ArtifactDeployed',
    data: { path, sha256, sha1: 'b'.repeat(40), md5: 'b'.repeat(32), size, mimeType: 'application/octet-stream', properties: {} },
    meta: { actor: 'tester' },
  } as NewEvent;
}

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => entry.name);
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(isStrataError(error) ? error.code : error).toBe(code);
}

describe.each(BACKENDS)('InlineBlobStore on $name', ({ open }) => {
  let root: string;
  let now: number;
  let opened: OpenedEventStore;
  let store: InlineBlobStore;
  const inlineBytesMax = 4096;

  const rows = async () => (await sql<{ sha256: string }>`select sha256 from inline_blobs order by sha256`.execute(opened.db)).rows.map((row) => row.sha256);

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'strata-inline-blobs-'));
    now = Date.now();
    const staging = new InlineBlobStaging();
    opened = await open(staging);
    store = new InlineBlobStore({ files: new FsBlobStore({ root, clock: { now: () => now } }), db: opened.db, staging, inlineBytesMax, clock: { now: () => now } });
  });
  afterEach(async () => {
    await opened.close();
    await rm(root, { recursive: true, force: true });
  });

  it('a small deferred put writes no file; the append of its event writes the row, read back after the lease', async () => {
    const body = randomBytes(1024);
    const lease = await store.put(Readable.from([body.subarray(0, 100), body.subarray(100)]), { deferToAppend: true, expectedSize: 1024 });
    expect(lease).toMatchObject({ sha256: digest('sha256', body), sha1: digest('sha1', body), md5: digest('md5', body), size: 1024 });
    expect(await filesUnder(root)).toEqual([]);
    // Staged: readable while its deploy is in flight (a format's verify reads it).
    expect(await store.read(lease.sha256)).toEqual(body);
    expect(await rows()).toEqual([]);

    await opened.store.append('repo-libs', [deployed('a/one.bin', lease.sha256, 1024)]);
    lease.release();
    expect(await rows()).toEqual([lease.sha256]);
    expect(await filesUnder(root)).toEqual([]);
    expect(await store.read(lease.sha256)).toEqual(body);
    expect(await store.stat(lease.sha256)).toEqual({ size: 1024 });
    const range = await store.createReadStream(lease.sha256, { start: 10, end: 19 });
    const chunks: Buffer[] = [];
    for await (const chunk of range) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks)).toEqual(body.subarray(10, 20));
  });

  it('a deploy whose append fails leaves no row, and nothing once its lease is released', async () => {
    const body = Buffer.from('refused content');
    const lease = await store.put(Readable.from([body]), { deferToAppend: true });
    await opened.store.append('repo-libs', [deployed('a/first.bin', 'c'.repeat(64), 3)]);
    // The expectation fails: the batch commits nothing of this append.
    await expectCode(opened.store.append('repo-libs', [deployed('a/refused.bin', lease.sha256, body.length)], { expectedRevision: 'no_stream' }), 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
    lease.release();
    expect(await rows()).toEqual([]);
    expect(await store.stat(lease.sha256)).toBeUndefined();
    await expectCode(store.read(lease.sha256), 'STRATA_ERR_BLOB_NOT_FOUND');
  });

  it('batch forms: putMany writes small blobs as rows by one insert and large ones as files; statMany and readMany find them all', async () => {
    const small = [randomBytes(10), randomBytes(1024), randomBytes(inlineBytesMax)];
    const large = randomBytes(inlineBytesMax + 1);
    const blobs = [...small, large].map((bytes) => ({ sha256: digest('sha256', bytes), bytes }));
    await store.putMany(blobs);
    expect(await rows()).toEqual(small.map((bytes) => digest('sha256', bytes)).sort());
    expect(await filesUnder(root)).toEqual([digest('sha256', large)]);
    // A staged deploy is found too, and an absent or malformed name is left out.
    const staged = Buffer.from('staged, not appended');
    const lease = await store.put(Readable.from([staged]), { deferToAppend: true });
    const absent = 'e'.repeat(64);
    const names = [...blobs.map((blob) => blob.sha256), lease.sha256, absent, 'not-a-sha'];
    const stats = await store.statMany(names);
    expect(new Map(stats)).toEqual(new Map([...blobs.map((blob) => [blob.sha256, { size: blob.bytes.byteLength }] as const), [lease.sha256, { size: staged.byteLength }]]));
    const read = await store.readMany(names, { sizeBytesMax: 1024 });
    expect([...read.keys()].sort()).toEqual([...blobs.map((blob) => blob.sha256), lease.sha256].sort());
    expect(read.get(blobs[0]!.sha256)).toEqual({ size: 10, bytes: small[0] });
    expect(read.get(blobs[1]!.sha256)).toEqual({ size: 1024, bytes: small[1] });
    // Over sizeBytesMax: the size only, whether a row or a file.
    expect(read.get(blobs[2]!.sha256)).toEqual({ size: inlineBytesMax });
    expect(read.get(blobs[3]!.sha256)).toEqual({ size: inlineBytesMax + 1 });
    expect(read.get(lease.sha256)).toEqual({ size: staged.byteLength, bytes: staged });
    lease.release();
    // Stored again (a second pull of the same content): nothing changes, no error.
    await store.putMany(blobs.slice(0, 2));
    expect(await rows()).toHaveLength(3);
  });

  it('putMany refuses a batch in which any bytes do not match their sha256, storing none of it', async () => {
    const good = randomBytes(100);
    const bad = randomBytes(100);
    const largeBad = randomBytes(inlineBytesMax + 5);
    await expectCode(store.putMany([{ sha256: digest('sha256', good), bytes: good }, { sha256: digest('sha256', randomBytes(100)), bytes: bad }]), 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH');
    await expectCode(store.putMany([{ sha256: digest('sha256', good), bytes: good }, { sha256: 'f'.repeat(64), bytes: largeBad }]), 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH');
    expect(await rows()).toEqual([]);
    expect(await filesUnder(root)).toEqual([]);
    expect(await store.stat(digest('sha256', good))).toBeUndefined();
  });

  it('blobs stored by putMany survive closing and reopening the database (committed before it resolves)', async () => {
    const bytes = randomBytes(300);
    const sha256 = digest('sha256', bytes);
    await store.putMany([{ sha256, bytes }]);
    const reopened = new InlineBlobStore({ files: new FsBlobStore({ root }), db: opened.db, staging: new InlineBlobStaging(), inlineBytesMax });
    expect(await reopened.read(sha256)).toEqual(bytes);
  });

  it('puts without deferToAppend, and deferred ones over the threshold, go to files', async () => {
    const plain = await store.put(Readable.from([Buffer.from('a federation pull')]));
    plain.release();
    const large = randomBytes(inlineBytesMax * 3 + 17);
    // No declared size: read into memory up to the threshold, then handed to the file store with the rest.
    const deferred = await store.put(Readable.from([large.subarray(0, 1000), large.subarray(1000, 5000), large.subarray(5000)]), { deferToAppend: true });
    expect(deferred).toMatchObject({ sha256: digest('sha256', large), sha1: digest('sha1', large), md5: digest('md5', large), size: large.length });
    deferred.release();
    const declared = await store.put(Readable.from([large]), { deferToAppend: true, expectedSize: large.length });
    declared.release();
    expect((await filesUnder(root)).sort()).toEqual([plain.sha256, deferred.sha256].sort());
    expect(await store.read(deferred.sha256)).toEqual(large);
    expect(await rows()).toEqual([]);
  });

  it('refuses bad uploads with the file store\'s typed errors, staging nothing', async () => {
    const body = Buffer.from('content');
    await expectCode(store.put(Readable.from([body]), { deferToAppend: true, expected: { sha256: 'a'.repeat(64) } }), 'STRATA_ERR_BLOB_CHECKSUM_MISMATCH');
    await expectCode(store.put(Readable.from([body]), { deferToAppend: true, expectedSize: 100 }), 'STRATA_ERR_BLOB_INCOMPLETE');
    await expectCode(store.put(Readable.from([body]), { deferToAppend: true, sizeBytesMax: 3 }), 'STRATA_ERR_BLOB_TOO_LARGE');
    // Larger than the threshold and than its declared size: the file store's checks apply.
    await expectCode(store.put(Readable.from([randomBytes(inlineBytesMax + 10)]), { deferToAppend: true, expectedSize: 5 }), 'STRATA_ERR_BLOB_INCOMPLETE');
    expect(await store.stat(digest('sha256', body))).toBeUndefined();
    expect(await filesUnder(root)).toEqual([]);
  });

  it('leases a stored inline blob (checksum deploy) with its checksums; a staged one is written by the second deploy', async () => {
    const body = Buffer.from('shared content');
    const first = await store.put(Readable.from([body]), { deferToAppend: true });
    // Leased while the first deploy is in flight; the first deploy then gives up.
    const second = await store.lease(first.sha256);
    expect(second).toMatchObject({ sha256: first.sha256, sha1: digest('sha1', body), md5: digest('md5', body), size: body.length });
    first.release();
    await opened.store.append('repo-libs', [deployed('b/by-checksum.bin', first.sha256, body.length)]);
    second!.release();
    expect(await rows()).toEqual([first.sha256]);
    const third = await store.lease(first.sha256);
    expect(third).toMatchObject({ sha1: digest('sha1', body), md5: digest('md5', body), size: body.length });
    third!.release();
    expect(await store.lease('f'.repeat(64))).toBeUndefined();
  });

  it('GC removes old unreferenced inline blobs only: referenced, leased and young ones stay', async () => {
    const bodies = ['kept: referenced', 'kept: leased', 'removed', 'kept: young'].map((value) => Buffer.from(value));
    const shas: string[] = [];
    for (const [index, body] of bodies.entries()) {
      if (index === 3) now += 60_000;
      const lease = await store.put(Readable.from([body]), { deferToAppend: true });
      await opened.store.append('repo-libs', [deployed(`c/${index}.bin`, lease.sha256, body.length)]);
      lease.release();
      shas.push(lease.sha256);
    }
    const held = await store.lease(shas[1]!);
    const collected: string[] = [];
    const result = await store.collectGarbage({
      isReferenced: async (sha256) => sha256 === shas[0],
      gracePeriodMs: 30_000,
      onCollect: async (sha256) => {
        collected.push(sha256);
      },
    });
    held!.release();
    expect(result.removed).toEqual([shas[2]]);
    expect(collected).toEqual([shas[2]]);
    expect(await rows()).toEqual([shas[0]!, shas[1]!, shas[3]!].sort());
    await expectCode(store.read(shas[2]!), 'STRATA_ERR_BLOB_NOT_FOUND');
    expect(await text(await store.createReadStream(shas[0]!))).toBe('kept: referenced');
    // An onCollect that fails keeps the blob.
    const failing = await store.collectGarbage({
      isReferenced: async () => false,
      gracePeriodMs: 0,
      onCollect: async () => {
        throw new Error('history not writable');
      },
    });
    expect(failing.removed).toEqual([]);
    expect(await rows()).toHaveLength(3);
  });
});

/**
 * Two servers of one site over one PostgreSQL database: each has its own staging and leases,
 * and they share the `inline_blobs` table. A collection in one must not delete a row that a
 * deploy in the other is committing an event for (PostgreSQL only: PGlite is one process).
 */
describe.runIf(databaseUrl !== undefined)('InlineBlobStore across two servers of one site (PostgreSQL)', () => {
  let root: string;
  let now: number;
  let a: { opened: OpenedEventStore; store: InlineBlobStore };
  let b: { opened: OpenedEventStore; store: InlineBlobStore };

  const rows = async () => (await sql<{ sha256: string }>`select sha256 from inline_blobs order by sha256`.execute(a.opened.db)).rows.map((row) => row.sha256);
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'strata-inline-two-'));
    now = Date.now();
    const schema = `inline_blobs_two_${process.pid}_${schemas.length}`;
    schemas.push(schema);
    const server = async () => {
      const staging = new InlineBlobStaging();
      const opened = await openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 4, store: { appendWrites: [staging] } });
      const store = new InlineBlobStore({ files: new FsBlobStore({ root, clock: { now: () => now } }), db: opened.db, staging, inlineBytesMax: 4096, clock: { now: () => now } });
      return { opened, store };
    };
    a = await server();
    b = await server();
  });
  afterEach(async () => {
    await a.opened.close();
    await b.opened.close();
    await rm(root, { recursive: true, force: true });
  });

  /** An old row no event references any more: the content was deployed, then the path deleted. */
  async function oldUnreferenced(body: Buffer): Promise<string> {
    const lease = await a.store.put(Readable.from([body]), { deferToAppend: true });
    await a.opened.store.append('repo-libs', [deployed(`old/${lease.sha256}.bin`, lease.sha256, body.length)]);
    lease.release();
    now += 120_000;
    return lease.sha256;
  }
  /** Server b deploys the same content: staged, then its event committed with the row. */
  async function deployOnB(sha256: string, body: Buffer): Promise<void> {
    const lease = await b.store.put(Readable.from([body]), { deferToAppend: true });
    expect(lease.sha256).toBe(sha256);
    await b.opened.store.append('repo-libs', [deployed(`new/${sha256}.bin`, sha256, body.length)]);
    lease.release();
  }

  it('keeps a row when the other server deploys its content between the reference check and the removal', async () => {
    const body = Buffer.from('deployed again on the other server, mid-collection');
    const sha256 = await oldUnreferenced(body);
    const result = await a.store.collectGarbage({
      gracePeriodMs: 60_000,
      // The answer is already stale when a acts on it: b's deploy commits right after the check.
      isReferenced: async () => {
        await deployOnB(sha256, body);
        return false;
      },
    });
    expect(result.removed).toEqual([]);
    expect(await rows()).toEqual([sha256]);
    expect(await b.store.read(sha256)).toEqual(body);
  });

  it('keeps a row when the other server deploys its content after the collection claimed it', async () => {
    const body = Buffer.from('deployed again on the other server, after the claim');
    const sha256 = await oldUnreferenced(body);
    const collected: string[] = [];
    const result = await a.store.collectGarbage({
      gracePeriodMs: 60_000,
      isReferenced: async () => false,
      // Between the claim and the delete (the history's record of the collection).
      onCollect: async (found) => {
        collected.push(found);
        await deployOnB(sha256, body);
      },
    });
    expect(collected).toEqual([sha256]);
    expect(result.removed).toEqual([]);
    expect(await rows()).toEqual([sha256]);
    expect(await b.store.read(sha256)).toEqual(body);
    // Once nothing references it and it has aged again, it is collected.
    now += 120_000;
    const later = await a.store.collectGarbage({ gracePeriodMs: 60_000, isReferenced: async () => false });
    expect(later.removed).toEqual([sha256]);
    expect(await rows()).toEqual([]);
  });
});
