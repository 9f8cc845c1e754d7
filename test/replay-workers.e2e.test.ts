/**
 * `strata replay --workers 2` through the shipped CLI (packages/cli/bin/strata.js: the
 * esbuild bundle, which starts the rebuild workers through @strata/store's
 * `./rebuild-worker-thread` export) on PostgreSQL: the artifact tree is folded by two worker
 * threads and the rebuilt tables equal those the appends maintained, and those of a replay
 * folded in one thread. PostgreSQL only (set DATABASE_URL): on PGlite the rebuild folds in
 * one thread.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositoryStream, type NewEvent } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection, openEventStore, readArtifactTreeSnapshot, readRepositorySnapshot } from '@strata/store';
import { freshPostgresDatabase } from './support/postgres-database.ts';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../packages/cli/bin/strata.js', import.meta.url));
const postgres = await freshPostgresDatabase('strata_replay_workers');
if (postgres === undefined) console.log('replay-workers: DATABASE_URL is not set, skipped (worker threads fold on PostgreSQL only)');

let ids = 0;
function event(type: NewEvent['type'], data: Record<string, unknown>): NewEvent {
  ids++;
  return { id: `rw-${ids}`, origin: 'site-w', originSeq: ids, hlc: { wall: 1_700_000_000_000 + ids, logical: 0 }, type, data, meta: { actor: 'alice' } } as NewEvent;
}
const checksums = (digit: string) => ({ sha256: digit.repeat(64), sha1: digit.repeat(40), md5: digit.repeat(32) });
const deploy = (path: string, digit = 'a') => event('ArtifactDeployed', { path, ...checksums(digit), size: 3, mimeType: 'text/plain', properties: { team: ['core'] } });

describe.skipIf(postgres === undefined)('strata replay with worker threads (PostgreSQL, bundled CLI)', () => {
  const url = postgres?.url ?? '';
  const snapshot = async () => {
    const opened = await openEventStore({ databaseUrl: url, projections: [] });
    try {
      return { tree: await readArtifactTreeSnapshot(opened.db), config: await readRepositorySnapshot(opened.db) };
    } finally {
      await opened.close();
    }
  };
  const strata = async (...args: string[]) => {
    const env: Record<string, string> = { ...(process.env as Record<string, string>) };
    delete env.DATABASE_URL;
    delete env.STRATA_REBUILD_WORKERS;
    return run(process.execPath, [CLI, ...args], { env, maxBuffer: 16 * 1024 * 1024 });
  };

  beforeAll(async () => {
    const opened = await openEventStore({ databaseUrl: url, projections: [new ArtifactTreeProjection(), new RepositoryConfigProjection()] });
    try {
      const repos = ['libs', 'npm-local', 'maven', 'docs', 'tmp'];
      for (const repo of repos) {
        const events = [event('RepositoryCreated', { key: repo, config: { rclass: 'local', packageType: 'generic' } })];
        for (let index = 0; index < 40; index++) events.push(deploy(`org/${repo}/${index % 7}/file-${index}.txt`, String(index % 10)));
        events.push(event('ArtifactDeleted', { path: `org/${repo}/1/file-1.txt` }));
        events.push(event('FolderDeleted', { prefix: `org/${repo}/2` }));
        events.push(event('PropertiesSet', { path: `org/${repo}/3/file-3.txt`, properties: { stage: ['qa'] } }));
        events.push(event('PropertiesRemoved', { path: `org/${repo}/4/file-4.txt`, keys: ['team'] }));
        events.push(event('RepositoryConfigChanged', { key: repo, patch: { description: `the ${repo} repository` } }));
        await opened.store.append(repositoryStream(repo), events);
      }
      // A repository deleted, then created again with new content.
      await opened.store.append(repositoryStream('tmp'), [event('RepositoryDeleted', { key: 'tmp' })]);
      await opened.store.append(repositoryStream('tmp'), [event('RepositoryCreated', { key: 'tmp', config: { rclass: 'local' } }), deploy('again.txt', 'f')]);
    } finally {
      await opened.close();
    }
  }, 60_000);
  afterAll(async () => {
    await postgres?.drop();
  });

  it('folds in two worker threads and rebuilds the tables the appends maintained', async () => {
    const maintained = await snapshot();
    expect(maintained.tree.files.length).toBeGreaterThan(150);
    const inWorkers = await strata('replay', '--database-url', url, '--workers', '2');
    expect(inWorkers.stdout).toMatch(/replayed [\d,]+ events into [\d,]+ rows in [\d.]+ s: [\d,]+ events\/s \(artifact tree folded by 2 worker threads\)/);
    expect(await snapshot()).toEqual(maintained);
    const inOneThread = await strata('replay', '--database-url', url, '--workers', '0');
    expect(inOneThread.stdout).not.toMatch(/worker threads/);
    expect(await snapshot()).toEqual(maintained);
    await expect(strata('replay', '--database-url', url, '--workers', 'two')).rejects.toMatchObject({ stderr: expect.stringMatching(/--workers/) });
  }, 120_000);
});
