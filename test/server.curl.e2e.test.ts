import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

const run = promisify(execFile);
const sha = (algorithm: string, bytes: Uint8Array) => createHash(algorithm).update(bytes).digest('hex');

async function curlAvailable(): Promise<boolean> {
  try {
    await run('curl', ['--version']);
    return true;
  } catch {
    return false;
  }
}

describe('curl against a running server', () => {
  let dir: string;
  let server: SpawnedServer | undefined;
  let hasCurl = false;

  beforeAll(async () => {
    hasCurl = await curlAvailable();
    if (!hasCurl) {
      console.log('skipping the curl e2e test: curl is not installed');
      return;
    }
    dir = await mkdtemp(join(tmpdir(), 'strata-curl-'));
    server = await spawnServer({ dataDir: join(dir, 'data') });
  });
  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const curl = (...args: string[]) => run('curl', ['-sS', '-u', `admin:${ADMIN_PASSWORD}`, ...args], { maxBuffer: 16 * 1024 * 1024 });

  it('deploys with -T and a checksum header, downloads whole, by range, by ETag and by HEAD', async (context) => {
    if (!hasCurl || server === undefined) return context.skip();
    const base = `${server.url}/artifactory`;
    await curl('-X', 'PUT', '-H', 'Content-Type: application/json', '-d', '{"rclass":"local"}', `${base}/api/repositories/curl-local`);
    const bytes = randomBytes(200_000);
    const file = join(dir, 'tool.tgz');
    await writeFile(file, bytes);
    const deployed = JSON.parse((await curl('-T', file, '-H', `X-Checksum-Sha256: ${sha('sha256', bytes)}`, `${base}/curl-local/tools/tool-1.0.tgz;channel=stable`)).stdout);
    expect(deployed).toMatchObject({ repo: 'curl-local', path: '/tools/tool-1.0.tgz', size: String(bytes.length), checksums: { sha1: sha('sha1', bytes) } });

    const out = join(dir, 'out.tgz');
    await curl('-o', out, `${base}/curl-local/tools/tool-1.0.tgz`);
    expect(sha('sha256', await readFile(out))).toBe(sha('sha256', bytes));

    const ranged = await curl('-r', '100-199', '-o', out, '-w', '%{http_code}', `${base}/curl-local/tools/tool-1.0.tgz`);
    expect(ranged.stdout).toBe('206');
    expect(Buffer.compare(await readFile(out), bytes.subarray(100, 200))).toBe(0);

    const cached = await curl('-o', '/dev/null', '-w', '%{http_code}', '-H', `If-None-Match: "${sha('sha1', bytes)}"`, `${base}/curl-local/tools/tool-1.0.tgz`);
    expect(cached.stdout).toBe('304');

    const head = await curl('-I', `${base}/curl-local/tools/tool-1.0.tgz`);
    expect(head.stdout).toMatch(new RegExp(`x-checksum-sha256: ${sha('sha256', bytes)}`, 'i'));
    expect(head.stdout).toMatch(new RegExp(`content-length: ${bytes.length}`, 'i'));

    const properties = JSON.parse((await curl(`${base}/api/storage/curl-local/tools/tool-1.0.tgz?properties`)).stdout);
    expect(properties.properties).toEqual({ channel: ['stable'] });

    const mismatch = await curl('-T', file, '-H', `X-Checksum-Sha1: ${'0'.repeat(40)}`, '-o', '/dev/null', '-w', '%{http_code}', `${base}/curl-local/tools/bad.tgz`);
    expect(mismatch.stdout).toBe('409');

    const traversal = await curl('--path-as-is', '-T', file, '-o', '/dev/null', '-w', '%{http_code}', `${base}/curl-local/tools/../../../etc/passwd`);
    expect(Number(traversal.stdout)).toBeGreaterThanOrEqual(400);
    expect(Number(traversal.stdout)).toBeLessThan(500);
  });
});
