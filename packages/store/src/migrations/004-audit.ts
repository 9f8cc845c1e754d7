import { sql, type Kysely, type Migration } from 'kysely';
import { Unpackr } from 'msgpackr';
import { CHAIN_GENESIS, eventDigest, eventTargetPath, siteChainLink } from '@strata/core';

/**
 * Audit history and tamper evidence (issue 8). The same SQL runs on PostgreSQL and PGlite.
 *
 * - `events.target`: the path an event is about (`eventTargetPath`), indexed with the
 *   stream and revision, so the history of a path (its own events and those of the folders
 *   above it) is a few index range scans, not a scan of the stream.
 * - `events.prev_hash`: the site chain — the link of the event before it in this site's
 *   copy of the stream (core's event-chain.ts); `streams.chain` holds the link of the last.
 * - `events.origin_prev`: the origin chain as it arrived in `meta.originPrev`, as bytes, so
 *   the verifier checks it in SQL; `streams.origin_chain` is the link of the last event this
 *   site produced in the stream (`origin_chain_origin` says which site that was).
 * - `blob_trash`: when each unreferenced blob was first seen unreferenced; blob GC keeps
 *   it for the trash period from then.
 *
 * Events stored before this migration get their target and site chain here (one pass in
 * stream order); they carry no origin chain (their meta never had one).
 */
export const auditMigration: Migration = {
  async up(db: Kysely<any>): Promise<void> {
    await sql`alter table events add column target text collate "C", add column prev_hash bytea, add column origin_prev bytea`.execute(db);
    await sql`alter table streams add column chain bytea, add column origin_chain bytea, add column origin_chain_origin text`.execute(db);
    await backfill(db);
    await sql`create index events_stream_target on events (stream, target, revision) where target is not null`.execute(db);
    // Blob retention asks whether a deleted artifact still references a blob.
    await sql`create index artifacts_sha256_absent on artifacts (sha256) where not present`.execute(db);
    await sql`create table blob_trash (sha256 text collate "C" primary key, since bigint not null)`.execute(db);
  },
  async down(db: Kysely<any>): Promise<void> {
    await sql`drop table if exists blob_trash`.execute(db);
    await sql`drop index if exists artifacts_sha256_absent`.execute(db);
    await sql`drop index if exists events_stream_target`.execute(db);
    await sql`alter table streams drop column chain, drop column origin_chain, drop column origin_chain_origin`.execute(db);
    await sql`alter table events drop column target, drop column prev_hash, drop column origin_prev`.execute(db);
  },
};

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, moreTypes: false, bundleStrings: false, int64AsType: 'bigint' });
const BACKFILL_PAGE_ROWS = 5000;

interface BackfillRow {
  stream: string;
  revision: number;
  id: string;
  origin: string;
  origin_seq: number;
  hlc_wall: string | number;
  hlc_logical: number;
  type: string;
  data: Uint8Array;
  meta: Uint8Array;
}

async function backfill(db: Kysely<any>): Promise<void> {
  let after: { stream: string; revision: number } | undefined;
  let stream: string | undefined;
  let head: Uint8Array = CHAIN_GENESIS;
  const heads = new Map<string, Uint8Array>();
  for (;;) {
    const page = await sql<BackfillRow>`
      select stream, revision, id, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta from events
      where ${after === undefined ? sql`true` : sql`(stream, revision) > (${after.stream}, ${after.revision})`}
      order by stream, revision limit ${BACKFILL_PAGE_ROWS}`.execute(db);
    if (page.rows.length === 0) break;
    const streams: string[] = [];
    const revisions: number[] = [];
    const targets: (string | null)[] = [];
    const prevs: Buffer[] = [];
    for (const row of page.rows) {
      if (row.stream !== stream) {
        stream = row.stream;
        head = CHAIN_GENESIS;
      }
      const data = Buffer.from(row.data);
      const meta = Buffer.from(row.meta);
      let target: string | undefined;
      try {
        target = eventTargetPath({ type: row.type, data: unpackr.unpack(data) as unknown });
      } catch {
        target = undefined; // an undecodable row has no history target; the chain still covers it
      }
      streams.push(row.stream);
      revisions.push(row.revision);
      targets.push(target ?? null);
      prevs.push(Buffer.from(head));
      const digest = eventDigest({ stream: row.stream, id: row.id, origin: row.origin, originSeq: row.origin_seq, hlc: { wall: Number(row.hlc_wall), logical: row.hlc_logical }, type: row.type }, data, meta);
      head = siteChainLink(head, row.stream, row.revision, digest);
      heads.set(row.stream, head);
    }
    await sql`update events set target = input.target, prev_hash = input.prev
      from unnest(${streams}::text[], ${revisions}::int[], ${targets}::text[], ${prevs}::bytea[]) as input(stream, revision, target, prev)
      where events.stream = input.stream and events.revision = input.revision`.execute(db);
    const last = page.rows[page.rows.length - 1]!;
    after = { stream: last.stream, revision: last.revision };
  }
  const names = [...heads.keys()];
  if (names.length > 0) {
    await sql`update streams set chain = input.chain
      from unnest(${names}::text[], ${names.map((name) => Buffer.from(heads.get(name)!))}::bytea[]) as input(stream, chain)
      where streams.stream = input.stream`.execute(db);
  }
}
