/**
 * scanAll, the bulk reader of the global order (binary COPY) that rebuilds and `strata
 * replay` read with: it returns what readAll returns, page by page, on every SQL backend.
 * The memory store has no scanAll (rebuildProjections falls back to readAll there).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import pg from 'pg';
import { ArtifactDeployedDataReader, type NewEvent, type RecordedEvent } from '@strata/core';
import { START_CHECKPOINT, openEventStore, type Checkpoint, type EventCopyRowSink, type OpenedEventStore } from '@strata/store';
import { artifactDeleted } from './event-store.backends.ts';

const databaseUrl = process.env['DATABASE_URL'];
const schemas: string[] = [];
const BACKENDS: { name: string; open(copyStatementRowsMax?: number): Promise<OpenedEventStore> }[] = [
  { name: 'pglite', open: (copyStatementRowsMax) => openEventStore(copyStatementRowsMax === undefined ? {} : { store: { copyStatementRowsMax } }) },
];
if (databaseUrl === undefined) console.log('scanAll: DATABASE_URL is not set, PostgreSQL backend skipped');
else {
  BACKENDS.push({
    name: 'postgres',
    open(copyStatementRowsMax) {
      const schema = `scan_test_${process.pid}_${schemas.length}`;
      schemas.push(schema);
      return openEventStore({ databaseUrl, schema, poolConnectionsMax: 4, ...(copyStatementRowsMax === undefined ? {} : { store: { copyStatementRowsMax } }) });
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

function deployed(path: string, overrides: Partial<NewEvent> = {}, properties: Record<string, string[]> = {}): NewEvent {
  const base = artifactDeleted(overrides);
  return {
    ...base,
    type: 'ArtifactDeployed',
    data: { path, sha256: 'b'.repeat(64), sha1: 'b'.repeat(40), md5: 'b'.repeat(32), size: 12, mimeType: 'application/java-archive', properties },
  } as NewEvent;
}

/**
 * Waits until readAll can see every committed event: on PostgreSQL it stops below the oldest
 * transaction still open anywhere in the cluster (other test files run meanwhile).
 */
async function settle(opened: OpenedEventStore): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (performance.now() < deadline) {
    const pending = await sql<{ count: string | number }>`
      select count(*) as count from events where transaction_id >= pg_snapshot_xmin(pg_current_snapshot())`.execute(opened.db);
    if (Number(pending.rows[0]!.count) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('committed events stayed below the snapshot horizon for 30 s');
}

async function readAllEvents(opened: OpenedEventStore, after: Checkpoint = START_CHECKPOINT): Promise<{ events: RecordedEvent[]; checkpoint: Checkpoint }> {
  const events: RecordedEvent[] = [];
  let checkpoint = after;
  for (;;) {
    const page = await opened.store.readAll({ after: checkpoint, maxCount: 9 });
    if (page.events.length === 0) return { events, checkpoint };
    events.push(...page.events);
    checkpoint = page.checkpoint;
  }
}

async function scanAllEvents(opened: OpenedEventStore, after: Checkpoint = START_CHECKPOINT, pageEventsMax = 7) {
  const pages: { events: readonly RecordedEvent[]; checkpoint: Checkpoint }[] = [];
  for await (const page of opened.store.scanAll({ after, pageEventsMax })) pages.push(page);
  return pages;
}

for (const backend of BACKENDS) {
  describe(`scanAll on ${backend.name}`, () => {
    it('returns every event readAll returns, in global order, in pages whose checkpoints continue the read', async () => {
      // Few rows per COPY statement, so the scan also crosses statements.
      const opened = await backend.open(5);
      try {
        // Unicode, many streams, and one large payload that arrives in several chunks.
        const big = Object.fromEntries(Array.from({ length: 200 }, (_, index) => [`key-${index}`, ['x'.repeat(500)]]));
        for (let round = 0; round < 4; round++) {
          await opened.store.append('repo-libs', [deployed(`org/ünï-cödé/${round}.jar`), artifactDeleted({ path: `org/a/${round}.jar` })]);
          await opened.store.append(`repo-other-${round}`, [deployed(`big/${round}.jar`, {}, round === 2 ? big : {})]);
          await opened.store.append('repo-libs', [artifactDeleted()]);
        }
        await settle(opened);
        const expected = await readAllEvents(opened);
        expect(expected.events).toHaveLength(16);

        const pages = await scanAllEvents(opened);
        expect(pages.map((page) => page.events.length)).toEqual([7, 7, 2]);
        expect(pages.flatMap((page) => page.events)).toEqual(expected.events);
        expect(pages.at(-1)!.checkpoint).toEqual(expected.checkpoint);
        // Each page's checkpoint is where readAll would go on from.
        const middle = pages[0]!.checkpoint;
        expect((await readAllEvents(opened, middle)).events).toEqual(expected.events.slice(7));
        expect((await scanAllEvents(opened, middle, 100)).flatMap((page) => page.events)).toEqual(expected.events.slice(7));
        expect(await scanAllEvents(opened, expected.checkpoint)).toEqual([]);
      } finally {
        await opened.close();
      }
    });

    for (const copyStatementRowsMax of [undefined, 4]) {
      it(`leaves the rows a sink takes out of its pages, with readAll's checkpoints${copyStatementRowsMax === undefined ? '' : ', across COPY statements'}`, async () => {
        const opened = await backend.open(copyStatementRowsMax);
        try {
          // Deploys taken, other rows decoded; the scan ends with a run of taken rows only.
          for (let round = 0; round < 3; round++) {
            await opened.store.append('repo-libs', [deployed(`org/${round}/a.jar`), artifactDeleted({ path: `org/a/${round}.jar` }), deployed(`org/${round}/b.jar`)]);
          }
          await opened.store.append('repo-other', [deployed('x/1.jar'), deployed('x/2.jar'), deployed('x/3.jar'), deployed('x/4.jar'), deployed('x/5.jar')]);
          await settle(opened);
          const expected = await readAllEvents(opened);
          const reader = new ArtifactDeployedDataReader();
          const taken: string[] = [];
          const sink: EventCopyRowSink = {
            readData: (type, bytes, start, end) => type === 'ArtifactDeployed' && reader.read(bytes, start, end),
            take: (stream, id, origin, wall, logical, meta) => {
              const event = expected.events.find((candidate) => candidate.id === id)!;
              expect([stream, origin, wall, logical, meta]).toEqual([event.stream, event.origin, event.hlc.wall, event.hlc.logical, event.meta]);
              expect(reader.bytes.toString('latin1', reader.pathStart, reader.pathStart + reader.pathLength)).toBe((event.data as { path: string }).path);
              taken.push(id);
            },
          };
          const pages: { events: readonly RecordedEvent[]; checkpoint: Checkpoint }[] = [];
          for await (const page of opened.store.scanAllInto(sink, { pageEventsMax: 3 })) pages.push(page);
          expect(taken).toEqual(expected.events.filter((event) => event.type === 'ArtifactDeployed').map((event) => event.id));
          expect(pages.flatMap((page) => page.events)).toEqual(expected.events.filter((event) => event.type !== 'ArtifactDeployed'));
          expect(pages.at(-1)!.checkpoint).toEqual(expected.checkpoint);
          expect(pages.at(-1)!.events).toEqual([]);
        } finally {
          await opened.close();
        }
      });
    }

    it('refuses a stored payload that does not unpack to a map, as readAll does', async () => {
      const opened = await backend.open();
      try {
        const event = artifactDeleted();
        await opened.store.append('repo-libs', [event]);
        // A truncated map, then a number.
        for (const bytes of [[0x82, 0xa1], [0x01]]) {
          await sql`update events set data = ${Buffer.from(bytes)} where id = ${event.id}`.execute(opened.db);
          await settle(opened);
          await expect(opened.store.readAll()).rejects.toMatchObject({ code: 'STRATA_ERR_CODEC_MALFORMED' });
          await expect(scanAllEvents(opened)).rejects.toMatchObject({ code: 'STRATA_ERR_CODEC_MALFORMED' });
        }
      } finally {
        await opened.close();
      }
    });
  });
}
