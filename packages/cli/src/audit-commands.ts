/**
 * The audit commands (issue 8): `strata verify`, `audit`, `export`, `import`, `replay`. Each
 * opens the store of a data directory (PGlite) or of DATABASE_URL (PostgreSQL) directly.
 * PGlite holds its directory alone: stop `strata serve` on that directory first; on
 * PostgreSQL they run next to live servers.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { isValidRepositoryKey, repositoryStream, type NewEvent, type RecordedEvent } from '@strata/core';
import {
  ArtifactTreeProjection,
  ChainWalker,
  RepositoryConfigProjection,
  SqlEventAudit,
  describePointInTime,
  exportLine,
  historyEventJson,
  importedEvent,
  openEventStore,
  parseExportLine,
  parsePointInTime,
  replayAll,
  replayRepository,
  type ChainBreak,
  type OpenedEventStore,
  type PointInTime,
  type ReplayProgress,
} from '@strata/store';
import { UsageError } from './settings.ts';

export const AUDIT_USAGE = `Audit commands (each takes --data <dir> [STRATA_DATA] or --database-url <url> [DATABASE_URL];
with the embedded database, stop 'strata serve' on that directory first):
  strata verify [--repo <key>] [--json]            walk every stream's hash chains; report the first broken link
  strata verify --file <export.ndjson>             check the chains of an export file
  strata audit --repo <key> --path <path> [--deep] [--json | --ndjson]
                                                   the history of a path (and the folders above it)
  strata export --repo <key> [--output <file>]     the repository's events as NDJSON (default stdout)
  strata import [--file <export.ndjson>] [--no-verify]
                                                   append exported events (stdin by default) to seed a site or an
                                                   investigation copy; refuses a file whose chain is broken
  strata replay [--repo <key>] [--until <ISO-8601 time | position>] [--workers <n>]
                                                   rebuild the projections from zero (one repository, or all)
`;

interface ParsedFlags {
  readonly values: Map<string, string>;
  readonly switches: Set<string>;
}

function parseFlags(argv: readonly string[], valued: readonly string[], switches: readonly string[]): ParsedFlags {
  const values = new Map<string, string>();
  const on = new Set<string>();
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!;
    const equals = arg.indexOf('=');
    const name = equals > 0 ? arg.slice(0, equals) : arg;
    if (switches.includes(name) && equals < 0) {
      on.add(name);
      continue;
    }
    if (!valued.includes(name)) throw new UsageError(`unknown option '${arg}'`);
    const value = equals > 0 ? arg.slice(equals + 1) : argv[++index];
    if (value === undefined || value === '') throw new UsageError(`option ${name} needs a value`);
    values.set(name, value);
  }
  return { values, switches: on };
}

const STORE_FLAGS = ['--data', '--database-url', '--site-id'] as const;

interface CommandContext {
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: Writable;
  readonly stderr: Writable & { isTTY?: boolean };
}

async function openStore(flags: ParsedFlags, env: NodeJS.ProcessEnv): Promise<{ opened: OpenedEventStore; siteId: string | undefined; postgres: boolean }> {
  const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  const databaseUrl = flags.values.get('--database-url') ?? nonEmpty(env.DATABASE_URL);
  const dataDir = resolve(flags.values.get('--data') ?? nonEmpty(env.STRATA_DATA) ?? './data');
  let siteId = flags.values.get('--site-id') ?? nonEmpty(env.STRATA_SITE_ID);
  if (siteId === undefined) {
    try {
      siteId = (await readFile(join(dataDir, 'site-id'), 'utf8')).trim() || undefined;
    } catch {
      siteId = undefined;
    }
  }
  const opened = await openEventStore({
    ...(databaseUrl === undefined ? { dataDir } : { databaseUrl }),
    projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()],
    ...(siteId === undefined ? {} : { store: { siteId } }),
  });
  return { opened, siteId, postgres: databaseUrl !== undefined };
}

function repoOf(flags: ParsedFlags, required: boolean): string | undefined {
  const repo = flags.values.get('--repo');
  if (repo === undefined) {
    if (required) throw new UsageError('--repo <key> is required');
    return undefined;
  }
  if (!isValidRepositoryKey(repo)) throw new UsageError(`'${repo}' is not a repository key`);
  return repo;
}

const number = (value: number) => Math.round(value).toLocaleString('en-US');

function printBreaks(breaks: readonly ChainBreak[], out: Writable): void {
  for (const found of breaks) {
    out.write(`BROKEN ${found.stream} at revision ${found.revision} (${found.reason}${found.eventId === undefined ? '' : `, event ${found.eventId}`}): ${found.message}\n`);
  }
}

export async function verifyCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const flags = parseFlags(argv, [...STORE_FLAGS, '--repo', '--file'], ['--json']);
  const file = flags.values.get('--file');
  if (file !== undefined) {
    const started = performance.now();
    const walker = new ChainWalker();
    let stream: string | undefined;
    for await (const { event, prevHash } of readExport(file)) {
      if (event.stream !== stream) stream = event.stream;
      walker.add({ event, prevHash });
    }
    const elapsedMs = performance.now() - started;
    return reportVerify({ streams: walker.streams, events: walker.events, originChained: walker.originChained, breaks: walker.breaks, elapsedMs }, flags, context);
  }
  const repo = repoOf(flags, false);
  const { opened, postgres } = await openStore(flags, context.env);
  try {
    // On PostgreSQL verify reads the table in three ranges side by side (a pool; PGlite has one connection).
    const result = await new SqlEventAudit(opened.db, { verifyConnectionsMax: postgres ? 3 : 1, copyOut: opened.copyOut }).verify(repo === undefined ? {} : { stream: repositoryStream(repo) });
    return reportVerify(result, flags, context);
  } finally {
    await opened.close();
  }
}

function reportVerify(
  result: { streams: number; events: number; originChained: number; breaks: readonly ChainBreak[]; elapsedMs: number },
  flags: ParsedFlags,
  context: CommandContext,
): number {
  const rate = result.elapsedMs === 0 ? 0 : (result.events * 1000) / result.elapsedMs;
  if (flags.switches.has('--json')) {
    context.stdout.write(`${JSON.stringify({ ...result, eventsPerSecond: Math.round(rate), intact: result.breaks.length === 0 }, null, 2)}\n`);
  } else {
    context.stdout.write(
      `verified ${number(result.events)} events in ${number(result.streams)} streams (${number(result.originChained)} carry an origin chain) in ${(result.elapsedMs / 1000).toFixed(2)} s, ${number(rate)} events/s\n`,
    );
    if (result.breaks.length === 0) context.stdout.write('intact: no broken link\n');
    else printBreaks(result.breaks, context.stdout);
  }
  return result.breaks.length === 0 ? 0 : 1;
}

export async function auditCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const flags = parseFlags(argv, [...STORE_FLAGS, '--repo', '--path'], ['--json', '--ndjson', '--deep']);
  const repo = repoOf(flags, true)!;
  const path = (flags.values.get('--path') ?? '').replace(/^\/+|\/+$/g, '');
  if (flags.switches.has('--json') && flags.switches.has('--ndjson')) throw new UsageError('--json and --ndjson exclude each other');
  const { opened, siteId } = await openStore(flags, context.env);
  try {
    const audit = new SqlEventAudit(opened.db, { copyOut: opened.copyOut });
    const stream = repositoryStream(repo);
    const json = flags.switches.has('--json');
    const ndjson = flags.switches.has('--ndjson');
    let after: number | undefined;
    let count = 0;
    if (json) context.stdout.write('[');
    else if (!ndjson) context.stdout.write(`${'TIME'.padEnd(24)}  ${'ACTION'.padEnd(18)}  ${'PATH'.padEnd(40)}  ${'ACTOR'.padEnd(12)}  ${'ORIGIN'.padEnd(16)}  EVENT\n`);
    do {
      const page = await audit.pathHistory(stream, path, { limit: 1000, deep: flags.switches.has('--deep'), ...(after === undefined ? {} : { afterRevision: after }) });
      for (const entry of page.entries) {
        const described = historyEventJson(entry, siteId ?? '');
        if (ndjson) context.stdout.write(`${exportLine(entry)}\n`);
        else if (json) context.stdout.write(`${count === 0 ? '\n' : ',\n'}${JSON.stringify(described)}`);
        else {
          const origin = described.received ? `${described.origin} (recv)` : described.origin;
          context.stdout.write(
            `${described.time.padEnd(24)}  ${described.action.padEnd(18)}  ${(described.path ?? '-').padEnd(40)}  ${(described.actor ?? '-').padEnd(12)}  ${origin.padEnd(16)}  ${described.id}\n`,
          );
        }
        count++;
      }
      after = page.nextAfterRevision;
    } while (after !== undefined);
    if (json) context.stdout.write(count === 0 ? ']\n' : '\n]\n');
    if (count === 0) {
      context.stderr.write(`strata audit: repository '${repo}' has no events\n`);
      return 1;
    }
    return 0;
  } finally {
    await opened.close();
  }
}

export async function exportCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const flags = parseFlags(argv, [...STORE_FLAGS, '--repo', '--output'], []);
  const repo = repoOf(flags, true)!;
  const output = flags.values.get('--output');
  const { opened } = await openStore(flags, context.env);
  const sink: Writable = output === undefined ? context.stdout : createWriteStream(output);
  try {
    const audit = new SqlEventAudit(opened.db, { copyOut: opened.copyOut });
    const stream = repositoryStream(repo);
    let fromRevision = 0;
    for (;;) {
      const entries = await audit.readChained(stream, { fromRevision, maxCount: 5000 });
      if (entries.length === 0) break;
      let chunk = '';
      for (const entry of entries) chunk += `${exportLine(entry)}\n`;
      if (!sink.write(chunk)) await new Promise((resolveDrain) => sink.once('drain', resolveDrain));
      fromRevision = entries[entries.length - 1]!.event.revision + 1;
    }
    context.stderr.write(`strata export: ${number(fromRevision)} events of ${stream}\n`);
    return fromRevision === 0 ? 1 : 0;
  } finally {
    if (output !== undefined) await new Promise<void>((resolveEnd, reject) => sink.end((error?: Error | null) => (error ? reject(error) : resolveEnd())));
    await opened.close();
  }
}

async function* readExport(file: string | undefined): AsyncGenerator<{ event: RecordedEvent; prevHash: Uint8Array | undefined }> {
  const input = file === undefined || file === '-' ? process.stdin : createReadStream(file);
  let lineNumber = 0;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    lineNumber++;
    if (line.trim() === '') continue;
    yield parseExportLine(line, lineNumber);
  }
}

export async function importCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const flags = parseFlags(argv, [...STORE_FLAGS, '--file'], ['--no-verify']);
  const file = flags.values.get('--file');
  // Everything is read (and checked) before anything is appended: a broken file changes nothing.
  const events: { stream: string; event: NewEvent }[] = [];
  const walker = new ChainWalker();
  for await (const { event, prevHash } of readExport(file)) {
    if (!flags.switches.has('--no-verify')) walker.add({ event, prevHash });
    events.push({ stream: event.stream, event: importedEvent(event) });
  }
  if (walker.breaks.length > 0) {
    printBreaks(walker.breaks, context.stderr);
    context.stderr.write('strata import: the file\'s hash chain is broken; nothing imported (--no-verify imports it anyway)\n');
    return 1;
  }
  const { opened } = await openStore(flags, context.env);
  try {
    let appended = 0;
    const started = performance.now();
    for (let offset = 0; offset < events.length; ) {
      const stream = events[offset]!.stream;
      let end = offset;
      while (end < events.length && end - offset < 1000 && events[end]!.stream === stream) end++;
      const result = await opened.store.append(stream, events.slice(offset, end).map((entry) => entry.event), { expectedRevision: 'any' });
      appended += result.appendedCount;
      offset = end;
    }
    const seconds = (performance.now() - started) / 1000;
    context.stdout.write(`imported ${number(appended)} events (${number(events.length - appended)} already present) in ${seconds.toFixed(2)} s\n`);
    return 0;
  } finally {
    await opened.close();
  }
}

export async function replayCommand(argv: readonly string[], context: CommandContext): Promise<number> {
  const flags = parseFlags(argv, [...STORE_FLAGS, '--repo', '--until', '--workers'], []);
  const repo = repoOf(flags, false);
  const workersText = flags.values.get('--workers') ?? context.env.STRATA_REBUILD_WORKERS;
  const workers = workersText === undefined || workersText === '' ? undefined : Number(workersText);
  if (workers !== undefined && (!Number.isInteger(workers) || workers < 0 || workers > 64)) {
    throw new UsageError(`--workers (or STRATA_REBUILD_WORKERS) must be a whole number from 0 to 64, not '${workersText}'`);
  }
  const untilText = flags.values.get('--until');
  let until: PointInTime | undefined;
  try {
    until = untilText === undefined ? undefined : parsePointInTime(untilText);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { opened } = await openStore(flags, context.env);
  try {
    const progress = progressBar(context.stderr);
    const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
    const source = { store: opened.store, db: opened.db, bulk: opened.bulk };
    const options = { ...(until === undefined ? {} : { until }), ...(workers === undefined ? {} : { workers }), onProgress: progress.update };
    const result = repo === undefined ? await replayAll(source, projections, options) : await replayRepository(source, projections, repo, options);
    progress.done();
    const folders = 'workers' in result && typeof result.workers === 'number' ? result.workers : 0;
    context.stdout.write(
      `replayed ${number(result.events)} events${repo === undefined ? '' : ` of ${repo}`}${until === undefined ? '' : ` up to ${describePointInTime(until)}`} into ${number(result.rows)} rows${'rowsChanged' in result && typeof result.rowsChanged === 'number' ? ` (${number(result.rowsChanged)} changed)` : ''} in ${(result.elapsedMs / 1000).toFixed(2)} s: ${number(result.eventsPerSecond)} events/s${folders > 0 ? ` (artifact tree folded by ${folders} worker threads)` : ''}\n`,
    );
    return 0;
  } finally {
    await opened.close();
  }
}

/** A progress bar on a terminal, a line every few seconds otherwise. */
function progressBar(out: Writable & { isTTY?: boolean }): { update: (progress: ReplayProgress) => void; done: () => void } {
  let lastDrawn = 0;
  let drawn = false;
  const width = 30;
  return {
    update(progress) {
      const now = performance.now();
      const interval = out.isTTY === true ? 100 : 2000;
      if (progress.phase !== 'done' && now - lastDrawn < interval) return;
      lastDrawn = now;
      const fraction = progress.total === 0 ? 1 : Math.min(1, progress.events / progress.total);
      const filled = Math.round(fraction * width);
      const rate = progress.elapsedMs === 0 ? 0 : (progress.events * 1000) / progress.elapsedMs;
      const text = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${number(progress.events)}/${number(progress.total)} events ${number(rate)} events/s ${progress.phase}`;
      if (out.isTTY === true) {
        out.write(`\r${text}`);
        drawn = true;
      } else out.write(`${text}\n`);
    },
    done() {
      if (drawn) out.write('\n');
    },
  };
}
