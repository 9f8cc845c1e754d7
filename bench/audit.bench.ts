/**
 * (V) `strata verify`: SqlEventAudit.verify over every stream of the data set (site chain
 * and origin chains, in SQL), against a reference scan that hashes every row once in SQL
 * (`sum(length(sha256(data || meta)))`) — the floor of any verifier that reads each event.
 * Target: ≥ 200,000 events/s.
 *
 * (R) `strata replay`: replayAll (every projection rebuilt from zero) and replayRepository
 * (one of the ten repositories), against readAll from the start (every event read and
 * decoded, nothing folded). Target: ≥ 100,000 events/s.
 *
 * Data set: the Maven-like traffic of the other benchmarks, loaded once into its own schema
 * or directory (`bench_audit2_events_v1_<N>`) by a store with site id `site-a`, with originSeq
 * renumbered gapless per stream and origin, so about half of the events carry an origin chain.
 */
import { performance } from 'node:perf_hooks';
import { ArtifactTreeProjection, RepositoryConfigProjection, SqlEventAudit, replayAll, replayRepository } from '@strata/store';
import { benchWorkers } from './rebuild.bench.ts';
import { eventsDatasetName, openBaselinePostgres, openEventsDataset } from './support/databases.ts';
import { BENCH_REPOSITORIES } from './support/events.ts';
import { log, median, type BenchResult } from './support/report.ts';

const datasetOptions = { prefix: 'bench_audit2_events', siteId: 'site-a', gaplessOriginSeq: true } as const;

export async function verifyBenchmark(backend: 'postgres' | 'pglite', events: number, rounds: number): Promise<BenchResult[]> {
  const database = await openEventsDataset(backend, events, datasetOptions);
  try {
    // A baseline to compare in the same run (before/after a change): another checkout's
    // @strata/store entry point, e.g. STRATA_BENCH_BASELINE_STORE=/tmp/main/packages/store/src/index.ts.
    const baselinePath = process.env.STRATA_BENCH_BASELINE_STORE;
    const baseline = baselinePath === undefined ? undefined : ((await import(baselinePath)) as Pick<typeof import('@strata/store'), 'SqlEventAudit'>);
    const variants: { name: string; audit: Pick<SqlEventAudit, 'verify'>; rates: number[] }[] = [
      // As `strata verify` runs it: on PostgreSQL one pass in three ranges of the table copied
      // out side by side (the statements alone when a chain needs them).
      { name: 'verify', audit: new SqlEventAudit(database.db, { verifyConnectionsMax: backend === 'postgres' ? 3 : 1, copyOut: database.copyOut }), rates: [] },
      // The other checkout's verify as its `strata verify` ran it (three connections on PostgreSQL).
      ...(baseline === undefined
        ? []
        : [{ name: 'baseline verify', audit: new baseline.SqlEventAudit(database.db as never, { verifyConnectionsMax: backend === 'postgres' ? 3 : 1 }) as Pick<SqlEventAudit, 'verify'>, rates: [] }]),
    ];
    if (baseline !== undefined) log(`verify: baseline ${baselinePath}`);
    const reference: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let started = performance.now();
      const scanned = await database.raw('select count(*)::int8 as n, sum(length(sha256(data || meta)))::int8 as bytes from events');
      const count = Number(scanned.rows[0]!.n);
      reference.push((count * 1000) / (performance.now() - started));
      // Before and after take turns at going first.
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        started = performance.now();
        const result = await variant.audit.verify();
        variant.rates.push((result.events * 1000) / (performance.now() - started));
        if (result.breaks.length > 0) throw new Error(`verify found ${result.breaks.length} breaks in an untouched data set: ${result.breaks[0]!.message}`);
        log(`verify round ${round + 1} (${backend}): ${variant.name} ${Math.round(variant.rates.at(-1)!)} events/s (${result.events} events, ${result.originChained} origin-chained)`);
      }
      log(`verify round ${round + 1} (${backend}): hashing scan ${Math.round(reference.at(-1)!)} rows/s`);
    }
    return variants.map((variant) => ({
      benchmark: `strata ${variant.name}, ${events.toLocaleString('en-US')} events`,
      backend,
      measured: { label: variant.name, perSecond: median(variant.rates) },
      reference: { label: 'scan hashing each row', perSecond: median(reference) },
      target: { perSecond: 200_000 },
      notes: `median of ${rounds} rounds; per round ${variant.rates.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
      roundRatios: variant.rates.map((rate, round) => rate / reference[round]!),
    }));
  } finally {
    await database.close();
  }
}

export async function replayBenchmark(backend: 'postgres' | 'pglite', events: number, rounds: number): Promise<BenchResult[]> {
  const database = await openEventsDataset(backend, events, datasetOptions);
  const projections = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
  // Before/after in one run (PostgreSQL): STRATA_BENCH_BASELINE_STORE, see openBaselinePostgres.
  const baseline = backend === 'postgres' ? await openBaselinePostgres(eventsDatasetName(events, datasetOptions.prefix)) : undefined;
  if (baseline !== undefined) log(`replay: baseline ${baseline.path}`);
  const baselineAll: number[] = [];
  try {
    const source = { store: database.store, db: database.db, bulk: database.bulk };
    const all: number[] = [];
    const one: number[] = [];
    const wiped: number[] = [];
    const baselineOne: number[] = [];
    const half: number[] = [];
    const reads: number[] = [];
    // `--until` the middle of the global order (a position): half the events kept, the read
    // ending at the first event past it.
    const middle = BigInt(String((await database.raw(`select position from events order by position offset ${Math.floor(events / 2)} limit 1`)).rows[0]!.position));
    let oneEvents = 0;
    for (let round = 0; round < rounds; round++) {
      const started = performance.now();
      let read = 0;
      let after;
      for (;;) {
        const page = await database.store.readAll(after === undefined ? {} : { after });
        if (page.events.length === 0) break;
        read += page.events.length;
        after = page.checkpoint;
      }
      reads.push((read * 1000) / (performance.now() - started));
      const halfway = await replayAll(source, projections(), { until: { kind: 'position', position: middle } });
      half.push(halfway.eventsPerSecond);
      const replayBaseline = async () => {
        if (baseline === undefined) return;
        const { module, opened } = baseline;
        const result = await module.replayAll({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()]);
        baselineAll.push(result.eventsPerSecond);
        log(`replay round ${round + 1} (${backend}): baseline all ${Math.round(result.eventsPerSecond)} events/s (${result.events} events)`);
      };
      if (round % 2 === 1) await replayBaseline();
      const whole = await replayAll(source, projections(), benchWorkers());
      all.push(whole.eventsPerSecond);
      if (round % 2 === 0) await replayBaseline();
      const repo = BENCH_REPOSITORIES[0]!;
      const replayBaselineRepository = async () => {
        if (baseline === undefined) return;
        const { module, opened } = baseline;
        const result = await module.replayRepository({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()], repo);
        baselineOne.push(result.eventsPerSecond);
        log(`replay round ${round + 1} (${backend}): baseline one repository ${Math.round(result.eventsPerSecond)} events/s (${result.events} events)`);
      };
      if (round % 2 === 1) await replayBaselineRepository();
      // The repository as the replay above left it: intact (the usual case of `replay --repo`).
      const repository = await replayRepository(source, projections(), repo);
      one.push(repository.eventsPerSecond);
      oneEvents = repository.events;
      if (round % 2 === 0) await replayBaselineRepository();
      // The worst case: every row of the repository gone (deleted outside the measurement).
      for (const table of ['artifacts', 'folder_tombstones', 'artifact_properties']) await database.raw(`delete from ${table} where repo = $1`, [repo]);
      const rewritten = await replayRepository(source, projections(), repo);
      wiped.push(rewritten.eventsPerSecond);
      log(
        `replay round ${round + 1} (${backend}): all ${Math.round(all.at(-1)!)} events/s (${whole.events} events), until the middle ${Math.round(half.at(-1)!)} events/s (${halfway.events} events), one repository ${Math.round(one.at(-1)!)} events/s (${repository.events} events, ${repository.rowsChanged ?? '?'} rows changed), one repository with its rows deleted ${Math.round(wiped.at(-1)!)} events/s (${rewritten.rowsChanged ?? '?'} rows changed), readAll ${Math.round(reads.at(-1)!)} events/s`,
      );
    }
    const readAll = { label: 'readAll from the start', perSecond: median(reads) };
    return [
      {
        benchmark: `strata replay, all ${events.toLocaleString('en-US')} events`,
        backend,
        measured: { label: 'replay all', perSecond: median(all) },
        reference: readAll,
        target: { perSecond: 100_000 },
        notes: `median of ${rounds} rounds; per round ${all.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
        roundRatios: all.map((rate, round) => rate / reads[round]!),
      },
      ...(baseline === undefined
        ? []
        : [
            {
              benchmark: `baseline strata replay, all ${events.toLocaleString('en-US')} events`,
              backend,
              measured: { label: 'baseline replay all', perSecond: median(baselineAll) },
              reference: readAll,
              target: { perSecond: 100_000 },
              notes: `median of ${rounds} rounds; per round ${baselineAll.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
              roundRatios: baselineAll.map((rate, round) => rate / reads[round]!),
            },
          ]),
      {
        benchmark: `strata replay --until <the middle position>`,
        backend,
        measured: { label: 'replay all up to a position', perSecond: median(half) },
        reference: readAll,
        target: { perSecond: 100_000 },
        notes: `median of ${rounds} rounds; events kept per second of the whole replay`,
        roundRatios: half.map((rate, round) => rate / reads[round]!),
      },
      {
        benchmark: `strata replay --repo (${oneEvents.toLocaleString('en-US')} events)`,
        backend,
        measured: { label: 'replay one repository', perSecond: median(one) },
        reference: readAll,
        target: { perSecond: 100_000 },
        notes: `median of ${rounds} rounds; the repository intact (rows compared, none rewritten); per round ${one.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
        roundRatios: one.map((rate, round) => rate / reads[round]!),
      },
      {
        benchmark: `strata replay --repo (${oneEvents.toLocaleString('en-US')} events), its rows deleted first`,
        backend,
        measured: { label: 'replay one wiped repository', perSecond: median(wiped) },
        reference: readAll,
        target: { perSecond: 100_000 },
        notes: `median of ${rounds} rounds; every row written; per round ${wiped.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
        roundRatios: wiped.map((rate, round) => rate / reads[round]!),
      },
      ...(baseline === undefined
        ? []
        : [
            {
              benchmark: `baseline strata replay --repo (${oneEvents.toLocaleString('en-US')} events)`,
              backend,
              measured: { label: 'baseline replay one repository', perSecond: median(baselineOne) },
              reference: readAll,
              target: { perSecond: 100_000 },
              notes: `median of ${rounds} rounds; per round ${baselineOne.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
              roundRatios: baselineOne.map((rate, round) => rate / reads[round]!),
            },
          ]),
    ];
  } finally {
    await baseline?.opened.close();
    await database.close();
  }
}

/**
 * (R) `strata replay --repo` on its own (`npm run bench -- replay-repo`): replayRepository of
 * one intact repository, and with STRATA_BENCH_BASELINE_STORE the baseline's, in pairs whose
 * order alternates by round — no replay of everything right before each, as in `replay`,
 * where the first replay after that swap paid for the freshly written tables (autovacuum,
 * hint bits) and the pairs moved by a third either way (docs/benchmarks.md, R). The projection
 * tables are rebuilt once first only if the repository has no rows, then vacuumed; each side
 * replays once unmeasured (JIT). Reference: the repository's stream read by readStream
 * (every event decoded, nothing folded) in the same round.
 */
export async function replayRepositoryBenchmark(backend: 'postgres' | 'pglite', events: number, rounds: number): Promise<BenchResult[]> {
  const database = await openEventsDataset(backend, events, datasetOptions);
  const projections = () => [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
  const baseline = backend === 'postgres' ? await openBaselinePostgres(eventsDatasetName(events, datasetOptions.prefix)) : undefined;
  if (baseline !== undefined) log(`replay-repo: baseline ${baseline.path}`);
  const repo = BENCH_REPOSITORIES[0]!;
  try {
    const source = { store: database.store, db: database.db, bulk: database.bulk };
    const rows = Number((await database.raw('select count(*)::int8 as n from artifacts where repo = $1', [repo])).rows[0]!.n);
    if (rows === 0) {
      log(`replay-repo (${backend}): no rows for ${repo}: every projection rebuilt first (not measured)`);
      await replayAll(source, projections());
    }
    if (backend === 'postgres') await database.raw('vacuum (analyze) artifacts, folder_tombstones, artifact_properties');
    const variants: { name: string; rates: number[]; changed: number[]; replay: () => Promise<{ eventsPerSecond: number; events: number; rowsChanged?: number }> }[] = [
      { name: 'this code', rates: [], changed: [], replay: () => replayRepository(source, projections(), repo) },
    ];
    if (baseline !== undefined) {
      const { module, opened } = baseline;
      variants.push({
        name: 'baseline',
        rates: [],
        changed: [],
        replay: () => module.replayRepository({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()], repo),
      });
    }
    for (const variant of variants) await variant.replay();
    const reads: number[] = [];
    let repositoryEvents = 0;
    for (let round = 0; round < rounds; round++) {
      const started = performance.now();
      let read = 0;
      for (;;) {
        const page = await database.store.readStream(`repo-${repo}`, { fromRevision: read });
        if (page.length === 0) break;
        read += page.length;
      }
      reads.push((read * 1000) / (performance.now() - started));
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        const result = await variant.replay();
        variant.rates.push(result.eventsPerSecond);
        variant.changed.push(result.rowsChanged ?? -1);
        repositoryEvents = result.events;
        log(`replay-repo round ${round + 1} (${backend}): ${variant.name} ${Math.round(result.eventsPerSecond)} events/s (${result.events} events, ${result.rowsChanged ?? '?'} rows changed)`);
      }
      log(`replay-repo round ${round + 1} (${backend}): readStream ${Math.round(reads.at(-1)!)} events/s (${read} events)`);
    }
    const reference = { label: `readStream of repo-${repo}`, perSecond: median(reads) };
    return variants.map((variant) => ({
      benchmark: `${variant.name === 'baseline' ? 'baseline ' : ''}strata replay --repo on its own (${repositoryEvents.toLocaleString('en-US')} events)`,
      backend,
      measured: { label: `${variant.name === 'baseline' ? 'baseline ' : ''}replay one repository`, perSecond: median(variant.rates) },
      reference,
      target: { perSecond: 100_000 },
      notes: `median of ${rounds} rounds, the pair's order alternating; the repository intact (rows changed per round ${variant.changed.join(', ')}); per round ${variant.rates.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
      roundRatios: variant.rates.map((rate, round) => rate / reads[round]!),
    }));
  } finally {
    await baseline?.opened.close();
    await database.close();
  }
}
