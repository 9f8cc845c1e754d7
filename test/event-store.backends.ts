/**
 * The backends the event-store conformance suite runs on: memory and PGlite always,
 * PostgreSQL when DATABASE_URL is set (each opened store in a fresh schema, dropped after
 * the run, so reruns start clean).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import {
  MemoryEventStore,
  openEventStore,
  type EventStore,
  type MemoryProjection,
  type SqlProjection,
} from '@strata/store';

/** Projections a test wants applied inline, written once for both kinds of store. */
export interface TestProjection {
  apply(events: readonly import('@strata/core').RecordedEvent[]): Promise<void>;
}

export interface BackendHarness {
  readonly store: EventStore;
  /** Closes the store and opens it again on the same data (memory: the same instance). */
  restart(): Promise<EventStore>;
  /**
   * More stores on the same database, as other processes would open them (PostgreSQL);
   * on single-connection backends, the same store.
   */
  another(): Promise<EventStore>;
  /**
   * Waits until readAll can see every committed event. On PostgreSQL readers stop below the
   * oldest transaction still running anywhere in the cluster (other test files, other
   * processes), so a commit becomes readable by readAll a little later than by readStream.
   */
  settle(): Promise<void>;
  close(): Promise<void>;
}

export interface Backend {
  readonly name: 'memory' | 'pglite' | 'pglite-main' | 'postgres';
  /** Whether data survives a restart. */
  readonly durable: boolean;
  /** Whether several stores (processes) can write at once. */
  readonly sharedByProcesses: boolean;
  open(options?: { projections?: readonly TestProjection[] }): Promise<BackendHarness>;
}

function sqlProjections(projections: readonly TestProjection[]): SqlProjection[] {
  return projections.map((projection, index) => ({
    name: `test-${index}`,
    apply: (_db, events) => projection.apply(events),
    truncate: async () => {},
  }));
}

const memory: Backend = {
  name: 'memory',
  durable: false,
  sharedByProcesses: false,
  async open(options = {}) {
    const projections: MemoryProjection[] = [...(options.projections ?? [])];
    const store = new MemoryEventStore({ projections });
    return { store, restart: async () => store, another: async () => store, settle: async () => {}, close: () => store.close() };
  },
};

/**
 * PGlite as the server opens it by default (in a worker thread), or on this thread
 * (`pgliteThread: 'main'`, `STRATA_PGLITE_THREAD=main`): the two take different append
 * paths (one message per batch to the worker; kysely transactions with COPY from a blob here).
 */
function pgliteBackend(pgliteThread: 'worker' | 'main'): Backend {
  return {
    name: pgliteThread === 'worker' ? 'pglite' : 'pglite-main',
    durable: true,
    sharedByProcesses: false,
    async open(options = {}) {
      const dataDir = await mkdtemp(join(tmpdir(), 'strata-es-test-'));
      const projections = sqlProjections(options.projections ?? []);
      let opened = await openEventStore({ dataDir, projections, pgliteThread });
      return {
        get store() {
          return opened.store;
        },
        async restart() {
          await opened.close();
          opened = await openEventStore({ dataDir, projections, pgliteThread });
          return opened.store;
        },
        another: async () => opened.store,
        // One connection: no other transaction can run while readAll does.
        settle: async () => {},
        async close() {
          await opened.close();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  };
}

const pglite = pgliteBackend('worker');

const createdSchemas: string[] = [];
let schemaCounter = 0;

function postgres(databaseUrl: string): Backend {
  return {
    name: 'postgres',
    durable: true,
    sharedByProcesses: true,
    async open(options = {}) {
      const schema = `es_test_${process.pid}_${Date.now().toString(36)}_${schemaCounter++}`;
      createdSchemas.push(schema);
      const projections = sqlProjections(options.projections ?? []);
      const open = () => openEventStore({ databaseUrl, schema, projections, poolConnectionsMax: 4 });
      let opened = await open();
      const others: Awaited<ReturnType<typeof open>>[] = [];
      return {
        get store() {
          return opened.store;
        },
        async restart() {
          await opened.close();
          opened = await open();
          return opened.store;
        },
        async another() {
          const other = await open();
          others.push(other);
          return other.store;
        },
        async settle() {
          const deadline = Date.now() + 30_000;
          while (Date.now() < deadline) {
            const pending = await sql<{ count: string }>`
              select count(*) as count from events where transaction_id >= pg_snapshot_xmin(pg_current_snapshot())`.execute(opened.db);
            if (pending.rows[0]!.count === '0') return;
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          throw new Error('committed events stayed below the snapshot horizon for 30 s');
        },
        async close() {
          await Promise.all([opened, ...others].map((entry) => entry.close()));
        },
      };
    },
  };
}

/** A promise settled from outside, as a caller's still-running check is. */
export function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: unknown) => void } {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((ok, fail) => {
    resolve = ok;
    reject = fail;
  });
  return { promise, resolve, reject };
}

/** A new schema name for a store a test opens itself (PostgreSQL), dropped by dropTestSchemas. */
export function testSchema(prefix: string): string {
  const schema = `${prefix}_${process.pid}_${Date.now().toString(36)}_${schemaCounter++}`;
  createdSchemas.push(schema);
  return schema;
}

/** Drops the schemas this run created. */
export async function dropTestSchemas(): Promise<void> {
  const databaseUrl = process.env['DATABASE_URL'];
  if (databaseUrl === undefined || createdSchemas.length === 0) return;
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const schema of createdSchemas.splice(0)) await client.query(`drop schema if exists ${schema} cascade`);
  } finally {
    await client.end();
  }
}

/**
 * The backends to loop a suite over. `pgliteMainThread` adds PGlite opened on the test's own
 * thread besides the default worker: the suites that exercise the append and read paths
 * themselves (conformance, COPY appends) ask for it; the rest run PGlite as the server does.
 */
export function eventStoreBackends(options: { pgliteMainThread?: boolean } = {}): Backend[] {
  const databaseUrl = process.env['DATABASE_URL'];
  const embedded = options.pgliteMainThread === true ? [memory, pglite, pgliteBackend('main')] : [memory, pglite];
  if (databaseUrl === undefined) {
    console.log('event-store conformance: DATABASE_URL is not set, PostgreSQL backend skipped');
    return embedded;
  }
  return [...embedded, postgres(databaseUrl)];
}

let eventCounter = 0;
const runId = `${process.pid.toString(36)}-${Date.now().toString(36)}`;

/** A valid event for a repository stream; override any field. */
export function artifactDeleted(overrides: Partial<NewEvent> & { path?: string } = {}): NewEvent {
  const sequence = ++eventCounter;
  const { path, ...rest } = overrides;
  return {
    id: `ev-${runId}-${sequence}`,
    origin: 'site-a',
    originSeq: sequence,
    hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
    type: 'ArtifactDeleted',
    data: { path: path ?? `org/acme/lib-${sequence}.jar` },
    meta: { actor: 'tester' },
    ...rest,
  } as NewEvent;
}

export function artifactDeletedEvents(count: number): NewEvent[] {
  return Array.from({ length: count }, () => artifactDeleted());
}
