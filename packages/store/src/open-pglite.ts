import { randomUUID } from 'node:crypto';
import { existsSync, openAsBlob, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import { migrateToLatest, migrationsHash } from './migrations/index.ts';
import { PgliteDialect, type PgliteDatabase } from './pglite-dialect.ts';
import { PgliteWorkerDatabase } from './pglite-worker.ts';
import type { StoreDatabase } from './schema.ts';

/** Where a PGlite database lives: a directory, or `memory` for a throwaway one. */
export type PgliteLocation = string | 'memory';

export interface OpenPgliteOptions {
  /** Directory for the cached, already migrated template; default `os.tmpdir()`. */
  readonly templateDir?: string;
}

/**
 * Opens a PGlite database migrated to the latest schema. Initialising a new PGlite database
 * takes seconds, loading a copy of one well under one, so a new database is a copy of a
 * template built once per PGlite version and set of migrations, cached on disk (and in
 * memory for this process). An existing data directory is opened as it is and migrated.
 *
 * PGlite writes without fsync: a killed process loses nothing, a power cut can (DESIGN §6).
 */
export async function openPglite(location: PgliteLocation, options: OpenPgliteOptions = {}): Promise<PGlite> {
  const existing = location !== 'memory' && existsSync(join(location, 'PG_VERSION'));
  const settings = { startParams: pgliteStartParams };
  let pglite: PGlite;
  if (existing) {
    pglite = new PGlite(location, settings);
  } else if (location === 'memory') {
    pglite = new PGlite({ loadDataDir: await loadTemplate(options.templateDir ?? tmpdir()), ...settings });
  } else {
    // A new data directory is a file copy of a template directory: loading the template
    // tarball instead held ~90 MB of it in memory for the server's life (and peaked higher).
    await copyTemplateDirectory(options.templateDir ?? tmpdir(), location);
    pglite = new PGlite(location, settings);
  }
  try {
    await pglite.waitReady;
    // A no-op on a fresh copy of the template; brings an older data directory up to date.
    if (existing) await migrate(pglite);
    return pglite;
  } catch (error) {
    await pglite.close().catch(() => undefined);
    throw error;
  }
}

/**
 * As openPglite, with PGlite running in a worker thread (pglite-worker.ts): the data
 * directory is prepared here (a copy of the template, as above), PGlite opens it in the
 * worker, and an existing directory is migrated through the worker's handle.
 */
export async function openPgliteWorker(location: PgliteLocation, options: OpenPgliteOptions = {}): Promise<PgliteWorkerDatabase> {
  const existing = location !== 'memory' && existsSync(join(location, 'PG_VERSION'));
  const startParams = pgliteStartParams;
  let database: PgliteWorkerDatabase;
  if (existing) {
    database = await PgliteWorkerDatabase.start({ dataDir: location, startParams });
  } else if (location === 'memory') {
    database = await PgliteWorkerDatabase.start({ loadDataDir: await loadTemplate(options.templateDir ?? tmpdir()), startParams });
  } else {
    await copyTemplateDirectory(options.templateDir ?? tmpdir(), location);
    database = await PgliteWorkerDatabase.start({ dataDir: location, startParams });
  }
  try {
    if (existing) await migrate(database);
    return database;
  } catch (error) {
    await database.close().catch(() => undefined);
    throw error;
  }
}

/**
 * PostgreSQL settings of every PGlite database (PGlite's own defaults plus these). PGlite
 * runs in this process's memory: its 128 MB of shared buffers alone were a third of an idle
 * server's resident memory (docs/benchmarks.md, "Server HTTP"). The operating system's page
 * cache still holds the data files, so a smaller buffer pool costs a read call, not a disk
 * read, on a miss.
 */
export const pgliteSettings: Readonly<Record<string, string>> = {
  shared_buffers: '16MB',
  wal_buffers: '1MB',
  maintenance_work_mem: '16MB',
  temp_buffers: '1MB',
};

const pgliteStartParams = [...PGlite.defaultStartParams, ...Object.entries(pgliteSettings).flatMap(([name, value]) => ['-c', `${name}=${value}`])];

/** A Kysely instance over a PGlite database; destroying it closes the database. */
export function pgliteKysely(pglite: PgliteDatabase, options: { closeOnDestroy?: boolean } = {}): Kysely<StoreDatabase> {
  return new Kysely<StoreDatabase>({ dialect: new PgliteDialect({ database: pglite, closeOnDestroy: options.closeOnDestroy ?? true }) });
}

async function migrate(pglite: PgliteDatabase): Promise<void> {
  const db = pgliteKysely(pglite, { closeOnDestroy: false });
  try {
    await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

/** The path of the template for this PGlite version and these migrations. */
export function pgliteTemplatePath(templateDir: string = tmpdir()): string {
  return join(templateDir, `strata-pglite-template-${pgliteVersion()}-${migrationsHash()}.tar.gz`);
}

let cachedPgliteVersion: string | undefined;
function pgliteVersion(): string {
  if (cachedPgliteVersion === undefined) {
    // The package exports no package.json; find it next to the entry point.
    let directory = dirname(fileURLToPath(import.meta.resolve('@electric-sql/pglite')));
    for (;;) {
      const candidate = join(directory, 'package.json');
      if (existsSync(candidate) && directory.endsWith('pglite')) {
        const manifest = JSON.parse(readFileSync(candidate, 'utf8')) as { version?: string };
        cachedPgliteVersion = manifest.version ?? 'unknown';
        break;
      }
      const parent = dirname(directory);
      if (parent === directory) {
        cachedPgliteVersion = 'unknown';
        break;
      }
      directory = parent;
    }
  }
  return cachedPgliteVersion;
}

/**
 * Creates `location` as a copy of the template directory (built once from the template
 * tarball, next to it). Copied under a temporary name and renamed, so a crash mid-copy never
 * leaves a data directory that looks complete.
 */
async function copyTemplateDirectory(templateDir: string, location: string): Promise<void> {
  const template = pgliteTemplatePath(templateDir).replace(/\.tar\.gz$/, '.dir');
  if (!existsSync(join(template, 'PG_VERSION'))) await buildTemplateDirectory(templateDir, template);
  const temporary = `${location}.${process.pid}.${randomUUID()}.tmp`;
  await mkdir(dirname(location), { recursive: true });
  try {
    await cp(template, temporary, { recursive: true, errorOnExist: true, force: false });
    // An empty directory (made by the operator, or left by a crash before this) is replaced.
    if (existsSync(location) && (await readdir(location)).length === 0) await rmdir(location);
    await rename(temporary, location);
  } finally {
    await rm(temporary, { recursive: true, force: true });
  }
}

async function buildTemplateDirectory(templateDir: string, template: string): Promise<void> {
  const tarball = pgliteTemplatePath(templateDir);
  if (!existsSync(tarball)) await readOrBuildTemplate(tarball);
  // Several processes may build it at once: each builds its own, the rename is atomic.
  const temporary = `${template}.${process.pid}.${randomUUID()}.tmp`;
  try {
    const pglite = new PGlite(temporary, { loadDataDir: await openAsBlob(tarball, { type: 'application/gzip' }) });
    await pglite.waitReady;
    await pglite.close();
    try {
      await rename(temporary, template);
    } catch (error) {
      // Another process got there first.
      if (!existsSync(join(template, 'PG_VERSION'))) throw error;
    }
  } finally {
    await rm(temporary, { recursive: true, force: true });
  }
}

/** Uncompressed template tarballs by path: loading an uncompressed tar is faster. */
const templates = new Map<string, Promise<Blob>>();

function loadTemplate(templateDir: string): Promise<Blob> {
  const path = pgliteTemplatePath(templateDir);
  let template = templates.get(path);
  if (template === undefined) {
    template = readOrBuildTemplate(path);
    templates.set(path, template);
    template.catch(() => templates.delete(path));
  }
  return template;
}

async function readOrBuildTemplate(path: string): Promise<Blob> {
  let gzipped: Buffer | undefined;
  try {
    gzipped = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (gzipped !== undefined) {
    try {
      return new Blob([gunzipSync(gzipped)]);
    } catch {
      // A damaged template (say, a disk that filled up) is rebuilt below.
    }
  }
  const pglite = new PGlite();
  try {
    await pglite.waitReady;
    await migrate(pglite);
    const dump = await pglite.dumpDataDir('gzip');
    const bytes = Buffer.from(await dump.arrayBuffer());
    // Several processes may build it at once: each writes its own file, the rename is atomic.
    await mkdir(dirname(path), { recursive: true });
    const temporary = `${path}.${process.pid}.${randomUUID()}.tmp`;
    try {
      await writeFile(temporary, bytes);
      await rename(temporary, path);
    } finally {
      await rm(temporary, { force: true });
    }
    return new Blob([gunzipSync(bytes)]);
  } finally {
    await pglite.close();
  }
}
