#!/usr/bin/env node
// The workspace ships TypeScript sources. Running them through tsx's loader hooks costs about
// 1.5 s of start-up on Node 20 (every module, node_modules included, is resolved through the
// hooks thread), so the launcher bundles packages/*/src once with esbuild (tsx's own
// dependency) into node_modules/.cache/strata/, keyed by the sources' sizes and mtimes, and
// runs plain JavaScript (@strata/store/bundle-cache, shared with the rebuild worker's entry);
// dependencies stay external and load natively. If bundling is not possible it falls back to
// tsx. STRATA_NO_BUNDLE=1 forces the tsx path.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleOnce, workspaceRoot, workspacePackages } from '@strata/store/bundle-cache';

// A deploy makes several blocking file-system calls (open, write, fsync, rename, directory
// fsync) on libuv's threadpool; with its default 4 threads, 16 concurrent deploys queue behind
// one another's fsyncs. The size is read when the pool first starts, so set it before any
// asynchronous fs or crypto call; an operator's own setting wins.
process.env.UV_THREADPOOL_SIZE ??= '32';

const entry = join(workspaceRoot, 'packages/cli/src/main.ts');

/** The bundle of the CLI (keyed by every package's sources), or undefined for the tsx path. */
async function bundled() {
  if (process.env.STRATA_NO_BUNDLE === '1') return undefined;
  return bundleOnce({ entry, name: 'strata', packages: workspacePackages() });
}

let target;
try {
  target = await bundled();
} catch (error) {
  process.stderr.write(`strata: bundling failed, running through tsx (${error instanceof Error ? error.message.split('\n')[0] : String(error)})\n`);
}
if (target !== undefined) {
  process.setSourceMapsEnabled?.(true);
  await import(pathToFileURL(target).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(entry).href);
}
