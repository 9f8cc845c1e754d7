/**
 * openEventStore's pool on PostgreSQL: with `poolKeepsIdleConnections` (a server) an idle
 * connection stays open, so the next statement runs on the same, warm backend; without it
 * (pg's default, for short-lived callers) an idle connection is closed after 10 s and the
 * next statement opens a new backend.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import pg from 'pg';
import { openEventStore, type OpenedEventStore } from '../src/index.ts';

const databaseUrl = process.env.DATABASE_URL;
/** pg-pool's default idle timeout (10 s) and a margin. */
const pastIdleTimeoutMs = 10_700;

describe.skipIf(databaseUrl === undefined)('openEventStore on PostgreSQL: idle pool connections', () => {
  const schema = `open_store_test_${process.pid}_${Math.floor(Math.random() * 1e9)}`;
  const opened: OpenedEventStore[] = [];

  afterAll(async () => {
    for (const store of opened) await store.close();
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      await admin.query(`drop schema if exists ${schema} cascade`);
    } finally {
      await admin.end();
    }
  });

  it('keeps an idle connection (the same backend after the idle timeout) only when asked to', async () => {
    const keeps = await openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 2, poolKeepsIdleConnections: true });
    opened.push(keeps);
    const closes = await openEventStore({ databaseUrl: databaseUrl!, schema, poolConnectionsMax: 2 });
    opened.push(closes);
    const backend = async (store: OpenedEventStore) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(store.db)).rows[0]!.pid;
    const before = { keeps: await backend(keeps), closes: await backend(closes) };
    await new Promise((resolve) => setTimeout(resolve, pastIdleTimeoutMs));
    expect(await backend(keeps)).toBe(before.keeps);
    expect(await backend(closes)).not.toBe(before.closes);
  }, 30_000);
});
