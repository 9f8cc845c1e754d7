/**
 * (D) Release-bundle distribution throughput: a source and an edge `strata serve` process on
 * loopback (PGlite each). Each round deploys 100 new 64 KiB files to the source, spread over
 * three repositories, creates a bundle of them, and times `POST /api/release/distribute`
 * until the edge has committed (start, 100 transfers verified by sha256, commit re-checking
 * every checksum, publish in one multi-stream append).
 * Reference, in the same round: the same 100 files PUT to the edge's artifactory-edge-uploads
 * by plain deploys, 4 at a time (the distribution's transfer parallelism) — what moving the
 * bytes costs without the protocol. The issue names no target; the figure is recorded.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ADMIN_PASSWORD, adminFetch, spawnServer } from '../test/support/spawned-server.ts';
import { log, median, type BenchResult } from './support/report.ts';

const FILES = 100;
const REPOS = ['libs', 'libs-2', 'libs-3'];
const FILE_BYTES = 64 * 1024;
const json = { 'content-type': 'application/json' };

async function expectStatus(response: Promise<Response>, status: number, what: string): Promise<Response> {
  const answered = await response;
  if (answered.status !== status) throw new Error(`${what}: ${answered.status} ${await answered.text()}`);
  return answered;
}

export async function distributionBenchmark(rounds: number): Promise<BenchResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'strata-bench-distribution-'));
  const [source, edge] = await Promise.all([
    spawnServer({ dataDir: join(dir, 'source') }),
    spawnServer({ dataDir: join(dir, 'edge'), env: { STRATA_EDGE: 'true' } }),
  ]);
  try {
    for (const repo of REPOS) await expectStatus(adminFetch(source, `/artifactory/api/repositories/${repo}`, { method: 'PUT', headers: json, body: '{"rclass":"local"}' }), 200, `create ${repo}`);
    const key = await (await fetch(`${source.url}/artifactory/api/security/keys/public`)).json();
    await expectStatus(adminFetch(edge, '/artifactory/api/security/keys/trusted', { method: 'PUT', headers: json, body: JSON.stringify(key) }), 201, 'trust');
    const distributedPerSecond: number[] = [];
    const deployedPerSecond: number[] = [];
    const roundRatios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const files = Array.from({ length: FILES }, (_, index) => ({ repo: REPOS[index % REPOS.length]!, path: `r${round}/f${index}.bin`, bytes: randomBytes(FILE_BYTES) }));
      for (const file of files) await expectStatus(adminFetch(source, `/artifactory/${file.repo}/${file.path}`, { method: 'PUT', body: file.bytes }), 201, 'deploy');
      await expectStatus(
        adminFetch(source, '/artifactory/api/release/bundles', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ name: 'bench', version: `r${round}`, artifacts: files.map((file) => ({ repo: file.repo, path: file.path })) }),
        }),
        201,
        'create bundle',
      );
      const started = performance.now();
      const distributed = await expectStatus(
        adminFetch(source, `/artifactory/api/release/distribute/bench/r${round}`, {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ targets: [{ url: `${edge.url}/artifactory`, username: 'admin', password: ADMIN_PASSWORD }] }),
        }),
        200,
        'distribute',
      );
      const distributionSeconds = (performance.now() - started) / 1000;
      const result = ((await distributed.json()) as { results: { status: string; message?: string }[] }).results[0];
      if (result?.status !== 'COMPLETED') throw new Error(`distribution failed: ${result?.message}`);

      // Reference: the same bytes as plain deploys to the edge's uploads repository, 4 at a time.
      const referenceStarted = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < files.length) {
            const file = files[next++]!;
            await expectStatus(adminFetch(edge, `/artifactory/artifactory-edge-uploads/${file.path}`, { method: 'PUT', body: file.bytes }), 201, 'reference deploy');
          }
        }),
      );
      const referenceSeconds = (performance.now() - referenceStarted) / 1000;
      distributedPerSecond.push(FILES / distributionSeconds);
      deployedPerSecond.push(FILES / referenceSeconds);
      roundRatios.push(referenceSeconds / distributionSeconds);
      log(`distribution round ${round + 1}: ${FILES} files (${(FILES * FILE_BYTES) / 2 ** 20} MiB) distributed in ${distributionSeconds.toFixed(2)} s; plain deploys ${referenceSeconds.toFixed(2)} s`);
    }
    return [
      {
        benchmark: 'distribution (100 × 64 KiB bundle over 3 repositories, source → edge)',
        backend: 'pglite',
        measured: { label: 'files distributed', perSecond: median(distributedPerSecond) },
        reference: { label: 'files PUT to the edge', perSecond: median(deployedPerSecond) },
        target: { ratio: 0 },
        notes: 'no target named by the issue',
        roundRatios,
      },
    ];
  } finally {
    await Promise.all([source.stop(), edge.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}
