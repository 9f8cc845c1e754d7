// @ts-check
// The entry of a rebuild worker (projections/rebuild-workers.ts starts it; the package's
// `./rebuild-worker-thread` export, resolved as pglite-worker-thread.mjs is, so the CLI's
// bundle finds it too). The worker's code is TypeScript (projections/rebuild-worker-main.ts:
// the scan decoder, core's fold, the binary COPY encoder). A worker starts without the
// parent's tsx hooks, and through them its imports would take a second or more, so this file
// bundles rebuild-worker-main.ts once with esbuild (tsx's own dependency, as the CLI's
// launcher packages/cli/bin/strata.js does) into node_modules/.cache/strata/, keyed by the
// sources' paths, sizes and mtimes, and loads the bundle; dependencies stay external and
// load natively.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const entry = fileURLToPath(new URL('./projections/rebuild-worker-main.ts', import.meta.url));

/** A digest of the sources the worker bundles (packages/core/src, packages/store/src). */
function sourcesKey() {
  const hash = createHash('sha256');
  /** @param {string} dir @param {number} depth */
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
  for (const name of ['core', 'store']) walk(join(root, 'packages', name, 'src'), 0);
  hash.update(readFileSync(join(root, 'package.json')));
  hash.update(process.version);
  return hash.digest('hex').slice(0, 16);
}

async function bundle() {
  const cacheDir = join(root, 'node_modules/.cache/strata');
  const outfile = join(cacheDir, `rebuild-worker-${sourcesKey()}.mjs`);
  if (existsSync(outfile)) return outfile;
  const requireFromTsx = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
  const esbuild = requireFromTsx('esbuild');
  const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const external = Object.keys({ ...rootPackage.dependencies, ...rootPackage.devDependencies });
  mkdirSync(cacheDir, { recursive: true });
  // Two workers may build at once: each writes its own file, the rename is atomic.
  const temporary = `${outfile}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: temporary,
    external: [...external, ...external.map((/** @type {string} */ name) => `${name}/*`)],
    logLevel: 'silent',
    sourcemap: 'inline',
  });
  renameSync(temporary, outfile);
  return outfile;
}

await import(pathToFileURL(await bundle()).href);
