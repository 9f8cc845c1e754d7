/**
 * Store-alone probe of a receiver's append (docs/storage.md, "The projections' rows of a large
 * batch by COPY too"): appends N events as a catch-up delivers them (origin site-a, this site
 * site-c, the server's four projections unless PROJ names some) in batches of each size given,
 * each size on a fresh database, and prints events/s with the Node CPU and the PostgreSQL
 * backends' CPU per event. Not a target's benchmark: for before/after pairs (run the same file
 * against another worktree's packages, interleaved, under the bench lock).
 *
 *   DATABASE_URL=… node --import tsx bench/catchup-append-probe.ts 20000 1000,5000
 *
 * PROBE_DATABASE names the database it drops and creates for each size (strata_catchup_probe).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import { processCpuMs, recreateDatabase } from './support/databases.ts';
import { PendingBinariesProjection } from '@strata/federation';
import { ArtifactTreeProjection, RepositoryConfigProjection, VirtualResolutionProjection, openEventStore, type SqlProjection } from '@strata/store';

const base = process.env.DATABASE_URL ?? 'postgres://strata:strata@127.0.0.1:5432/strata_bench';
const probeDatabase = process.env.PROBE_DATABASE ?? 'strata_catchup_probe';
const total = Number(process.argv[2] ?? 20_000);
const sizes = (process.argv[3] ?? '500,5000').split(',').map(Number);
const names = (process.env.PROJ ?? 'tree,config,virtual,pending').split(',').filter((name) => name !== '');
const projection = (name: string): SqlProjection =>
  name === 'tree' ? new ArtifactTreeProjection() : name === 'config' ? new RepositoryConfigProjection() : name === 'virtual' ? new VirtualResolutionProjection() : new PendingBinariesProjection('site-c');
/** CPU time (user + system) of a process, in ms. */
const cpuOf = processCpuMs;
const digest = (algorithm: string) => createHash(algorithm).update('x').digest('hex');

for (const batch of sizes) {
  const url = new URL(await recreateDatabase(probeDatabase, base));
  const opened = await openEventStore({ databaseUrl: url.href, projections: names.map(projection), store: { siteId: 'site-c' } });
  const stream = 'repo-fed-bench';
  const wall = Date.now();
  const watcher = new pg.Client({ connectionString: url.href });
  await watcher.connect();
  await opened.store.streamRevision(stream);
  const backends = (await watcher.query(`select pid from pg_stat_activity where datname = '${probeDatabase}' and pid <> pg_backend_pid()`)).rows.map((row) => row.pid as number);
  const before = backends.map(cpuOf);
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let done = 0; done < total; done += batch) {
    const events: NewEvent[] = [];
    for (let i = done; i < Math.min(total, done + batch); i++) {
      events.push({
        id: `e-${wall}-${i}`,
        origin: 'site-a',
        originSeq: i + 1,
        hlc: { wall, logical: i },
        meta: { actor: 'bench' },
        type: 'ArtifactDeployed',
        data: { path: `offline/${i % 500}/e-${i}.bin`, sha256: digest('sha256'), sha1: digest('sha1'), md5: digest('md5'), size: 1024, mimeType: 'application/octet-stream', properties: {} },
      } as NewEvent);
    }
    await opened.store.append(stream, events);
  }
  const seconds = (performance.now() - started) / 1000;
  const node = process.cpuUsage(cpu);
  const alive = new Set((await watcher.query(`select pid from pg_stat_activity where datname = '${probeDatabase}'`)).rows.map((row) => row.pid as number));
  const backendMs = backends.reduce((sum, pid, index) => sum + (alive.has(pid) ? cpuOf(pid) - before[index]! : 0), 0);
  console.log(
    `[${names.join(',') || 'no projections'}] batch ${batch}: ${(total / seconds).toFixed(0)} events/s; ` +
      `Node CPU ${((node.user + node.system) / total).toFixed(0)} µs/event; PostgreSQL backends ${((backendMs * 1000) / total).toFixed(0)} µs/event; ` +
      `load ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  await watcher.end();
  await opened.close();
}
