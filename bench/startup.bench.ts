/**
 * Start-up on an existing data directory (issue 2: `npm start` must answer within 5 s once the
 * embedded database exists). A fresh data directory is initialised once (not timed against
 * the target); then `strata serve` is started `rounds` times on it, each time timed from
 * spawn to the first 200 from /api/system/ping, paired with the start of a bare fastify
 * hello-world process (bench/server-references.ts, loaded the same way) as the reference.
 * Rates are starts per second (1 / seconds); the target is ≥ 0.2/s, i.e. at most 5 s.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/support/spawned-server.ts';
import { stopper } from './server-http.bench.ts';
import { strataCommand } from './support/launcher.ts';
import { log, median, type BenchResult } from './support/report.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const REFERENCES = fileURLToPath(new URL('./server-references.ts', import.meta.url));
const START_WAIT_MS_MAX = 120_000;

/** Spawns, waits until `url` answers 200, returns the milliseconds that took and the child. */
async function timeUntilAnswer(command: string, args: readonly string[], url: string, env: Record<string, string>): Promise<{ ms: number; child: ChildProcess }> {
  const started = performance.now();
  const child = spawn(command, args, { cwd: ROOT, env: { ...(process.env as Record<string, string>), ...env }, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  while (performance.now() - started < START_WAIT_MS_MAX) {
    if (child.exitCode !== null) throw new Error(`${command} ${args.join(' ')} exited with ${child.exitCode}: ${stderr.slice(-2000)}`);
    try {
      const response = await fetch(url);
      if (response.status === 200) return { ms: performance.now() - started, child };
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  child.kill('SIGKILL');
  throw new Error(`${url} did not answer within ${START_WAIT_MS_MAX} ms`);
}

export async function startupBenchmark(rounds: number): Promise<BenchResult> {
  const dataDir = await mkdtemp(join(tmpdir(), 'strata-bench-startup-'));
  const referenceDir = await mkdtemp(join(tmpdir(), 'strata-bench-startup-ref-'));
  const serverEnv: Record<string, string> = { STRATA_DATA: dataDir, STRATA_ADMIN_PASSWORD: 'bench-admin-password', STRATA_LOG_LEVEL: 'warn' };
  // As users start it: the launcher (process-start memory settings), which execs node.
  const [command, args] = strataCommand(ROOT, ['serve'], serverEnv);
  try {
    const firstPort = await freePort();
    const first = await timeUntilAnswer(command, args, `http://127.0.0.1:${firstPort}/artifactory/api/system/ping`, { ...serverEnv, PORT: String(firstPort) });
    await stopper(first.child)();
    log(`startup: first start (initialises the data directory) answered after ${Math.round(first.ms)} ms`);
    const serverMs: number[] = [];
    const referenceMs: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const port = await freePort();
      const server = await timeUntilAnswer(command, args, `http://127.0.0.1:${port}/artifactory/api/system/ping`, { ...serverEnv, PORT: String(port) });
      await stopper(server.child)();
      serverMs.push(server.ms);
      const referencePort = await freePort();
      const reference = await timeUntilAnswer(process.execPath, ['--import', 'tsx', REFERENCES, String(referencePort), referenceDir], `http://127.0.0.1:${referencePort}/hello`, {});
      await stopper(reference.child)();
      referenceMs.push(reference.ms);
      log(`startup round ${round + 1}: strata serve ${Math.round(server.ms)} ms, fastify hello-world ${Math.round(reference.ms)} ms`);
    }
    return {
      benchmark: 'startup (existing data dir → ping 200)',
      backend: 'pglite',
      measured: { label: `strata serve, median ${Math.round(median(serverMs))} ms; starts`, perSecond: 1000 / median(serverMs) },
      reference: { label: `fastify hello-world, median ${Math.round(median(referenceMs))} ms; starts`, perSecond: 1000 / median(referenceMs) },
      target: { perSecond: 0.2 },
      notes: `first start ${Math.round(first.ms)} ms; per round (ms): ${serverMs.map(Math.round).join(', ')} vs ${referenceMs.map(Math.round).join(', ')}`,
      roundRatios: serverMs.map((ms, index) => referenceMs[index]! / ms),
    };
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    await rm(referenceDir, { recursive: true, force: true });
  }
}
