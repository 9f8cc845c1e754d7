// @ts-check
// The entry of a rebuild worker (projections/rebuild-workers.ts starts it; the package's
// `./rebuild-worker-thread` export, resolved as pglite-worker-thread.mjs is, so the CLI's
// bundle finds it too). The worker's code is TypeScript (projections/rebuild-worker-main.ts:
// the scan decoder, core's fold, the binary COPY encoder). A worker starts without the
// parent's tsx hooks, so this file loads a bundle of rebuild-worker-main.ts made once by
// bundle-cache.mjs (keyed by core's and store's sources), as the CLI's launcher does.
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundleOnce } from './bundle-cache.mjs';

const entry = fileURLToPath(new URL('./projections/rebuild-worker-main.ts', import.meta.url));
await import(pathToFileURL(await bundleOnce({ entry, name: 'rebuild-worker', packages: ['core', 'store'] })).href);
