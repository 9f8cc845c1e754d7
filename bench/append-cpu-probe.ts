/**
 * Store-alone probe of the `append` benchmark's traffic (docs/benchmarks.md, A): 16 writers of
 * single-event appends through the SQL event store with the artifact tree and the repository
 * config inline, then the benchmark's reference (16 clients of one-row INSERT transactions
 * into a table like events) on the same database, and prints for each: events/s, Node CPU
 * and the PostgreSQL backends' CPU per event, and for the store the group-commit
 * transactions (events per batch, round trips per batch). Not a target's benchmark: for
 * before/after pairs (give another checkout's store entry point, run interleaved, under the
 * bench lock).
 *
 *   DATABASE_URL=… node --import tsx bench/append-cpu-probe.ts [events=4000] [rounds=3] [store entry point]
 *
 * PROBE_DATABASE names the database it drops and creates (append_cpu_probe); PROBE_ONE_ROUND_TRIP=0
 * turns the store's appendOneRoundTrip off; PROBE_SKIP_REFERENCE=1 skips the reference. Each line
 * also gives the WAL the server wrote per event (server-wide: other databases' writes count too),
 * and of Node's CPU the main thread's, the system's, and the main thread's GC pauses (scavenges
 * and the rest, from the `gc` performance entries).
 */
import { readFileSync } from 'node:fs';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import pg from 'pg';
import { insertRound } from './append.bench.ts';
import { processCpuMs, recreateDatabase } from './support/databases.ts';
import { artifactTraffic, repositoryCreations, type BenchEvent } from './support/events.ts';

const base = process.env.DATABASE_URL ?? 'postgres://strata:strata@127.0.0.1:5432/strata_bench';
const probeDatabase = process.env.PROBE_DATABASE ?? 'append_cpu_probe';
const total = Number(process.argv[2] ?? 4000);
const rounds = Number(process.argv[3] ?? 3);
const storePath = process.argv[4] ?? '@strata/store';
const writers = 16;
const withReference = process.env.PROBE_SKIP_REFERENCE !== '1';

/**
 * A backend's CPU in ms: its scheduler run time (/proc/<pid>/schedstat, nanoseconds; a backend
 * is one thread) where the kernel has it, else user + system from /proc/<pid>/stat, which
 * counts in 10 ms ticks: over a 4,000-event round that is ±5 µs/event of sampling noise.
 */
const cpuOf = (pid: number, proc = `/proc/${pid}`): number => {
  try {
    return Number(readFileSync(`${proc}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return processCpuMs(pid);
  }
};
const nodeCpu = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};
const nodeSystemCpu = () => process.cpuUsage().system / 1000;
/**
 * The main thread's CPU (ms): the rest of the process's is V8's and libuv's worker threads —
 * TurboFan's optimizing compiles while the code warms up, parallel scavenges, concurrent marking
 * and sweeping — which take a core from the backend on a loaded machine but are not on the batch's path.
 */
const mainThreadCpu = (): number => cpuOf(process.pid, `/proc/self/task/${process.pid}`);
/** The main thread's GC pauses (ms) and their count, by kind (minor: scavenges). */
const gcPauses = { minor: 0, minorCount: 0, other: 0, otherCount: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const minor = (entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR;
    if (minor) {
      gcPauses.minor += entry.duration;
      gcPauses.minorCount++;
    } else {
      gcPauses.other += entry.duration;
      gcPauses.otherCount++;
    }
  }
}).observe({ entryTypes: ['gc'] });

const url = new URL(await recreateDatabase(probeDatabase, base));

const module = (await import(storePath)) as typeof import('@strata/store');
let commits = 0;
let sends = 0;
/** Round trips that failed (a guess that did not hold, appendOneRoundTrip). */
let failedSends = 0;
/** Per phase of the batches (ms summed): first round trip, build between, second, gap to the next batch. */
const phases = { first: 0, build: 0, second: 0, gap: 0, batches: 0 };
let lastEnd: number | undefined;
let lastCommitted = true;
const opened = await module.openEventStore({
  databaseUrl: url.href,
  projections: [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()],
  poolConnectionsMax: writers,
  // PROBE_ONE_ROUND_TRIP=0: the store's appendOneRoundTrip off (on by default on PostgreSQL).
  ...(process.env.PROBE_ONE_ROUND_TRIP === '0' ? { store: { appendOneRoundTrip: false } } : {}),
  onAppendSend: (send) => {
    sends++;
    if (send.failed === true) failedSends++;
    if (lastEnd !== undefined) phases[lastCommitted ? 'gap' : 'build'] += send.started - lastEnd;
    phases[send.commit ? 'second' : 'first'] += send.ended - send.started;
    if (send.commit) {
      commits++;
      phases.batches++;
    }
    lastEnd = send.ended;
    lastCommitted = send.commit;
  },
});
const store = opened.store;
for (const { stream, event } of repositoryCreations()) await store.append(stream, [event]);
const watcher = new pg.Client({ connectionString: url.href });
await watcher.connect();
await watcher.query('create table insert_reference (like events including all)');
const backendPids = async () =>
  (await watcher.query(`select pid from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [probeDatabase])).rows.map((row) => row.pid as number);

/** The server's WAL position now (the WAL written per event: the commit's flush grows with it). */
async function walLsn(): Promise<string> {
  return (await watcher.query(`select pg_current_wal_lsn()::text as lsn`)).rows[0].lsn as string;
}

async function appendRound(traffic: readonly BenchEvent[]): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let entry = traffic[next++]; entry !== undefined; entry = traffic[next++]) await store.append(entry.stream, [entry.event]);
    }),
  );
}

const referencePool = new pg.Pool({ connectionString: url.href, max: writers });
let referenceRevision = 0;
/** The benchmark's own reference (append.bench.ts), into this database's insert_reference. */
async function referenceRound(traffic: readonly BenchEvent[], tag: string): Promise<void> {
  await insertRound(referencePool, traffic, writers, referenceRevision, tag);
  referenceRevision += traffic.length;
}

async function measured(label: string, run: () => Promise<void>, extra: () => string): Promise<void> {
  const pids = await backendPids();
  const walBefore = await walLsn();
  const before = pids.map((pid) => cpuOf(pid));
  const nodeBefore = nodeCpu();
  const systemBefore = nodeSystemCpu();
  const mainBefore = mainThreadCpu();
  const gcBefore = { ...gcPauses };
  const started = performance.now();
  await run();
  const wall = performance.now() - started;
  const node = nodeCpu() - nodeBefore;
  const system = nodeSystemCpu() - systemBefore;
  const main = mainThreadCpu() - mainBefore;
  // GC entries are delivered after the round's last microtask: let the observer run.
  await new Promise((resolve) => setImmediate(resolve));
  const gc =
    `${(((gcPauses.minor - gcBefore.minor) * 1000) / total).toFixed(0)} µs/event in ${gcPauses.minorCount - gcBefore.minorCount} scavenges, ` +
    `${(((gcPauses.other - gcBefore.other) * 1000) / total).toFixed(0)} µs/event in ${gcPauses.otherCount - gcBefore.otherCount} others`;
  const backends = pids.map((pid) => cpuOf(pid)).reduce((sum, cpu, index) => sum + cpu - before[index]!, 0);
  const walBytes = Number((await watcher.query(`select pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::int8 as bytes`, [walBefore])).rows[0].bytes);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(
    `${label}: ${Math.round((total * 1000) / wall)}/s, node ${((node * 1000) / total).toFixed(0)} µs/event (main thread ${((main * 1000) / total).toFixed(0)}, system ${((system * 1000) / total).toFixed(0)}; GC pauses ${gc}), ` +
      `postgres ${((backends * 1000) / total).toFixed(0)} µs/event (${pids.length} backends), WAL ${Math.round(walBytes / total)} bytes/event${extra()}; load ${load}`,
  );
}

await appendRound([...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })]);
for (let round = 0; round < rounds; round++) {
  const traffic = [...artifactTraffic(total, { idPrefix: `r${round}-`, seed: 100 + round })];
  await appendRound([...artifactTraffic(writers * 10, { idPrefix: `w${round}-`, seed: 1000 + round })]);
  const commitsBefore = commits;
  Object.assign(phases, { first: 0, build: 0, second: 0, gap: 0, batches: 0 });
  const sendsBefore = sends;
  const failedBefore = failedSends;
  await measured(`round ${round + 1} store`, () => appendRound(traffic), () => {
    const batches = commits - commitsBefore;
    const per = (ms: number) => (ms / phases.batches).toFixed(2);
    return (
      `, ${batches} batches (${(total / batches).toFixed(1)} events, ${((sends - sendsBefore) / batches).toFixed(2)} round trips each, ${failedSends - failedBefore} failed; ` +
      `ms per batch: first ${per(phases.first)}, build ${per(phases.build)}, second ${per(phases.second)}, gap ${per(phases.gap)})`
    );
  });
  if (withReference) {
    await referenceRound(traffic.slice(0, writers * 10), `w${round}`);
    await measured(`round ${round + 1} reference`, () => referenceRound(traffic, `r${round}`), () => '');
  }
}
await referencePool.end();
await watcher.end();
await opened.close();
