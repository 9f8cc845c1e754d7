import { performance } from 'node:perf_hooks';
import { sql, type Kysely } from 'kysely';
import { StrataError, type EventType } from '@strata/core';
import {
  START_CHECKPOINT,
  isEventCopyScanner,
  isEventScanner,
  isEventSinkScanner,
  isStreamPartitionScanner,
  readBatchEventsMax,
  type Checkpoint,
  type EventCopyScanner,
  type EventScanner,
  type EventSinkScanner,
  type EventStore,
  type ReadAllResult,
  type StreamPartitionScanner,
  type StreamPartitionedScan,
} from '../event-store.ts';
import { observeTakes, type EventCopyRowSink } from '../event-copy-reader.ts';
import type { SqlProjection } from '../projection.ts';
import type { StoreDatabase } from '../schema.ts';
import type { BulkLoader, CopyRows } from './bulk-copy.ts';
import { ARTIFACT_COLUMNS, ArtifactTreeProjection, FOLDER_TOMBSTONE_COLUMNS, PROPERTY_COLUMNS } from './artifact-tree-projection.ts';
import { PARTITION_TABLES, type PartitionTable } from './rebuild-partition.ts';
import { RebuildWorkers } from './rebuild-workers.ts';
import { isRebuildableProjection, type ProjectionRebuild, type RebuildableSqlProjection } from './rebuildable-projection.ts';
import type { UnnestColumn } from './sql-values.ts';
import { quoteIdentifier, toNumber } from './sql-values.ts';

/**
 * Events per page of the bulk scan. Small: a page's decoded events are garbage once folded,
 * and a few hundred of them die in the young generation, where pages of 10,000 outlived
 * scavenges and went to the old one (a third of a rebuild's time went to the collector).
 */
export const scanPageEventsMax = 256;

export const REBUILD_PHASES = ['read', 'write', 'catch-up', 'done'] as const;
export type RebuildPhase = (typeof REBUILD_PHASES)[number];

export interface RebuildProgress {
  readonly phase: RebuildPhase;
  /** Events read so far. */
  readonly events: number;
  /** Rows written so far by bulk writes. */
  readonly rows: number;
  readonly elapsedMs: number;
}

export interface RebuildOptions {
  readonly onProgress?: (progress: RebuildProgress) => void;
  /** Events per readAll call (the store caps it at readBatchEventsMax). */
  readonly readBatchEventsMax?: number;
  /** Catch-up rounds after the bulk write, while appends keep arriving. Default 100. */
  readonly catchUpRoundsMax?: number;
  /**
   * How long the catch-up waits for transactions that were open at the swap (anywhere on the
   * PostgreSQL server: they hold readAll's horizon back) to end. Default 10 minutes; then the
   * rebuild fails with STRATA_ERR_STORE_UNAVAILABLE rather than finish without their events.
   */
  readonly horizonWaitMsMax?: number;
  readonly signal?: AbortSignal;
  /**
   * Worker threads that fold the artifact tree, each its share of the repositories
   * (rebuild-workers.ts). Default DEFAULT_REBUILD_WORKERS. Used where the store hands over its
   * scan as one binary COPY (PostgreSQL), the rows are written with COPY, and every other
   * projection declares the event types it folds; otherwise, or below 2, the fold runs in
   * this thread.
   */
  readonly workers?: number;
  /**
   * A rebuild by stream (PostgreSQL: readByStreamInShadow) folds and writes groups of at
   * least this many events (by the streams' lengths). Default streamGroupEventsMin.
   */
  readonly streamGroupEventsMin?: number;
  /**
   * Read and write by group of streams (PostgreSQL: readByStreamInShadow) instead of one scan
   * before the write. Default DEFAULT_REBUILD_BY_STREAM: off, since in the lead's quiet run of
   * 2026-12-07 06:39 it ran at 0.80 of one scan (docs/benchmarks.md, B).
   */
  readonly readByStream?: boolean;
  /**
   * A rebuild by stream reads the groups one after another, each by the stream index, so it
   * visits every page of the log that holds one of a group's events: where the log's pages
   * hold events of more groups than this on average (a sample, StreamPartitionedScan.pageVisits),
   * the rebuild reads the log in one scan instead. Checked only in a log of at least
   * `pagesMin` pages (smaller ones take well under a second either way). Default
   * streamGroupInterleaving.
   */
  readonly streamGroupInterleaving?: { readonly pageVisitsMax: number; readonly pagesMin: number };
}

/** Worker threads of a rebuild on PostgreSQL unless told otherwise (docs/benchmarks.md, B, seventh pass). */
export const DEFAULT_REBUILD_WORKERS = 0;

/** RebuildOptions.readByStream unless told otherwise (docs/benchmarks.md, B: the lead's quiet run of 2026-12-07). */
export const DEFAULT_REBUILD_BY_STREAM = false;

export interface RebuildResult {
  readonly events: number;
  readonly rows: number;
  readonly checkpoint: Checkpoint;
  readonly elapsedMs: number;
  readonly eventsPerSecond: number;
  /** Worker threads that folded the artifact tree; 0: it was folded in this thread. */
  readonly workers: number;
}

/** Where a projection stands; undefined if it was never rebuilt or caught up. */
export async function readProjectionCheckpoint(db: Kysely<StoreDatabase>, name: string): Promise<Checkpoint | undefined> {
  const result = await sql<{ transaction_id: unknown; position: unknown }>`
    select transaction_id, position from projection_checkpoints where name = ${name}`.execute(db);
  const row = result.rows[0];
  return row === undefined ? undefined : { transactionId: BigInt(row.transaction_id as string), position: BigInt(row.position as string) };
}

export async function writeProjectionCheckpoints(db: Kysely<StoreDatabase>, names: readonly string[], checkpoint: Checkpoint): Promise<void> {
  if (names.length === 0) return;
  await sql`insert into projection_checkpoints (name, transaction_id, position)
    select name, ${checkpoint.transactionId.toString()}::int8, ${checkpoint.position.toString()}::int8 from unnest(${[...names]}::text[]) as t(name)
    on conflict (name) do update set transaction_id = excluded.transaction_id, position = excluded.position, updated_at = now()`.execute(db);
}

/**
 * Rebuilds projections from zero:
 *
 * 1. read every event (scanAll when the store has it, then readAll) in large batches; a rebuildable projection folds them
 *    into its in-memory model (pure core code), any other projection is truncated first and
 *    fed batch by batch through `apply`;
 *    (the next page is already being read while a page is folded); with `options.workers` ≥ 2
 *    on PostgreSQL the artifact tree is folded by worker threads instead, each its share of
 *    the repositories (rebuild-workers.ts; default: this thread). On PostgreSQL otherwise
 *    (a store that scans by stream, projections that all rebuild in bulk, the artifact tree's
 *    rows falling apart by repository) steps 1 and 2 overlap: the events are read a group of
 *    repositories at a time, and each group's rows are copied into the shadow schema while
 *    the next group is read and folded (readByStreamInShadow);
 * 2. swap in the rebuildable projections' final state and record the checkpoint — readers
 *    see the old state until the swap commits. With several connections (PostgreSQL) the new
 *    tables are written and indexed side by side in a shadow schema and swapped in by one
 *    short transaction (swapThroughShadowSchema); otherwise one transaction truncates the
 *    tables and bulk-inserts into them (COPY when `source.bulk` is given, else multi-row
 *    unnest inserts);
 * 3. catch up: events appended meanwhile (their inline updates may have hit the old tables)
 *    are applied again after the checkpoint; merges are idempotent, so applying one twice
 *    is harmless. readAll only returns rows below the oldest transaction still open on the
 *    server (the xid8 horizon), so an event committed by a transaction that started before
 *    an older one still open is invisible for a while: the catch-up ends only once the
 *    horizon has passed every transaction that existed at the swap, or those events would be
 *    missing from the rebuilt tables for good (their inline update hit the old tables).
 *
 * Never uses the outer handle inside a transaction (PGlite has a single connection).
 */
export async function rebuildProjections(
  source: {
    readonly store: Pick<EventStore, 'readAll'> & Partial<EventScanner> & Partial<EventSinkScanner> & Partial<EventCopyScanner> & Partial<StreamPartitionScanner>;
    readonly db: Kysely<StoreDatabase>;
    readonly bulk?: BulkLoader;
  },
  projections: readonly SqlProjection[],
  options: RebuildOptions = {},
): Promise<RebuildResult> {
  const { store, db } = source;
  const started = performance.now();
  const batchMax = Math.min(options.readBatchEventsMax ?? readBatchEventsMax, readBatchEventsMax);
  let events = 0;
  let rows = 0;
  const report = (phase: RebuildPhase) =>
    options.onProgress?.({ phase, events, rows, elapsedMs: performance.now() - started });

  const bulk: { readonly projection: RebuildableSqlProjection; rebuild: ProjectionRebuild }[] = [];
  const replayed: SqlProjection[] = [];
  for (const projection of projections) {
    if (isRebuildableProjection(projection)) bulk.push({ projection, rebuild: projection.startRebuild() });
    else replayed.push(projection);
  }
  if (replayed.length > 0) {
    await db.transaction().execute(async (tx) => {
      for (const projection of replayed) await projection.truncate(tx);
    });
  }

  let checkpoint: Checkpoint = START_CHECKPOINT;
  const fold = async (read: ReadAllResult) => {
    for (const { rebuild } of bulk) rebuild.add(read.events);
    if (replayed.length > 0) {
      await db.transaction().execute(async (tx) => {
        for (const projection of replayed) await projection.apply(tx, read.events);
      });
    }
    events += read.events.length;
    checkpoint = read.checkpoint;
    report('read');
  };
  const names = projections.map((projection) => projection.name);
  /** Worker threads that folded the artifact tree (0: this thread). */
  let folders = 0;
  const onRows = (written: number) => {
    rows += written;
    report('write');
  };
  if (await readAndWriteByStream()) return await catchUp();
  const workers = await startWorkers(source, bulk, replayed.length, options);
  folders = workers?.workers.count ?? 0;
  try {
    if (workers !== undefined) {
      // The artifact tree is folded by the workers, the other projections here from the
      // events the workers hand back; the tree's rows come from the workers at the write.
      const tree = bulk.findIndex(({ projection }) => isWorkerTree(projection));
      bulk[tree] = { projection: bulk[tree]!.projection, rebuild: workerRebuild(workers.workers) };
      checkpoint = await readWithWorkers(workers, store, checkpoint, batchMax, options.signal, (read) => {
        events = read;
        report('read');
      });
      const forwarded = await workers.workers.endRead();
      for (const [index, { rebuild }] of bulk.entries()) if (index !== tree) rebuild.add(forwarded);
    } else {
      await readInThisThread();
    }
    return await writeAndCatchUp();
  } finally {
    await workers?.workers.close();
  }

  async function readInThisThread(): Promise<void> {
    // A bulk scan (one binary COPY on the SQL stores) up to the horizon as it stands now…
    if (isEventScanner(store)) {
      const pageEventsMax = Math.min(batchMax, scanPageEventsMax);
      const scanOptions = { after: checkpoint, pageEventsMax, ...(options.signal ? { signal: options.signal } : {}) };
      const sink = rowSinkOf(bulk, replayed.length);
      // Rows the sink took are folded already and in no page: counted here.
      let taken = 0;
      const pages =
        sink === undefined || !isEventSinkScanner(store)
          ? store.scanAll(scanOptions)
          : store.scanAllInto(
              observeTakes(sink, () => taken++),
              scanOptions,
            );
      for await (const read of pages) {
        options.signal?.throwIfAborted();
        events += taken;
        taken = 0;
        await fold(read);
      }
    }
    // …then readAll for whatever committed since (everything, for a store without scanAll).
    for await (const read of readAllAhead(store, checkpoint, batchMax, options.signal)) await fold(read);
  }

  async function writeAndCatchUp(): Promise<RebuildResult> {
    options.signal?.throwIfAborted();
    report('write');
    const swap = async (tx: Kysely<StoreDatabase>, copy: CopyRows | undefined) => {
      for (const { projection } of bulk) await projection.truncate(tx);
      // Building an index once, after the rows are in, beats maintaining it row by row: the
      // tables are written without their indexes and key constraints, in any order, and
      // PostgreSQL sorts each index's entries once (in memory, given room to).
      const restore = await dropIndexesAndKeys(tx, bulk.flatMap(({ projection }) => projection.tables));
      for (const { rebuild } of bulk) await rebuild.write(tx, onRows, copy, { unindexed: true });
      for (const statement of restore) await sql.raw(statement).execute(tx);
      await writeProjectionCheckpoints(tx, names, checkpoint);
    };
    const swapped =
      source.bulk !== undefined &&
      (await swapThroughShadowSchema(source.bulk, bulk.map(({ projection }) => projection), names, checkpoint, (shadow) =>
        settleAll(bulk.map(({ projection, rebuild }) => shadow.write(projection, rebuild, onRows))),
      ));
    if (swapped) {
      // Done: the new tables are in place.
    } else if (source.bulk !== undefined) await source.bulk.transaction(swap);
    else await db.transaction().execute((tx) => swap(tx, undefined));
    return catchUp();
  }

  /**
   * The read and the write by stream (PostgreSQL; see readByStreamInShadow): false, having
   * read nothing and changed nothing, when it does not apply or found an event that crosses
   * streams (every rebuild is then started afresh for the one fold of every event).
   */
  async function readAndWriteByStream(): Promise<boolean> {
    const loader = source.bulk;
    // The swap's connection, the scan's and the writer's.
    if (loader === undefined || (loader.concurrentTransactionsMax ?? 0) < 2 || replayed.length > 0) return false;
    if (!(options.readByStream ?? DEFAULT_REBUILD_BY_STREAM)) return false;
    if (Math.floor(options.workers ?? DEFAULT_REBUILD_WORKERS) >= 2 || !isStreamPartitionScanner(store)) return false;
    if (!bulk.some(({ projection }) => projection.rebuildByStream !== undefined)) return false;
    const scan = await store.scanByStream(options.signal === undefined ? {} : { signal: options.signal });
    if (scan === undefined) return false;
    const groups = streamGroups(scan.streams, options.streamGroupEventsMin ?? streamGroupEventsMin);
    const interleaving = options.streamGroupInterleaving ?? streamGroupInterleaving;
    if (groups.length > 1) {
      const visits = await scan.pageVisits(groups);
      if (visits.pages >= interleaving.pagesMin && visits.perPage > interleaving.pageVisitsMax) return false;
    }
    checkpoint = scan.checkpoint;
    // Groups are written during the read: the write phase starts once the last one is folded.
    let phase: RebuildPhase = 'read';
    try {
      const fill = (shadow: ShadowWriter) =>
        readByStreamInShadow(scan, groups, bulk, shadow.inShadow, {
          onRows: (written) => {
            rows += written;
            report(phase);
          },
          onEvents: (read) => {
            events += read;
            report('read');
          },
          onLastFolded: () => {
            phase = 'write';
            report(phase);
          },
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        });
      if (await swapThroughShadowSchema(loader, bulk.map(({ projection }) => projection), names, checkpoint, fill)) return true;
    } catch (error) {
      if (!(error instanceof CrossedStreams)) throw error;
    }
    checkpoint = START_CHECKPOINT;
    events = 0;
    rows = 0;
    for (const entry of bulk) entry.rebuild = entry.projection.startRebuild();
    return false;
  }

  async function catchUp(): Promise<RebuildResult> {
    report('write');

    // Every transaction that could have written to the old tables has an id below this.
    const horizonTarget = await snapshotXmax(db);
    const horizonWaitMsMax = options.horizonWaitMsMax ?? 10 * 60_000;
    const waitStarted = performance.now();
    const roundsMax = options.catchUpRoundsMax ?? 100;
    for (let round = 0; round < roundsMax; ) {
      options.signal?.throwIfAborted();
      // Checked before the read: once the horizon has passed, this read sees every such event.
      const horizonPassed = (await snapshotXmin(db)) >= horizonTarget;
      const read = await store.readAll({ after: checkpoint, maxCount: batchMax });
      if (read.events.length === 0) {
        if (horizonPassed) break;
        if (performance.now() - waitStarted > horizonWaitMsMax) {
          throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the rebuild could not catch up: a transaction open since before its swap still holds the global-order horizon back', {
            horizonTarget: horizonTarget.toString(),
            waitedMs: Math.round(performance.now() - waitStarted),
          });
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
        continue;
      }
      round++;
      const next = read.checkpoint;
      await db.transaction().execute(async (tx) => {
        for (const projection of projections) await projection.apply(tx, read.events);
        await writeProjectionCheckpoints(tx, projections.map((projection) => projection.name), next);
      });
      events += read.events.length;
      checkpoint = next;
      report('catch-up');
    }
    report('done');
    const elapsedMs = performance.now() - started;
    return { events, rows, checkpoint, elapsedMs, eventsPerSecond: elapsedMs === 0 ? 0 : (events * 1000) / elapsedMs, workers: folders };
  }
}

/**
 * The rebuild's workers, started, with the scan they will decode; undefined when the fold
 * runs in this thread: fewer than 2 asked for, a projection folded by `apply` or needing
 * every event, no artifact tree, no COPY to write with, a store without a raw scan, or
 * workers that could not start.
 */
async function startWorkers(
  source: { readonly store: object; readonly bulk?: BulkLoader },
  bulk: readonly { readonly projection: RebuildableSqlProjection }[],
  replayed: number,
  options: RebuildOptions,
): Promise<{ readonly workers: RebuildWorkers; readonly scan: AsyncIterable<Uint8Array> } | undefined> {
  const count = options.workers ?? DEFAULT_REBUILD_WORKERS;
  if (count < 2 || replayed > 0 || source.bulk === undefined || !isEventCopyScanner(source.store)) return undefined;
  const trees = bulk.filter(({ projection }) => isWorkerTree(projection));
  const others = bulk.filter(({ projection }) => !isWorkerTree(projection));
  if (trees.length !== 1) return undefined;
  const forwardTypes = new Set<EventType>();
  for (const { projection } of others) {
    if (projection.rebuildEventTypes === undefined) return undefined;
    for (const type of projection.rebuildEventTypes) forwardTypes.add(type);
  }
  const scan = source.store.scanAllCopy({ after: START_CHECKPOINT, ...(options.signal === undefined ? {} : { signal: options.signal }) });
  if (scan === undefined) return undefined;
  try {
    return { workers: await RebuildWorkers.start(Math.floor(count), [...forwardTypes]), scan };
  } catch {
    // No workers here (no esbuild to bundle them, no room for threads): fold in this thread.
    return undefined;
  }
}

/**
 * The read phase with workers: the scan's bytes to every worker, then the events committed
 * since (readAll) likewise; returns the checkpoint after the last event read.
 */
async function readWithWorkers(
  started: { readonly workers: RebuildWorkers; readonly scan: AsyncIterable<Uint8Array> },
  store: Pick<EventStore, 'readAll'>,
  after: Checkpoint,
  batchMax: number,
  signal: AbortSignal | undefined,
  onEvents: (events: number) => void,
): Promise<Checkpoint> {
  const { workers, scan } = started;
  workers.onScanProgress = () => onEvents(workers.scanRows);
  for await (const chunk of scan) {
    signal?.throwIfAborted();
    await workers.scan(chunk);
  }
  const scanned = await workers.endScan();
  workers.onScanProgress = undefined;
  let checkpoint = scanned.checkpoint ?? after;
  let events = scanned.rows;
  onEvents(events);
  for await (const read of readAllAhead(store, checkpoint, batchMax, signal)) {
    workers.addEvents(read.events);
    events += read.events.length;
    checkpoint = read.checkpoint;
    onEvents(events);
  }
  return checkpoint;
}

/**
 * The pages of readAll after `after` until an empty one, each requested while the one before
 * is handled (the database reads the next page while this one is folded).
 */
async function* readAllAhead(store: Pick<EventStore, 'readAll'>, after: Checkpoint, maxCount: number, signal: AbortSignal | undefined): AsyncGenerator<ReadAllResult> {
  const readAfter = (from: Checkpoint) => store.readAll({ after: from, maxCount, ...(signal ? { signal } : {}) });
  let reading = readAfter(after);
  for (;;) {
    signal?.throwIfAborted();
    const read = await reading;
    if (read.events.length === 0) return;
    reading = readAfter(read.checkpoint);
    reading.catch(() => undefined);
    yield read;
  }
}

/**
 * The one rebuild's row sink a bulk scan may feed (ProjectionRebuild.rowSink): undefined
 * unless exactly one rebuild has one, no projection is replayed by `apply`, and every other
 * rebuild declares the event types it folds, none of the sink's.
 */
export function rowSinkOf(bulk: readonly { readonly projection: RebuildableSqlProjection; readonly rebuild: ProjectionRebuild }[], replayed: number): EventCopyRowSink | undefined {
  if (replayed > 0) return undefined;
  const sinks = bulk.filter(({ rebuild }) => rebuild.rowSink !== undefined);
  if (sinks.length !== 1) return undefined;
  const sink = sinks[0]!.rebuild.rowSink!;
  for (const { projection, rebuild } of bulk) {
    if (rebuild.rowSink !== undefined) continue;
    if (projection.rebuildEventTypes === undefined || projection.rebuildEventTypes.some((type) => sink.types.includes(type))) return undefined;
  }
  return sink;
}

/** The artifact tree with its own rebuild (a subclass with another startRebuild folds in this thread). */
function isWorkerTree(projection: RebuildableSqlProjection): boolean {
  return projection instanceof ArtifactTreeProjection && projection.startRebuild === ArtifactTreeProjection.prototype.startRebuild;
}

const PARTITION_COLUMNS: Readonly<Record<PartitionTable, readonly UnnestColumn[]>> = {
  artifacts: ARTIFACT_COLUMNS,
  folder_tombstones: FOLDER_TOMBSTONE_COLUMNS,
  artifact_properties: PROPERTY_COLUMNS,
};

/**
 * The artifact tree's rebuild when workers fold it: each table is one COPY of the rows the
 * workers encode (in any order: the rebuild builds the keys afterwards).
 */
function workerRebuild(workers: RebuildWorkers): ProjectionRebuild {
  return {
    add(): void {
      throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'the rebuild workers read the events themselves');
    },
    async write(_db, onRows, copy): Promise<number> {
      if (copy?.encoded === undefined) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'a rebuild in worker threads writes with COPY');
      let rows = 0;
      for (const table of PARTITION_TABLES) {
        const counter = { rows: 0 };
        await copy.encoded(table, PARTITION_COLUMNS[table], workers.tableChunks(table, counter));
        onRows?.(counter.rows);
        rows += counter.rows;
      }
      return rows;
    },
  };
}

/** Suffix of the schema a rebuild writes its new tables into before swapping them in. */
const SHADOW_SCHEMA_SUFFIX = '__rebuild';

/**
 * The swap on a database with several connections (PostgreSQL): the new tables are written
 * and indexed side by side in a shadow schema (`<schema>__rebuild`), then swapped in by one
 * short transaction. Returns false, having changed nothing, when it does not apply (a single
 * connection, a schema name too long for the suffix, tables with sequences or foreign keys,
 * constraints other than plain primary keys and unique ones); the caller then swaps in one
 * transaction.
 *
 * 1. one transaction creates the shadow schema and, in it, each table `like` the live one
 *    with its columns, defaults and checks but no index and no key;
 * 2. each projection writes its rows there (COPY) with the shadow schema first on its
 *    search path, the projections side by side: table by table, each table in a
 *    transaction of its own, where the projection can (ProjectionRebuild.writeTables: the
 *    artifact tree), else all of its tables in one transaction;
 * 3. every index and key is built on the shadow tables (keys as unique indexes) by up to
 *    `concurrentTransactionsMax` transactions at once, a table's as soon as its rows are
 *    committed (the artifacts' while the properties are still being written), the largest
 *    first: PostgreSQL's index builds run a serial merge and write after their parallel
 *    sort, and one build's serial part overlaps another's sort. With the writers, up to
 *    `concurrentTransactionsMax` + the projections' count connections besides the swap's
 *    (a smaller pool makes them wait their turn; each finishes without waiting for
 *    another connection, so none waits for ever);
 * 4. the swap transaction — the one that took the rebuild's advisory lock at the start —
 *    locks the live tables, drops them, moves the shadow tables into the schema (their
 *    indexes keep their names), turns the unique indexes back into the key constraints and
 *    records the checkpoint. Readers see the old tables until it commits, and wait only for
 *    this last step (a truncate in the swap locked them out for the whole write).
 *
 * Steps 1–3 commit their work into the shadow schema, which no reader looks at: a rebuild
 * that fails or is killed there leaves the live tables as they were, and the next rebuild
 * drops the leftover schema. An advisory lock per schema keeps two rebuilds from sharing a
 * shadow schema.
 */
async function swapThroughShadowSchema(
  loader: BulkLoader,
  projections: readonly RebuildableSqlProjection[],
  names: readonly string[],
  checkpoint: Checkpoint,
  fill: (shadow: ShadowWriter) => Promise<void>,
): Promise<boolean> {
  const concurrent = loader.concurrentTransactionsMax ?? 0;
  const tables = projections.flatMap((projection) => projection.tables);
  if (concurrent < 1 || tables.length === 0) return false;
  let shadowSchema: string | undefined;
  try {
    return await loader.transaction(async (swapTx) => {
      const schema = (await sql<{ schema: string | null }>`select current_schema() as schema`.execute(swapTx)).rows[0]?.schema;
      if (schema === null || schema === undefined) return false;
      const shadow = schema + SHADOW_SCHEMA_SUFFIX;
      // PostgreSQL cuts identifiers at 63 bytes.
      if (Buffer.byteLength(shadow) > 63) return false;
      // One rebuild per schema at a time (a second one would drop this one's shadow schema).
      await sql`select pg_advisory_xact_lock(hashtextextended(${rebuildLockName(schema)}, 0))`.execute(swapTx);
      const plan = await shadowPlan(swapTx, schema, tables);
      if (plan === undefined) return false;
      const live = (table: string) => `${quoteIdentifier(schema)}.${quoteIdentifier(table)}`;
      const inShadow = (table: string) => `${quoteIdentifier(shadow)}.${quoteIdentifier(table)}`;
      shadowSchema = shadow;
      await loader.transaction(async (tx) => {
        await sql.raw(`drop schema if exists ${quoteIdentifier(shadow)} cascade`).execute(tx);
        await sql.raw(`create schema ${quoteIdentifier(shadow)}`).execute(tx);
        for (const table of tables) {
          await sql.raw(`create table ${inShadow(table)} (like ${live(table)} including all excluding indexes)`).execute(tx);
        }
      });
      /** A transaction of its own writing into the shadow schema (callers hold one of the slots). */
      const open = <T>(work: (tx: Kysely<StoreDatabase>, copy: CopyRows) => Promise<T>): Promise<T> =>
        loader.transaction(async (tx, copy) => {
          await sql`select set_config('search_path', ${`${quoteIdentifier(shadow)}, ${quoteIdentifier(schema)}`}, true)`.execute(tx);
          return work(tx, copy);
        });
      const builds = new IndexBuilds(plan.indexes);
      const writer: ShadowWriter = {
        inShadow: open,
        async write(projection, rebuild, onRows) {
          const rows =
            rebuild.writeTables === undefined
              ? await open((tx, copy) => rebuild.write(tx, onRows, copy, { unindexed: true }))
              : await rebuild.writeTables(async (table, work) => {
                  const written = await open(work);
                  builds.ready(table);
                  return written;
                }, onRows);
          for (const table of projection.tables) builds.ready(table);
          return rows;
        },
      };
      const filling = fill(writer).then(
        () => builds.close(false),
        (error: unknown) => {
          builds.close(true);
          throw error;
        },
      );
      // Up to `concurrent` builders, each a transaction at a time: a builder waits for an index
      // whose table is written, then builds it and any others available meanwhile in one
      // transaction, the largest first (by the size of the live index it replaces), so that
      // the last builds to start are the short ones. A table's builds start as soon as its
      // rows are committed, while the writers go on with the next table (on two cores:
      // write phase 6.6–7.4 s against 7.2–8.6 s with every build after the last COPY,
      // docs/benchmarks.md, B, rebuild11).
      const builder = async () => {
        while (await builds.available()) {
          const first = builds.take();
          if (first === undefined) continue;
          await open(async (tx) => {
            for (let build: ShadowIndex | undefined = first; build !== undefined; build = builds.take()) {
              await sql.raw(build.definition.replace(build.on, ` ON ${inShadow(build.table)} `)).execute(tx);
            }
          }).catch((error: unknown) => {
            builds.close(true);
            throw error;
          });
        }
      };
      await settleAll([filling, ...Array.from({ length: Math.min(concurrent, plan.indexes.length) }, builder)]);
      await sql.raw(`lock table ${tables.map(live).join(', ')} in access exclusive mode`).execute(swapTx);
      for (const table of tables) await sql.raw(`drop table ${live(table)}`).execute(swapTx);
      for (const table of tables) await sql.raw(`alter table ${inShadow(table)} set schema ${quoteIdentifier(schema)}`).execute(swapTx);
      for (const { table, name, kind } of plan.constraints) {
        await sql.raw(`alter table ${live(table)} add constraint ${quoteIdentifier(name)} ${kind === 'p' ? 'primary key' : 'unique'} using index ${quoteIdentifier(name)}`).execute(swapTx);
      }
      await sql.raw(`drop schema ${quoteIdentifier(shadow)}`).execute(swapTx);
      await writeProjectionCheckpoints(swapTx, names, checkpoint);
      return true;
    });
  } catch (error) {
    // The swap transaction rolled back: the live tables are as they were. The shadow schema,
    // committed piecewise, is dropped under the same lock (another rebuild may hold it now:
    // this waits for it, which drops it anyway).
    const shadow = shadowSchema;
    if (shadow !== undefined) {
      await loader
        .transaction(async (tx) => {
          await sql`select pg_advisory_xact_lock(hashtextextended(${rebuildLockName(shadow.slice(0, -SHADOW_SCHEMA_SUFFIX.length))}, 0))`.execute(tx);
          await sql.raw(`drop schema if exists ${quoteIdentifier(shadow)} cascade`).execute(tx);
        })
        .catch(() => undefined);
    }
    throw error;
  }
}

/** Runs `work` in a transaction of its own (a connection of its own) that writes into the shadow schema. */
type InShadow = <T>(work: (tx: Kysely<StoreDatabase>, copy: CopyRows) => Promise<T>) => Promise<T>;

/** What a rebuild's write sees of the shadow schema (swapThroughShadowSchema). */
interface ShadowWriter {
  readonly inShadow: InShadow;
  /**
   * Writes `rebuild`'s rows into the shadow schema: table by table where it can
   * (ProjectionRebuild.writeTables), each table's index builds starting once it is
   * committed; else in one transaction, `projection`'s index builds starting after it.
   */
  write(projection: RebuildableSqlProjection, rebuild: ProjectionRebuild, onRows: (rows: number) => void): Promise<number>;
}

type ShadowIndex = ShadowPlan['indexes'][number];

/**
 * The index builds of a shadow swap, each available once its table is written (`ready`), the
 * largest available first. `close(false)`: every table is written; `close(true)`: something
 * failed, nothing more is handed out.
 */
class IndexBuilds {
  readonly #waiting = new Map<string, ShadowIndex[]>();
  readonly #ready: ShadowIndex[] = [];
  readonly #wakers: (() => void)[] = [];
  #closed = false;
  #failed = false;

  constructor(indexes: readonly ShadowIndex[]) {
    for (const index of indexes) {
      const table = this.#waiting.get(index.table);
      if (table === undefined) this.#waiting.set(index.table, [index]);
      else table.push(index);
    }
  }

  ready(table: string): void {
    const indexes = this.#waiting.get(table);
    if (indexes === undefined || this.#failed) return;
    this.#waiting.delete(table);
    this.#ready.push(...indexes);
    this.#ready.sort((a, b) => b.bytes - a.bytes);
    this.#wake();
  }

  close(failed: boolean): void {
    if (failed) {
      this.#failed = true;
      this.#ready.length = 0;
    } else {
      for (const table of [...this.#waiting.keys()]) this.ready(table);
    }
    this.#closed = true;
    this.#wake();
  }

  /** The next build, if one is available now. */
  take(): ShadowIndex | undefined {
    return this.#failed ? undefined : this.#ready.shift();
  }

  /** Waits until a build is available (true) or none will be (false). */
  async available(): Promise<boolean> {
    for (;;) {
      if (this.#failed) return false;
      if (this.#ready.length > 0) return true;
      if (this.#closed) return false;
      await new Promise<void>((resolve) => this.#wakers.push(resolve));
    }
  }

  #wake(): void {
    for (const wake of this.#wakers.splice(0)) wake();
  }
}

/** An event that concerns another stream's rows, met by a rebuild by stream (see RebuildableSqlProjection.rebuildByStream). */
class CrossedStreams extends Error {}

/**
 * Streams a rebuild by stream folds and writes as one group at least (the last group may be
 * smaller): a group is one write transaction, so thousands of small repositories do not cost
 * thousands of commits, and small enough that the first group's fold, which nothing overlaps,
 * and the last group's write, likewise, stay short.
 */
export const streamGroupEventsMin = 50_000;

/**
 * RebuildOptions.streamGroupInterleaving's default. On the bench's log (runs of ~1,000 events of
 * a stream, ~1.3 groups per page) the read by stream paid; on the same events interleaved one
 * by one (10 groups per page) it ran at 0.73 of one scan (docs/benchmarks.md, B).
 */
export const streamGroupInterleaving = { pageVisitsMax: 2, pagesMin: 1_000 } as const;

/** The streams in groups of at least `groupEventsMin` events (by their lengths), in their order. */
function streamGroups(streams: StreamPartitionedScan['streams'], groupEventsMin: number): string[][] {
  const groups: string[][] = [];
  let group: string[] = [];
  let groupEvents = 0;
  for (const { stream, eventsMax } of streams) {
    group.push(stream);
    groupEvents += eventsMax;
    if (groupEvents >= groupEventsMin) {
      groups.push(group);
      group = [];
      groupEvents = 0;
    }
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/**
 * The read and the write of a rebuild by stream, into the shadow schema (PostgreSQL): the
 * streams are read group by group (`scan`, one COPY per stream) and each group folded into
 * fresh rebuilds of the projections whose rows fall apart by stream; while the next group
 * is read and folded, the group before is written by COPY in a transaction of its own on
 * another connection — the database inserts while node decodes and folds, where the rebuild
 * in one piece left the database idle during the read and node idle during the write. The
 * other projections fold every event as before and write once at the end. Each group's fold
 * is garbage once written (a tenth of the old generation of one fold of every event).
 * Throws CrossedStreams on an event a group cannot fold alone.
 */
async function readByStreamInShadow(
  scan: StreamPartitionedScan,
  groups: readonly (readonly string[])[],
  bulk: readonly { readonly projection: RebuildableSqlProjection; readonly rebuild: ProjectionRebuild }[],
  inShadow: InShadow,
  options: {
    readonly onRows: (rows: number) => void;
    readonly onEvents: (events: number) => void;
    /** The last group is folded (its write has started). */
    readonly onLastFolded: () => void;
    readonly signal?: AbortSignal;
  },
): Promise<void> {
  const { onRows, onEvents, signal } = options;
  const byStream = bulk.flatMap(({ projection }) => (projection.rebuildByStream === undefined ? [] : [{ projection, crosses: projection.rebuildByStream.crosses }]));
  const whole = bulk.filter(({ projection }) => projection.rebuildByStream === undefined);
  let writing: Promise<void> | undefined;
  try {
    for (const streams of groups) {
      const rebuilds = byStream.map(({ projection, crosses }) => ({ rebuild: projection.startRebuild(), crosses }));
      for await (const page of scan.scanStreams(streams, { pageEventsMax: scanPageEventsMax, ...(signal === undefined ? {} : { signal }) })) {
        signal?.throwIfAborted();
        for (const { rebuild, crosses } of rebuilds) {
          for (const event of page) if (crosses(event)) throw new CrossedStreams(`event ${event.id} of ${event.stream} concerns another stream's rows`);
          rebuild.add(page);
        }
        for (const { rebuild } of whole) rebuild.add(page);
        onEvents(page.length);
      }
      // One group written at a time, each while the next is read.
      await writing;
      writing = inShadow(async (tx, copy) => {
        for (const { rebuild } of rebuilds) await rebuild.write(tx, onRows, copy, { unindexed: true });
      });
      // Awaited before the next group's write or below; not unhandled meanwhile.
      writing.catch(() => undefined);
    }
    options.onLastFolded();
    await writing;
  } catch (error) {
    await writing?.catch(() => undefined);
    throw error;
  }
  await settleAll(whole.map(({ rebuild }) => inShadow((tx, copy) => rebuild.write(tx, onRows, copy, { unindexed: true }))));
}

function rebuildLockName(schema: string): string {
  return `strata rebuild ${schema}`;
}

/** Waits for every promise, then fails with the first failure (none is left running behind). */
async function settleAll(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const result of results) if (result.status === 'rejected') throw result.reason;
}

interface ShadowPlan {
  /** Every index of the tables (those of key constraints too), with the `ON <table>` part of its definition to rewrite. */
  readonly indexes: readonly { readonly table: string; readonly definition: string; readonly on: string; readonly bytes: number }[];
  /** The primary keys and unique constraints, built as unique indexes of the same names first. */
  readonly constraints: readonly { readonly table: string; readonly name: string; readonly kind: 'p' | 'u' }[];
}

/**
 * What the shadow swap rebuilds for `tables`, from the catalog; undefined when it cannot
 * reproduce them exactly: a sequence owned by a column, a foreign key to or from them, a
 * constraint besides checks, not-null, plain primary keys and unique ones (exclusion,
 * deferrable), a table that is not plain.
 */
async function shadowPlan(db: Kysely<StoreDatabase>, schema: string, tables: readonly string[]): Promise<ShadowPlan | undefined> {
  // (`foreign`: a foreign key, or extended statistics, which would stay behind in the shadow schema.)
  const found = await sql<{ table: string; plain: boolean; sequences: boolean; foreign: boolean }>`
    select t.relname as table, t.relkind = 'r' and not t.relispartition and not t.relhassubclass and not t.relhastriggers as plain,
      exists (select 1 from pg_depend d join pg_class s on s.oid = d.objid and s.relkind = 'S' where d.refobjid = t.oid) as sequences,
      exists (select 1 from pg_constraint f where f.contype = 'f' and (f.conrelid = t.oid or f.confrelid = t.oid))
        or exists (select 1 from pg_statistic_ext e where e.stxrelid = t.oid) as foreign
    from pg_class t where t.relnamespace = ${schema}::regnamespace and t.relname = any(${[...tables]}::text[])`.execute(db);
  if (found.rows.length !== new Set(tables).size) return undefined;
  if (found.rows.some((row) => !row.plain || row.sequences || row.foreign)) return undefined;
  const constraints = await sql<{ table: string; name: string; kind: string; index: string | null; deferrable: boolean }>`
    select t.relname as table, c.conname as name, c.contype as kind, i.relname as index, c.condeferrable as deferrable
    from pg_constraint c join pg_class t on t.oid = c.conrelid left join pg_class i on i.oid = c.conindid
    where t.relnamespace = ${schema}::regnamespace and t.relname = any(${[...tables]}::text[]) and c.contype not in ('c', 'n')
    order by t.relname, c.conname`.execute(db);
  const keys: { table: string; name: string; kind: 'p' | 'u' }[] = [];
  for (const row of constraints.rows) {
    if ((row.kind !== 'p' && row.kind !== 'u') || row.deferrable || row.index !== row.name) return undefined;
    keys.push({ table: row.table, name: row.name, kind: row.kind });
  }
  const indexes = await sql<{ table: string; definition: string; bytes: string }>`
    select t.relname as table, pg_get_indexdef(x.indexrelid) as definition, pg_relation_size(x.indexrelid)::text as bytes
    from pg_index x join pg_class t on t.oid = x.indrelid
    where t.relnamespace = ${schema}::regnamespace and t.relname = any(${[...tables]}::text[])
    order by t.relname, x.indexrelid`.execute(db);
  const plan: { table: string; definition: string; on: string; bytes: number }[] = [];
  for (const { table, definition, bytes } of indexes.rows) {
    // "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING …": the table part is rewritten.
    const on = ` ON ${quoteIdentifier(schema)}.${quoteIdentifier(table)} `;
    const plainOn = ` ON ${schema}.${table} `;
    const match = definition.includes(on) ? on : definition.includes(plainOn) ? plainOn : undefined;
    if (match === undefined || definition.indexOf(match) !== definition.lastIndexOf(match)) return undefined;
    plan.push({ table, definition, on: match, bytes: Number(bytes) });
  }
  return { indexes: plan, constraints: keys };
}

async function snapshotXmax(db: Kysely<StoreDatabase>): Promise<bigint> {
  const result = await sql<{ xmax: string }>`select pg_snapshot_xmax(pg_current_snapshot())::text as xmax`.execute(db);
  return BigInt(result.rows[0]!.xmax);
}

async function snapshotXmin(db: Kysely<StoreDatabase>): Promise<bigint> {
  const result = await sql<{ xmin: string }>`select pg_snapshot_xmin(pg_current_snapshot())::text as xmin`.execute(db);
  return BigInt(result.rows[0]!.xmin);
}

/**
 * Drops the primary keys, unique constraints and indexes of `tables`, and returns the
 * statements that create them again, constraints first (definitions from the catalog, so
 * they always match what the migrations created). Only for tables the caller has just
 * truncated, inside its transaction: nothing else sees them without their keys.
 */
export async function dropIndexesAndKeys(db: Kysely<StoreDatabase>, tables: readonly string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const constraints = await sql<{ tablename: string; conname: string; definition: string }>`
    select t.relname as tablename, c.conname, pg_get_constraintdef(c.oid) as definition
    from pg_constraint c join pg_class t on t.oid = c.conrelid
    where t.relnamespace = current_schema()::regnamespace and t.relname = any(${[...tables]}::text[]) and c.contype in ('p', 'u')
      -- a key a foreign key references stays (dropping it would need the foreign key gone too)
      and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = c.conindid)
    order by t.relname, c.conname`.execute(db);
  for (const { tablename, conname } of constraints.rows) {
    await sql`alter table ${sql.table(tablename)} drop constraint ${sql.id(conname)}`.execute(db);
  }
  const indexes = await dropSecondaryIndexes(db, tables);
  return [
    ...constraints.rows.map(
      ({ tablename, conname, definition }) => `alter table ${quoteIdentifier(tablename)} add constraint ${quoteIdentifier(conname)} ${definition}`,
    ),
    ...indexes,
  ];
}

/**
 * Drops the indexes of `tables` that back no constraint and returns their definitions
 * (from pg_indexes, so they always match what the migrations created).
 */
export async function dropSecondaryIndexes(db: Kysely<StoreDatabase>, tables: readonly string[]): Promise<string[]> {
  if (tables.length === 0) return [];
  const result = await sql<{ schemaname: string; indexname: string; indexdef: string }>`
    select i.schemaname, i.indexname, i.indexdef from pg_indexes i
    where i.schemaname = current_schema() and i.tablename = any(${[...tables]}::text[])
      and not exists (select 1 from pg_constraint c where c.conname = i.indexname and c.connamespace = current_schema()::regnamespace)
    order by i.indexname`.execute(db);
  for (const { schemaname, indexname } of result.rows) {
    await sql`drop index ${sql.id(schemaname, indexname)}`.execute(db);
  }
  return result.rows.map((row) => row.indexdef);
}

/** Rows in a projection table (tests and progress reports). */
export async function countRows(db: Kysely<StoreDatabase>, table: string): Promise<number> {
  const result = await sql<{ count: unknown }>`select count(*) as count from ${sql.table(table)}`.execute(db);
  return toNumber(result.rows[0]?.count ?? 0);
}
