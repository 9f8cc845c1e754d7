#!/usr/bin/env node
// The workspace ships TypeScript sources. Running them through tsx's loader hooks costs about
// 1.5 s of start-up on Node 20 (every module, node_modules included, is resolved through the
// hooks thread), so the launcher bundles packages/*/src once with esbuild (tsx's own
// dependency) into node_modules/.cache/strata/, keyed by the sources' sizes and mtimes, and
// runs plain JavaScript; dependencies stay external and load natively. If bundling is not
// possible it falls back to tsx. STRATA_NO_BUNDLE=1 forces the tsx path.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// A deploy makes several blocking file-system calls (open, write, fsync, rename, directory
// fsync) on libuv's threadpool; with its default 4 threads, 16 concurrent deploys queue behind
// one another's fsyncs. The size is read when the pool first starts, so set it before any
// asynchronous fs or crypto call; an operator's own setting wins.
process.env.UV_THREADPOOL_SIZE ??= '32';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const entry = join(root, 'packages/cli/src/main.ts');

// A digest of every source file's path, size and mtime (bounded walk of packages/<name>/src).
function sourcesKey() {
  const hash = createHash('sha256');
  const walk = (dir, depth) => {
    if (depth > 12) return;
    for (const item of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = join(dir, item.name);
      if (item.isDirectory()) walk(full, depth + 1);
      else if (item.name.endsWith('.ts') || item.name === 'package.json') {
        const stats = statSync(full);
        hash.update(`${full}\0${stats.size}\0${stats.mtimeMs}\n`);
      }
    }
  };
  for (const name of readdirSync(join(root, 'packages')).sort()) {
    const src = join(root, 'packages', name, 'src');
    if (existsSync(src)) walk(src, 0);
  }
  const rootPackage = join(root, 'package.json');
  hash.update(readFileSync(rootPackage));
  hash.update(process.version);
  return hash.digest('hex').slice(0, 16);
}

async function bundled() {
  if (process.env.STRATA_NO_BUNDLE === '1') return undefined;
  const cacheDir = join(root, 'node_modules/.cache/strata');
  const outfile = join(cacheDir, `strata-${sourcesKey()}.mjs`);
  if (existsSync(outfile)) return outfile;
  const { createRequire } = await import('node:module');
  // esbuild comes with tsx; resolve it from tsx's location.
  const requireFromTsx = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
  const esbuild = requireFromTsx('esbuild');
  const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const external = Object.keys({ ...rootPackage.dependencies, ...rootPackage.devDependencies });
  mkdirSync(cacheDir, { recursive: true });
  const temporary = `${outfile}.${process.pid}.tmp`;
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: temporary,
    external: [...external, ...external.map((name) => `${name}/*`)],
    logLevel: 'silent',
    sourcemap: 'inline',
  });
  renameSync(temporary, outfile);
  return outfile;
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
