import type { Kysely } from 'kysely';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MemoryEventAudit,
  MemoryEventStore,
  SqlEventAudit,
  openEventStore,
  type EventAudit,
  type EventStore,
  type SqlEventAuditOptions,
  type SqlEventStoreOptions,
  type SqlProjection,
  type StoreDatabase,
} from '@strata/store';
import { freshPostgresDatabase } from './postgres-database.ts';

/** An event store with its audit, on one backend. */
export interface AuditHarness {
  readonly store: EventStore;
  readonly audit: EventAudit;
  /** The SQL database, for editing rows behind the store's back (SQL backends only). */
  readonly db: Kysely<StoreDatabase> | undefined;
  close(): Promise<void>;
}

/** Options of the SQL stores an `open` makes (memory ignores them). */
export type AuditStoreOptions = Pick<SqlEventStoreOptions, 'appendCopyEventsMin'>;

export interface AuditBackend {
  readonly name: string;
  open(storeOptions?: AuditStoreOptions): Promise<AuditHarness>;
}

export interface AuditBackendsOptions {
  /** Names the test file in temporary directories, database and schema names and the skip message. */
  readonly name: string;
  readonly siteId: string;
  readonly projections?: readonly SqlProjection[];
  /** Options of the audit on PostgreSQL (PGlite's runs with the defaults). */
  readonly postgresAudit?: SqlEventAuditOptions;
  /** Also PGlite opened on the test's own thread (`pgliteThread: 'main'`) besides the default worker. */
  readonly pgliteMainThread?: boolean;
}

/**
 * Memory and PGlite always, PostgreSQL (a fresh database, one schema per `open`) when
 * DATABASE_URL is set; `drop` removes that database once the file is done.
 */
export async function auditBackends(options: AuditBackendsOptions): Promise<{ backends: AuditBackend[]; drop(): Promise<void> }> {
  const { name, siteId, projections = [] } = options;
  const backends: AuditBackend[] = [
    {
      name: 'memory',
      async open() {
        const store = new MemoryEventStore({ siteId });
        return { store, audit: new MemoryEventAudit(store), db: undefined, close: () => store.close() };
      },
    },
    ...(options.pgliteMainThread === true ? (['worker', 'main'] as const) : (['worker'] as const)).map(
      (pgliteThread): AuditBackend => ({
        name: pgliteThread === 'worker' ? 'pglite' : 'pglite-main',
        async open(storeOptions = {}) {
          const dataDir = await mkdtemp(join(tmpdir(), `strata-${name}-test-`));
          const opened = await openEventStore({ dataDir, pgliteThread, projections, store: { ...storeOptions, siteId } });
          return {
            store: opened.store,
            audit: new SqlEventAudit(opened.db, { copyOut: opened.copyOut }),
            db: opened.db,
            async close() {
              await opened.close();
              await rm(dataDir, { recursive: true, force: true });
            },
          };
        },
      }),
    ),
  ];
  const postgres = await freshPostgresDatabase(`strata_${name}`);
  if (postgres === undefined) {
    console.log(`${name}: DATABASE_URL is not set, PostgreSQL runs are skipped (memory and PGlite run)`);
    return { backends, drop: async () => {} };
  }
  let schemas = 0;
  backends.push({
    name: 'postgres',
    async open(storeOptions = {}) {
      const opened = await openEventStore({ databaseUrl: postgres.url, schema: `${name}_${schemas++}`, projections, store: { ...storeOptions, siteId } });
      return { store: opened.store, audit: new SqlEventAudit(opened.db, { ...options.postgresAudit, copyOut: opened.copyOut }), db: opened.db, close: () => opened.close() };
    },
  });
  return { backends, drop: () => postgres.drop() };
}
