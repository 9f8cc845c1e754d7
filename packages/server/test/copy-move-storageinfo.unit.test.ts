import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('copy, move and storage info', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
    for (const key of ['src', 'dst']) await t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: { rclass: 'local' } });
    for (const path of ['lib/a.jar;team=core', 'lib/sub/b.jar', 'c.txt']) {
      await t.app.inject({ method: 'PUT', url: `/artifactory/src/${path}`, payload: path, headers: { 'content-type': 'application/octet-stream' } });
    }
  });
  afterEach(async () => {
    await t.app.close();
  });

  const eventsOf = (repo: string) => (t.store.streams.get(`repo-${repo}`) ?? []).map((e) => e.type);

  it('a dry-run copy checks everything and appends nothing', async () => {
    const before = t.store.all.length;
    const response = await t.app.inject({ method: 'POST', url: '/artifactory/api/copy/src/lib?to=/dst/lib&dry=1' });
    expect(response.statusCode).toBe(200);
    expect(response.json().messages[0].message).toContain('dry run');
    expect(t.store.all.length).toBe(before);
  });

  it('copies a folder to another repository with its properties in one append', async () => {
    const response = await t.app.inject({ method: 'POST', url: '/artifactory/api/copy/src/lib?to=/dst/copied' });
    expect(response.statusCode).toBe(200);
    expect(eventsOf('dst')).toEqual(['RepositoryCreated', 'ArtifactDeployed', 'ArtifactDeployed']);
    const props = await t.app.inject({ method: 'GET', url: '/artifactory/api/storage/dst/copied/a.jar?properties' });
    expect(props.json().properties).toEqual({ team: ['core'] });
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/dst/copied/sub/b.jar' })).body).toBe('lib/sub/b.jar');
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/src/lib/sub/b.jar' })).statusCode).toBe(200);
  });

  it('moves a file into an existing folder and deletes the source', async () => {
    const response = await t.app.inject({ method: 'POST', url: '/artifactory/api/move/src/c.txt?to=/src/lib/' });
    expect(response.statusCode).toBe(200);
    expect(eventsOf('src').slice(-2)).toEqual(['ArtifactDeployed', 'ArtifactDeleted']);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/src/lib/c.txt' })).body).toBe('c.txt');
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/src/c.txt' })).statusCode).toBe(404);
  });

  it('refuses to move a folder into itself and a copy to a missing repository', async () => {
    expect((await t.app.inject({ method: 'POST', url: '/artifactory/api/move/src/lib?to=/src/lib/sub/x' })).statusCode).toBe(400);
    expect((await t.app.inject({ method: 'POST', url: '/artifactory/api/copy/src/lib?to=/nowhere/lib' })).statusCode).toBe(404);
  });

  it('summarises storage per repository with a TOTAL row', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/storageinfo' });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    const src = body.repositoriesSummaryList.find((r: { repoKey: string }) => r.repoKey === 'src');
    expect(src).toMatchObject({ repoType: 'LOCAL', filesCount: 3, foldersCount: 2, itemsCount: 5 });
    expect(body.repositoriesSummaryList.at(-1)).toMatchObject({ repoKey: 'TOTAL', filesCount: 3 });
    expect(body.binariesSummary).toMatchObject({ artifactsCount: '3' });
  });
});
