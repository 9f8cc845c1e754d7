import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase } from './support/postgres-database.ts';
import { adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked by the assertions
const json = async (response: Response): Promise<any> => response.json();
const sha256 = (bytes: Uint8Array | string) => createHash('sha256').update(bytes).digest('hex');

interface Backend {
  readonly name: string;
  setUp(): Promise<{ databaseUrl?: string; tearDown(): Promise<void> } | undefined>;
}

const backends: Backend[] = [
  { name: 'PGlite', setUp: async () => ({ tearDown: async () => {} }) },
  {
    name: 'PostgreSQL',
    setUp: async () => {
      let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
      try {
        database = await freshPostgresDatabase('strata_e2e');
      } catch (error) {
        console.log(`skipping the PostgreSQL e2e run: cannot create a test database (${(error as Error).message})`);
        return undefined;
      }
      if (database === undefined) {
        console.log('skipping the PostgreSQL e2e run: DATABASE_URL is not set');
        return undefined;
      }
      return { databaseUrl: database.url, tearDown: () => database.drop() };
    },
  },
];

for (const backend of backends) {
  describe(`a real server process on ${backend.name}`, () => {
    let dataDir: string;
    let server: SpawnedServer | undefined;
    let setUp: Awaited<ReturnType<Backend['setUp']>>;
    const start = () => spawnServer({ dataDir, ...(setUp?.databaseUrl === undefined ? {} : { databaseUrl: setUp.databaseUrl }) });

    beforeAll(async () => {
      setUp = await backend.setUp();
      dataDir = await mkdtemp(join(tmpdir(), 'strata-e2e-'));
      if (setUp !== undefined) server = await start();
    });
    afterAll(async () => {
      await server?.stop();
      await setUp?.tearDown();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('creates a repository, deploys, lists, annotates, downloads, deletes, and keeps it all across a restart', async (context) => {
      if (server === undefined) return context.skip();
      const s = () => server as SpawnedServer;
      const create = await adminFetch(s(), '/artifactory/api/repositories/e2e-local', {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ rclass: 'local', packageType: 'generic' }),
      });
      expect(create.status).toBe(200);

      const body = Buffer.from('strata e2e artifact\n'.repeat(100));
      const deploy = await adminFetch(s(), '/artifactory/e2e-local/org/acme/tool/1.0/tool-1.0.tgz;release=yes', {
        method: 'PUT',
        headers: { 'x-checksum-sha256': sha256(body) },
        body,
      });
      expect(deploy.status).toBe(201);
      expect(await json(deploy)).toMatchObject({ repo: 'e2e-local', path: '/org/acme/tool/1.0/tool-1.0.tgz', checksums: { sha256: sha256(body) } });
      const keep = Buffer.from('kept');
      expect((await adminFetch(s(), '/artifactory/e2e-local/org/keep.txt', { method: 'PUT', body: keep })).status).toBe(201);
      const gone = Buffer.from('gone');
      expect((await adminFetch(s(), '/artifactory/e2e-local/tmp/gone.txt', { method: 'PUT', body: gone })).status).toBe(201);

      const list = await adminFetch(s(), '/artifactory/api/storage/e2e-local?list&deep=1');
      expect((await json(list)).files.map((f: { uri: string }) => f.uri)).toEqual(['/org/acme/tool/1.0/tool-1.0.tgz', '/org/keep.txt', '/tmp/gone.txt']);

      expect((await adminFetch(s(), '/artifactory/api/storage/e2e-local/org/keep.txt?properties=team=core;os=linux,mac', { method: 'PUT' })).status).toBe(204);
      const properties = await adminFetch(s(), '/artifactory/api/storage/e2e-local/org/keep.txt?properties');
      expect((await json(properties)).properties).toEqual({ team: ['core'], os: ['linux', 'mac'] });

      const download = await adminFetch(s(), '/artifactory/e2e-local/org/acme/tool/1.0/tool-1.0.tgz');
      expect(download.status).toBe(200);
      expect(download.headers.get('x-checksum-sha256')).toBe(sha256(body));
      expect(sha256(new Uint8Array(await download.arrayBuffer()))).toBe(sha256(body));

      expect((await adminFetch(s(), '/artifactory/e2e-local/tmp', { method: 'DELETE' })).status).toBe(204);
      expect((await adminFetch(s(), '/artifactory/e2e-local/tmp/gone.txt')).status).toBe(404);

      expect(await s().stop()).toBe(0);
      server = await start();

      const again = await adminFetch(s(), '/artifactory/e2e-local/org/acme/tool/1.0/tool-1.0.tgz');
      expect(again.status).toBe(200);
      expect(sha256(new Uint8Array(await again.arrayBuffer()))).toBe(sha256(body));
      expect((await json(await adminFetch(s(), '/artifactory/api/storage/e2e-local/org/keep.txt?properties'))).properties).toEqual({ team: ['core'], os: ['linux', 'mac'] });
      expect((await adminFetch(s(), '/artifactory/e2e-local/tmp/gone.txt')).status).toBe(404);
      const repos = await json(await adminFetch(s(), '/artifactory/api/repositories?type=local'));
      expect(repos.map((r: { key: string }) => r.key)).toContain('e2e-local');
      const stats = await json(await adminFetch(s(), '/artifactory/api/storage/e2e-local/org/acme/tool/1.0/tool-1.0.tgz?stats'));
      expect(stats.downloadCount).toBeGreaterThanOrEqual(2);
    });

    it('refuses an anonymous deploy with 401 and a challenge', async (context) => {
      if (server === undefined) return context.skip();
      const response = await fetch(`${server.url}/artifactory/e2e-local/anon.txt`, { method: 'PUT', body: 'x' });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toMatch(/^Basic/);
      expect((await json(response)).errors[0].status).toBe(401);
    });
  });
}
