/**
 * (H) The history of one path with 10,000 events, on a stream of 100,000 events (PostgreSQL):
 * `SqlEventAudit.pathHistory` for the whole history in one page; the page as the API's JSON,
 * as the history route makes it (`pathHistoryJson` and the envelope; code without it:
 * historyEventJson and JSON.stringify over pathHistory's entries); and the route itself, a
 * GET of the whole history over loopback HTTP by curl (another process, GETs one after the
 * other on a keep-alive connection) from the app built
 * on the same schema (test/support's SQL app, permissive auth): (d) served by this process,
 * (e) by a server process of its own (bench/support/history-server.ts, started with the
 * shipped launcher's malloc setting) — in (d) the route shares its heap, and so its garbage
 * collections, with the bench's other calls (10,000 decoded events and 10,000 driver rows
 * per round of calls), which no deployed server does. Reference: the same 10,000 rows read by
 * revision range (`select … where stream = $1 and revision between …`, the unique index)
 * through the same driver, decoded the same way — what the path index has to get close to.
 * Target: p99 < 100 ms.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import type { NewEvent } from '@strata/core';
import { historyEventJson, SqlEventAudit, type HistoryEntry } from '@strata/store';
import type { FastifyInstance } from 'fastify';
import { openPostgres } from './support/databases.ts';
import { listenHistoryApp, openCheckoutDatabase, type HistoryDatabase } from './support/history-app.ts';
import { log, median, type BenchResult } from './support/report.ts';

const SCHEMA = 'bench_history_v1';
const STREAM = 'repo-history';
const PATH = 'org/app/1.0/app-1.0.jar';
const PATH_EVENTS = 10_000;
const OTHER_EVENTS = 90_000;

export async function historyBenchmark(rounds: number): Promise<BenchResult[]> {
  const database = await openPostgres(SCHEMA, [], 4, { siteId: 'site-a' });
  const closers: (() => Promise<void>)[] = [];
  try {
    const stored = Number((await database.raw('select count(*)::int8 as n from events')).rows[0]!.n);
    if (stored !== PATH_EVENTS + OTHER_EVENTS + 1) {
      log(`history: loading ${(PATH_EVENTS + OTHER_EVENTS).toLocaleString('en-US')} events into ${SCHEMA}`);
      await database.raw('truncate events, streams');
      const events: NewEvent[] = [
        { id: 'h-create', origin: 'site-a', originSeq: 1, hlc: { wall: 1_700_000_000_000, logical: 0 }, meta: { actor: 'admin' }, type: 'RepositoryCreated', data: { key: 'history', config: { rclass: 'local' } } } as NewEvent,
      ];
      // One event on the path in ten, the others spread over 5,000 paths of the same folders.
      for (let index = 0; index < PATH_EVENTS + OTHER_EVENTS; index++) {
        const onPath = index % 10 === 0;
        const path = onPath ? PATH : `org/app/${index % 50}.0/other-${index % 5000}.jar`;
        const base = { id: `h-${index}`, origin: 'site-a', originSeq: index + 2, hlc: { wall: 1_700_000_000_001 + index, logical: 0 }, meta: { actor: index % 3 === 0 ? 'alice' : 'bob' } };
        events.push(
          index % 4 === 0
            ? ({ ...base, type: 'PropertiesSet', data: { path, properties: { build: [String(index)] } } } as NewEvent)
            : ({
                ...base,
                type: 'ArtifactDeployed',
                data: { path, sha256: index.toString(16).padStart(64, '0'), sha1: index.toString(16).padStart(40, '0'), md5: index.toString(16).padStart(32, '0'), size: 1000 + index, mimeType: 'application/java-archive', properties: {} },
              } as NewEvent),
        );
      }
      for (let offset = 0; offset < events.length; offset += 2000) await database.store.append(STREAM, events.slice(offset, offset + 2000));
      await database.raw('vacuum analyze');
    }
    // A baseline to compare in the same run (before/after a change): another checkout's
    // @strata/store entry point, e.g. STRATA_BENCH_BASELINE_STORE=/tmp/main/packages/store/src/index.ts.
    const baselinePath = process.env.STRATA_BENCH_BASELINE_STORE;
    const baseline = baselinePath === undefined ? undefined : ((await import(baselinePath)) as Pick<typeof import('@strata/store'), 'SqlEventAudit' | 'historyEventJson'>);
    type Audit = Pick<SqlEventAudit, 'pathHistory'> & Partial<Pick<SqlEventAudit, 'pathHistoryJson'>>;
    // The route, over HTTP: each checkout's app (as test/support's SQL app builds it, on the
    // bench's store, permissive auth), with that checkout's audit — (d) in this process, (e) in
    // a server process of its own.
    const appOf = async (root: string, on: HistoryDatabase, audit: unknown): Promise<FastifyInstance> => {
      const app = await listenHistoryApp(root, on, audit);
      closers.push(() => app.close());
      return app;
    };
    const serverOf = async (root: string): Promise<{ port: number; pid: number }> => {
      // As the shipped launcher starts a server (packages/cli/bin/strata): its malloc setting.
      const child = spawn(process.execPath, ['--import', 'tsx', new URL('./support/history-server.ts', import.meta.url).pathname, root, SCHEMA], {
        env: { ...process.env, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '131072' },
        // The IPC channel only tells it when this process is gone (killed by a timeout, say).
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      });
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      closers.push(async () => {
        child.kill('SIGTERM');
        await exited;
      });
      // Its port; then whatever else it writes (e.g. NODE_OPTIONS=--trace-gc) goes to stderr,
      // read as it comes so that the server never waits on a full pipe.
      const pid = child.pid;
      if (pid === undefined) throw new Error('history server: not started');
      return new Promise<{ port: number; pid: number }>((resolve, reject) => {
        let output: string | undefined = '';
        const stdout = child.stdout;
        if (stdout === null) throw new Error('history server: no stdout');
        stdout.setEncoding('utf8');
        stdout.on('data', (chunk: string) => {
          if (output === undefined) {
            process.stderr.write(chunk);
            return;
          }
          output += chunk;
          const listening = /listening (\d+)\n/.exec(output);
          if (listening === null) return;
          process.stderr.write(output.slice(listening.index + listening[0].length));
          output = undefined;
          resolve({ port: Number(listening[1]), pid });
        });
        child.once('exit', () => reject(new Error(`history server for ${root} exited: ${output ?? ''}`)));
      });
    };
    // The baseline reads through its own checkout's store (its pool and COPY reader), in this
    // process and in its server: before/after then covers the code from the connection up.
    const baselineRoot = baselinePath?.replace(/\/packages\/store\/src\/index\.ts$/, '');
    const baselineDatabase = baselineRoot === undefined ? undefined : await openCheckoutDatabase(baselineRoot, SCHEMA, false);
    if (baselineDatabase !== undefined) closers.push(() => baselineDatabase.close());
    const variants = [
      { name: '', root: new URL('..', import.meta.url).pathname.replace(/\/$/, ''), database: database as HistoryDatabase, audit: new SqlEventAudit(database.db, { copyOut: database.copyOut }) as Audit, toJson: historyEventJson as (entry: HistoryEntry, siteId: string) => unknown },
      ...(baseline === undefined || baselineDatabase === undefined
        ? []
        : [{ name: 'baseline ', root: baselineRoot!, database: baselineDatabase, audit: new baseline.SqlEventAudit(baselineDatabase.db as never, { copyOut: baselineDatabase.copyOut } as never) as Audit, toJson: baseline.historyEventJson as (entry: HistoryEntry, siteId: string) => unknown }]),
    ];
    if (baseline !== undefined) log(`history: baseline ${baselinePath}`);
    const calls = await Promise.all(variants.map(async (variant) => {
      const history = async () => {
        const page = await variant.audit.pathHistory(STREAM, PATH, { limit: 10_000 });
        if (page.entries.length !== 10_000) throw new Error(`history returned ${page.entries.length} events`);
        return page;
      };
      const app = await appOf(variant.root, variant.database, variant.audit);
      const address = app.server.address();
      const routeUrl = (port: number) => `http://127.0.0.1:${port}/artifactory/api/history/history/${PATH}?limit=10000`;
      const url = routeUrl(typeof address === 'object' && address !== null ? address.port : 0);
      const own = await serverOf(variant.root);
      const ownUrl = routeUrl(own.port);
      return {
        name: variant.name,
        ownUrl,
        ownPid: own.pid,
        /** CPU time the own server process spent on the measured GETs (user + system, /proc). */
        ownServerCpu: { ms: 0, databaseMs: 0, gets: 0 },
        history,
        // As the route makes it: the page rendered as JSON where the code can, in its envelope.
        historyAsJson:
          variant.audit.pathHistoryJson === undefined
            ? async () => JSON.stringify({ repo: 'history', events: (await history()).entries.map((entry) => variant.toJson(entry, 'site-a')) }).length
            : async () => {
                const page = await variant.audit.pathHistoryJson!(STREAM, PATH, { limit: 10_000, siteId: 'site-a' });
                if (page.events !== 10_000) throw new Error(`history returned ${page.events} events`);
                // The route sends the pieces as they are, then hands them back.
                const bytes = [Buffer.from('{"repo":"history","events":'), ...page.eventsJson, Buffer.from('}')].reduce((total, piece) => total + piece.length, 0);
                page.release?.();
                return bytes;
              },
        /**
         * The route: GETs one after the other on one keep-alive connection by one curl process,
         * each timed by curl from the request to the last byte; the first of them is not
         * counted. (A curl started per GET measured the fork instead: node forks the whole
         * bench process for it, and the server then pays copy-on-write page faults while it
         * renders — 270 against 115 ms p50 at load 9.)
         */
        overHttp: async (gets: number, from = url) => {
          const args = ['-s', '-w', '%{http_code} %{size_download} %{time_total}\n'];
          for (let get = 0; get <= gets; get++) args.push('-o', '/dev/null', from);
          const { stdout } = await run('curl', args);
          return stdout
            .trim()
            .split('\n')
            .slice(1)
            .map((line) => {
              const [status, bytes, seconds] = line.split(' ');
              if (status !== '200' || Number(bytes) < 6_000_000) throw new Error(`GET ${from}: ${line}`);
              return Number(seconds) * 1000;
            });
        },
        firstPage: () => variant.audit.pathHistory(STREAM, PATH, { limit: 1000 }),
        /** Every page of 1,000 by cursor, as a client pages through (each page one sample in `pages`). */
        walk: async (into: number[]) => {
          let after: number | undefined;
          let events = 0;
          do {
            const started = performance.now();
            const page = await variant.audit.pathHistory(STREAM, PATH, { limit: 1000, ...(after === undefined ? {} : { afterRevision: after }) });
            into.push(performance.now() - started);
            events += page.entries.length;
            after = page.nextAfterRevision;
          } while (after !== undefined);
          if (events !== PATH_EVENTS + 1) throw new Error(`paging returned ${events} events`);
        },
        samples: { history: [] as number[], json: [] as number[], http: [] as number[], ownServer: [] as number[], firstPage: [] as number[], pages: [] as number[], walk: [] as number[] },
      };
    }));
    // The reference: as many rows by revision range, through the unique (stream, revision) index.
    const reference = async () => {
      const rows = await sql`select position, transaction_id, id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta, prev_hash
        from events where stream = ${STREAM} and revision between 50000 and ${50_000 + PATH_EVENTS - 1} order by revision`.execute(database.db);
      if (rows.rows.length !== PATH_EVENTS) throw new Error('reference read short');
    };
    for (let warm = 0; warm < 3; warm++) {
      for (const call of calls) {
        await call.history();
        await call.historyAsJson();
        await call.overHttp(1);
        await call.overHttp(1, call.ownUrl);
      }
      await reference();
    }
    const referenceSamples: number[] = [];
    /**
     * CPU so far of each PostgreSQL backend of the bench's database but this process's own
     * query client: while an own server's GETs run, nothing else queries this database (the
     * bench waits for curl), so the difference is those GETs' statements.
     */
    const backendsCpuMs = async (): Promise<Map<number, number>> => {
      const { rows } = await database.raw('select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()');
      return new Map(rows.map((row) => [Number(row.pid), processCpuMs(Number(row.pid))]));
    };
    const cpuSince = (before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>) => {
      let ms = 0;
      for (const [pid, now] of after) ms += now - (before.get(pid) ?? 0);
      return ms;
    };
    const time = async (into: number[], run: () => Promise<unknown>) => {
      const started = performance.now();
      await run();
      into.push(performance.now() - started);
    };
    const perRound = 40;
    for (let round = 0; round < rounds; round++) {
      // Where this round's samples start: each round's line gives its own p99s.
      const marks = calls.map((call) => new Map(Object.entries(call.samples).map(([kind, values]) => [kind, values.length])));
      const referenceMark = referenceSamples.length;
      for (let index = 0; index < perRound; index++) {
        await time(referenceSamples, reference);
        for (const call of calls) {
          await time(call.samples.history, call.history);
          await time(call.samples.json, call.historyAsJson);
          // Five GETs every fifth call: as many as the other measurements, in batches.
          if (index % 5 === 0) call.samples.http.push(...(await call.overHttp(5)));
          if (index % 5 === 0) {
            const before = processCpuMs(call.ownPid);
            const backendsBefore = await backendsCpuMs();
            const times = await call.overHttp(5, call.ownUrl);
            call.ownServerCpu.ms += processCpuMs(call.ownPid) - before;
            call.ownServerCpu.databaseMs += cpuSince(backendsBefore, await backendsCpuMs());
            // The batch's first GET (not timed) is served too: six GETs of CPU.
            call.ownServerCpu.gets += times.length + 1;
            call.samples.ownServer.push(...times);
          }
          await time(call.samples.firstPage, call.firstPage);
          if (index % 4 === 0) await time(call.samples.walk, () => call.walk(call.samples.pages));
        }
      }
      for (const [at, call] of calls.entries()) {
        const ofRound = <K extends keyof typeof call.samples>(kind: K) => call.samples[kind].slice(marks[at]!.get(kind));
        log(
          `history round ${round + 1} (its own calls): ${call.name}p99 whole ${percentile(ofRound('history'), 0.99).toFixed(1)} ms, as JSON ${percentile(ofRound('json'), 0.99).toFixed(1)} ms, over HTTP ${percentile(ofRound('http'), 0.99).toFixed(1)} ms, own server ${percentile(ofRound('ownServer'), 0.99).toFixed(1)} ms (CPU so far per GET: server ${(call.ownServerCpu.ms / call.ownServerCpu.gets).toFixed(1)} ms, PostgreSQL ${(call.ownServerCpu.databaseMs / call.ownServerCpu.gets).toFixed(1)} ms), first page ${percentile(ofRound('firstPage'), 0.99).toFixed(1)} ms, any page ${percentile(ofRound('pages'), 0.99).toFixed(1)} ms, all 11 pages ${percentile(ofRound('walk'), 0.99).toFixed(1)} ms, reference ${percentile(referenceSamples.slice(referenceMark), 0.99).toFixed(1)} ms`,
        );
      }
    }
    const note = (values: number[]) => `p50 ${median(values).toFixed(1)} ms, p99 ${percentile(values, 0.99).toFixed(1)} ms`;
    const asRate = (values: number[]) => 1000 / percentile(values, 0.99);
    const referenceRate = asRate(referenceSamples);
    const result = (label: string, values: number[], extra = ''): BenchResult => ({
      benchmark: `history of a 10,000-event path: ${label}`,
      backend: 'postgres',
      measured: { label: 'requests at p99 latency', perSecond: asRate(values) },
      reference: { label: '10,000 rows by revision range', perSecond: referenceRate },
      target: { perSecond: 10 },
      notes: `${note(values)} over ${values.length} calls${extra}; reference ${note(referenceSamples)}; target p99 < 100 ms (10/s at p99)`,
    });
    return calls.flatMap((call) => [
      result(`${call.name}whole history, one page`, call.samples.history),
      result(`${call.name}whole history as API JSON`, call.samples.json),
      result(`${call.name}whole history over HTTP (the route, curl)`, call.samples.http),
      result(`${call.name}whole history over HTTP, server in its own process`, call.samples.ownServer, `; CPU per GET: server ${(call.ownServerCpu.ms / call.ownServerCpu.gets).toFixed(1)} ms, PostgreSQL ${(call.ownServerCpu.databaseMs / call.ownServerCpu.gets).toFixed(1)} ms`),
      result(`${call.name}first page of 1,000`, call.samples.firstPage),
      result(`${call.name}any page of 1,000 (paging by cursor)`, call.samples.pages),
      result(`${call.name}all 11 pages of 1,000, one after the other`, call.samples.walk),
    ]);
  } finally {
    for (const close of closers.reverse()) await close();
    await database.close();
  }
}

const run = promisify(execFile);

/** User + system CPU time of a process so far (/proc/<pid>/stat, in clock ticks of 10 ms). */
function processCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return 0; // gone
  }
  // After the command name (in parentheses, which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function percentile(values: readonly number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)]!;
}
