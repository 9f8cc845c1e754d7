import { performance } from 'node:perf_hooks';
import { sql, type Kysely } from 'kysely';
import { StrataError, repositoryStream, type RecordedEvent } from '@strata/core';
import { isEventScanner, isStreamScanner, isStreamSinkScanner, type Checkpoint, type EventScanner, type EventStore, type ReadAllResult } from '../event-store.ts';
import type { SqlProjection } from '../projection.ts';
import type { StoreDatabase } from '../schema.ts';
import { observeTakes, type EventCopyRowSink } from '../event-copy-reader.ts';
import type { BulkLoader, CopyRows } from '../projections/bulk-copy.ts';
import type { BinaryCopySource } from '../projections/binary-copy.ts';
import { decodeStoredEventRow, STORED_EVENT_COLUMNS, type StoredEventRow } from '../sql-event-store.ts';
import { DIFFERENCE_KEY_FIELDS, lockForDifference, writeDifference, type DifferenceCopy } from '../projections/projection-difference.ts';
import { rebuildProjections, rowSinkOf, scanPageEventsMax, type RebuildResult } from '../projections/rebuild-projections.ts';
import { isRebuildableProjection } from '../projections/rebuildable-projection.ts';

/**
 * A point in a repository's past (issue 8): an instant (every event the origin stamped at or
 * before it, by HLC physical time — the order LWW merges by, whatever order events arrived
 * in) or a position in this site's global order (every event this site held then).
 */
export type PointInTime = { readonly kind: 'time'; readonly wall: number } | { readonly kind: 'position'; readonly position: bigint };

const POSITION = /^[0-9]{1,19}$/;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** Parses `asOf` / `--until`: a position (digits) or an ISO-8601 date-time; throws STRATA_ERR_HTTP_BAD_REQUEST. */
export function parsePointInTime(text: string): PointInTime {
  const value = text.trim();
  if (POSITION.test(value)) return { kind: 'position', position: BigInt(value) };
  const wall = ISO_DATE.test(value) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(wall)) {
    throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `'${value.slice(0, 64)}' is neither an ISO-8601 time nor a position`);
  }
  return { kind: 'time', wall };
}

export function isAtOrBefore(event: RecordedEvent, point: PointInTime): boolean {
  return point.kind === 'time' ? event.hlc.wall <= point.wall : event.position <= point.position;
}

export function describePointInTime(point: PointInTime): string {
  return point.kind === 'time' ? new Date(point.wall).toISOString() : `position ${point.position}`;
}

/**
 * Every event of a stream (up to a point), page by page, in revision order. With a position
 * the read stops at the first event past it (positions grow with revisions in one stream);
 * with a time every event is read (arrivals from peers can be stamped earlier).
 */
export async function* readStreamUntil(
  store: Pick<EventStore, 'readStream'>,
  stream: string,
  options: { readonly until?: PointInTime; readonly pageEventsMax?: number; readonly signal?: AbortSignal } = {},
): AsyncGenerator<readonly RecordedEvent[]> {
  let fromRevision = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const page = await store.readStream(stream, { fromRevision, ...(options.pageEventsMax === undefined ? {} : { maxCount: options.pageEventsMax }) });
    if (page.length === 0) return;
    fromRevision = page[page.length - 1]!.revision + 1;
    const until = options.until;
    if (until === undefined) {
      yield page;
      continue;
    }
    const kept = page.filter((event) => isAtOrBefore(event, until));
    if (kept.length > 0) yield kept;
    if (until.kind === 'position' && kept.length < page.length) return;
  }
}

export interface ReplayProgress {
  readonly events: number;
  /** Events the replay will read at most (the stream's length, or every event). */
  readonly total: number;
  readonly elapsedMs: number;
  readonly phase: 'read' | 'write' | 'done';
}

export interface ReplayOptions {
  readonly until?: PointInTime;
  readonly onProgress?: (progress: ReplayProgress) => void;
  readonly signal?: AbortSignal;
  /** replayAll: worker threads folding the artifact tree (rebuildProjections' `workers`; not with `until`). */
  readonly workers?: number;
}

export interface ReplayResult {
  readonly events: number;
  /** Rows of the replayed state (every row the projections hold for it). */
  readonly rows: number;
  /**
   * replayRepository: rows that differed from the replayed state and were rewritten (deleted,
   * inserted, or both; one per table row). 0 after a replay of an intact repository.
   */
  readonly rowsChanged?: number;
  readonly elapsedMs: number;
  readonly eventsPerSecond: number;
}

/** The tables the artifact-tree and repository-config projections keep per repository, and their key column. */
const REPOSITORY_ROWS: readonly (readonly [table: string, column: string])[] = [
  ['artifacts', 'repo'],
  ['folder_tombstones', 'repo'],
  ['artifact_properties', 'repo'],
  ['repositories', 'key'],
];

/**
 * Rebuilds one repository's rows of the projections from zero (`strata replay --repo`): folds
 * the repository's stream (up to `until`) in memory, then in one transaction brings the
 * repository's rows to the folded state. Other repositories are untouched; readers see the
 * old rows until the transaction commits. With `until`, the repository shows that point in
 * time until new events arrive — meant for an investigation copy (`strata import`), not a
 * live site.
 *
 * The read takes the stream's rows in whatever order the store finds them (StreamScanner),
 * which the folds allow: the artifact tree and the configuration merge by HLC stamps, and
 * core's properties check that any delivery order folds to the same state; the artifact
 * tree's plain deploy, delete and property-set rows are folded from their bytes through its
 * row sink (StreamSinkScanner), as the rebuild of everything does. With COPY
 * (`bulk`), the artifact tree's rows are compared with the live ones (projection-difference.ts)
 * and only the rows that differ are rewritten: a replay of an intact repository writes nothing to the projection
 * (and reports `rowsChanged` 0), a damaged one gets exactly its wrong rows replaced. Without
 * COPY the repository's rows are deleted and written again.
 */
export async function replayRepository(
  source: { readonly store: Pick<EventStore, 'readStream' | 'streamRevision'>; readonly db: Kysely<StoreDatabase>; readonly bulk?: BulkLoader },
  projections: readonly SqlProjection[],
  repo: string,
  options: ReplayOptions = {},
): Promise<ReplayResult> {
  const started = performance.now();
  const stream = repositoryStream(repo);
  const begun = projections.map((projection) => {
    if (!isRebuildableProjection(projection)) throw new StrataError('STRATA_ERR_INVARIANT', `projection ${projection.name} cannot be replayed per repository`);
    return { projection, rebuild: projection.startRebuild() };
  });
  const rebuilds = begun.map(({ rebuild }) => rebuild);
  const total = ((await source.store.streamRevision(stream)) ?? -1) + 1;
  let events = 0;
  let rows = 0;
  let rowsChanged = 0;
  const report = (phase: ReplayProgress['phase']) => options.onProgress?.({ events, total, elapsedMs: performance.now() - started, phase });
  let revisionMax = -1;
  // The rows a rebuild's sink takes from the scan (as the whole-log rebuild's, rebuild-projections.ts):
  // folded from their bytes, in no page; counted and their revisions kept here.
  const sink = rowSinkOf(begun, 0);
  let taken = 0;
  const counted =
    sink === undefined
      ? undefined
      : observeTakes(sink, (revision) => {
          taken++;
          if (revision > revisionMax) revisionMax = revision;
        });
  for await (const page of readRepositoryStream(source.store, stream, options, counted)) {
    for (const rebuild of rebuilds) rebuild.add(page);
    for (const event of page) if (event.revision > revisionMax) revisionMax = event.revision;
    events += page.length + taken;
    taken = 0;
    report('read');
  }
  events += taken;
  /**
   * The stream's events committed after the read (the replay's transaction holds the lock
   * that makes appends wait, so none can commit after this), folded too: their inline
   * updates hit the rows being compared.
   */
  const foldLateEvents = async (tx: Kysely<StoreDatabase>) => {
    const until = options.until;
    for (;;) {
      // Through the transaction (PGlite has a single connection).
      const late = await sql<StoredEventRow>`
        select ${STORED_EVENT_COLUMNS} from events where stream = ${stream} and revision > ${revisionMax} order by revision limit 10000`.execute(tx);
      if (late.rows.length === 0) return;
      const page = late.rows.map(decodeStoredEventRow);
      revisionMax = page[page.length - 1]!.revision;
      const kept = until === undefined ? page : page.filter((event) => isAtOrBefore(event, until));
      for (const rebuild of rebuilds) rebuild.add(kept);
      events += kept.length;
    }
  };
  options.signal?.throwIfAborted();
  const replace = async (tx: Kysely<StoreDatabase>) => {
    for (const [table, column] of REPOSITORY_ROWS) await sql`delete from ${sql.table(table)} where ${sql.ref(column)} = ${repo}`.execute(tx);
    for (const rebuild of rebuilds) rows += await rebuild.write(tx, () => report('write'));
  };
  const difference = async (tx: Kysely<StoreDatabase>, copy: DifferenceCopy) => {
    // Appends wait from here to the commit; whatever they committed before is read now.
    await lockForDifference(tx);
    await foldLateEvents(tx);
    // Tables written without COPY (the repository's configuration row) are replaced whole,
    // and count as changed when their rows read differently afterwards.
    const replacedWhole = REPOSITORY_ROWS.filter(([table]) => !DIFFERENCE_KEY_FIELDS.has(table));
    const wholeRows = async () => {
      const texts = new Set<string>();
      for (const [table, column] of replacedWhole) {
        const found = await sql<{ row: string }>`select t::text as row from ${sql.table(table)} as t where ${sql.ref(column)} = ${repo}`.execute(tx);
        for (const row of found.rows) texts.add(`${table} ${row.row}`);
      }
      return texts;
    };
    const before = await wholeRows();
    for (const [table, column] of replacedWhole) await sql`delete from ${sql.table(table)} where ${sql.ref(column)} = ${repo}`.execute(tx);
    const byDifference: CopyRows = Object.assign(
      (table: string): Promise<number> => {
        throw new StrataError('STRATA_ERR_INVARIANT', `a repository replay writes ${table} by binary COPY only`);
      },
      {
        binary: async (copySource: BinaryCopySource): Promise<number> => {
          const written = await writeDifference(tx, copy, copySource, repo);
          rowsChanged += written.changed;
          return written.rows;
        },
      },
    );
    // Rows in any order (no sort of the paths): they are compared by key.
    for (const rebuild of rebuilds) rows += await rebuild.write(tx, () => report('write'), byDifference, { unindexed: true });
    const after = await wholeRows();
    for (const text of before) if (!after.has(text)) rowsChanged++;
    for (const text of after) if (!before.has(text)) rowsChanged++;
  };
  const bulk = source.bulk;
  if (bulk !== undefined) {
    await bulk.transaction(async (tx, copy) => {
      if (copy.binary !== undefined && copy.out !== undefined && copy.encoded !== undefined) return difference(tx, copy);
      await replace(tx);
      rowsChanged = rows;
    });
  } else {
    await source.db.transaction().execute(replace);
    rowsChanged = rows;
  }
  report('done');
  const elapsedMs = performance.now() - started;
  return { events, rows, rowsChanged, elapsedMs, eventsPerSecond: elapsedMs === 0 ? 0 : (events * 1000) / elapsedMs };
}

/** A repository's events for replayRepository: the store's unordered stream scan when it has one, else readStream's pages. */
function readRepositoryStream(
  store: Pick<EventStore, 'readStream'>,
  stream: string,
  options: ReplayOptions,
  sink: EventCopyRowSink | undefined,
): AsyncIterable<readonly RecordedEvent[]> {
  const until = options.until;
  if (!isStreamScanner(store)) return readStreamUntil(store, stream, { ...(until === undefined ? {} : { until }), ...(options.signal === undefined ? {} : { signal: options.signal }) });
  const scanOptions = {
    // Small pages, as the rebuild's scan: decoded events die young once folded.
    pageEventsMax: scanPageEventsMax,
    ...(until === undefined ? {} : until.kind === 'position' ? { untilPosition: until.position } : { untilWall: until.wall }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  };
  // With the sink, the rows it takes (the plain deploys, deletes and property sets) are folded from their bytes.
  return sink !== undefined && isStreamSinkScanner(store) ? store.scanStreamInto(stream, sink, scanOptions) : store.scanStream(stream, scanOptions);
}

/**
 * Rebuilds every projection from zero (`strata replay` without `--repo`): core's
 * rebuildProjections, reading only the events up to `until` when given.
 */
export async function replayAll(
  source: { readonly store: Pick<EventStore, 'readAll'>; readonly db: Kysely<StoreDatabase>; readonly bulk?: BulkLoader },
  projections: readonly SqlProjection[],
  options: ReplayOptions = {},
): Promise<RebuildResult> {
  const started = performance.now();
  // Every stream's revision is its last event's (from 0): their sum counts the events without
  // scanning them (a count(*) of 1,000,000 events read the whole table, ~0.2 s of a replay).
  const counted = await sql<{ n: string | number | null }>`select sum(revision::int8 + 1) as n from streams`.execute(source.db);
  const total = Number(counted.rows[0]?.n ?? 0);
  const until = options.until;
  const store: Pick<EventStore, 'readAll'> | (Pick<EventStore, 'readAll'> & EventScanner) = until === undefined ? source.store : untilStore(source.store, until);
  return rebuildProjections({ ...source, store }, projections, {
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    onProgress: (progress) =>
      options.onProgress?.({
        events: progress.events,
        total,
        elapsedMs: performance.now() - started,
        phase: progress.phase === 'done' ? 'done' : progress.phase === 'read' ? 'read' : 'write',
      }),
  });
}

/**
 * The store as it was at `until`, for a rebuild: readAll and (when the store has it) the bulk
 * scan, each page filtered to the events at or before the point. With a position the read
 * ends at the first event past it (the global order is the order of positions); with a time
 * every event is read (arrivals from peers can be stamped earlier than events before them).
 */
function untilStore(store: Pick<EventStore, 'readAll'>, until: PointInTime): Pick<EventStore, 'readAll'> | (Pick<EventStore, 'readAll'> & EventScanner) {
  let past = false;
  let last: Checkpoint | undefined;
  const filter = (read: ReadAllResult): ReadAllResult => {
    last = read.checkpoint;
    const events = read.events.filter((event) => isAtOrBefore(event, until));
    if (until.kind === 'position' && events.length < read.events.length) past = true;
    return { events, checkpoint: read.checkpoint };
  };
  const readAll = async (readOptions?: Parameters<EventStore['readAll']>[0]): Promise<ReadAllResult> => {
    let after: Checkpoint | undefined = readOptions?.after;
    for (;;) {
      // Past the position: nothing more belongs to the point (an empty page ends the rebuild).
      if (past) return { events: [], checkpoint: after ?? last! };
      const read = await store.readAll({ ...readOptions, ...(after === undefined ? {} : { after }) });
      const kept = filter(read);
      // A page may hold nothing before `until`: read on.
      if (kept.events.length > 0 || read.events.length === 0) return kept;
      after = read.checkpoint;
    }
  };
  if (!isEventScanner(store)) return { readAll };
  return {
    readAll,
    async *scanAll(scanOptions) {
      for await (const read of store.scanAll(scanOptions)) {
        yield filter(read);
        if (past) return;
      }
    },
  };
}
