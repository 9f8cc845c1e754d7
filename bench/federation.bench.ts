/**
 * Federation benchmarks (issue 4, "Performance"), three `strata serve` processes on loopback:
 * - lag: 500 deploys/s of 1 KiB artifacts on one site for `seconds`; the receivers report the
 *   lag to their own append and projection of each event from the origin's commit (the time
 *   the origin's push says the append committed there: status `receiveLagFromCommit`, p50/p99;
 *   targets 50 ms / 250 ms, the definition) and from the origin's stamp (HLC wall,
 *   taken before the origin's own append round: status `receiveLag`, printed beside it).
 *   Reference, same run: the deploy latency the load client sees on the origin (p50/p99).
 * - catch-up: with every site stopped, 100,000 deploy events are appended to the origin's
 *   store (in process, with the server's projections: that rate is the reference); the origin
 *   and a receiver that missed them all start, and the receiver's rate of catching up is
 *   measured until its vector covers the origin's (target ≥ 20,000 events/s; metadata only —
 *   every event names one binary, fetched once).
 * Runnable alone: `node --import tsx bench/federation.bench.ts [--backend=postgres|pglite]
 * [--seconds=N] [--events=N] [--rate=N] [--only=lag,catch-up] [--origin-alone]`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import type { NewEvent } from '@strata/core';
import { PendingBinariesProjection } from '@strata/federation';
import { ArtifactTreeProjection, FsBlobStore, RepositoryConfigProjection, VirtualResolutionProjection, openEventStore } from '@strata/store';
import { ADMIN_AUTH, adminFetch, freePort, spawnServer, type SpawnedServer } from '../test/support/spawned-server.ts';
import { databaseUrl, recreateDatabase } from './support/databases.ts';
import { log } from './support/report.ts';

const KEY = 'fed-bench';
const TOKEN = 'bench-federation-secret-0123456789';

interface BenchSite {
  readonly name: string;
  readonly port: number;
  readonly baseUrl: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  server: SpawnedServer | undefined;
}

export interface FederationBenchOptions {
  readonly backend: 'postgres' | 'pglite';
  readonly seconds: number;
  readonly deploysPerSecond: number;
  readonly catchUpEvents: number;
  readonly only?: readonly ('lag' | 'catch-up')[];
  /**
   * After the federated phase, the same load on the federated repository once more with both
   * receivers frozen (SIGSTOP: no CPU, no SQL, no pulls; the origin's pushes hang until their
   * timeout): what the origin's deploys cost with its own federation work but without the
   * receivers' on the shared machine.
   */
  readonly originAlone?: boolean;
}

export interface FederationBenchResult {
  readonly backend: 'postgres' | 'pglite';
  readonly lag?: {
    readonly deploys: number;
    readonly offeredPerSecond: number;
    readonly achievedPerSecond: number;
    readonly deployP50Ms: number;
    readonly deployP99Ms: number;
    /** Lag from the origin's stamp (`receiveLag`), and from its commit (`fromCommit`, absent from servers that do not report it). */
    readonly receivers: readonly { site: string; events: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null; fromCommit?: LagFigures; stages?: ReceiveStages }[];
    /** The same load on a local repository of the same server, just before. */
    readonly reference: { readonly achievedPerSecond: number; readonly p50Ms: number; readonly p99Ms: number };
    /** The same load on the federated repository with both receivers frozen (--origin-alone), just after. */
    readonly originAlone?: { readonly achievedPerSecond: number; readonly p50Ms: number; readonly p99Ms: number };
    /**
     * CPU per deploy (ms, /proc/<pid>/stat user + system): of each server process, and of the
     * PostgreSQL backends connected to its database (PostgreSQL only), during the local
     * reference (site a and its backends) and during the federated phase until both receivers
     * hold every event and every binary.
     */
    readonly cpuPerDeployMs?: { readonly reference: Readonly<Record<string, number>>; readonly federated: Readonly<Record<string, number>> };
    /** From the end of the federated load until b and c held every binary (s). */
    readonly binariesSeconds?: number;
  };
  readonly catchUp?: {
    readonly events: number;
    readonly localAppendPerSecond: number;
    /** From c's start (its start-up included). */
    readonly catchUpPerSecond: number;
    readonly seconds: number;
    /** From c answering its first request until it holds everything. */
    readonly fromAnsweringPerSecond: number;
    readonly startUpSeconds: number;
  };
}

async function databaseFor(name: string): Promise<string> {
  return recreateDatabase(`strata_bench_fed_${name}`);
}

async function prepare(backend: 'postgres' | 'pglite'): Promise<BenchSite[]> {
  const sites: BenchSite[] = [];
  for (const name of ['a', 'b', 'c']) {
    const port = await freePort();
    sites.push({
      name,
      port,
      baseUrl: `http://127.0.0.1:${port}`,
      dataDir: await mkdtemp(join(tmpdir(), `strata-bench-fed-${name}-`)),
      databaseUrl: backend === 'postgres' ? await databaseFor(name) : undefined,
      server: undefined,
    });
  }
  return sites;
}

async function start(site: BenchSite): Promise<SpawnedServer> {
  site.server = await spawnServer({
    dataDir: site.dataDir,
    port: site.port,
    ...(site.databaseUrl === undefined ? {} : { databaseUrl: site.databaseUrl }),
    startTimeoutMs: 120_000,
    env: { STRATA_SITE_ID: `site-${site.name}`, STRATA_BASE_URL: site.baseUrl, STRATA_FEDERATION_TOKEN: TOKEN, STRATA_FEDERATION_RETRY_MAX_MS: '1000' },
  });
  return site.server;
}

const live = (site: BenchSite) => {
  if (site.server === undefined) throw new Error(`site ${site.name} is not running`);
  return site.server;
};

interface LagFigures {
  events: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

interface StatusBody {
  vector: Record<string, number>;
  pendingBinaries: number;
  receiveLag: LagFigures;
  /** Absent from servers before 2026-12-07 (lag6). */
  receiveLagFromCommit?: LagFigures;
  receiveStages?: ReceiveStages;
}

type ReceiveStages = { events: number } & Partial<Record<(typeof STAGES)[number], { p50Ms: number | null; p99Ms: number | null }>>;
/** The steps of a receipt the status times (docs/federation.md, `receiveStages`; dispatch and transit since 2026-12-07). */
const STAGES = ['arrival', 'authentication', 'queue', 'append', 'dispatch', 'transit'] as const;
const fromCommitText = (lag: LagFigures | undefined) =>
  lag === undefined ? 'not reported by this server' : `p50 ${lag.p50Ms} ms, p99 ${lag.p99Ms} ms, max ${lag.maxMs} ms over ${lag.events} events`;
const stagesText = (stages: ReceiveStages | undefined) =>
  stages === undefined ? 'no stages' : STAGES.filter((stage) => stages[stage] !== undefined)
        .map((stage) => `${stage} ${stages[stage]!.p50Ms}/${stages[stage]!.p99Ms}`)
        .join(', ');

async function status(site: BenchSite): Promise<StatusBody | undefined> {
  const response = await adminFetch(live(site), `/artifactory/api/federation/status/${KEY}`);
  if (response.status !== 200) {
    await response.arrayBuffer();
    return undefined;
  }
  return (await response.json()) as StatusBody;
}

const covers = (vector: Record<string, number> | undefined, target: Record<string, number>) =>
  vector !== undefined && Object.entries(target).every(([origin, count]) => (vector[origin] ?? 0) >= count);

async function waitFor<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number, pollMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined as T);
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

function percentile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Open-loop load: one PUT every 1000/rate ms (at most 256 in flight), for `seconds`. */
async function deployLoad(site: BenchSite, rate: number, seconds: number, repo = KEY): Promise<{ latencies: number[]; elapsedMs: number; refused: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const filler = randomBytes(1024 - 40).toString('base64').slice(0, 1024 - 40);
  const latencies: number[] = [];
  let refused = 0;
  let inFlight = 0;
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    while (inFlight >= 256) await new Promise((resolve) => setTimeout(resolve, 1));
    const body = Buffer.from(`${String(i).padStart(40, '0')}${filler}`);
    const path = `/artifactory/${repo}/load/${i % 100}/a-${i}.bin`;
    inFlight++;
    const sent = performance.now();
    pending.push(
      new Promise<void>((resolve) => {
        const request = httpRequest(
          `${site.baseUrl}${path}`,
          { method: 'PUT', agent, headers: { authorization: ADMIN_AUTH, 'content-length': body.length, 'content-type': 'application/octet-stream' } },
          (response) => {
            response.resume();
            response.on('end', () => {
              if (response.statusCode === 201) latencies.push(performance.now() - sent);
              else refused++;
              inFlight--;
              resolve();
            });
          },
        );
        request.on('error', () => {
          refused++;
          inFlight--;
          resolve();
        });
        request.end(body);
      }),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  return { latencies, elapsedMs: performance.now() - started, refused };
}

/** CPU time (ms) of a process so far, user + system, from /proc/<pid>/stat; 0 when it is gone. */
async function processCpuMs(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (clock ticks, 100 per second here).
  return ((Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 1000) / 100;
}

/** Per server (a, b, c) and per server's PostgreSQL backends (pg-a, …): CPU ms per process id so far. */
async function cpuSnapshot(sites: readonly BenchSite[]): Promise<Map<string, Map<number, number>>> {
  const snapshot = new Map<string, Map<number, number>>();
  for (const site of sites) {
    const pid = live(site).child.pid;
    if (pid !== undefined) snapshot.set(site.name, new Map([[pid, await processCpuMs(pid)]]));
  }
  const databases = sites.filter((site) => site.databaseUrl !== undefined);
  if (databases.length > 0) {
    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      for (const site of databases) {
        const name = new URL(site.databaseUrl!).pathname.slice(1);
        const rows = await admin.query<{ pid: number }>('select pid from pg_stat_activity where datname = $1', [name]);
        const backends = new Map<number, number>();
        for (const row of rows.rows) backends.set(row.pid, await processCpuMs(row.pid));
        snapshot.set(`pg-${site.name}`, backends);
      }
    } finally {
      await admin.end();
    }
  }
  return snapshot;
}

/** CPU ms per deploy between two snapshots, per label (processes new since `before` count whole; ones gone are lost). */
function cpuPerDeploy(before: Map<string, Map<number, number>>, after: Map<string, Map<number, number>>, deploys: number): Record<string, number> {
  const result: Record<string, number> = {};
  let total = 0;
  for (const [label, pids] of after) {
    let ms = 0;
    for (const [pid, cpu] of pids) ms += cpu - (before.get(label)?.get(pid) ?? 0);
    result[label] = ms / deploys;
    total += ms;
  }
  result['total'] = total / deploys;
  return result;
}

const cpuText = (perDeploy: Readonly<Record<string, number>>) =>
  Object.entries(perDeploy)
    .map(([label, ms]) => `${label} ${(ms * 1000).toFixed(0)} µs`)
    .join(', ');

async function lagBenchmark(sites: BenchSite[], options: FederationBenchOptions): Promise<NonNullable<FederationBenchResult['lag']>> {
  const [a, b, c] = sites as [BenchSite, BenchSite, BenchSite];
  log(`federation lag (${options.backend}): ${options.deploysPerSecond} deploys/s of 1 KiB on a for ${options.seconds} s`);
  // Reference, same run and server: the same load on a local (not federated) repository.
  const local = await adminFetch(live(a), '/artifactory/api/repositories/bench-local', {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ rclass: 'local' }),
  });
  if (local.status !== 200) throw new Error(`create bench-local: ${local.status}`);
  const referenceCpu = await cpuSnapshot([a]);
  const reference = await deployLoad(a, options.deploysPerSecond, options.seconds, 'bench-local');
  const referenceCpuPerDeploy = cpuPerDeploy(referenceCpu, await cpuSnapshot([a]), Math.max(1, reference.latencies.length));
  reference.latencies.sort((x, y) => x - y);
  const referenceResult = {
    achievedPerSecond: (reference.latencies.length / reference.elapsedMs) * 1000,
    p50Ms: percentile(reference.latencies, 0.5),
    p99Ms: percentile(reference.latencies, 0.99),
  };
  log(`  reference, local repository: ${referenceResult.achievedPerSecond.toFixed(0)}/s, deploy p50 ${referenceResult.p50Ms.toFixed(1)} ms p99 ${referenceResult.p99Ms.toFixed(1)} ms`);
  const federatedCpu = await cpuSnapshot(sites);
  const { latencies, elapsedMs, refused } = await deployLoad(a, options.deploysPerSecond, options.seconds);
  if (refused > 0) log(`  ${refused} deploys refused or failed`);
  const origin = await status(a);
  if (origin === undefined) throw new Error('no status on a');
  for (const site of [b, c]) await waitFor(`${site.name} to catch up`, () => status(site), (value) => covers(value?.vector, origin.vector), 120_000);
  // CPU per deploy: until every binary arrived too (the pulls are most of a receiver's work
  // beside the append). Polled once a second: a status request costs the receiver CPU too.
  const loadEnded = performance.now();
  for (const site of [b, c]) await waitFor(`${site.name} to hold every binary`, () => status(site), (value) => value?.pendingBinaries === 0, 300_000, 1_000);
  const binariesSeconds = (performance.now() - loadEnded) / 1000;
  const federatedCpuPerDeploy = cpuPerDeploy(federatedCpu, await cpuSnapshot(sites), Math.max(1, latencies.length));
  log(`  every binary on b and c ${binariesSeconds.toFixed(1)} s after the load ended`);
  log(`  CPU per deploy, local reference: ${cpuText(referenceCpuPerDeploy)}`);
  log(`  CPU per deploy, federated (until b and c hold every event and binary): ${cpuText(federatedCpuPerDeploy)}`);
  const receivers = [];
  for (const site of [b, c]) {
    const body = (await status(site))!;
    receivers.push({
      site: site.name,
      ...body.receiveLag,
      ...(body.receiveLagFromCommit === undefined ? {} : { fromCommit: body.receiveLagFromCommit }),
      ...(body.receiveStages === undefined ? {} : { stages: body.receiveStages }),
    });
  }
  latencies.sort((x, y) => x - y);
  let originAlone: { achievedPerSecond: number; p50Ms: number; p99Ms: number } | undefined;
  if (options.originAlone === true) {
    const frozen = [b, c].map((site) => live(site).child);
    for (const child of frozen) child.kill('SIGSTOP');
    try {
      const alone = await deployLoad(a, options.deploysPerSecond, options.seconds);
      alone.latencies.sort((x, y) => x - y);
      originAlone = { achievedPerSecond: (alone.latencies.length / alone.elapsedMs) * 1000, p50Ms: percentile(alone.latencies, 0.5), p99Ms: percentile(alone.latencies, 0.99) };
      log(`  origin alone (receivers frozen), federated repository: ${originAlone.achievedPerSecond.toFixed(0)}/s, deploy p50 ${originAlone.p50Ms.toFixed(1)} ms p99 ${originAlone.p99Ms.toFixed(1)} ms`);
    } finally {
      for (const child of frozen) child.kill('SIGCONT');
    }
  }
  const result = {
    deploys: latencies.length,
    offeredPerSecond: options.deploysPerSecond,
    achievedPerSecond: (latencies.length / elapsedMs) * 1000,
    deployP50Ms: percentile(latencies, 0.5),
    deployP99Ms: percentile(latencies, 0.99),
    receivers,
    reference: referenceResult,
    ...(originAlone === undefined ? {} : { originAlone }),
    cpuPerDeployMs: { reference: referenceCpuPerDeploy, federated: federatedCpuPerDeploy },
    binariesSeconds,
  };
  log(`  deploys ${result.deploys} at ${result.achievedPerSecond.toFixed(0)}/s, deploy p50 ${result.deployP50Ms.toFixed(1)} ms p99 ${result.deployP99Ms.toFixed(1)} ms`);
  for (const receiver of receivers) {
    log(`  lag on ${receiver.site} from the origin's commit: ${fromCommitText(receiver.fromCommit)}`);
    log(`  lag on ${receiver.site} from the origin's stamp: p50 ${receiver.p50Ms} ms, p99 ${receiver.p99Ms} ms, max ${receiver.maxMs} ms over ${receiver.events} events`);
    log(`    stages on ${receiver.site} (p50/p99 ms): ${stagesText(receiver.stages)}`);
  }
  return result;
}

async function catchUpBenchmark(sites: BenchSite[], options: FederationBenchOptions): Promise<NonNullable<FederationBenchResult['catchUp']>> {
  const [a, b, c] = sites as [BenchSite, BenchSite, BenchSite];
  log(`federation catch-up (${options.backend}): ${options.catchUpEvents.toLocaleString('en-US')} events missed by c`);
  await Promise.all(sites.map((site) => live(site).stop()));
  // The origin's store, opened as the server opens it (the same four projections as
  // packages/server/src/server.ts with a federation token), while it is down: the reference
  // appends with everything a receiver's append does.
  const opened = await openEventStore({
    ...(a.databaseUrl === undefined ? { dataDir: a.dataDir } : { databaseUrl: a.databaseUrl }),
    projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection(), new VirtualResolutionProjection(), new PendingBinariesProjection('site-a')],
    // As the server opens it: site-a's own events get their origin chain (meta.originPrev).
    store: { siteId: 'site-a' },
  });
  const stream = `repo-${KEY}`;
  const existing = [...(await opened.store.readStream(stream, { maxCount: 10_000 }))];
  let revision = existing.length - 1;
  for (;;) {
    const more = await opened.store.readStream(stream, { fromRevision: revision + 1, maxCount: 10_000 });
    if (more.length === 0) break;
    revision += more.length;
    existing.push(...more);
  }
  let originSeq = existing.filter((event) => event.origin === 'site-a').reduce((max, event) => Math.max(max, event.originSeq), 0);
  const blobs = new FsBlobStore({ root: a.dataDir, clock: { now: () => Date.now() } });
  const content = Buffer.alloc(1024, 7);
  const lease = await blobs.put(Readable.from([content]));
  lease.release();
  const digest = (algorithm: string) => createHash(algorithm).update(content).digest('hex');
  const batchSize = 1_000;
  const appendStarted = performance.now();
  const wall = Date.now();
  for (let done = 0; done < options.catchUpEvents; done += batchSize) {
    const events: NewEvent[] = [];
    for (let i = done; i < Math.min(options.catchUpEvents, done + batchSize); i++) {
      events.push({
        id: `bench-${wall.toString(36)}-${i}`,
        origin: 'site-a',
        originSeq: ++originSeq,
        hlc: { wall, logical: i },
        meta: { actor: 'bench' },
        type: 'ArtifactDeployed',
        data: { path: `offline/${i % 500}/e-${i}.bin`, sha256: digest('sha256'), sha1: digest('sha1'), md5: digest('md5'), size: content.length, mimeType: 'application/octet-stream', properties: {} },
      } as NewEvent);
    }
    await opened.store.append(stream, events, { expectedRevision: revision });
    revision += events.length;
  }
  const appendSeconds = (performance.now() - appendStarted) / 1000;
  await opened.close();
  const localAppendPerSecond = options.catchUpEvents / appendSeconds;
  log(`  appended locally at ${localAppendPerSecond.toFixed(0)} events/s (reference)`);

  await start(a);
  const target = (await status(a))!.vector;
  const started = performance.now();
  await start(c);
  // c answers its first request: what follows is the catch-up itself (start-up, migrations
  // and loading the bundle are not).
  const answered = performance.now();
  await waitFor('c to catch up', () => status(c), (value) => covers(value?.vector, target), 600_000, 100);
  const done = performance.now();
  const seconds = (done - started) / 1000;
  const catchUpPerSecond = options.catchUpEvents / seconds;
  const answeringSeconds = (done - answered) / 1000;
  const fromAnsweringPerSecond = options.catchUpEvents / answeringSeconds;
  log(
    `  c caught up in ${seconds.toFixed(1)} s: ${catchUpPerSecond.toFixed(0)} events/s from its start; ` +
      `${answeringSeconds.toFixed(1)} s, ${fromAnsweringPerSecond.toFixed(0)} events/s from its answering (start-up ${((answered - started) / 1000).toFixed(1)} s)`,
  );
  void b;
  return { events: options.catchUpEvents, localAppendPerSecond, catchUpPerSecond, seconds, fromAnsweringPerSecond, startUpSeconds: (answered - started) / 1000 };
}

export async function federationBenchmark(options: FederationBenchOptions): Promise<FederationBenchResult> {
  const sites = await prepare(options.backend);
  try {
    await Promise.all(sites.map((site) => start(site)));
    const [a, b, c] = sites as [BenchSite, BenchSite, BenchSite];
    const create = await adminFetch(live(a), `/artifactory/api/repositories/${KEY}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rclass: 'federated', members: [b, c].map((site) => ({ url: `${site.baseUrl}/artifactory/${KEY}`, enabled: true })) }),
    });
    if (create.status !== 200) throw new Error(`create: ${create.status} ${await create.text()}`);
    for (const site of [b, c]) await waitFor(`${site.name} to join`, () => status(site), (value) => value !== undefined, 60_000);
    const only = options.only ?? ['lag', 'catch-up'];
    const lag = only.includes('lag') ? await lagBenchmark(sites, options) : undefined;
    const catchUp = only.includes('catch-up') ? await catchUpBenchmark(sites, options) : undefined;
    return { backend: options.backend, ...(lag === undefined ? {} : { lag }), ...(catchUp === undefined ? {} : { catchUp }) };
  } finally {
    // Graceful: a server run with --cpu-prof (STRATA_SPAWN_NODE_ARGS) writes its profile on exit.
    await Promise.all(sites.map((site) => site.server?.stop()));
    await Promise.all(sites.map((site) => rm(site.dataDir, { recursive: true, force: true })));
  }
}

export function printFederationResults(results: readonly FederationBenchResult[]): void {
  for (const result of results) {
    if (result.lag !== undefined) {
      const lag = result.lag;
      console.log(
        `federation lag (${result.backend}): ${lag.deploys} deploys at ${lag.achievedPerSecond.toFixed(0)}/s (offered ${lag.offeredPerSecond}/s); origin deploy latency p50 ${lag.deployP50Ms.toFixed(1)} ms, p99 ${lag.deployP99Ms.toFixed(1)} ms; reference (same load, local repository): ${lag.reference.achievedPerSecond.toFixed(0)}/s, p50 ${lag.reference.p50Ms.toFixed(1)} ms, p99 ${lag.reference.p99Ms.toFixed(1)} ms`,
      );
      if (lag.originAlone !== undefined) {
        console.log(`  origin alone (receivers frozen, same load, federated repository): ${lag.originAlone.achievedPerSecond.toFixed(0)}/s, p50 ${lag.originAlone.p50Ms.toFixed(1)} ms, p99 ${lag.originAlone.p99Ms.toFixed(1)} ms`);
      }
      if (lag.cpuPerDeployMs !== undefined) {
        console.log(`  CPU per deploy: local reference ${cpuText(lag.cpuPerDeployMs.reference)}; federated ${cpuText(lag.cpuPerDeployMs.federated)}; every binary on b and c ${lag.binariesSeconds?.toFixed(1)} s after the load`);
      }
      for (const receiver of lag.receivers) {
        console.log(`  receiver ${receiver.site}: commit→projection ${fromCommitText(receiver.fromCommit)} (targets p50 < 50, p99 < 250)`);
        console.log(`  receiver ${receiver.site}: stamp→projection p50 ${receiver.p50Ms} ms, p99 ${receiver.p99Ms} ms, max ${receiver.maxMs} ms, ${receiver.events} events; stages p50/p99 ms: ${stagesText(receiver.stages)}`);
      }
    }
    if (result.catchUp !== undefined) {
      const catchUp = result.catchUp;
      console.log(
        `federation catch-up (${result.backend}): ${catchUp.events} events in ${catchUp.seconds.toFixed(1)} s = ${catchUp.catchUpPerSecond.toFixed(0)} events/s from c's start, ${catchUp.fromAnsweringPerSecond.toFixed(0)} events/s from c answering (start-up ${catchUp.startUpSeconds.toFixed(1)} s) (target ≥ 20,000); local append with projections ${catchUp.localAppendPerSecond.toFixed(0)} events/s (reference), ratio ${(catchUp.catchUpPerSecond / catchUp.localAppendPerSecond).toFixed(2)} / ${(catchUp.fromAnsweringPerSecond / catchUp.localAppendPerSecond).toFixed(2)}`,
      );
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const flag = (name: string): string | undefined => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const backends = (flag('backend') ?? 'postgres').split(',') as ('postgres' | 'pglite')[];
  const results: FederationBenchResult[] = [];
  for (const backend of backends) {
    results.push(
      await federationBenchmark({
        backend,
        seconds: Number(flag('seconds') ?? 20),
        deploysPerSecond: Number(flag('rate') ?? 500),
        catchUpEvents: Number(flag('events') ?? 100_000),
        ...(flag('only') === undefined ? {} : { only: flag('only')!.split(',') as ('lag' | 'catch-up')[] }),
        ...(args.includes('--origin-alone') ? { originAlone: true } : {}),
      }),
    );
  }
  printFederationResults(results);
}
