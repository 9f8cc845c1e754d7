import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('repository configuration API', () => {
  let t: UnitApp;
  beforeEach(async () => {
    t = await buildUnitApp();
  });
  afterEach(async () => {
    await t.app.close();
  });

  const create = (key: string, body: unknown) => t.app.inject({ method: 'PUT', url: `/artifactory/api/repositories/${key}`, payload: body as object });

  it('creates a local repository as one RepositoryCreated event with Artifactory defaults', async () => {
    const response = await create('libs-local', { rclass: 'local', packageType: 'generic', description: 'd' });
    expect(response.statusCode).toBe(200);
    const events = t.store.streams.get('repo-libs-local') ?? [];
    expect(events.map((e) => e.type)).toEqual(['RepositoryCreated']);
    expect(events[0]).toMatchObject({ origin: 'site-test', originSeq: 1, meta: { actor: 'admin' } });
    const read = await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories/libs-local' });
    expect(read.json()).toMatchObject({ key: 'libs-local', rclass: 'local', packageType: 'generic', includesPattern: '**/*', excludesPattern: '', handleReleases: true, description: 'd' });
  });

  it('accepts the vendor configuration media type', async () => {
    const response = await t.app.inject({
      method: 'PUT',
      url: '/artifactory/api/repositories/vendor-local',
      headers: { 'content-type': 'application/vnd.org.jfrog.artifactory.repositories.LocalRepositoryConfiguration+json' },
      payload: JSON.stringify({ rclass: 'local' }),
    });
    expect(response.statusCode).toBe(200);
  });

  it('refuses a key that differs from an existing one only in case', async () => {
    expect((await create('Libs', { rclass: 'local' })).statusCode).toBe(200);
    const clash = await create('libs', { rclass: 'local' });
    expect(clash.statusCode).toBe(400);
    expect(clash.json().errors[0].message).toMatch(/already exists/);
  });

  it('refuses keys that begin with a digit, hold spaces or special characters, or are reserved', async () => {
    for (const key of ['1abc', 'a%20b', 'a$b', 'api', 'x'.repeat(65)]) {
      const response = await create(key, { rclass: 'local' });
      expect(response.statusCode, key).toBe(400);
      expect(response.json().errors[0].status).toBe(400);
    }
  });

  it('refuses invalid JSON and wrong field types with 400', async () => {
    const badJson = await t.app.inject({ method: 'PUT', url: '/artifactory/api/repositories/x', headers: { 'content-type': 'application/json' }, payload: '{"rclass":' });
    expect(badJson.statusCode).toBe(400);
    expect((await create('y', { rclass: 'local', handleReleases: 'yes' })).statusCode).toBe(400);
    expect((await create('z', { rclass: 'nonsense' })).statusCode).toBe(400);
    expect((await create('w', { rclass: 'local', packageType: 'cobol' })).statusCode).toBe(400);
    expect((await create('v', { rclass: 'local', includesPattern: 'a/../b' })).statusCode).toBe(400);
    expect(t.store.all).toHaveLength(0);
  });

  it('updates only changed fields and refuses a package type change', async () => {
    await create('npm-local', { rclass: 'local', packageType: 'npm' });
    const update = await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/npm-local', payload: { description: 'new', notes: '' } });
    expect(update.statusCode).toBe(200);
    const events = t.store.streams.get('repo-npm-local') ?? [];
    expect(events.at(-1)).toMatchObject({ type: 'RepositoryConfigChanged', originSeq: 2, data: { patch: { description: 'new' } } });
    const change = await t.app.inject({ method: 'POST', url: '/artifactory/api/repositories/npm-local', payload: { packageType: 'maven' } });
    expect(change.statusCode).toBe(400);
    expect(t.store.streams.get('repo-npm-local')).toHaveLength(2);
  });

  it('lists repositories filtered by type and deletes them', async () => {
    await create('a-local', { rclass: 'local' });
    await create('b-remote', { rclass: 'remote', url: 'https://repo1.maven.org/maven2' });
    const all = await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories' });
    expect(all.json().map((r: { key: string }) => r.key)).toEqual(['a-local', 'b-remote']);
    const remotes = await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories?type=remote' });
    expect(remotes.json()).toEqual([{ key: 'b-remote', type: 'REMOTE', description: '', url: 'https://repo1.maven.org/maven2', packageType: 'generic' }]);
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/api/repositories/a-local' })).statusCode).toBe(200);
    expect((await t.app.inject({ method: 'GET', url: '/artifactory/api/repositories/a-local' })).statusCode).toBe(404);
    expect((await t.app.inject({ method: 'DELETE', url: '/artifactory/api/repositories/a-local' })).statusCode).toBe(404);
  });
});
