/**
 * CPU time of a rebuild, per phase: node's (process.cpuUsage) and PostgreSQL's (the backends
 * and parallel workers of DATABASE_URL's database, summed from /proc/<pid>/stat; Linux only).
 * Less load-bound than wall time on a shared machine (docs/benchmarks.md, B, fifth pass).
 *
 *   DATABASE_URL=postgres://…/strata_bench node --import tsx bench/rebuild-cpu-probe.ts
 *
 * PROBE_SCHEMA: the data set's schema (default bench_events_v1_1000000, loaded by the rebuild
 * bench); PROBE_STORE: another checkout's @strata/store entry point (the code measured);
 * ROUNDS: rebuilds in this process (default 1). A backend that exits during a phase (the scan's
 * COPY connection) takes its CPU time with it: PostgreSQL's read figure is a lower bound.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { databaseUrl } from './support/databases.ts';

const store = (await import(process.env.PROBE_STORE ?? '@strata/store')) as typeof import('@strata/store');
const schema = process.env.PROBE_SCHEMA ?? 'bench_events_v1_1000000';
const database = new URL(databaseUrl).pathname.slice(1);
const opened = await store.openEventStore({ databaseUrl, schema, projections: [], poolConnectionsMax: 16 });

/** CPU milliseconds of the PostgreSQL processes serving `database` (and every parallel worker). */
function postgresCpuMs(): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!command.startsWith('postgres') || !(command.includes(` ${database} `) || command.includes('parallel worker'))) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks * 10;
}

try {
  for (let round = 0; round < Number(process.env.ROUNDS ?? 1); round++) {
    const lines: string[] = [];
    let phase = '';
    let since = performance.now();
    let nodeSince = process.cpuUsage();
    let postgresSince = postgresCpuMs();
    const mark = () => {
      const node = process.cpuUsage(nodeSince);
      const postgres = postgresCpuMs();
      lines.push(`  ${phase}: ${((performance.now() - since) / 1000).toFixed(2)} s wall, node ${((node.user + node.system) / 1e6).toFixed(2)} s, postgres ${((postgres - postgresSince) / 1000).toFixed(2)} s`);
      since = performance.now();
      nodeSince = process.cpuUsage();
      postgresSince = postgres;
    };
    const result = await store.rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new store.ArtifactTreeProjection(), new store.RepositoryConfigProjection()], {
      onProgress: (progress) => {
        if (progress.phase === phase) return;
        if (phase !== '') mark();
        phase = progress.phase;
      },
    });
    console.log(`round ${round + 1}: ${Math.round(result.eventsPerSecond)} events/s, ${(result.elapsedMs / 1000).toFixed(2)} s; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    for (const line of lines) console.log(line);
  }
} finally {
  await opened.close();
}
