/**
 * npm registry benchmarks against Verdaccio (issue 7, "Performance"). Verdaccio is installed
 * from npm into a temporary directory and run on loopback in the same run, with token auth
 * on both sides (the token `npm login` returns; Verdaccio's JWT tokens, since its legacy
 * tokens cost a bcrypt password check per request) and its fastest settings (no uplinks, no
 * web UI, logging at fatal):
 * - packument GET of one package with 20 versions, wrk -t1 -c32, target ≥ 3 × Verdaccio;
 * - publish documents PUT by 8 concurrent clients (each publish a new package with one
 *   version and its base64 tarball), target ≥ 5 × Verdaccio. The load is `wrk -t1 -c8`
 *   (default, `--client=wrk`: a Lua script sends the next of a file of pre-built documents,
 *   every one a new package with a tarball of its own) or the bench's own 8 undici clients
 *   (`--client=undici`); `--client=wrk,undici` runs both on the same servers in every round.
 * Rounds interleave the two servers; the reported ratio is the median of per-round ratios.
 * Runnable alone: `node --import tsx bench/npm-registry.bench.ts [--rounds=N] [--seconds=N] [--backend=pglite|postgres] [--only=publish|get] [--client=wrk,undici]`.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { databaseUrl } from './support/databases.ts';
import { log, median, printTable, type BenchResult } from './support/report.ts';
import { freePort } from '../test/support/spawned-server.ts';
import { reportLua, runWrk, stopper, waitFor } from './server-http.bench.ts';
import { readFileSync } from 'node:fs';
import { strataCommand } from './support/launcher.ts';

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const adminPassword = 'bench-admin-password';
/** Verdaccio 6.8 is the newest release that runs on Node 20 (6.9 and later require Node 22). */
const VERDACCIO_VERSION = '6.8.0';
const packumentVersions = 20;
const publishClients = 8;
const serverDatabaseUrl = new URL(databaseUrl);
serverDatabaseUrl.pathname = '/strata_bench_npm';

export interface NpmRegistryOptions {
  readonly rounds: number;
  readonly seconds: number;
  readonly backend?: 'pglite' | 'postgres';
  /** Publishes per server per round. */
  readonly publishes?: number;
  /**
   * Another checkout (e.g. main before a change): its server takes the same publish run in
   * every round, after Verdaccio, in alternating order with this checkout's (before/after).
   */
  readonly compareRoot?: string;
  /**
   * `publish`: only the publish runs (no packument seeding, no GET run), so a locked run of
   * the publish target stays short; `get`: only the packument GETs. Default: both.
   */
  readonly only?: 'publish' | 'get';
  /**
   * The publish load: `wrk` (default; -t1 -c8 for `seconds`, see `publishLua`) and/or
   * `undici` (8 clients in this process, `publishes` documents per Strata run).
   */
  readonly clients?: readonly PublishClient[];
}

export type PublishClient = 'wrk' | 'undici';

/** `--client=wrk,undici` → the publish loads, checked. */
export function publishClientsFlag(value: string): PublishClient[] {
  const clients = value.split(',');
  for (const client of clients) if (client !== 'wrk' && client !== 'undici') throw new Error(`--client: unknown publish load '${client}' (wrk, undici)`);
  return clients as PublishClient[];
}

export interface Registry {
  /** Registry URL without a trailing slash. */
  readonly url: string;
  readonly token: string;
  stop(): Promise<void>;
}

async function installVerdaccio(work: string): Promise<string> {
  const dir = join(work, 'verdaccio-install');
  await mkdir(dir, { recursive: true });
  // The registry here lacks node-fetch's `cjs` dist-tag that verdaccio-audit asks for: pin what it names.
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'verdaccio-bench', private: true, dependencies: { verdaccio: VERDACCIO_VERSION }, overrides: { 'node-fetch': '2.7.0' } }));
  log(`installing verdaccio@${VERDACCIO_VERSION} into ${dir}`);
  await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: dir, timeout: 300_000 });
  return join(dir, 'node_modules', 'verdaccio', 'bin', 'verdaccio');
}

async function login(url: string, name: string, password: string): Promise<string> {
  const response = await fetch(`${url}/-/user/org.couchdb.user:${name}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ _id: `org.couchdb.user:${name}`, name, password, type: 'user', roles: [] }),
  });
  if (response.status !== 201) throw new Error(`login at ${url} → ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { token: string }).token;
}

async function startVerdaccio(work: string, bin: string, index: number): Promise<Registry> {
  const dir = join(work, `verdaccio-${index}`);
  await mkdir(dir, { recursive: true });
  const config = join(dir, 'config.yaml');
  await writeFile(
    config,
    `storage: ${join(dir, 'storage')}
auth:
  htpasswd:
    file: ${join(dir, 'htpasswd')}
    max_users: 1000
uplinks: {}
packages:
  '**':
    access: $authenticated
    publish: $authenticated
    unpublish: $authenticated
security:
  api:
    legacy: false
    jwt:
      sign:
        expiresIn: 7d
log: { type: stdout, format: pretty, level: fatal }
max_body_size: 100mb
web:
  enable: false
`,
  );
  const port = await freePort();
  const child = spawn(process.execPath, [bin, '--config', config, '--listen', `127.0.0.1:${port}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/-/ping`, child, () => stderr);
  const token = await login(url, 'bench', 'bench-password-1');
  return { url, token, stop: stopper(child) };
}

async function freshDatabase(url = serverDatabaseUrl): Promise<void> {
  const pg = (await import('pg')).default;
  const database = url.pathname.slice(1);
  const connect = async () => {
    const client = new pg.Client({ connectionString: url.href });
    await client.connect();
    return client;
  };
  let client;
  try {
    client = await connect();
  } catch (error) {
    if ((error as { code?: string }).code !== '3D000' || process.getuid?.() !== 0) throw error;
    await run('su', ['postgres', '-c', `createdb -O ${serverDatabaseUrl.username} ${database}`]);
    client = await connect();
  }
  try {
    await client.query('drop schema if exists public cascade');
    await client.query('create schema public');
  } finally {
    await client.end();
  }
}

async function startStrata(work: string, index: number | string, backend: 'pglite' | 'postgres', checkout = root, database = serverDatabaseUrl): Promise<Registry> {
  if (backend === 'postgres') await freshDatabase(database);
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, STRATA_ADMIN_PASSWORD: adminPassword };
  delete env.DATABASE_URL;
  if (backend === 'postgres') env.DATABASE_URL = database.href;
  const [command, args] = strataCommand(checkout, ['serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(work, `strata-${index}`)], env);
  const child = spawn(command, args, {
    cwd: checkout,
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const base = `http://127.0.0.1:${port}`;
  await waitFor(`${base}/artifactory/api/system/ping`, child, () => stderr);
  const created = await fetch(`${base}/artifactory/api/repositories/npm-local`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}` },
    body: JSON.stringify({ rclass: 'local', packageType: 'npm' }),
  });
  if (created.status !== 200) throw new Error(`creating npm-local → ${created.status}`);
  const url = `${base}/artifactory/api/npm/npm-local`;
  return { url, token: await login(url, 'admin', adminPassword), stop: stopper(child) };
}

/** A publish document as `npm publish` sends it: one version, its manifest and the base64 tarball. */
function publishDocument(name: string, version: string): string {
  return publishDocumentWithDigest(name, version).body;
}

function publishDocumentWithDigest(name: string, version: string): { body: string; integrity: string; shasum: string } {
  const tarball = gzipSync(Buffer.concat([Buffer.from(`package/package.json ${name}@${version}\n`), randomBytes(512)]));
  const dist = {
    integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
    shasum: createHash('sha1').update(tarball).digest('hex'),
    tarball: `http://registry/${name}/-/${name}-${version}.tgz`,
  };
  const body = JSON.stringify({
    _id: name,
    name,
    description: 'a benchmark package',
    'dist-tags': { latest: version },
    versions: {
      [version]: {
        name,
        version,
        description: 'a benchmark package',
        main: 'index.js',
        license: 'MIT',
        dependencies: { 'left-pad': '^1.3.0', lodash: '^4.17.21' },
        _id: `${name}@${version}`,
        _nodeVersion: '20.20.2',
        _npmVersion: '11.0.0',
        dist,
      },
    },
    access: null,
    _attachments: { [`${name}-${version}.tgz`]: { content_type: 'application/octet-stream', data: tarball.toString('base64'), length: tarball.length } },
  });
  return { body, integrity: dist.integrity, shasum: dist.shasum };
}

/**
 * One publish PUT through undici's `request` on the run's keep-alive pool. Not `fetch`: the 8
 * clients share this one process and the machine's 2 cores with the server, and `fetch` cost
 * 1.2-1.9 ms of client CPU per publish against 0.5-0.8 ms for `request` (2026-12-06, load 9):
 * a client that slow is on the critical path of a closed loop of 8 and measures itself, not
 * the server (the GET benchmark uses wrk for the same reason).
 */
async function put(dispatcher: Agent, registry: Registry, name: string, body: string): Promise<number> {
  const response = await request(`${registry.url}/${encodeURIComponent(name)}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${registry.token}`, 'npm-command': 'publish' },
    body,
    dispatcher,
  });
  await response.body.arrayBuffer();
  return response.statusCode;
}

/** `publishes` documents PUT by `publishClients` concurrent clients; returns publishes/s and failures. */
async function publishRun(registry: Registry, prefix: string, publishes: number): Promise<{ perSecond: number; failures: number }> {
  const documents = Array.from({ length: publishes }, (_, index) => ({ name: `${prefix}-${index}`, body: publishDocument(`${prefix}-${index}`, '1.0.0') }));
  const dispatcher = new Agent({ connections: publishClients, keepAliveTimeout: 30_000 });
  let next = 0;
  let failures = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: publishClients }, async () => {
      for (let index = next++; index < documents.length; index = next++) {
        const { name, body } = documents[index]!;
        const status = await put(dispatcher, registry, name, body);
        if (status !== 200 && status !== 201) failures++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await dispatcher.close();
  return { perSecond: (publishes - failures) / seconds, failures };
}

/** Unmeasured publishes before a measured run (same count for every server). */
const warmUpPublishCount = 160;

async function warmUpPublishes(registry: Registry, prefix: string): Promise<void> {
  const { failures } = await publishRun(registry, prefix, warmUpPublishCount);
  if (failures > 0) throw new Error(`warm-up publishes at ${registry.url}: ${failures} failed`);
}

/** Pre-built publish documents for wrk: `file` holds one `name<TAB>document` line per package. */
export interface PublishDocuments {
  readonly file: string;
  readonly names: readonly string[];
  readonly integrity: readonly string[];
  readonly shasum: readonly string[];
}

/**
 * `count` documents, each a new package `${prefix}-${index}` at 1.0.0 with a tarball of its own
 * (so no server meets the same bytes twice), written once and sent to every server: each server
 * (and each round's fresh one) stores every document at most once.
 */
export async function writePublishDocuments(file: string, prefix: string, count: number): Promise<PublishDocuments> {
  const names: string[] = [];
  const integrity: string[] = [];
  const shasum: string[] = [];
  const lines: string[] = [];
  for (let index = 0; index < count; index++) {
    const name = `${prefix}-${index}`;
    const document = publishDocumentWithDigest(name, '1.0.0');
    names.push(name);
    integrity.push(document.integrity);
    shasum.push(document.shasum);
    lines.push(`${name}\t${document.body}`);
  }
  await writeFile(file, `${lines.join('\n')}\n`);
  return { file, names, integrity, shasum };
}

/**
 * wrk's publish load (`wrk -t1 -c8`): every request PUTs the next document of `documents` to
 * `path`/<name> with the registry's bearer token, as `npm publish` does; answers are counted
 * 2xx or not (the first other one kept for the log). A run that outruns its documents sends
 * the last one again, which is a republish and refused (409): it fails instead of measuring
 * something else. The documents are read in `init`, before wrk starts its clock. wrk (4.1)
 * calls `request` once before the run to check the script and drops what it returns: the
 * first document is never sent, and `sent` counts that call.
 */
const publishLua = (documents: string, path: string, token: string) =>
  `
documents = {}
sent, succeeded, failed, firstFailure = 0, 0, 0, ""
local headers = { ["Authorization"] = "Bearer ${token}", ["Content-Type"] = "application/json", ["npm-command"] = "publish" }
init = function(args)
  for line in io.lines("${documents}") do
    local tab = line:find("\t", 1, true)
    documents[#documents + 1] = { line:sub(1, tab - 1), line:sub(tab + 1) }
  end
end
request = function()
  local document = documents[math.min(sent + 1, #documents)]
  sent = sent + 1
  return wrk.format("PUT", "${path}/" .. document[1], headers, document[2])
end
response = function(status, headers, body)
  if status == 200 or status == 201 then
    succeeded = succeeded + 1
  else
    failed = failed + 1
    if firstFailure == "" then firstFailure = status .. " " .. body:sub(1, 300) end
  end
end
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
reportMore = function()
  local total, ok, bad, first = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    total = total + thread:get("sent")
    ok = ok + thread:get("succeeded")
    bad = bad + thread:get("failed")
    if first == "" then first = thread:get("firstFailure") end
  end
  io.write(string.format('PUBLISH {"sent":%d,"succeeded":%d,"failed":%d}\\n', total, ok, bad))
  if first ~= "" then io.write("FIRST FAILURE " .. (first:gsub("\\n", " ")) .. "\\n") end
end
` + reportLua;

let publishScripts = 0;

/**
 * One wrk publish run of `seconds` against `registry`. Fails on any answer but 2xx (or a wrk
 * socket error); with `verify`, then checks that what was answered 2xx is stored (`verifyPublished`).
 */
export async function wrkPublishRun(
  work: string,
  registry: Registry,
  documents: PublishDocuments,
  seconds: number,
  verify: boolean,
): Promise<{ perSecond: number; failures: number; publishes: number; p50Ms: number; p99Ms: number }> {
  const script = join(work, `publish-${publishScripts++}.lua`);
  await writeFile(script, publishLua(documents.file, new URL(registry.url).pathname.replace(/\/$/, ''), registry.token));
  const result = await runWrk(registry.url, { connections: publishClients, seconds, script });
  const line = result.output.split('\n').find((text) => text.startsWith('PUBLISH '));
  if (line === undefined) throw new Error(`wrk publish at ${registry.url}: no PUBLISH line in ${result.output}`);
  const counts = JSON.parse(line.slice('PUBLISH '.length)) as { sent: number; succeeded: number; failed: number };
  if (counts.failed > 0 || result.errors > 0 || counts.succeeded !== result.requests) {
    const first = result.output.split('\n').find((text) => text.startsWith('FIRST FAILURE ')) ?? '';
    throw new Error(`wrk publish at ${registry.url}: ${counts.succeeded} 2xx, ${counts.failed} other answers, ${result.errors} wrk errors in ${result.requests} requests (${counts.sent} sent of ${documents.names.length} documents) ${first}`);
  }
  if (counts.succeeded > counts.sent - 1) throw new Error(`wrk publish at ${registry.url}: ${counts.succeeded} answered 2xx but ${counts.sent - 1} sent`);
  if (verify) await verifyPublished(registry, documents, counts.succeeded, counts.sent);
  return { perSecond: counts.succeeded / result.seconds, failures: 0, publishes: counts.succeeded, p50Ms: result.p50Ms, p99Ms: result.p99Ms };
}

/**
 * After a wrk run: a sample of the packages answered 2xx (evenly spread, the first and the
 * last among them) has its packument with version 1.0.0 and the document's integrity, every
 * eighth sampled tarball the bytes sent (sha1), and the two documents never sent (the first,
 * wrk's check of the script, and the one after the last sent) are not found — so the check
 * can fail. Documents 1 … sent - 1 were sent; up to 8 were in flight when wrk stopped, so the
 * sample stays below `succeeded + 1 - 8`.
 */
async function verifyPublished(registry: Registry, documents: PublishDocuments, succeeded: number, sent: number): Promise<void> {
  const headers = { authorization: `Bearer ${registry.token}` };
  const answered = Math.max(1, succeeded - publishClients);
  const samples = [...new Set(Array.from({ length: 64 }, (_, index) => 1 + Math.floor((index * (answered - 1)) / 63)))];
  for (const [position, index] of samples.entries()) {
    const name = documents.names[index]!;
    const response = await fetch(`${registry.url}/${encodeURIComponent(name)}`, { headers });
    if (response.status !== 200) throw new Error(`verify at ${registry.url}: ${name} → ${response.status} after a 2xx publish`);
    const packument = (await response.json()) as { versions?: Record<string, { dist?: { integrity?: string; tarball?: string } }> };
    const dist = packument.versions?.['1.0.0']?.dist;
    if (dist?.integrity !== documents.integrity[index]) throw new Error(`verify at ${registry.url}: ${name}@1.0.0 integrity ${dist?.integrity}, sent ${documents.integrity[index]}`);
    if (position % 8 === 0) {
      const tarball = await fetch(dist!.tarball!, { headers });
      const bytes = Buffer.from(await tarball.arrayBuffer());
      if (tarball.status !== 200 || createHash('sha1').update(bytes).digest('hex') !== documents.shasum[index]) {
        throw new Error(`verify at ${registry.url}: tarball of ${name} → ${tarball.status}, not the bytes sent`);
      }
    }
  }
  for (const index of [0, sent]) {
    if (index >= documents.names.length) continue;
    const unsent = await fetch(`${registry.url}/${encodeURIComponent(documents.names[index]!)}`, { headers });
    await unsent.arrayBuffer();
    if (unsent.status !== 404) throw new Error(`verify at ${registry.url}: ${documents.names[index]}, never sent, → ${unsent.status}`);
  }
  log(`verified at ${registry.url}: ${samples.length} of ${succeeded} published packages stored with their integrity, the never-sent ones not found`);
}

/** wrk's documents per second of a run: above the fastest rate any server here reached (a run that outruns them fails). */
const documentsPerSecond = 3000;
const warmUpSeconds = 2;

async function seedPackument(registry: Registry): Promise<void> {
  const dispatcher = new Agent({ connections: 1 });
  for (let minor = 0; minor < packumentVersions; minor++) {
    const document = publishDocument('bench-packument', `1.${minor}.0`);
    const status = await put(dispatcher, registry, 'bench-packument', document);
    if (status !== 200 && status !== 201) throw new Error(`seeding bench-packument 1.${minor}.0 at ${registry.url} → ${status}`);
  }
  await dispatcher.close();
}

export async function npmRegistryBenchmark(options: NpmRegistryOptions): Promise<BenchResult[]> {
  const backend = options.backend ?? 'pglite';
  const publishes = options.publishes ?? 800;
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-npm-'));
  try {
    const verdaccioBin = await installVerdaccio(work);
    const script = join(work, 'report.lua');
    await writeFile(script, reportLua);
    const getRatios: number[] = [];
    const gets = { strata: [] as number[], verdaccio: [] as number[] };
    const beforeDatabase = new URL(serverDatabaseUrl.href);
    beforeDatabase.pathname = `${serverDatabaseUrl.pathname}_before`;
    const clients = options.clients ?? ['wrk'];
    const tallies = new Map(
      clients.map((client) => [client, { ratios: [] as number[], strata: [] as number[], verdaccio: [] as number[], before: { ratios: [] as number[], perSecond: [] as number[], againstBefore: [] as number[] } }]),
    );
    let failures = 0;
    let documents: { warm: PublishDocuments; measured: PublishDocuments } | undefined;
    if (options.only !== 'get' && clients.includes('wrk')) {
      documents = {
        warm: await writePublishDocuments(join(work, 'warm-documents.txt'), 'w', warmUpSeconds * documentsPerSecond),
        measured: await writePublishDocuments(join(work, 'documents.txt'), 'p', options.seconds * documentsPerSecond),
      };
      log(`wrote ${documents.warm.names.length} + ${documents.measured.names.length} publish documents for wrk`);
    }
    // One measured publish run of `client` (the undici client: `count` documents; wrk: `seconds`).
    const publishLoad = (client: PublishClient, registry: Registry, prefix: string, count: number) =>
      client === 'wrk' ? wrkPublishRun(work, registry, documents!.measured, options.seconds, true) : publishRun(registry, prefix, count);
    const warmUp = (registry: Registry, prefix: string) =>
      clients[0] === 'wrk' ? wrkPublishRun(work, registry, documents!.warm, warmUpSeconds, false) : warmUpPublishes(registry, prefix);
    for (let round = 0; round < options.rounds; round++) {
      // Fresh servers per round: the publish run leaves hundreds of packages behind.
      const verdaccio = await startVerdaccio(work, verdaccioBin, round);
      const strata = await startStrata(work, round, backend);
      try {
        if (options.only !== 'publish') {
          await seedPackument(verdaccio);
          await seedPackument(strata);
          const sizes = await Promise.all(
            [verdaccio, strata].map(async (registry) => (await (await fetch(`${registry.url}/bench-packument`, { headers: { authorization: `Bearer ${registry.token}` } })).text()).length),
          );
          log(`round ${round + 1}: packument bytes verdaccio ${sizes[0]}, strata ${sizes[1]}`);
          const wrk = (registry: Registry) =>
            runWrk(`${registry.url}/bench-packument`, { connections: 32, seconds: options.seconds, script, headers: [`Authorization: Bearer ${registry.token}`] });
          const verdaccioGet = await wrk(verdaccio);
          const strataGet = await wrk(strata);
          if (verdaccioGet.errors > 0 || strataGet.errors > 0) log(`round ${round + 1}: GET errors verdaccio ${verdaccioGet.errors}, strata ${strataGet.errors}`);
          gets.verdaccio.push(verdaccioGet.perSecond);
          gets.strata.push(strataGet.perSecond);
          getRatios.push(strataGet.perSecond / verdaccioGet.perSecond);
          log(`round ${round + 1}: packument GET verdaccio ${Math.round(verdaccioGet.perSecond)}/s, strata ${Math.round(strataGet.perSecond)}/s`);
        }
        if (options.only === 'get') continue;

        // Every server takes the same unmeasured warm-up publishes first, as server-http's
        // deploys get a warm-up run: the first few hundred publishes of a fresh process run on
        // code not yet optimised (in a probe the same 8-client run cost 3.0 ms of server CPU
        // per publish the first time and 1.9–2.7 ms the second, load 6–9). With wrk first in
        // --client, the warm-up is a 2 s wrk run of other documents; else 160 undici publishes.
        await warmUp(verdaccio, `wv${round}`);
        await warmUp(strata, `ws${round}`);
        // The other checkout's server on its own database, started after this round's GETs.
        const old = options.compareRoot === undefined ? undefined : await startStrata(work, `before-${round}`, backend, options.compareRoot, beforeDatabase);
        try {
          if (old !== undefined) await warmUp(old, `wb${round}`);
          for (const client of clients) {
            const tally = tallies.get(client)!;
            const verdaccioPut = await publishLoad(client, verdaccio, `v${round}`, Math.max(100, Math.round(publishes / 5)));
            let strataPut: { perSecond: number; failures: number };
            if (old === undefined) strataPut = await publishLoad(client, strata, `s${round}`, publishes);
            else {
              let oldPut: { perSecond: number; failures: number };
              if (round % 2 === 0) {
                strataPut = await publishLoad(client, strata, `s${round}`, publishes);
                oldPut = await publishLoad(client, old, `b${round}`, publishes);
              } else {
                oldPut = await publishLoad(client, old, `b${round}`, publishes);
                strataPut = await publishLoad(client, strata, `s${round}`, publishes);
              }
              failures += oldPut.failures;
              tally.before.perSecond.push(oldPut.perSecond);
              tally.before.ratios.push(oldPut.perSecond / verdaccioPut.perSecond);
              tally.before.againstBefore.push(strataPut.perSecond / oldPut.perSecond);
              log(`round ${round + 1} (${client}): publish PUT before (${options.compareRoot}) ${Math.round(oldPut.perSecond)}/s (${oldPut.failures} failed), ratio to verdaccio ${(oldPut.perSecond / verdaccioPut.perSecond).toFixed(2)}; load ${loadAverage()}`);
            }
            failures += verdaccioPut.failures + strataPut.failures;
            tally.verdaccio.push(verdaccioPut.perSecond);
            tally.strata.push(strataPut.perSecond);
            tally.ratios.push(strataPut.perSecond / verdaccioPut.perSecond);
            log(`round ${round + 1} (${client}): publish PUT verdaccio ${Math.round(verdaccioPut.perSecond)}/s (${verdaccioPut.failures} failed), strata ${Math.round(strataPut.perSecond)}/s (${strataPut.failures} failed), ratio ${(strataPut.perSecond / verdaccioPut.perSecond).toFixed(2)}; load ${loadAverage()}`);
          }
        } finally {
          await old?.stop();
        }
      } finally {
        await verdaccio.stop();
        await strata.stop();
      }
    }
    const results: BenchResult[] = [];
    if (options.only !== 'publish') {
      results.push({
        benchmark: 'npm packument GET',
        backend,
        measured: { label: 'strata', perSecond: median(gets.strata) },
        reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: median(gets.verdaccio) },
        target: { ratio: 3 },
        roundRatios: getRatios,
        notes: `one package with ${packumentVersions} versions, full packument, bearer token on both; wrk -t1 -c32 -d${options.seconds}s; median of ${options.rounds} rounds`,
      });
    }
    if (options.only !== 'get') {
      for (const [client, tally] of tallies) {
        const load = client === 'wrk' ? `wrk -t1 -c${publishClients} for ${options.seconds} s` : `${publishClients} undici clients in the bench process`;
        results.push({
          benchmark: `npm publish PUT (${client})`,
          backend,
          measured: { label: 'strata', perSecond: median(tally.strata) },
          reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: median(tally.verdaccio) },
          target: { ratio: 5 },
          roundRatios: tally.ratios,
          notes: `${load}, each document a new package with one version and a ~0.5 KiB tarball, bearer token on both; ${failures} failed publishes; median of ${options.rounds} rounds`,
        });
        if (options.compareRoot !== undefined) {
          results.push({
            benchmark: `npm publish PUT (${client}), before (--compare) against verdaccio`,
            backend,
            measured: { label: 'before', perSecond: median(tally.before.perSecond) },
            reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: median(tally.verdaccio) },
            target: { ratio: 5 },
            roundRatios: tally.before.ratios,
            notes: `${options.compareRoot}, same rounds; after / before per round: ${tally.before.againstBefore.map((ratio) => ratio.toFixed(2)).join(', ')}`,
          });
        }
      }
    }
    return results;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The issue's second publish figure: the real `npm publish` run `publishes` times in sequence
 * against each server (one package, versions 1.0.0, 1.0.1, …), the two servers alternating
 * call by call so both see the same load. Each server's rate is publishes over the summed wall
 * time of its calls; target: Strata no slower than Verdaccio (ratio ≥ 1).
 */
export async function npmClientPublishBenchmark(options: { publishes: number; backend?: 'pglite' | 'postgres' }): Promise<BenchResult[]> {
  const backend = options.backend ?? 'pglite';
  const work = await mkdtemp(join(tmpdir(), 'strata-bench-npm-client-'));
  try {
    const verdaccioBin = await installVerdaccio(work);
    const verdaccio = await startVerdaccio(work, verdaccioBin, 0);
    const strata = await startStrata(work, 0, backend);
    const seconds = { strata: [] as number[], verdaccio: [] as number[] };
    const serverSeconds = { strata: [] as number[], verdaccio: [] as number[] };
    try {
      const sides = await Promise.all(
        ([['verdaccio', verdaccio], ['strata', strata]] as const).map(async ([label, registry]) => {
          const dir = join(work, `client-${label}`);
          await mkdir(dir, { recursive: true });
          const npmrc = join(dir, '.npmrc');
          const host = registry.url.replace(/^https?:/, '');
          await writeFile(npmrc, `registry=${registry.url}/\n${host}/:_authToken=${registry.token}\n`);
          await writeFile(join(dir, 'index.js'), 'module.exports = 42;\n');
          return { label, registry, dir, npmrc };
        }),
      );
      const env = { PATH: process.env.PATH ?? '', HOME: work, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };
      for (let index = 0; index < options.publishes; index++) {
        for (const side of index % 2 === 0 ? sides : [...sides].reverse()) {
          await writeFile(join(side.dir, 'package.json'), JSON.stringify({ name: 'bench-client-publish', version: `1.0.${index}`, main: 'index.js', license: 'MIT' }));
          const started = performance.now();
          const { stderr } = await run('npm', ['publish', '--userconfig', side.npmrc, '--registry', `${side.registry.url}/`, '--loglevel=http', '--ignore-scripts'], { cwd: side.dir, env, timeout: 120_000 });
          seconds[side.label].push((performance.now() - started) / 1000);
          // npm logs each request with its time ("npm http fetch PUT 201 <url> 35ms"): the server's share of the call.
          let requestMs = 0;
          const requests: string[] = [];
          for (const match of stderr.matchAll(/npm http fetch (\w+) (\d+) \S+ (\d+)ms/g)) {
            requestMs += Number(match[3]);
            requests.push(`${match[1]} ${match[2]}`);
          }
          serverSeconds[side.label].push(requestMs / 1000);
          if (index === 1) log(`npm publish requests to ${side.label}: ${requests.join(', ')}`);
        }
        if ((index + 1) % 50 === 0) {
          log(
            `npm publish ${index + 1}/${options.publishes}: median call verdaccio ${median(seconds.verdaccio).toFixed(3)} s (requests ${median(serverSeconds.verdaccio).toFixed(3)} s), ` +
              `strata ${median(seconds.strata).toFixed(3)} s (requests ${median(serverSeconds.strata).toFixed(3)} s)`,
          );
        }
      }
    } finally {
      await verdaccio.stop();
      await strata.stop();
    }
    const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
    const rate = { strata: options.publishes / sum(seconds.strata), verdaccio: options.publishes / sum(seconds.verdaccio) };
    return [
      {
        benchmark: 'npm publish (client, sequential)',
        backend,
        measured: { label: 'strata', perSecond: rate.strata },
        reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: rate.verdaccio },
        target: { ratio: 1 },
        roundRatios: [rate.strata / rate.verdaccio],
        notes:
          `the npm client run ${options.publishes} times in sequence per server, calls alternating between the servers; median call verdaccio ${median(seconds.verdaccio).toFixed(3)} s, strata ${median(seconds.strata).toFixed(3)} s; ` +
          `median time in requests (npm's http log) verdaccio ${median(serverSeconds.verdaccio).toFixed(3)} s, strata ${median(serverSeconds.strata).toFixed(3)} s`,
      },
    ];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const flag = (name: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
  const results = await npmRegistryBenchmark({
    rounds: Number(flag('rounds') ?? 3),
    seconds: Number(flag('seconds') ?? 10),
    ...(flag('backend') === undefined ? {} : { backend: flag('backend') as 'pglite' | 'postgres' }),
    ...(flag('publishes') === undefined ? {} : { publishes: Number(flag('publishes')) }),
    ...(flag('compare') === undefined ? {} : { compareRoot: flag('compare') }),
    ...(flag('only') === undefined ? {} : { only: flag('only') as 'publish' | 'get' }),
    ...(flag('client') === undefined ? {} : { clients: publishClientsFlag(flag('client')!) }),
  });
  printTable(results);
}
