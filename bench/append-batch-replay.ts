/**
 * The backend's CPU per one-round-trip append batch, replayed (docs/benchmarks.md, A): resolves
 * ±0.03 ms of PostgreSQL CPU per batch where appends/s, at this machine's load, cannot. For each
 * store entry point given (another checkout's `packages/store/src/index.ts` for a before/after):
 *
 * 1. a database of its own, the `append` benchmark's traffic appended by 16 writers through that
 *    store (its append transactions on a pool whose clients note what they send: the `prepare`s
 *    and the batches' simple queries);
 * 2. one more batch of 16 appends, whose one-round-trip text (`begin`, locks, the guess's check,
 *    insert, the projections' writes, `commit`) is taken and sent with `rollback` instead of
 *    `commit` — the store retries those appends, which fail the same way and are left unwritten,
 *    so the database stays as the traffic left it and the batch's guess holds on it;
 * 3. that text replayed on one connection of its own (the same statements prepared first), again
 *    and again, its backend's CPU read from /proc/<pid>/schedstat (nanoseconds) around each replay.
 *
 * The entry points' replays are interleaved iteration by iteration. Not a target's benchmark: a
 * tool for before/after pairs of the append's statements (run under the bench lock).
 *
 *   DATABASE_URL=… node --import tsx bench/append-batch-replay.ts [events=4000] [replays=300] [entry point …]
 *
 * REPLAY_DATABASE names the databases it drops and creates (append_batch_replay_<n>).
 * REPLAY_PREFIXES=1 also replays, interleaved with the whole batch, each prefix of it (`begin`, its
 * first k statements, `rollback`): the differences are each statement's own CPU (the first entry
 * point's batch only; its statements are split at the `;\n` the store joins them with).
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { recreateDatabase } from './support/databases.ts';
import { artifactTraffic, repositoryCreations, type BenchEvent } from './support/events.ts';
import { median } from './support/report.ts';

const base = process.env.DATABASE_URL ?? 'postgres://strata:strata@127.0.0.1:5432/strata_bench';
const databasePrefix = process.env.REPLAY_DATABASE ?? 'append_batch_replay';
const total = Number(process.argv[2] ?? 4000);
const replays = Number(process.argv[3] ?? 300);
const entryPoints = process.argv.length > 4 ? process.argv.slice(4) : ['@strata/store'];
const writers = 16;
const warmReplays = 20;
/** Most batches sent with `rollback` before giving up on a one-round-trip text (a guess that failed goes in two). */
const captureAttemptsMax = 5;

interface Captured {
  readonly entry: string;
  readonly url: string;
  /** `prepare strata_append_N as …`, in the order the store's connections sent them (distinct). */
  readonly prepares: readonly string[];
  /** The batch as sent, `commit` replaced by `rollback`. */
  readonly batch: string;
}

async function appendAll(store: { append(stream: string, events: readonly BenchEvent['event'][]): Promise<unknown> }, traffic: readonly BenchEvent[]): Promise<number> {
  let next = 0;
  let refused = 0;
  await Promise.all(
    Array.from({ length: writers }, async () => {
      for (let entry = traffic[next++]; entry !== undefined; entry = traffic[next++]) {
        await store.append(entry.stream, [entry.event]).catch(() => refused++);
      }
    }),
  );
  return refused;
}

async function capture(entry: string, index: number): Promise<Captured> {
  const url = await recreateDatabase(`${databasePrefix}_${index}`, base);
  const module = (await import(entry)) as typeof import('@strata/store');
  const prepares = new Map<string, string>();
  /** Set for the last batch: the next one-round-trip text is taken, and rolled back instead of committed. */
  let intercept = false;
  let taken: string | undefined;
  const pool = new pg.Pool({ connectionString: url, max: writers });
  const noted = new WeakSet<pg.PoolClient>();
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  (pool as unknown as { connect: () => Promise<pg.PoolClient> }).connect = async () => {
    const client = await connect();
    if (!noted.has(client)) {
      noted.add(client);
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const [text] = args;
        if (typeof text === 'string') {
          if (text.startsWith('prepare ')) prepares.set(text.slice(0, text.indexOf(' as ')), text);
          // Every commit is turned into a rollback meanwhile (the store's retries of the batch too,
          // which would otherwise commit its appends one by one and move the state on).
          if (intercept && text.endsWith(';\ncommit')) {
            const rolledBack = `${text.slice(0, -'commit'.length)}rollback`;
            if (text.startsWith('begin;')) taken ??= rolledBack;
            return query(rolledBack, ...args.slice(1));
          }
        }
        return query(...args);
      };
    }
    return client;
  };
  const opened = await module.openEventStore({
    databaseUrl: url,
    projections: [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()],
    store: { appendTransactions: module.pgAppendTransactions(pool), appendOneRoundTrip: true },
  });
  try {
    for (const { stream, event } of repositoryCreations()) await opened.store.append(stream, [event]);
    await appendAll(opened.store, [...artifactTraffic(writers * 20, { idPrefix: 'warm-', seed: 7 })]);
    await appendAll(opened.store, [...artifactTraffic(total, { idPrefix: 'r-', seed: 100 })]);
    for (let attempt = 0; attempt < captureAttemptsMax && taken === undefined; attempt++) {
      // The streams' rows this store guesses from, as its last commits left them (a failed batch forgets its streams').
      if (attempt > 0) await appendAll(opened.store, [...artifactTraffic(writers * 4, { idPrefix: `again${attempt}-`, seed: 300 + attempt })]);
      intercept = true;
      await appendAll(opened.store, [...artifactTraffic(writers, { idPrefix: `last${attempt}-`, seed: 200 + attempt })]);
      intercept = false;
    }
  } finally {
    await opened.close();
    await pool.end();
  }
  if (taken === undefined) throw new Error(`${entry}: no one-round-trip batch in ${captureAttemptsMax} attempts`);
  return { entry, url, prepares: [...prepares.values()], batch: taken };
}

const captured: Captured[] = [];
for (const [index, entry] of entryPoints.entries()) captured.push(await capture(entry, index));

interface Replayer {
  readonly captured: Captured;
  /** The text replayed: the batch, or a prefix of it (REPLAY_PREFIXES). */
  readonly text: string;
  readonly label: string;
  readonly client: pg.Client;
  readonly pid: number;
  readonly cpu: number[];
  readonly wall: number[];
}
const replayers: Replayer[] = [];
for (const item of captured) {
  const client = new pg.Client({ connectionString: item.url });
  await client.connect();
  const pid = (await client.query('select pg_backend_pid() as pid')).rows[0].pid as number;
  for (const prepare of item.prepares) await client.query(prepare);
  replayers.push({ captured: item, text: item.batch, label: item.entry, client, pid, cpu: [], wall: [] });
}
if (process.env.REPLAY_PREFIXES === '1') {
  const first = replayers[0]!;
  const parts = first.captured.batch.split(';\n');
  if (parts[0] !== 'begin' || parts.at(-1) !== 'rollback') throw new Error('the batch does not begin and roll back as expected');
  for (let statements = 1; statements < parts.length - 2; statements++) {
    const prefix = parts.slice(1, 1 + statements);
    const last = prefix.at(-1)!;
    replayers.push({ ...first, text: ['begin', ...prefix, 'rollback'].join(';\n'), label: `prefix of ${statements} (… ${last.slice(0, 60).replace(/\s+/g, ' ')})`, cpu: [], wall: [] });
  }
}
const cpuOf = (pid: number): number => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
for (let iteration = 0; iteration < warmReplays + replays; iteration++) {
  for (const replayer of replayers) {
    const cpuBefore = cpuOf(replayer.pid);
    const started = performance.now();
    const results = (await replayer.client.query(replayer.text)) as unknown as pg.QueryResult[];
    const wall = performance.now() - started;
    const cpu = cpuOf(replayer.pid) - cpuBefore;
    if (results.at(-1)?.command !== 'ROLLBACK') throw new Error(`${replayer.label}: the replayed batch did not end in its rollback`);
    if (iteration >= warmReplays) {
      replayer.cpu.push(cpu);
      replayer.wall.push(wall);
    }
  }
}
const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const quantile = (values: readonly number[], q: number) => [...values].sort((a, b) => a - b)[Math.floor(q * (values.length - 1))]!;
const clients = new Set<pg.Client>();
for (const replayer of replayers) {
  const { batch, prepares } = replayer.captured;
  console.log(
    `${replayer.label}: backend CPU per batch median ${median(replayer.cpu).toFixed(3)} ms (p10 ${quantile(replayer.cpu, 0.1).toFixed(3)}, mean ${(replayer.cpu.reduce((a, b) => a + b, 0) / replayer.cpu.length).toFixed(3)}), ` +
      `wall median ${median(replayer.wall).toFixed(3)} ms (p10 ${quantile(replayer.wall, 0.1).toFixed(3)}); ${replays} replays of one batch ` +
      `(${batch.split(';\n').length} statements, ${batch.length.toLocaleString('en-US')} characters, ${prepares.length} prepared); load ${load}`,
  );
  clients.add(replayer.client);
}
for (const client of clients) await client.end();
