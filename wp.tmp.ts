import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ArtifactTreeFold } from '@strata/core';
import { decodeEventCopy } from './packages/store/src/event-copy-reader.ts';
import { pgliteBulkLoader, writeArtifactTreeModel } from '@strata/store';
const file = readFileSync('/work/tmp-coreperf/events300k.bin');
async function* chunks() { yield file; }
const fold = new ArtifactTreeFold();
for await (const page of decodeEventCopy(chunks(), 10000)) for (const e of page.events) fold.apply(e);
let bytes = 0;
const fake = { query: async (_q: string, _p?: unknown[], o?: { blob?: Blob }) => { bytes += o?.blob?.size ?? 0; return {}; } };
let copyFn: any;
await pgliteBulkLoader(fake, { transaction: () => ({ execute: (f: any) => f(undefined) }) } as any).transaction(async (_tx, copy) => { copyFn = copy; });
for (let r = 0; r < 3; r++) {
  const t0 = performance.now(); bytes = 0;
  const rows = await writeArtifactTreeModel(undefined as any, fold, 10000, undefined, copyFn);
  console.log('write', rows, bytes, (performance.now() - t0).toFixed(0), 'ms');
}
