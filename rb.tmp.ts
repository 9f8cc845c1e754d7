import { performance } from 'node:perf_hooks';
import { ArtifactTreeProjection, RepositoryConfigProjection, rebuildProjections } from '@strata/store';
import { openEventsDataset } from './bench/support/databases.ts';
const backend = (process.argv[2] ?? 'postgres') as 'postgres' | 'pglite';
const db = await openEventsDataset(backend, 1_000_000);
const c0 = process.cpuUsage(); const t0 = performance.now();
let marks: string[] = []; let last = '';
const result = await rebuildProjections({ store: db.store, db: db.db, bulk: db.bulk }, [new ArtifactTreeProjection(), new RepositoryConfigProjection()], {
  onProgress: (p) => { if (p.phase !== last) { last = p.phase; marks.push(`${p.phase} ${(p.elapsedMs/1000).toFixed(1)}s cpu ${((process.cpuUsage(c0).user+process.cpuUsage(c0).system)/1e6).toFixed(1)}`); } },
});
console.log(backend, Math.round(result.eventsPerSecond), 'ev/s', marks.join('; '), 'total', ((performance.now()-t0)/1000).toFixed(1));
await db.close();
