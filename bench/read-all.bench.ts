/**
 * (C) Reading the whole global order: `readAll` page by page from the start, every event
 * decoded, against one raw `select * from events` of the same table through the same driver.
 */
import { performance } from 'node:perf_hooks';
import { START_CHECKPOINT, type Checkpoint } from '@strata/store';
import { openEventsDataset } from './support/databases.ts';
import { log, median, type BenchResult } from './support/report.ts';

export async function readAllBenchmark(backend: 'postgres' | 'pglite', count: number, rounds: number): Promise<BenchResult> {
  const database = await openEventsDataset(backend, count);
  try {
    const measured: number[] = [];
    const reference: number[] = [];
    for (let round = 0; round < rounds; round++) {
      // Alternating which goes first; neither keeps what it read (a big live heap slows the other's GC).
      const rawSelect = async () => {
        const started = performance.now();
        const rows = (await database.raw('select * from events')).rows.length;
        reference.push((rows * 1000) / (performance.now() - started));
        return rows;
      };
      const readAll = async () => {
        const started = performance.now();
        let events = 0;
        let checkpoint: Checkpoint = START_CHECKPOINT;
        for (;;) {
          const page = await database.store.readAll({ after: checkpoint });
          if (page.events.length === 0) break;
          events += page.events.length;
          checkpoint = page.checkpoint;
        }
        measured.push((events * 1000) / (performance.now() - started));
        return events;
      };
      const [first, second] = round % 2 === 0 ? [rawSelect, readAll] : [readAll, rawSelect];
      const counts = [await first(), await second()];
      if (counts[0] !== counts[1]) throw new Error(`readAll and the raw select disagree: ${counts.join(' vs ')} rows`);
      log(`read-all ${backend} round ${round + 1}: readAll ${Math.round(measured.at(-1)!)}/s, raw select ${Math.round(reference.at(-1)!)}/s`);
    }
    return {
      benchmark: `read-all ${count.toLocaleString('en-US')}`,
      backend,
      measured: { label: 'readAll decoded', perSecond: median(measured) },
      reference: { label: 'raw select *', perSecond: median(reference) },
      target: { ratio: 0.8 },
      notes: `median of ${rounds} rounds, interleaved`,
      roundRatios: measured.map((rate, round) => rate / reference[round]!),
    };
  } finally {
    await database.close();
  }
}
