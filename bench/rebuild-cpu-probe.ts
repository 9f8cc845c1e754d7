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
 *
 * During the write phase a second connection samples pg_stat_activity every 25 ms: each
 * statement of the swap (COPY, key and index builds) is printed with its approximate wall time
 * (±25 ms). Parallel workers (index builds) are sampled from /proc as they run and counted in
 * PostgreSQL's write figure even after they exit. Each phase also prints how busy the whole
 * machine was (from /proc/stat: core-seconds used of those available; others' work included).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
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

/** Busy and total core-seconds of the whole machine so far (/proc/stat's first line, 100 Hz ticks). */
function machineTicks(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy: busy / 100, total: (busy + idle + iowait) / 100 };
}

/** CPU milliseconds of the parallel workers now running, by pid (they exit when their build ends). */
function parallelWorkerCpuMs(into: Map<number, number>): void {
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('parallel worker')) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      into.set(Number(pid), (Number(fields[11]) + Number(fields[12])) * 10);
    } catch {
      // The process ended meanwhile.
    }
  }
}

const sampler = new pg.Client({ connectionString: databaseUrl });
await sampler.connect();

try {
  for (let round = 0; round < Number(process.env.ROUNDS ?? 1); round++) {
    const lines: string[] = [];
    let phase = '';
    let since = performance.now();
    let nodeSince = process.cpuUsage();
    let postgresSince = postgresCpuMs();
    let machineSince = machineTicks();
    /** Parallel workers seen during the phase, with their last CPU figure. */
    const workers = new Map<number, number>();
    /** The swap's statements as sampled: text, first and last time seen. */
    const statements: { text: string; first: number; last: number }[] = [];
    let sampling: Promise<void> | undefined;
    let sampleTimer: NodeJS.Timeout | undefined;
    let samplingOn = false;
    const sample = async () => {
      const now = performance.now();
      parallelWorkerCpuMs(workers);
      const active = await sampler.query<{ query: string }>(
        `select left(regexp_replace(query, '\\s+', ' ', 'g'), 100) as query from pg_stat_activity
         where datname = current_database() and state = 'active' and pid <> pg_backend_pid() and backend_type = 'client backend'`,
      );
      for (const { query } of active.rows) {
        // Statements running side by side (a rebuild through a shadow schema) interleave.
        const seen = statements.findLast((statement) => statement.text === query && now - statement.last < 100);
        if (seen !== undefined) seen.last = now;
        else statements.push({ text: query, first: now, last: now });
      }
    };
    const tick = () => {
      sampling = sample().finally(() => {
        if (samplingOn) sampleTimer = setTimeout(tick, 25);
      });
    };
    const mark = () => {
      const node = process.cpuUsage(nodeSince);
      let workerMs = 0;
      for (const ms of workers.values()) workerMs += ms;
      const postgres = postgresCpuMs() + workerMs;
      const machine = machineTicks();
      lines.push(
        `  ${phase}: ${((performance.now() - since) / 1000).toFixed(2)} s wall, node ${((node.user + node.system) / 1e6).toFixed(2)} s, postgres ${((postgres - postgresSince) / 1000).toFixed(2)} s` +
          ` (parallel workers ${(workerMs / 1000).toFixed(2)} s); machine busy ${(machine.busy - machineSince.busy).toFixed(1)} of ${(machine.total - machineSince.total).toFixed(1)} core-s`,
      );
      if (phase === 'write') {
        const start = statements[0]?.first ?? 0;
        for (const { text, first, last } of statements) lines.push(`    +${Math.round(first - start)} ms ~${Math.round(last - first + 25)} ms ${text}`);
      }
      since = performance.now();
      nodeSince = process.cpuUsage();
      postgresSince = postgresCpuMs();
      machineSince = machine;
      workers.clear();
    };
    const result = await store.rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new store.ArtifactTreeProjection(), new store.RepositoryConfigProjection()], { ...(process.env.STRATA_REBUILD_WORKERS ? { workers: Number(process.env.STRATA_REBUILD_WORKERS) } : {}),
      onProgress: (progress) => {
        if (progress.phase === phase) return;
        if (phase === 'write') {
          samplingOn = false;
          clearTimeout(sampleTimer);
        }
        if (phase !== '') mark();
        phase = progress.phase;
        if (phase === 'write') {
          samplingOn = true;
          tick();
        }
      },
    });
    samplingOn = false;
    clearTimeout(sampleTimer);
    await sampling;
    console.log(`round ${round + 1}: ${Math.round(result.eventsPerSecond)} events/s, ${(result.elapsedMs / 1000).toFixed(2)} s; load ${readFileSync('/proc/loadavg', 'utf8').trim()}`);
    for (const line of lines) console.log(line);
  }
} finally {
  await sampler.end();
  await opened.close();
}
