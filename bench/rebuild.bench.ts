/**
 * (B) Rebuilding the artifact tree (and repository config) from zero over `count` events
 * (read + decode + fold + bulk write + index build), against an absolute target. The
 * reference is what plain batched INSERTs of artifact rows (1000 rows per unnest statement,
 * one transaction) reach on the same database in the same run.
 */
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { ARTIFACT_COLUMNS, ArtifactTreeProjection, RepositoryConfigProjection, rebuildProjections } from '@strata/store';
import { countTable, eventsDatasetName, openBaselinePostgres, openEventsDataset, type BenchDatabase } from './support/databases.ts';
import { log, median, type BenchResult } from './support/report.ts';

const TARGETS = { postgres: 100_000, pglite: 30_000 } as const;
const referenceRows = 200_000;
const referenceChunkRows = 1000;

export async function rebuildBenchmark(backend: 'postgres' | 'pglite', count: number, rounds: number): Promise<BenchResult[]> {
  const database = await openEventsDataset(backend, count);
  // Before/after in one run (PostgreSQL): STRATA_BENCH_BASELINE_STORE, see openBaselinePostgres.
  const baseline = backend === 'postgres' ? await openBaselinePostgres(eventsDatasetName(count)) : undefined;
  if (baseline !== undefined) log(`rebuild: baseline ${baseline.path}`);
  try {
    const variants = [
      {
        name: 'rebuild',
        rates: [] as number[],
        run: (onProgress: (progress: { phase: string; elapsedMs: number }) => void) =>
          rebuildProjections({ store: database.store, db: database.db, bulk: database.bulk }, [new ArtifactTreeProjection(), new RepositoryConfigProjection()], { onProgress, ...benchWorkers() }),
      },
      ...(baseline === undefined
        ? []
        : [
            {
              name: 'baseline rebuild',
              rates: [] as number[],
              run: (onProgress: (progress: { phase: string; elapsedMs: number }) => void) => {
                const { module, opened } = baseline;
                return module.rebuildProjections({ store: opened.store, db: opened.db, bulk: opened.bulk }, [new module.ArtifactTreeProjection(), new module.RepositoryConfigProjection()], { onProgress });
              },
            },
          ]),
    ];
    const reference: number[] = [];
    let phases = '';
    for (let round = 0; round < rounds; round++) {
      reference.push(await plainInsertRate(database));
      // Alternate which variant goes first from round to round.
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        const marks: string[] = [];
        let lastPhase = '';
        const result = await variant.run((progress) => {
          if (progress.phase === lastPhase) return;
          lastPhase = progress.phase;
          marks.push(`${progress.phase} from ${(progress.elapsedMs / 1000).toFixed(1)} s`);
        });
        variant.rates.push(result.eventsPerSecond);
        phases = `${marks.join(', ')}; ${result.rows.toLocaleString('en-US')} rows (${(await countTable(database.db, 'artifacts')).toLocaleString('en-US')} artifacts)`;
        log(`${variant.name} ${backend} round ${round + 1}: ${Math.round(result.eventsPerSecond)} events/s (${phases}); plain inserts ${Math.round(reference.at(-1)!)} rows/s`);
      }
    }
    return variants.map((variant) => ({
      benchmark: `${variant.name} ${count.toLocaleString('en-US')}`,
      backend,
      measured: { label: `${variant.name} events`, perSecond: median(variant.rates) },
      reference: { label: 'plain batched INSERT rows', perSecond: median(reference) },
      target: { perSecond: TARGETS[backend] },
      notes: `median of ${rounds} rounds; per round ${variant.rates.map((rate) => Math.round(rate).toLocaleString('en-US')).join(', ')} events/s`,
      roundRatios: variant.rates.map((rate, round) => rate / reference[round]!),
    }));
  } finally {
    await baseline?.opened.close();
    await database.close();
  }
}

/** Rows/s of plain batched INSERTs into a scratch table shaped like artifacts (primary key only). */
async function plainInsertRate(database: BenchDatabase): Promise<number> {
  const { db } = database;
  await sql`drop table if exists bench_insert_reference`.execute(db);
  await sql`create table bench_insert_reference (like artifacts including defaults including constraints)`.execute(db);
  const started = performance.now();
  await db.transaction().execute(async (tx) => {
    for (let start = 0; start < referenceRows; start += referenceChunkRows) {
      const rows: unknown[][] = [];
      for (let index = start; index < start + referenceChunkRows; index++) {
        const wall = 1_700_000_000_000 + index;
        const folder = `org/group${index % 200}/artifact${index % 50}/${index}.0`;
        const id = `ev-${index}`;
        rows.push([
          `libs-${index % 10}`, `${folder}/a-${index}.jar`, folder, `a-${index}.jar`, true,
          index.toString(16).padStart(64, '0'), index.toString(16).padStart(40, '0'), index.toString(16).padStart(32, '0'),
          1000 + index, 'application/java-archive', null, wall, 'alice', wall, 'alice', wall, 0, 'site-a', id,
          wall, 0, 'site-a', id, 'alice', null, null, null,
        ]);
      }
      const arrays = ARTIFACT_COLUMNS.map(([, type], column) => sql`${rows.map((row) => row[column])}::${sql.raw(type)}[]`);
      await sql`insert into bench_insert_reference (${sql.join(ARTIFACT_COLUMNS.map(([name]) => sql.id(name)))})
        select * from unnest(${sql.join(arrays)})`.execute(tx);
    }
  });
  const rate = (referenceRows * 1000) / (performance.now() - started);
  await sql`drop table bench_insert_reference`.execute(db);
  return rate;
}

/**
 * STRATA_REBUILD_WORKERS (as `strata replay` reads it): the worker threads of the code
 * measured (the baseline runs as its code does); unset: the store's default.
 */
export function benchWorkers(): { workers?: number; readByStream?: boolean } {
  const text = process.env.STRATA_REBUILD_WORKERS;
  // STRATA_BENCH_REBUILD_BY_STREAM=1: the read by group of streams (RebuildOptions.readByStream, off by default).
  const byStream = process.env.STRATA_BENCH_REBUILD_BY_STREAM === '1' ? { readByStream: true } : {};
  return text === undefined || text === '' ? byStream : { workers: Number(text), ...byStream };
}
