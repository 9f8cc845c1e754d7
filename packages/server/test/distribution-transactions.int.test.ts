import { afterAll, describe, expect, it } from 'vitest';
import { isStrataError } from '@strata/core';
import { openEventStore, type OpenedEventStore } from '@strata/store';
import { sql } from 'kysely';
import type { DistributionStart } from '../src/distribution/release-bundle-model.ts';
import {
  MemoryDistributionTransactionStore,
  SqlDistributionTransactionStore,
  type DistributionTransactionStore,
  type StoredTransaction,
} from '../src/distribution/transaction-store.ts';

/**
 * An edge's open distribution transactions, in memory and in the server's own table on PGlite
 * (and PostgreSQL when DATABASE_URL is set): one uncommitted transaction per distribution id
 * and per bundle, the open → committing → committed moves, and what survives a reopen.
 */

function start(distributionId: string, name: string, version = '1.0', issuedAt = 1_700_000_000_000): DistributionStart {
  const manifest = {
    formatVersion: 1,
    name,
    version,
    description: '',
    created: 1_700_000_000_000,
    createdBy: 'admin',
    sourceSite: 'site-source',
    signingKey: { alias: 'strata-site-source', fingerprint: `SHA256:${'A'.repeat(43)}=` },
    repositories: [{ key: 'libs', packageType: 'generic' }],
    artifacts: [{ repo: 'libs', path: `${name}/a.bin`, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} }],
  };
  return {
    bundle: { manifest, signature: `${'A'.repeat(86)}==` },
    envelope: { distributionId, name, version, manifestSha256: 'd'.repeat(64), issuedAt, fingerprint: `SHA256:${'A'.repeat(43)}=` },
    envelopeSignature: `${'B'.repeat(86)}==`,
  } as DistributionStart;
}

function transaction(id: string, begin: DistributionStart, openedAt = 1_000): StoredTransaction {
  return { id, start: begin, openedAt, status: 'open', failure: undefined };
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  return isStrataError(error) ? error.code : error === undefined ? undefined : String(error);
}

interface Backend {
  readonly name: string;
  open(): Promise<{ store: DistributionTransactionStore; reopen(): Promise<DistributionTransactionStore>; close(): Promise<void> }>;
}

const opened: OpenedEventStore[] = [];
afterAll(async () => {
  for (const database of opened) await database.close();
});

async function sqlStore(database: OpenedEventStore): Promise<SqlDistributionTransactionStore> {
  const store = new SqlDistributionTransactionStore(database.db);
  await store.ensureSchema();
  return store;
}

const backends: Backend[] = [
  {
    name: 'memory',
    async open() {
      const store = new MemoryDistributionTransactionStore();
      return { store, reopen: async () => store, close: async () => {} };
    },
  },
  {
    name: 'pglite',
    async open() {
      const database = await openEventStore();
      opened.push(database);
      // ensureSchema twice: idempotent, as at every start.
      return { store: await sqlStore(database), reopen: () => sqlStore(database), close: async () => {} };
    },
  },
];
const databaseUrl = process.env['DATABASE_URL'];
if (databaseUrl !== undefined) {
  backends.push({
    name: 'postgres',
    async open() {
      const schema = `dtx_${process.pid}_${Date.now().toString(36)}`;
      const database = await openEventStore({ databaseUrl, schema, poolConnectionsMax: 2 });
      opened.push(database);
      return {
        store: await sqlStore(database),
        reopen: () => sqlStore(database),
        close: async () => {
          await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(database.db);
        },
      };
    },
  });
} else {
  console.log('distribution transactions: DATABASE_URL is not set, PostgreSQL backend skipped');
}

describe.each(backends)('distribution transactions on $name', (backend) => {
  it('keeps one uncommitted transaction per distribution id and per bundle', async () => {
    const { store, close } = await backend.open();
    try {
      await store.insert(transaction('tx-1', start('dist-0001', 'app')));
      expect(await codeOf(store.insert(transaction('tx-2', start('dist-0001', 'other'))))).toBe('STRATA_ERR_BUNDLE_REPLAYED');
      expect(await codeOf(store.insert(transaction('tx-3', start('dist-0002', 'app'))))).toBe('STRATA_ERR_BUNDLE_EXISTS');
      // Another version of the bundle is another bundle.
      await store.insert(transaction('tx-4', start('dist-0003', 'app', '2.0')));
      expect(await store.countUncommitted()).toBe(2);
      // Once committed, the row no longer blocks (the ledger refuses a bundle it holds).
      expect(await store.transition('tx-1', 'open', 'committing')).toBe(true);
      expect(await store.transition('tx-1', 'committing', 'committed')).toBe(true);
      await store.insert(transaction('tx-5', start('dist-0004', 'app')));
      expect(await store.countUncommitted()).toBe(2);
    } finally {
      await close();
    }
  });

  it('moves open → committing → committed once, records the first failure, and reads back what it stored', async () => {
    const { store, reopen, close } = await backend.open();
    try {
      const begin = start('dist-0100', 'kept');
      await store.insert(transaction('tx-kept', begin, 5_000));
      expect(await store.transition('tx-kept', 'committing', 'committed')).toBe(false);
      expect(await store.transition('tx-kept', 'open', 'committing')).toBe(true);
      // A second commit cannot claim it.
      expect(await store.transition('tx-kept', 'open', 'committing')).toBe(false);
      await store.setFailure('tx-kept', 'first');
      await store.setFailure('tx-kept', 'second');
      const again = await reopen();
      expect(await again.get('tx-kept')).toEqual({ id: 'tx-kept', start: begin, openedAt: 5_000, status: 'committing', failure: 'first' });
      expect(await again.get('tx-missing')).toBeUndefined();
      expect(await again.delete('tx-kept')).toBe(true);
      expect(await again.delete('tx-kept')).toBe(false);
    } finally {
      await close();
    }
  });

  it('drops transactions older than the TTL and lists the rest', async () => {
    const { store, close } = await backend.open();
    try {
      await store.insert(transaction('tx-old', start('dist-0200', 'old'), 1_000));
      await store.insert(transaction('tx-new', start('dist-0201', 'new'), 9_000));
      expect(await store.deleteOpenedBefore(5_000)).toEqual(['tx-old']);
      expect((await store.list()).map((row) => row.id)).toEqual(['tx-new']);
    } finally {
      await close();
    }
  });
});
