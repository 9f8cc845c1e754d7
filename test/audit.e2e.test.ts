/**
 * Audit end to end (issue 8): a real `strata serve` process (PGlite data directory) answers
 * history and point-in-time requests over a socket; after it stops, the `strata` commands
 * verify the hash chains, print a path's history, export the repository, import it into an
 * investigation copy and replay it there; an event edited behind the store's back is found.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEventStore } from '@strata/store';
import { adminFetch, spawnServer, type SpawnedServer } from './support/spawned-server.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../packages/cli/bin/strata.js', import.meta.url));

interface Cli {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function strata(...args: string[]): Promise<Cli> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>) };
  delete env.DATABASE_URL;
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { env, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

describe('audit over a running server and the strata commands', () => {
  let dir: string;
  let data: string;
  let server: SpawnedServer | undefined;
  let positions: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-audit-e2e-'));
    data = join(dir, 'data');
    server = await spawnServer({ dataDir: data });
    const put = (path: string, body: string) => adminFetch(server!, `/artifactory/${path}`, { method: 'PUT', body });
    expect((await adminFetch(server, '/artifactory/api/repositories/libs', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"rclass":"local"}' })).status).toBe(200);
    expect((await adminFetch(server, '/artifactory/api/repositories/all', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"rclass":"virtual","repositories":["libs"]}' })).status).toBe(200);
    expect((await put('libs/org/app/1.0/app.jar', 'version one')).status).toBe(201);
    expect((await put('libs/org/app/1.0/app.jar', 'version two')).status).toBe(201);
    expect((await adminFetch(server, '/artifactory/api/storage/libs/org/app?properties=team=core', { method: 'PUT' })).status).toBe(204);
    expect((await adminFetch(server, '/artifactory/libs/org/app', { method: 'DELETE' })).status).toBe(204);
  }, 90_000);
  afterAll(async () => {
    await server?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('serves the history of a path and downloads as of an earlier position over HTTP', async () => {
    const response = await adminFetch(server!, '/artifactory/api/history/libs/org/app/1.0/app.jar');
    expect(response.status).toBe(200);
    const body = (await response.json()) as { events: { action: string; path: string; actor: string; position: string; received: boolean }[] };
    expect(body.events.map((event) => `${event.action} ${event.path}`)).toEqual([
      'repository-created /',
      'deployed /org/app/1.0/app.jar',
      'deployed /org/app/1.0/app.jar',
      'properties-set /org/app',
      'properties-set /org/app/1.0',
      'properties-set /org/app/1.0/app.jar',
      'folder-deleted /org/app',
    ]);
    expect(body.events.every((event) => event.actor === 'admin' && !event.received)).toBe(true);
    positions = body.events.map((event) => event.position);
    const first = await adminFetch(server!, `/artifactory/libs/org/app/1.0/app.jar?asOf=${positions[1]}`);
    expect(first.status).toBe(200);
    expect(await first.text()).toBe('version one');
    // Through the virtual, as it resolved then.
    const throughVirtual = await adminFetch(server!, `/artifactory/all/org/app/1.0/app.jar?asOf=${positions[1]}`);
    expect(throughVirtual.status).toBe(200);
    expect(await throughVirtual.text()).toBe('version one');
    expect((await adminFetch(server!, '/artifactory/all/org/app/1.0/app.jar')).status).toBe(404);
    const info = await adminFetch(server!, `/artifactory/api/storage/libs/org/app/1.0/app.jar?properties&asOf=${positions[5]}`);
    expect(((await info.json()) as { properties: unknown }).properties).toEqual({ team: ['core'] });
    expect((await adminFetch(server!, '/artifactory/libs/org/app/1.0/app.jar')).status).toBe(404);
  });

  it('verify, audit, export, import and replay work on the stopped site and its copy', async () => {
    expect(await server!.stop()).toBe(0);
    const verified = await strata('verify', '--data', data);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/verified \d+ events in 3 streams/);
    expect(verified.stdout).toContain('intact: no broken link');

    const audit = await strata('audit', '--data', data, '--repo', 'libs', '--path', '/org/app/1.0/app.jar', '--json');
    expect(audit.code).toBe(0);
    const events = JSON.parse(audit.stdout) as { action: string; position: string }[];
    expect(events.map((event) => event.position)).toEqual(positions);
    const table = await strata('audit', '--data', data, '--repo', 'libs', '--path', 'org/app/1.0/app.jar');
    expect(table.stdout.split('\n').filter((line) => line.includes('folder-deleted'))).toHaveLength(1);

    const exportFile = join(dir, 'libs.ndjson');
    const exported = await strata('export', '--data', data, '--repo', 'libs', '--output', exportFile);
    expect(exported.code).toBe(0);
    const lines = (await readFile(exportFile, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(7);
    expect((await strata('verify', '--file', exportFile)).code).toBe(0);

    const copy = join(dir, 'copy');
    const imported = await strata('import', '--data', copy, '--file', exportFile);
    expect(imported.stdout).toContain('imported 7 events');
    // Importing again adds nothing (event ids are the dedup key).
    expect((await strata('import', '--data', copy, '--file', exportFile)).stdout).toContain('imported 0 events (7 already present)');
    // Positions are each site's own: the copy numbered the events anew.
    const copyPositions = (JSON.parse((await strata('audit', '--data', copy, '--repo', 'libs', '--path', 'org/app/1.0/app.jar', '--json')).stdout) as { position: string }[]).map(
      (event) => event.position,
    );
    expect(copyPositions).toHaveLength(7);
    const replayed = await strata('replay', '--data', copy, '--repo', 'libs', '--until', copyPositions[2]!);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toMatch(/replayed 3 events of libs up to position \d+ into \d+ rows \(\d+ changed\) in [\d.]+ s: [\d,]+ events\/s/);
    expect((await strata('verify', '--data', copy, '--repo', 'libs')).code).toBe(0);

    // A tampered export is refused whole.
    const tampered = join(dir, 'tampered.ndjson');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(tampered, lines.map((line, index) => (index === 1 ? line.replace('"actor":"admin"', '"actor":"mallory"') : line)).join('\n'));
    const refused = await strata('import', '--data', join(dir, 'other'), '--file', tampered);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('BROKEN repo-libs at revision 2 (altered');
  }, 120_000);

  it('verify finds an event edited directly in the embedded database', async () => {
    const opened = await openEventStore({ dataDir: data });
    try {
      await sql`update events set hlc_wall = hlc_wall - 1 where stream = 'repo-libs' and revision = 1`.execute(opened.db);
    } finally {
      await opened.close();
    }
    const verified = await strata('verify', '--data', data);
    expect(verified.code).toBe(1);
    expect(verified.stdout).toMatch(/BROKEN repo-libs at revision 1 \(altered/);
  }, 60_000);
});
