import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase } from './support/postgres-database.ts';
import { adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Concurrent deploy clients; the kill comes once this many deploys were acknowledged, or after the time limit. */
const deployClients = 8;
const acknowledgedBeforeKill = 60;
const loadDurationMsMax = 15_000;
const deploysPerClientMax = 2_000;

// Small deploys keep their blob in the database, written with the event (docs/storage.md,
// "Inline blobs"); the bodies here (256 B – 8 KiB) take that path. PostgreSQL when DATABASE_URL is set.
const backends = process.env.DATABASE_URL === undefined || process.env.DATABASE_URL === '' ? ['pglite'] : ['pglite', 'postgres'];

describe.each(backends)('durability on %s', (backend) => {
  let dataDir: string;
  let server: SpawnedServer | undefined;
  let database: { url: string; drop(): Promise<void> } | undefined;
  const start = () => spawnServer({ dataDir, ...(database === undefined ? {} : { databaseUrl: database.url }) });

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'strata-durability-'));
    if (backend === 'postgres') database = await freshPostgresDatabase('strata_durability');
    server = await start();
  });
  afterAll(async () => {
    await server?.kill();
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('every acknowledged deploy survives kill -9 during a deploy load', async () => {
    const s = () => server as SpawnedServer;
    const create = await adminFetch(s(), '/artifactory/api/repositories/durable', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rclass: 'local' }),
    });
    expect(create.status).toBe(200);

    const acknowledged = new Map<string, string>();
    let refused = 0;
    let killed = false;
    const client = async (clientIndex: number) => {
      for (let i = 0; i < deploysPerClientMax && !killed; i++) {
        const body = randomBytes(256 + ((clientIndex * 7919 + i * 104_729) % 8_192));
        const path = `load/c${clientIndex}/file-${i}.bin`;
        try {
          const response = await adminFetch(s(), `/artifactory/durable/${path}`, { method: 'PUT', body });
          if (response.status === 201) acknowledged.set(path, sha256(body));
          else refused += 1;
          await response.arrayBuffer();
        } catch {
          // The connection died with the server: not acknowledged, nothing is promised.
        }
      }
    };
    const load = Promise.all(Array.from({ length: deployClients }, (_, index) => client(index)));
    const loadStarted = Date.now();
    // Bounded: polls until enough acknowledgements or the time limit; the load is still running at the kill.
    while (acknowledged.size < acknowledgedBeforeKill && Date.now() - loadStarted < loadDurationMsMax) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await s().kill();
    killed = true;
    await load;
    expect(acknowledged.size).toBeGreaterThan(0);
    console.log(`durability: ${acknowledged.size} deploys acknowledged in ${Date.now() - loadStarted} ms before kill -9 (${refused} refused)`);

    server = await start();
    const missing: string[] = [];
    const wrong: string[] = [];
    for (const [path, expected] of acknowledged) {
      const response = await adminFetch(s(), `/artifactory/durable/${path}`);
      if (response.status !== 200) {
        missing.push(`${path}: ${response.status}`);
        await response.arrayBuffer();
        continue;
      }
      const actual = sha256(new Uint8Array(await response.arrayBuffer()));
      if (actual !== expected || response.headers.get('x-checksum-sha256') !== expected) wrong.push(path);
    }
    expect(missing).toEqual([]);
    expect(wrong).toEqual([]);
  });
});
