/**
 * The append's reads by key (stream locks, stored ids, the projections' loads, the guess's check)
 * run prepared on generic plans (PreparedAppendStatements), which PostgreSQL keeps until a table's
 * statistics change. A table analysed while small — autovacuum analyses `folder_tombstones` after
 * its first 50 rows — would have every covering-prefix probe planned as a sequential scan of the
 * whole table, once per prefix and batch. They are planned with sequential scans off
 * (AppendSendOptions.keyReads): each probe is an index scan at any table size.
 */
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import { ArtifactTreeProjection, openEventStore } from '@strata/store';
import { dropTestSchemas, testSchema } from './event-store.backends.ts';

const databaseUrl = process.env['DATABASE_URL'];

afterAll(dropTestSchemas);

let sequence = 0;
const runId = `${process.pid.toString(36)}-${Date.now().toString(36)}`;

function deployed(path: string, originSeq: number): NewEvent {
  return {
    id: `ev-keyreads-${runId}-${++sequence}`,
    origin: 'site-a',
    originSeq,
    hlc: { wall: 1_700_000_000_000 + sequence, logical: 0 },
    type: 'ArtifactDeployed',
    data: { path, sha256: 'a'.repeat(64), sha1: 'b'.repeat(40), md5: 'c'.repeat(32), size: 1, mimeType: 'application/octet-stream', properties: {} },
    meta: { actor: 'tester' },
  } as NewEvent;
}

describe.skipIf(databaseUrl === undefined)('the append reads by key (PostgreSQL)', () => {
  it('given folder_tombstones analysed while small, when prepared appends probe it, then no probe is a sequential scan', async () => {
    const schema = testSchema('key_reads');
    const open = () => openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 2, projections: [new ArtifactTreeProjection()], store: { siteId: 'site-a' } });
    // The schema made and migrated by a store of its own, closed: its backends' counts (the
    // migrations' index builds scan tables) reach the statistics as they exit.
    const first = await open();
    await first.store.append('repo-k', [deployed('warm/up.jar', 1)]);
    await first.close();
    const client = new pg.Client({ connectionString: databaseUrl!, options: `-c search_path=${schema}` });
    await client.connect();
    const scans = async () => {
      const row = (await client.query(`select seq_scan, idx_scan from pg_stat_user_tables where schemaname = $1 and relname = 'folder_tombstones'`, [schema])).rows[0] as {
        seq_scan: string;
        idx_scan: string | null;
      };
      return { seq: Number(row.seq_scan), idx: Number(row.idx_scan ?? 0) };
    };
    try {
      // Another repository's 200 folder tombstones (they cover none of repo-k's paths), analysed as
      // autovacuum would: the planner then costs a sequential scan of the table below an index probe.
      await client.query(`insert into folder_tombstones (repo, prefix, wall, logical, origin)
        select 'other', 'dir/' || i, 1, 0, 'site-b' from generate_series(1, 200) as i`);
      await client.query('analyze folder_tombstones');
      const before = await scans();
      const opened = await open();
      try {
        // One batch per append: the statements are prepared after three, on generic plans after five more.
        for (let index = 0; index < 30; index++) await opened.store.append('repo-k', [deployed(`a/b/c/f${index}.jar`, index + 2)]);
      } finally {
        await opened.close();
      }
      // Each append probes its five covering prefixes ('', a, a/b, a/b/c, the path); a backend's
      // counts reach the statistics when it exits (bounded wait for the pool's backends).
      let after = await scans();
      for (let waited = 0; after.seq + after.idx - before.seq - before.idx < 30 * 5 && waited < 10_000; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await scans();
      }
      expect({ sequential: after.seq - before.seq, byIndex: after.idx - before.idx >= 30 * 5 }).toEqual({ sequential: 0, byIndex: true });
    } finally {
      await client.end();
    }
  });

  it("given streams analysed while small, when prepared appends update their streams' revisions, then no statement reads streams by a sequential scan", async () => {
    const schema = testSchema('key_reads_streams');
    const open = () => openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 2, projections: [new ArtifactTreeProjection()], store: { siteId: 'site-a' } });
    const first = await open();
    await first.store.append('repo-s', [deployed('warm/up.jar', 1)]);
    await first.close();
    const client = new pg.Client({ connectionString: databaseUrl!, options: `-c search_path=${schema}` });
    await client.connect();
    const scans = async () => {
      const row = (await client.query(`select seq_scan, idx_scan from pg_stat_user_tables where schemaname = $1 and relname = 'streams'`, [schema])).rows[0] as {
        seq_scan: string;
        idx_scan: string | null;
      };
      return { seq: Number(row.seq_scan), idx: Number(row.idx_scan ?? 0) };
    };
    try {
      // 200 other streams, analysed as autovacuum would while the site was young: the planner then
      // costs a sequential scan of the table (and a hash join) below index probes for the join of
      // the streams' update with the batch's streams.
      await client.query(`insert into streams (stream, revision) select 'repo-other' || i, 0 from generate_series(1, 200) as i`);
      await client.query('analyze streams');
      const before = await scans();
      const opened = await open();
      try {
        // One batch per append: the statements are prepared after three, on generic plans after five more.
        for (let index = 0; index < 30; index++) await opened.store.append('repo-s', [deployed(`a/b/c/f${index}.jar`, index + 2)]);
      } finally {
        await opened.close();
      }
      // Every append reads its stream's row by key at least twice (the lock, the update); a
      // backend's counts reach the statistics when it exits (bounded wait for the pool's backends).
      let after = await scans();
      for (let waited = 0; after.seq + after.idx - before.seq - before.idx < 30 * 2 && waited < 10_000; waited += 100) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        after = await scans();
      }
      expect({ sequential: after.seq - before.seq, byIndex: after.idx - before.idx >= 30 * 2 }).toEqual({ sequential: 0, byIndex: true });
      // The appends all landed, in order.
      expect((await client.query(`select revision from streams where stream = 'repo-s'`)).rows).toEqual([{ revision: 30 }]);
    } finally {
      await client.end();
    }
  });
});
