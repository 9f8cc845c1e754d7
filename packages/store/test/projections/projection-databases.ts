/**
 * Databases for the projection tests, opened through the store's own entry point (all
 * migrations, PGlite from the cached template): PGlite always, PostgreSQL when DATABASE_URL
 * is set, each PostgreSQL run in a fresh schema that is dropped afterwards.
 */
import pg from 'pg';
import type { NewEvent, RecordedEvent } from '@strata/core';
import { openEventStore, type EventScanner, type EventStore, type OpenedEventStore, type SqlProjection, type StreamPartitionedScan, type StreamPartitionScanner } from '@strata/store';

export interface ProjectionBackend {
  readonly name: string;
  /** A fresh database (and event store over it) with these inline projections. */
  open(projections?: readonly SqlProjection[]): Promise<OpenedEventStore>;
}

function freshSchema(): string {
  return `proj_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
}

export function postgresBackend(url: string, schema?: string): ProjectionBackend {
  return {
    name: 'postgres',
    async open(projections = []) {
      const name = schema ?? freshSchema();
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      await admin.query(`drop schema if exists ${name} cascade`);
      await admin.end();
      const opened = await openEventStore({ databaseUrl: url, schema: name, projections, poolConnectionsMax: 16 });
      return {
        ...opened,
        async close() {
          await opened.close();
          if (schema !== undefined) return; // kept on purpose (EXPLAIN afterwards)
          const cleanup = new pg.Client({ connectionString: url });
          await cleanup.connect();
          await cleanup.query(`drop schema if exists ${name} cascade`);
          await cleanup.end();
        },
      };
    },
  };
}

export const pgliteBackend: ProjectionBackend = {
  name: 'pglite',
  open: (projections = []) => openEventStore({ projections }),
};

export const PROJECTION_BACKENDS: ProjectionBackend[] = [
  pgliteBackend,
  ...(process.env.DATABASE_URL ? [postgresBackend(process.env.DATABASE_URL)] : []),
];

/** A recorded event as it is appended again (without the fields the store assigns). */
export function newEvent(event: RecordedEvent): NewEvent {
  const { stream: _stream, revision: _revision, position: _position, ...rest } = event;
  return rest as NewEvent;
}

/**
 * `store` for a rebuild, recording the groups its scan by stream is asked for (none: the
 * rebuild read otherwise) and the scan's page-visit estimates.
 */
export function spiedPartitionStore(store: OpenedEventStore['store'], groups: string[][], visits: number[] = []): Pick<EventStore, 'readAll'> & EventScanner & StreamPartitionScanner {
  return {
    readAll: (options) => store.readAll(options),
    scanAll: (options) => store.scanAll(options),
    async scanByStream(options?: { readonly signal?: AbortSignal }): Promise<StreamPartitionedScan | undefined> {
      const scan = await store.scanByStream(options);
      if (scan === undefined) return undefined;
      return {
        ...scan,
        scanStreams: (streams, scanOptions) => (groups.push([...streams]), scan.scanStreams(streams, scanOptions)),
        pageVisits: async (asked) => {
          const estimate = await scan.pageVisits(asked);
          visits.push(estimate.perPage);
          return estimate;
        },
      };
    },
  };
}
