import { performance } from 'node:perf_hooks';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { CHAIN_GENESIS, StrataError, historyPathsOf } from '@strata/core';
import { inlineParameters } from '../append-transaction.ts';
import { COPY_CHAINED_EVENT_COLUMNS, decodeChainedEventCopy, type CopyOut } from '../event-copy-reader.ts';
import { ChainRunScanner, chainRunColumns } from './chain-runs.ts';
import type { StoreDatabase } from '../schema.ts';
import { decodeStoredEventRow, STORED_SCAN_COLUMNS, type StoredEventRow } from '../sql-event-store.ts';
import {
  historyPageEventsMax,
  type ChainBreak,
  type HistoryJsonPage,
  type PathHistoryJsonOptions,
  type ChainBreakReason,
  type EventAudit,
  type HistoryEntry,
  type PathHistoryOptions,
  type PathHistoryPage,
  type VerifyOptions,
  type VerifyResult,
} from './event-audit.ts';
import { COPY_HISTORY_JSON_COLUMNS, renderHistoryJsonCopy } from './history-json-copy.ts';
import { historyPageJson } from './history-json.ts';

/**
 * The event digest of core's event-chain.ts, built by SQL from the stored columns (the same
 * bytes: every text field is ASCII, numbers are decimal).
 */
const DIGEST = sql.raw(
  `sha256(convert_to(stream || E'\\n' || id || E'\\n' || origin || E'\\n' || origin_seq || E'\\n' || hlc_wall || E'\\n' || hlc_logical || E'\\n' || type || E'\\n' || octet_length(data) || E'\\n', 'UTF8') || data || meta)`,
);
/**
 * DIGEST with one function call building the header instead of sixteen concatenations: the
 * same bytes whenever every column is present (they are NOT NULL). Used only by the single
 * pass, which marks a stream for the exact statements on any mismatch: a NULL column (which
 * concat_ws skips where DIGEST is NULL) is a mismatch there too.
 */
const DIGEST_ONE_CALL = `sha256(convert_to(concat_ws(E'\\n', stream, id, origin, origin_seq, hlc_wall, hlc_logical, type, octet_length(data), ''), 'UTF8') || data || meta)`;
/** The site-chain link of a row, from its stored digest. */
const LINK_SQL = `sha256(coalesce(prev_hash, ''::bytea) || convert_to(stream || E'\\n' || revision || E'\\n', 'UTF8') || digest)`;
const LINK = sql.raw(LINK_SQL);
/** What the single pass copies out of each range of the table (see chain-runs.ts). */
const CHAIN_RUN_COLUMNS = chainRunColumns(LINK_SQL, `digest is distinct from ${DIGEST_ONE_CALL}`);
/** The single pass's statements in each range: no JIT (its compile cost more than it saved), no parallel workers (the ranges are the parallelism). */
const CHAIN_RUN_SETTINGS = ['set local jit = off', 'set local max_parallel_workers_per_gather = 0'] as const;

interface BreakRow {
  stream: string;
  revision: number;
  before_revision: number | null;
  id: string;
  origin: string;
  origin_seq: number;
  site_failed: boolean;
  site_missing: boolean;
  origin_failed: boolean;
  origin_missing: boolean;
}

export interface SqlEventAuditOptions {
  /**
   * Connections verify may use at once (PostgreSQL: a pool). With 3, its three scans (the
   * digests, the site chains, the origin chains) run side by side in one exported snapshot;
   * with 1 (the default, and PGlite's single connection) one after the other.
   */
  readonly verifyConnectionsMax?: number;
  /**
   * Binary COPY out of the same database (`OpenedEventStore.copyOut`): history pages are
   * read with it — no hex text of two bytea per row for the driver to parse, and no row
   * objects — in one statement. Without it, two queries.
   */
  readonly copyOut?: CopyOut;
}

/** EventAudit on PostgreSQL and PGlite: history through `events_stream_target`, verification in SQL. */
export class SqlEventAudit implements EventAudit {
  readonly #db: Kysely<StoreDatabase>;
  readonly #verifyConnectionsMax: number;
  readonly #copyOut: CopyOut | undefined;

  constructor(db: Kysely<StoreDatabase>, options: SqlEventAuditOptions = {}) {
    this.#db = db;
    this.#verifyConnectionsMax = options.verifyConnectionsMax ?? 1;
    this.#copyOut = options.copyOut;
  }

  /**
   * Where a history page ends and its rows' condition. The first revision past the page (an
   * index-only scan of events_stream_target), so that the page's rows come in one bitmap
   * heap scan of the same index bounded by it, each heap page read once and the rows sorted
   * here. A path's events lie scattered over the table: fetching them by the unique
   * (stream, revision) index instead cost three times the buffer visits, and sorting whole
   * rows in SQL more than fetching them.
   */
  async #historyBounds(stream: string, path: string, options: PathHistoryOptions): Promise<{ limit: number; end: number | undefined; bounded: RawBuilder<unknown> }> {
    options.signal?.throwIfAborted();
    const limit = historyLimit(options.limit);
    const after = options.afterRevision ?? -1;
    const paths = historyPathsOf(path);
    // Folders below: every target in [path/, path0) in "C" order ('0' follows '/').
    const below = options.deep === true ? (path === '' ? sql`or target is not null` : sql`or (target >= ${`${path}/`} and target < ${`${path}0`})`) : sql``;
    const touches = sql`stream = ${stream} and revision > ${after} and (target = any(${paths}::text[]) ${below})`;
    const beyond = await sql<{ revision: number }>`
      select revision from events where ${touches} order by revision offset ${limit} limit 1`.execute(this.#db);
    const end = beyond.rows[0]?.revision;
    return { limit, end, bounded: sql`${touches} ${end === undefined ? sql`` : sql`and revision < ${end}`}` };
  }

  /**
   * `select <columns> from events where <bounded>` as a binary COPY statement. COPY takes no
   * parameters: they are inlined as literals (as the append's statements are). The page's
   * end stays a separate statement: as a subquery of this one, the planner cannot see how
   * many rows it leaves and walks the index row by row instead of one bitmap heap scan
   * (300 ms against 30 ms).
   */
  #copyStatement(columns: string, bounded: RawBuilder<unknown>): (target: string) => string {
    const select = inlineParameters(sql`select ${sql.raw(columns)} from events where ${bounded}`.compile(this.#db));
    return (target) => `copy (${select}) to ${target} (format binary)`;
  }

  async pathHistoryJson(stream: string, path: string, options: PathHistoryJsonOptions): Promise<HistoryJsonPage> {
    const copyOut = this.#copyOut;
    if (copyOut === undefined) return historyPageJson(await this.pathHistory(stream, path, options), options.siteId);
    const { limit, end, bounded } = await this.#historyBounds(stream, path, options);
    // Rendered from the stored bytes as they stream; undefined when an event holds what only
    // the decoder shows exactly (then from decoded events, as pathHistory reads them).
    const rendered = await renderHistoryJsonCopy(copyOut(this.#copyStatement(COPY_HISTORY_JSON_COLUMNS, bounded), options.signal), options.siteId, limit);
    if (rendered === undefined) return historyPageJson(await this.pathHistory(stream, path, options), options.siteId);
    const count = rendered.revisions.length;
    // Without an end, events appended between the two statements may have joined the page.
    const more = end !== undefined || rendered.rowsRead > limit;
    return { eventsJson: rendered.json, events: count, nextAfterRevision: more ? rendered.revisions[count - 1] : undefined, release: rendered.release };
  }

  async pathHistory(stream: string, path: string, options: PathHistoryOptions): Promise<PathHistoryPage> {
    const { limit, end, bounded } = await this.#historyBounds(stream, path, options);
    const copyOut = this.#copyOut;
    if (copyOut !== undefined) {
      // The page's rows by binary COPY: no hex of two bytea per row for the driver to parse,
      // no row objects.
      const found = await decodeChainedEventCopy(copyOut(this.#copyStatement(COPY_CHAINED_EVENT_COLUMNS, bounded), options.signal));
      found.sort((a, b) => a.event.revision - b.event.revision);
      const more = end !== undefined || found.length > limit;
      if (found.length > limit) found.length = limit;
      return { entries: found, nextAfterRevision: more ? found[found.length - 1]!.event.revision : undefined };
    }
    const result = await sql<StoredEventRow & { prev_hash: Uint8Array | null }>`
      select ${STORED_SCAN_COLUMNS}, prev_hash from events where ${bounded}`.execute(this.#db);
    // Without an end, events appended between the two statements may have joined the page.
    const sorted = result.rows.sort((a, b) => a.revision - b.revision);
    const rows = sorted.slice(0, limit);
    const entries = rows.map((row) => ({
      event: decodeStoredEventRow(row),
      prevHash: row.prev_hash === null ? undefined : Buffer.from(row.prev_hash).toString('hex'),
    }));
    const more = end !== undefined || sorted.length > limit;
    return { entries, nextAfterRevision: more ? rows[rows.length - 1]!.revision : undefined };
  }

  async readChained(stream: string, options: { readonly fromRevision: number; readonly maxCount: number; readonly signal?: AbortSignal }): Promise<readonly HistoryEntry[]> {
    options.signal?.throwIfAborted();
    const result = await sql<StoredEventRow & { prev_hash: Uint8Array | null }>`
      select ${STORED_SCAN_COLUMNS}, prev_hash from events
      where stream = ${stream} and revision >= ${options.fromRevision} order by revision limit ${historyLimit(options.maxCount)}`.execute(this.#db);
    return result.rows.map((row) => ({
      event: decodeStoredEventRow(row),
      prevHash: row.prev_hash === null ? undefined : Buffer.from(row.prev_hash).toString('hex'),
    }));
  }

  async verify(options: VerifyOptions = {}): Promise<VerifyResult> {
    options.signal?.throwIfAborted();
    const started = performance.now();
    const only: RawBuilder<unknown> = options.stream === undefined ? sql`true` : sql`stream = ${options.stream}`;
    const genesis = Buffer.from(CHAIN_GENESIS);

    // 1. Every event's content against its stored digest: the big hashes, in one scan that
    // PostgreSQL runs in parallel workers, counting as it goes (an aggregate collecting the
    // failing rows would not run in parallel: they are listed by a second scan, only if any).
    const digests = async (tx: Kysely<StoreDatabase>) => {
      const counted = await sql<{ events: string | number; chained: string | number; altered: string | number }>`
        select count(*) as events, count(origin_prev) as chained, count(*) filter (where digest is distinct from ${DIGEST}) as altered
        from events where ${only}`.execute(tx);
      const row = counted.rows[0];
      const altered = Number(row?.altered ?? 0) === 0 ? [] : await alteredRows(tx, only);
      return { events: Number(row?.events ?? 0), chained: Number(row?.chained ?? 0), altered };
    };
    const alteredRows = async (tx: Kysely<StoreDatabase>, rows: RawBuilder<unknown>) =>
      (await sql<{ stream: string; revision: number; id: string }>`select stream, revision, id from events where ${rows} and digest is distinct from ${DIGEST}`.execute(tx)).rows;
    // 2. The site chain: each row's link (a small hash of its stored digest) against the row
    // before it, walked in the unique (stream, revision) index's order rather than sorted.
    const siteChains = async (tx: Kysely<StoreDatabase>, rows: RawBuilder<unknown> = only) => {
      await sql`set local enable_sort = off`.execute(tx);
      const failures = await sql<{ stream: string; revision: number; before_revision: number | null; site_missing: boolean }>`
        select distinct on (stream) stream, revision, before_revision, site_missing from (
          select stream, revision, before_revision,
            case when before_revision is null then revision <> 0 or prev_hash is distinct from ${genesis}
                 else revision <> before_revision + 1 or prev_hash is distinct from before_link end as site_failed,
            case when before_revision is null then revision <> 0 else revision <> before_revision + 1 end as site_missing
          from (
            select stream, revision, prev_hash, lag(revision) over site as before_revision, lag(${LINK}) over site as before_link
            from events where ${rows} window site as (partition by stream order by revision)
          ) walked
        ) checked
        where site_failed order by stream, revision`.execute(tx);
      await sql`set local enable_sort = on`.execute(tx);
      return failures.rows;
    };
    // 3. The origin chains: each origin-chained event against the stored digest of its
    // origin's previous event in the stream, found by a hash join (no sort).
    const onlyJoined: RawBuilder<unknown> = options.stream === undefined ? sql`true` : sql`e.stream = ${options.stream}`;
    const originChains = async (tx: Kysely<StoreDatabase>, rows: RawBuilder<unknown> = onlyJoined) => {
      const failures = await sql<{ stream: string; revision: number; origin: string; origin_seq: number; origin_missing: boolean }>`
        select distinct on (e.stream, e.origin) e.stream, e.revision, e.origin, e.origin_seq, (e.origin_seq <> 1 and p.stream is null) as origin_missing
        from events e
        left join events p on p.stream = e.stream and p.origin = e.origin and p.origin_seq = e.origin_seq - 1
        where ${rows} and e.origin_prev is not null
          and case when e.origin_seq = 1 then e.origin_prev <> ${genesis} else p.digest is distinct from e.origin_prev end
        order by e.stream, e.origin, e.revision`.execute(tx);
      return failures.rows;
    };
    // On PostgreSQL with COPY: one pass over the table, cut into ranges of pages copied side
    // by side on their own connections in this transaction's snapshot. Each row brings its
    // digest check (recomputed in SQL), its own link (recomputed from its stored digest) and
    // the columns its links are checked with; the links are compared here (chain-runs.ts).
    // A stream whose chains are not intact there goes through the exact statements above,
    // so what is reported is what they report.
    const copyOut = this.#copyOut;
    const singlePass =
      copyOut === undefined || this.#verifyConnectionsMax < 2
        ? undefined
        : async (tx: Kysely<StoreDatabase>) => {
            const snapshot = (await sql<{ id: string }>`select pg_export_snapshot() as id`.execute(tx)).rows[0]!.id;
            const sized = await sql<{ pages: string | number }>`select pg_relation_size('events') / current_setting('block_size')::int8 as pages`.execute(tx);
            const pages = Number(sized.rows[0]?.pages ?? 0);
            // One stream (`--repo`): one statement, which the planner reads through the stream's
            // index; the whole table: ranges of pages (TID range scans).
            const ranges = options.stream === undefined ? Math.max(1, Math.min(this.#verifyConnectionsMax, pages)) : 1;
            const scanner = new ChainRunScanner();
            const transaction = { snapshot, statements: CHAIN_RUN_SETTINGS };
            await Promise.all(
              Array.from({ length: ranges }, (_, index) => {
                const from = Math.floor((pages * index) / ranges);
                const to = index === ranges - 1 ? undefined : Math.floor((pages * (index + 1)) / ranges);
                const pageRange =
                  ranges === 1 ? sql`true` : sql`ctid >= ${sql.lit(`(${from},0)`)}::tid ${to === undefined ? sql`` : sql`and ctid < ${sql.lit(`(${to},0)`)}::tid`}`;
                const select = inlineParameters(sql`select ${sql.raw(CHAIN_RUN_COLUMNS)} from events where ${only} and ${pageRange}`.compile(this.#db));
                return scanner.scanRange(copyOut((target) => `copy (${select}) to ${target} (format binary)`, options.signal, transaction));
              }),
            );
            const found = scanner.result();
            let events = 0;
            let chained = 0;
            const alteredStreams: string[] = [];
            const siteStreams: string[] = [];
            const originStreams: string[] = [];
            for (const [stream, scan] of found) {
              events += scan.events;
              chained += scan.chained;
              if (scan.altered > 0) alteredStreams.push(stream);
              if (scan.siteBroken) siteStreams.push(stream);
              if (scan.originBroken) originStreams.push(stream);
            }
            const altered = alteredStreams.length === 0 ? [] : await alteredRows(tx, sql`stream = any(${alteredStreams}::text[])`);
            const siteFailures = siteStreams.length === 0 ? [] : await siteChains(tx, sql`stream = any(${siteStreams}::text[])`);
            const originFailures = originStreams.length === 0 ? [] : await originChains(tx, sql`e.stream = any(${originStreams}::text[])`);
            return { scanned: { events, chained, altered }, siteFailures, originFailures };
          };

    // One snapshot for every statement (repeatable read): the chains, the digests and the
    // heads are of the same moment even while the site appends.
    return this.#db
      .transaction()
      .setIsolationLevel('repeatable read')
      .execute(async (tx) => {
        // The origin chains' hash join and the first-failure sorts fit in memory.
        await sql`set local work_mem = '256MB'`.execute(tx);
        let scanned: Awaited<ReturnType<typeof digests>>;
        let siteFailures: Awaited<ReturnType<typeof siteChains>>;
        let originFailures: Awaited<ReturnType<typeof originChains>>;
        if (singlePass !== undefined) {
          ({ scanned, siteFailures, originFailures } = await singlePass(tx));
        } else if (this.#verifyConnectionsMax >= 3) {
          // Side by side on three connections, the other two importing this one's snapshot.
          const snapshot = (await sql<{ id: string }>`select pg_export_snapshot() as id`.execute(tx)).rows[0]!.id;
          const inSnapshot = <T>(run: (other: Kysely<StoreDatabase>) => Promise<T>) =>
            this.#db
              .transaction()
              .setIsolationLevel('repeatable read')
              .execute(async (other) => {
                await sql`set transaction snapshot ${sql.lit(snapshot)}`.execute(other);
                await sql`set local work_mem = '256MB'`.execute(other);
                return run(other);
              });
          [scanned, siteFailures, originFailures] = await Promise.all([digests(tx), inSnapshot((other) => siteChains(other)), inSnapshot((other) => originChains(other))]);
        } else {
          scanned = await digests(tx);
          siteFailures = await siteChains(tx);
          originFailures = await originChains(tx);
        }
        const flagged = {
          rows: [
            ...siteFailures.map((row): Omit<BreakRow, 'id'> => ({
              stream: row.stream,
              revision: row.revision,
              before_revision: row.before_revision,
              origin: '',
              origin_seq: 0,
              site_failed: true,
              site_missing: row.site_missing,
              origin_failed: false,
              origin_missing: false,
            })),
            ...originFailures.map((row): Omit<BreakRow, 'id'> => ({
              stream: row.stream,
              revision: row.revision,
              before_revision: null,
              origin: row.origin,
              origin_seq: row.origin_seq,
              site_failed: false,
              site_missing: false,
              origin_failed: true,
              origin_missing: row.origin_missing,
            })),
          ],
        };
        // Event ids for the (few) failing rows only: they stay out of the sorts above.
        const failingStreams = flagged.rows.map((row) => row.stream);
        const ids = new Map<string, string>();
        if (flagged.rows.length > 0) {
          const found = await sql<{ stream: string; revision: number; id: string }>`
            select events.stream, events.revision, events.id from events
            join unnest(${failingStreams}::text[], ${flagged.rows.map((row) => row.revision)}::int[]) as wanted(stream, revision)
              on events.stream = wanted.stream and events.revision = wanted.revision`.execute(tx);
          for (const row of found.rows) ids.set(`${row.stream}\n${row.revision}`, row.id);
        }
        const failures = { rows: flagged.rows.map((row): BreakRow => ({ ...row, id: ids.get(`${row.stream}\n${row.revision}`) ?? '' })) };
        // The heads: each stream's recorded revision and last link against its last event.
        const heads = await sql<{ stream: string; recorded_revision: number | null; chain: Uint8Array | null; last_revision: number | null; last_id: string | null; last_link: Uint8Array | null }>`
          select s.stream, s.revision as recorded_revision, s.chain, e.revision as last_revision, e.id as last_id, e.link as last_link
          from streams s
          left join lateral (
            select revision, id, ${LINK} as link from (
              select stream, revision, id, prev_hash, digest from events where events.stream = s.stream order by revision desc limit 1) last
          ) e on true
          where ${options.stream === undefined ? sql`true` : sql`s.stream = ${options.stream}`}
          order by s.stream`.execute(tx);

        const breaks: ChainBreak[] = [];
        const siteBroken = new Set<string>();
        const originBroken = new Set<string>();
        // The first break of each stream's site chain: an altered event, or a failed link.
        const firstSite = new Map<string, ChainBreak>();
        const candidate = (found: ChainBreak) => {
          const earlier = firstSite.get(found.stream);
          if (earlier === undefined || found.revision < earlier.revision) firstSite.set(found.stream, found);
        };
        for (const row of scanned.altered) {
          candidate({
            stream: row.stream,
            reason: 'altered',
            revision: row.revision,
            eventId: row.id,
            message: `stream ${row.stream}: revision ${row.revision} (${row.id}) does not match its digest: it was altered`,
          });
        }
        for (const row of failures.rows) {
          if (row.site_failed) candidate(siteBreak(row.stream, row.revision, row.id, row.site_missing ? (row.before_revision ?? -1) + 1 : undefined));
          const originKey = `${row.stream}\n${row.origin}`;
          if (row.origin_failed && !originBroken.has(originKey)) {
            originBroken.add(originKey);
            const reason: ChainBreakReason = row.origin_missing ? 'origin-missing' : 'origin-altered';
            breaks.push({
              stream: row.stream,
              reason,
              revision: row.revision,
              eventId: row.id,
              origin: row.origin,
              originSeq: row.origin_seq,
              message:
                reason === 'origin-missing'
                  ? `origin ${row.origin}: event ${row.id} (originSeq ${row.origin_seq}) follows no event ${row.origin_seq - 1} of its origin in this copy`
                  : `origin ${row.origin}: event ${row.id} (originSeq ${row.origin_seq}) names a predecessor whose digest differs: originSeq ${row.origin_seq - 1} or this event was altered`,
            });
          }
        }
        for (const [stream, found] of firstSite) {
          siteBroken.add(stream);
          breaks.push(found);
        }
        let streams = 0;
        for (const head of heads.rows) {
          if (head.recorded_revision === null || head.recorded_revision < 0) continue;
          streams++;
          if (siteBroken.has(head.stream)) continue;
          const lastRevision = head.last_revision;
          if (lastRevision !== head.recorded_revision) {
            siteBroken.add(head.stream);
            breaks.push({
              stream: head.stream,
              reason: lastRevision === null || lastRevision < head.recorded_revision ? 'missing' : 'head',
              revision: lastRevision === null ? 0 : Math.min(lastRevision + 1, head.recorded_revision),
              eventId: undefined,
              message: `stream ${head.stream} records ${head.recorded_revision + 1} events but holds ${lastRevision === null ? 0 : lastRevision + 1}: events at its end were ${lastRevision === null || lastRevision < head.recorded_revision ? 'deleted' : 'added behind the store'}`,
            });
          } else if (head.chain !== null && head.last_link !== null && !Buffer.from(head.chain).equals(Buffer.from(head.last_link))) {
            siteBroken.add(head.stream);
            breaks.push({
              stream: head.stream,
              reason: 'head',
              revision: lastRevision,
              eventId: head.last_id ?? undefined,
              message: `stream ${head.stream}: its last event (revision ${lastRevision}, ${head.last_id}) does not hash to the recorded head: it was altered`,
            });
          }
        }
        // By stream, then revision; at one revision the site chain's break first.
        const originFirst = (found: ChainBreak) => (found.reason === 'origin-altered' || found.reason === 'origin-missing' ? 1 : 0);
        breaks.sort((a, b) => (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : a.revision - b.revision || originFirst(a) - originFirst(b)));
        return {
          streams,
          events: scanned.events,
          originChained: scanned.chained,
          breaks,
          elapsedMs: performance.now() - started,
        };
      });
  }
}

/** A site-chain break at `revision`; `missingFrom`: the first absent revision when events are missing before it. */
export function siteBreak(stream: string, revision: number, eventId: string, missingFrom: number | undefined): ChainBreak {
  return missingFrom !== undefined
    ? {
        stream,
        reason: 'missing',
        revision: missingFrom,
        eventId: undefined,
        message: `stream ${stream}: ${missingFrom === revision - 1 ? `revision ${missingFrom} is` : `revisions ${missingFrom}–${revision - 1} are`} missing before revision ${revision} (${eventId}): deleted`,
      }
    : {
        stream,
        reason: 'altered',
        revision,
        eventId,
        message: `stream ${stream}: revision ${revision} (${eventId}) records a link its predecessor (revision ${revision - 1}) does not hash to: revision ${revision - 1} or this record was altered`,
      };
}

export function historyLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'limit must be a positive integer');
  return Math.min(limit, historyPageEventsMax);
}
