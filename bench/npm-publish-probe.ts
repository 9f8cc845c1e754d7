/**
 * Probe, not a benchmark (no reference, no target): one `strata serve` of a checkout, the
 * npm-registry bench's publish load (8 closed-loop clients, new packages of one version),
 * 160 unmeasured warm-up publishes, then per run: publishes/s, latency p50/p90, and CPU per
 * publish of the server process, of its PostgreSQL backends (/proc of the pids
 * pg_stat_activity lists for the database) and of this client process.
 *   node --import tsx bench/npm-publish-probe.ts --db=postgres://…/<a database of your own> \
 *     [--checkout=DIR] [--backend=postgres|pglite] [--publishes=800] [--repeat=1] [--clients=8] [--prof=DIR]
 *     [--client=undici|wrk] [--seconds=10] [--trace-gc=FILE] [--node-args='--inspect=127.0.0.1:9339 …']
 * The database's public schema is dropped first. --prof writes the server's --cpu-prof there;
 * --trace-gc its V8 --trace-gc lines to FILE; --node-args starts the server's node with those options.
 * --client=wrk: the npm-registry bench's wrk load instead (wrk -t1 -c8 for --seconds, 2 s of
 * warm-up; the client's CPU is then wrk's, not this process's, and is not reported).
 * Used for docs/benchmarks.md (issue 7, "where a round of 8 publishes goes", 2026-12-06 night).
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import pg from 'pg';
import { freePort } from '../test/support/spawned-server.ts';
import { stopper, waitFor } from './server-http.bench.ts';
import { strataCommand } from './support/launcher.ts';
import { writePublishDocuments, wrkPublishRun } from './npm-registry.bench.ts';

const args = process.argv.slice(2);
const flag = (name: string) => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const checkout = flag('checkout') ?? process.cwd();
const backend = (flag('backend') ?? 'postgres') as 'postgres' | 'pglite';
const publishes = Number(flag('publishes') ?? 800);
const clients = Number(flag('clients') ?? 8);
const repeat = Number(flag('repeat') ?? 1);
const loadClient = flag('client') ?? 'undici';
const seconds = Number(flag('seconds') ?? 10);
const database = flag('db') ?? process.env.DATABASE_URL;
if (backend === 'postgres' && database === undefined) throw new Error('--db=<postgres url of a database of your own> (its public schema is dropped)');
const adminPassword = 'probe-admin-password';

function document(name: string, version: string): string {
  const tarball = gzipSync(Buffer.concat([Buffer.from(`package/package.json ${name}@${version}\n`), randomBytes(512)]));
  const dist = { integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`, shasum: createHash('sha1').update(tarball).digest('hex'), tarball: `http://registry/${name}/-/${name}-${version}.tgz` };
  return JSON.stringify({
    _id: name, name, description: 'a benchmark package', 'dist-tags': { latest: version },
    versions: { [version]: { name, version, description: 'a benchmark package', main: 'index.js', license: 'MIT', dependencies: { 'left-pad': '^1.3.0', lodash: '^4.17.21' }, _id: `${name}@${version}`, _nodeVersion: '20.20.2', _npmVersion: '11.0.0', dist } },
    access: null,
    _attachments: { [`${name}-${version}.tgz`]: { content_type: 'application/octet-stream', data: tarball.toString('base64'), length: tarball.length } },
  });
}

async function cpuTicks(pid: number): Promise<number> {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

const work = await mkdtemp(join(tmpdir(), 'pub5-probe-'));
if (backend === 'postgres') {
  const client = new pg.Client({ connectionString: database! });
  await client.connect();
  await client.query('drop schema if exists public cascade');
  await client.query('create schema public');
  await client.end();
}
const port = await freePort();
const env: NodeJS.ProcessEnv = { ...process.env, STRATA_ADMIN_PASSWORD: adminPassword };
delete env.DATABASE_URL;
if (backend === 'postgres') env.DATABASE_URL = database!;
const [command, commandArgs] = strataCommand(checkout, ['serve', '--host', '127.0.0.1', '--port', String(port), '--data', join(work, 'data')], env);
if (flag('prof') !== undefined) {
  const wrapper = join(work, 'node-prof.sh');
  await writeFile(wrapper, `#!/bin/sh\nexec ${process.execPath} --cpu-prof --cpu-prof-dir=${flag('prof')} "$@"\n`, { mode: 0o755 });
  env.STRATA_NODE = wrapper;
}
if (flag('trace-gc') !== undefined || flag('node-args') !== undefined) {
  // The server's node with these options; V8's --trace-gc lines (they go to its stdout) into that file.
  const wrapper = join(work, 'node-args.sh');
  const nodeArgs = [...(flag('trace-gc') === undefined ? [] : ['--trace-gc']), ...(flag('node-args')?.split(' ') ?? [])].join(' ');
  const stdout = flag('trace-gc') === undefined ? '' : ` > ${flag('trace-gc')}`;
  await writeFile(wrapper, `#!/bin/sh\nexec ${process.execPath} ${nodeArgs} "$@"${stdout}\n`, { mode: 0o755 });
  env.STRATA_NODE = wrapper;
}
const child = spawn(command, commandArgs, { cwd: checkout, env, stdio: ['ignore', 'ignore', 'pipe'] });
let stderr = '';
child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
const base = `http://127.0.0.1:${port}`;
try {
  await waitFor(`${base}/artifactory/api/system/ping`, child, () => stderr);
  const created = await fetch(`${base}/artifactory/api/repositories/npm-local`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`admin:${adminPassword}`).toString('base64')}` },
    body: JSON.stringify({ rclass: 'local', packageType: 'npm' }),
  });
  if (created.status !== 200) throw new Error(`create → ${created.status}`);
  const url = `${base}/artifactory/api/npm/npm-local`;
  const login = await fetch(`${url}/-/user/org.couchdb.user:admin`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'admin', password: adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  const run = async (prefix: string, count: number) => {
    const docs = Array.from({ length: count }, (_, index) => ({ name: `${prefix}-${index}`, body: document(`${prefix}-${index}`, '1.0.0') }));
    const dispatcher = new Agent({ connections: clients, keepAliveTimeout: 30_000 });
    let next = 0;
    let failures = 0;
    const latencies: number[] = [];
    const started = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async () => {
        for (let index = next++; index < docs.length; index = next++) {
          const t = performance.now();
          const response = await request(`${url}/${encodeURIComponent(docs[index]!.name)}`, { method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'npm-command': 'publish' }, body: docs[index]!.body, dispatcher });
          const text = await response.body.text();
          latencies.push(performance.now() - t);
          if (response.statusCode !== 201) {
            failures++;
            if (failures < 3) console.error(response.statusCode, text);
          }
        }
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    await dispatcher.close();
    latencies.sort((a, b) => a - b);
    return { perSecond: (count - failures) / seconds, seconds, failures, p50: latencies[Math.floor(latencies.length / 2)]!, p90: latencies[Math.floor(latencies.length * 0.9)]! };
  };
  const registry = { url, token, stop: async () => {} };
  const wrkRun = async (prefix: string, runSeconds: number) => {
    const documents = await writePublishDocuments(join(work, `${prefix}.txt`), prefix, runSeconds * 3000);
    const result = await wrkPublishRun(work, registry, documents, runSeconds, false);
    return { perSecond: result.perSecond, failures: result.failures, count: result.publishes, p50: result.p50Ms, p90: result.p99Ms };
  };
  if (loadClient === 'wrk') await wrkRun('warm', 2);
  else await run('warm', 160);
  const backends = async () => {
    if (backend !== 'postgres') return [] as number[];
    const client = new pg.Client({ connectionString: database! });
    await client.connect();
    const { rows } = await client.query<{ pid: number }>("select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()");
    await client.end();
    return rows.map((row) => row.pid);
  };
  for (let r = 0; r < repeat; r++) {
    const pids = await backends();
    const before = { server: await cpuTicks(child.pid!), pg: (await Promise.all(pids.map(cpuTicks))).reduce((a, b) => a + b, 0), client: process.cpuUsage(), load: (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ') };
    const result = loadClient === 'wrk' ? await wrkRun(`p${r}`, seconds) : { ...(await run(`p${r}`, publishes)), count: publishes };
    const count = result.count;
    // Backends the pool opened during the run: all their CPU is the run's.
    const joined = (await backends()).filter((pid) => !pids.includes(pid));
    const after = { server: await cpuTicks(child.pid!), pg: (await Promise.all([...pids, ...joined].map(cpuTicks))).reduce((a, b) => a + b, 0), client: process.cpuUsage(before.client) };
    pids.push(...joined);
    const perPublishMs = (ticks: number) => ((ticks * 10) / count).toFixed(2);
    console.log(
      `${checkout} ${backend}: ${result.perSecond.toFixed(0)}/s (${result.failures} failed), p50 ${result.p50.toFixed(1)} ms ${loadClient === 'wrk' ? 'p99' : 'p90'} ${result.p90.toFixed(1)} ms; CPU per publish: server ${perPublishMs(after.server - before.server)} ms, postgres ${perPublishMs(after.pg - before.pg)} ms (${pids.length} backends), ${loadClient === 'wrk' ? 'client wrk (not measured)' : `client ${((after.client.user + after.client.system) / 1000 / count).toFixed(2)} ms`}; load ${before.load}`,
    );
  }
} finally {
  await stopper(child)();
  await rm(work, { recursive: true, force: true });
}
