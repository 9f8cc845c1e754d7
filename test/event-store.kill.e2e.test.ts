import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openEventStore } from '@strata/store';
import type { OpenEventStoreOptions } from '@strata/store';

/**
 * kill -9 of a process writing multi-stream appends (appendMany): after each kill the store,
 * opened again, holds every group whose append resolved, and every group it holds is whole —
 * all three streams' parts, never one stream's part without the others'.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const WRITER = fileURLToPath(new URL('./support/append-many-writer.ts', import.meta.url));
const STREAMS = ['repo-kill-a', 'repo-kill-b', 'repo-kill-c'];
const PER_PART = 400;
/** Where in the next group's write time each kill lands. */
const KILL_FRACTIONS = [0.15, 0.35, 0.5, 0.65, 0.85];

interface Backend {
  readonly name: string;
  readonly env: Record<string, string>;
  readonly options: OpenEventStoreOptions;
  cleanup(): Promise<void>;
}

async function pgliteBackend(): Promise<Backend> {
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-kill-'));
  return { name: 'pglite', env: {}, options: { dataDir }, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
}

function postgresBackend(databaseUrl: string): Backend {
  const schema = `kill_${process.pid}_${Date.now().toString(36)}`;
  return {
    name: 'postgres',
    env: { DATABASE_URL: databaseUrl, SCHEMA: schema },
    options: { databaseUrl, schema, poolConnectionsMax: 2 },
    async cleanup() {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    },
  };
}

/**
 * Runs the writer until it printed `committed` for `groups` more groups, then kills it with
 * SIGKILL `fraction` of one group's write time later (so kills land at different points of
 * the next append); returns the last group it reported.
 */
async function runAndKill(backend: Backend, groups: number, fraction: number): Promise<number> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), ...backend.env };
  if (backend.env.DATABASE_URL === undefined) delete env.DATABASE_URL;
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, backend.options.dataDir ?? '-', String(PER_PART)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let lastCommitted = -1;
  let reported = 0;
  const reportedAt: number[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the writer did not commit ${groups} groups in time:\n${output}`)), 45_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const match of chunk.toString().matchAll(/committed (\d+)/g)) {
        lastCommitted = Number(match[1]);
        reportedAt.push(performance.now());
        // Kill while the next append is being written, not between two appends.
        if (++reported === groups) {
          clearTimeout(timer);
          const groupMs = reportedAt.at(-1)! - reportedAt.at(-2)!;
          setTimeout(() => {
            child.kill('SIGKILL');
            resolve();
          }, groupMs * fraction);
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`the writer exited by itself (${code}):\n${output}`));
    });
  });
  await exited;
  return lastCommitted;
}

const backends: (() => Promise<Backend>)[] = [pgliteBackend];
const databaseUrl = process.env['DATABASE_URL'];
if (databaseUrl !== undefined) backends.push(async () => postgresBackend(databaseUrl));
else console.log('event-store kill: DATABASE_URL is not set, PostgreSQL backend skipped');

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups) await cleanup();
});

describe.each(backends.map((make, index) => ({ make, name: index === 0 ? 'pglite' : 'postgres' })))('appendMany under kill -9 on $name', ({ make }) => {
  it(`every acknowledged group survives ${KILL_FRACTIONS.length} kills and no group is ever stored in part`, async () => {
    const backend = await make();
    cleanups.push(() => backend.cleanup());
    let acknowledged = -1;
    for (const fraction of KILL_FRACTIONS) {
      acknowledged = Math.max(acknowledged, await runAndKill(backend, 2, fraction));
      const opened = await openEventStore(backend.options);
      try {
        const perGroup = new Map<number, number[]>();
        for (const [part, stream] of STREAMS.entries()) {
          for (let from = 0; ; ) {
            const events = await opened.store.readStream(stream, { fromRevision: from });
            for (const event of events) {
              const group = Number(/^g(\d+)-/.exec(event.id)![1]);
              const counts = perGroup.get(group) ?? [0, 0, 0];
              counts[part]! += 1;
              perGroup.set(group, counts);
            }
            if (events.length === 0) break;
            from += events.length;
          }
        }
        for (let group = 0; group <= acknowledged; group++) expect(perGroup.get(group), `group ${group} was acknowledged`).toEqual([PER_PART, PER_PART, PER_PART]);
        for (const [group, counts] of perGroup) expect(counts, `group ${group}`).toEqual([PER_PART, PER_PART, PER_PART]);
      } finally {
        await opened.close();
      }
    }
  });
});
