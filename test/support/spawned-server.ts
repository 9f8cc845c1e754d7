import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = fileURLToPath(new URL('../../packages/cli/bin/strata.js', import.meta.url));
/** The shipped launcher (sh): sets the process-start memory settings and execs node on CLI, same pid. */
const LAUNCHER = fileURLToPath(new URL('../../packages/cli/bin/strata', import.meta.url));

/** Children still running: killed when the test process exits, so a failed test never leaks a server. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

export const ADMIN_PASSWORD = 'e2e-admin-password';
export const ADMIN_AUTH = `Basic ${Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64')}`;

/** A free loopback port (bound then released; the server binds it right after). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

export interface SpawnedServer {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the process wrote (stdout + stderr), for diagnostics. */
  output(): string;
  /** SIGTERM (graceful) and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** kill -9 and wait for exit. */
  kill(): Promise<void>;
  /** Waits (bounded) for the process to exit by itself; returns the exit code. */
  exited(timeoutMs?: number): Promise<number | null>;
}

export interface SpawnOptions {
  readonly dataDir: string;
  readonly databaseUrl?: string;
  readonly startTimeoutMs?: number;
  readonly env?: Record<string, string>;
  /** A fixed port (e.g. to restart a site where its federation members address it); default: a free one. */
  readonly port?: number;
}

/** Starts `strata serve` as a child process on a loopback port and waits until ping answers. */
export async function spawnServer(options: SpawnOptions): Promise<SpawnedServer> {
  const port = options.port ?? (await freePort());
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    STRATA_ADMIN_PASSWORD: ADMIN_PASSWORD,
    STRATA_LOG_LEVEL: 'warn',
    ...options.env,
  };
  delete env.DATABASE_URL;
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  // STRATA_SPAWN_NODE_ARGS: extra node flags for the served process (e.g. --cpu-prof while profiling a benchmark).
  // Without them the server starts as users start it: through the launcher, on this node.
  const nodeArgs = (process.env['STRATA_SPAWN_NODE_ARGS'] ?? '').split(' ').filter((arg) => arg !== '');
  const serveArgs = ['serve', '--port', String(port), '--host', '127.0.0.1', '--data', options.dataDir];
  env.STRATA_NODE = process.execPath;
  const [command, args] = nodeArgs.length === 0 ? [LAUNCHER, serveArgs] : [process.execPath, [...nodeArgs, CLI, ...serveArgs]];
  const child = spawn(command, args, {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
  // Bounded: polls until the deadline.
  for (;;) {
    if (hasExited) throw new Error(`strata serve exited before answering:\n${output}`);
    try {
      const response = await fetch(`${url}/artifactory/api/system/ping`, { signal: AbortSignal.timeout(1_000) });
      if (response.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`strata serve did not answer within ${options.startTimeoutMs ?? 60_000} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    url,
    port,
    child,
    output: () => output,
    async stop() {
      if (hasExited) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async exited(timeoutMs = 20_000) {
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (hasExited) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** fetch against the server as the built-in admin. */
export function adminFetch(server: { url: string }, path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (!headers.has('authorization')) headers.set('authorization', ADMIN_AUTH);
  return fetch(`${server.url}${path}`, { ...init, headers });
}
