/**
 * npm registry benchmarks against Verdaccio (issue 7, "Performance"). Verdaccio is installed
 * from npm into a temporary directory and run on loopback in the same run, with token auth
 * on both sides (the token `npm login` returns; Verdaccio's JWT tokens, since its legacy
 * tokens cost a bcrypt password check per request) and its fastest settings (no uplinks, no
 * web UI, logging at fatal):
 * - packument GET of one package with 20 versions, wrk -t1 -c32, target ≥ 3 × Verdaccio;
 * - publish documents PUT by 8 concurrent clients (each publish a new package with one
 *   version and its base64 tarball), target ≥ 5 × Verdaccio.
 * Rounds interleave the two servers; the reported ratio is the median of per-round ratios.
 * Runnable alone: `node --import tsx bench/npm-registry.bench.ts [--rounds=N] [--seconds=N] [--backend=pglite|postgres] [--only=publish|get]`.
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
}

interface Registry {
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
  const tarball = gzipSync(Buffer.concat([Buffer.from(`package/package.json ${name}@${version}\n`), randomBytes(512)]));
  const dist = {
    integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
    shasum: createHash('sha1').update(tarball).digest('hex'),
    tarball: `http://registry/${name}/-/${name}-${version}.tgz`,
  };
  return JSON.stringify({
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
    const putRatios: number[] = [];
    const puts = { strata: [] as number[], verdaccio: [] as number[] };
    const before = { ratios: [] as number[], perSecond: [] as number[], againstBefore: [] as number[] };
    const beforeDatabase = new URL(serverDatabaseUrl.href);
    beforeDatabase.pathname = `${serverDatabaseUrl.pathname}_before`;
    let failures = 0;
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
        // per publish the first time and 1.9–2.7 ms the second, load 6–9).
        await warmUpPublishes(verdaccio, `wv${round}`);
        await warmUpPublishes(strata, `ws${round}`);
        const verdaccioPut = await publishRun(verdaccio, `v${round}`, Math.max(100, Math.round(publishes / 5)));
        let strataPut: { perSecond: number; failures: number };
        if (options.compareRoot === undefined) strataPut = await publishRun(strata, `s${round}`, publishes);
        else {
          // The other checkout's server on its own database, started after this round's GETs.
          const old = await startStrata(work, `before-${round}`, backend, options.compareRoot, beforeDatabase);
          try {
            await warmUpPublishes(old, `wb${round}`);
            let oldPut: { perSecond: number; failures: number };
            if (round % 2 === 0) {
              strataPut = await publishRun(strata, `s${round}`, publishes);
              oldPut = await publishRun(old, `b${round}`, publishes);
            } else {
              oldPut = await publishRun(old, `b${round}`, publishes);
              strataPut = await publishRun(strata, `s${round}`, publishes);
            }
            failures += oldPut.failures;
            before.perSecond.push(oldPut.perSecond);
            before.ratios.push(oldPut.perSecond / verdaccioPut.perSecond);
            before.againstBefore.push(strataPut.perSecond / oldPut.perSecond);
            log(`round ${round + 1}: publish PUT before (${options.compareRoot}) ${Math.round(oldPut.perSecond)}/s (${oldPut.failures} failed), ratio to verdaccio ${(oldPut.perSecond / verdaccioPut.perSecond).toFixed(2)}; load ${loadAverage()}`);
          } finally {
            await old.stop();
          }
        }
        failures += verdaccioPut.failures + strataPut.failures;
        puts.verdaccio.push(verdaccioPut.perSecond);
        puts.strata.push(strataPut.perSecond);
        putRatios.push(strataPut.perSecond / verdaccioPut.perSecond);
        log(`round ${round + 1}: publish PUT verdaccio ${Math.round(verdaccioPut.perSecond)}/s (${verdaccioPut.failures} failed), strata ${Math.round(strataPut.perSecond)}/s (${strataPut.failures} failed), ratio ${(strataPut.perSecond / verdaccioPut.perSecond).toFixed(2)}; load ${loadAverage()}`);
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
      results.push({
        benchmark: 'npm publish PUT',
        backend,
        measured: { label: 'strata', perSecond: median(puts.strata) },
        reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: median(puts.verdaccio) },
        target: { ratio: 5 },
        roundRatios: putRatios,
        notes: `${publishClients} concurrent clients, each document a new package with one version and a ~0.5 KiB tarball, bearer token on both; ${failures} failed publishes; median of ${options.rounds} rounds`,
      });
      if (options.compareRoot !== undefined) {
        results.push({
          benchmark: 'npm publish PUT, before (--compare) against verdaccio',
          backend,
          measured: { label: 'before', perSecond: median(before.perSecond) },
          reference: { label: `verdaccio ${VERDACCIO_VERSION}`, perSecond: median(puts.verdaccio) },
          target: { ratio: 5 },
          roundRatios: before.ratios,
          notes: `${options.compareRoot}, same rounds; after / before per round: ${before.againstBefore.map((ratio) => ratio.toFixed(2)).join(', ')}`,
        });
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
  });
  printTable(results);
}
