// @ts-check
// Bundling TypeScript sources once into plain JavaScript, shared by the CLI's launcher
// (packages/cli/bin/strata.js) and the rebuild worker's entry (rebuild-worker-thread.mjs).
// Both start without tsx's loader hooks, through which every module of the workspace and of
// node_modules would be resolved at a cost of a second or more; instead the entry is bundled
// with esbuild (tsx's own dependency) into node_modules/.cache/strata/, keyed by the bundled
// sources' paths, sizes and mtimes, and the bundle is loaded; dependencies stay external and
// load natively. Plain JavaScript on purpose: it runs before anything can be compiled.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { threadId } from 'node:worker_threads';

/** The workspace's root directory (this file is packages/store/src/bundle-cache.mjs). */
export const workspaceRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * A digest of every `.ts` and `package.json` under the given packages' `src` directories
 * (path, size, mtime; a bounded walk), of the root package.json and of the Node version.
 * @param {readonly string[]} packages names under packages/, e.g. ['core', 'store']
 * @returns {string}
 */
export function sourcesKey(packages) {
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
  for (const name of packages) {
    const src = join(workspaceRoot, 'packages', name, 'src');
    if (existsSync(src)) walk(src, 0);
  }
  hash.update(readFileSync(join(workspaceRoot, 'package.json')));
  hash.update(process.version);
  return hash.digest('hex').slice(0, 16);
}

/** Every package under packages/ that has a `src` directory, sorted. @returns {string[]} */
export function workspacePackages() {
  return readdirSync(join(workspaceRoot, 'packages'))
    .filter((name) => existsSync(join(workspaceRoot, 'packages', name, 'src')))
    .sort();
}

/**
 * The bundle of `entry` in node_modules/.cache/strata/, built if it is not there yet.
 * Concurrent builders (processes, worker threads) each write their own temporary file and
 * rename it into place, which is atomic.
 * @param {{ entry: string, name: string, packages: readonly string[] }} options
 *   entry: the TypeScript file to bundle; name: the bundle's file-name prefix;
 *   packages: the packages whose sources key the bundle
 * @returns {Promise<string>} the bundle's path
 */
export async function bundleOnce({ entry, name, packages }) {
  const cacheDir = join(workspaceRoot, 'node_modules/.cache/strata');
  const outfile = join(cacheDir, `${name}-${sourcesKey(packages)}.mjs`);
  if (existsSync(outfile)) return outfile;
  // esbuild comes with tsx; resolve it from tsx's location.
  const requireFromTsx = createRequire(createRequire(import.meta.url).resolve('tsx/package.json'));
  const esbuild = requireFromTsx('esbuild');
  const rootPackage = JSON.parse(readFileSync(join(workspaceRoot, 'package.json'), 'utf8'));
  const external = Object.keys({ ...rootPackage.dependencies, ...rootPackage.devDependencies });
  mkdirSync(cacheDir, { recursive: true });
  const temporary = `${outfile}.${process.pid}.${threadId}.tmp`;
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: temporary,
    external: [...external, ...external.map((/** @type {string} */ dependency) => `${dependency}/*`)],
    logLevel: 'silent',
    sourcemap: 'inline',
  });
  renameSync(temporary, outfile);
  return outfile;
}
