/**
 * asOf through a virtual whose member is a remote repository (issue 8): the remote's cache
 * as it was then answers, `{remote}-cache` too, and nothing is fetched upstream for a past
 * point. A real loopback upstream and a real socket.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { repositoryStream } from '@strata/core';
import { fetchBytes, listeningApp, putJson, StaticUpstream, type ListeningApp } from './support/remote-fixtures.ts';

describe('asOf through a virtual with a remote member', () => {
  let strata: ListeningApp;
  let upstream: StaticUpstream;
  /** The position of the last event the repository's stream holds now. */
  const lastPosition = async (repo: string) => String((await strata.store.readStream(repositoryStream(repo), { fromRevision: 0 })).at(-1)!.position);

  beforeEach(async () => {
    strata = await listeningApp();
    upstream = new StaticUpstream();
    await upstream.start();
  });
  afterEach(async () => {
    await strata.close();
    await upstream.stop();
  });

  it('answers from the remote cache as it was, never upstream', async () => {
    upstream.files.set('/files/lib/a.jar', { body: Buffer.from('from upstream') });
    expect((await putJson(`${strata.url}/api/repositories/libs`, { rclass: 'local' })).status).toBe(200);
    expect((await putJson(`${strata.url}/api/repositories/up`, { rclass: 'remote', url: `${upstream.url}/files` })).status).toBe(200);
    expect((await putJson(`${strata.url}/api/repositories/all`, { rclass: 'virtual', repositories: ['libs', 'up'] })).status).toBe(200);
    const beforeFill = await lastPosition('all');
    expect((await fetchBytes(`${strata.url}/all/lib/a.jar`)).body.toString()).toBe('from upstream');
    // The cache fill is recorded once the body is stored.
    for (let waited = 0; (await fetchBytes(`${strata.url}/api/storage/up-cache/lib/a.jar`)).status !== 200 && waited < 100; waited++) await new Promise((resolve) => setTimeout(resolve, 20));
    const filled = await lastPosition('up');
    // Today a local copy shadows it.
    expect((await fetchBytes(`${strata.url}/libs/lib/a.jar`, { method: 'PUT', body: 'deployed here' })).status).toBe(201);
    expect((await fetchBytes(`${strata.url}/all/lib/a.jar`)).body.toString()).toBe('deployed here');
    const hits = upstream.hitsOf('/files/lib/a.jar');

    const then = await fetchBytes(`${strata.url}/all/lib/a.jar?asOf=${filled}`);
    expect(then.status).toBe(200);
    expect(then.body.toString()).toBe('from upstream');
    const info = await fetchBytes(`${strata.url}/api/storage/all/lib/a.jar?asOf=${filled}`);
    expect(info.json()).toMatchObject({ repo: 'up', path: '/lib/a.jar' });
    expect((await fetchBytes(`${strata.url}/up-cache/lib/a.jar?asOf=${filled}`)).body.toString()).toBe('from upstream');
    // Before the fill the cache did not hold it, and a past read never goes upstream.
    expect((await fetchBytes(`${strata.url}/all/lib/a.jar?asOf=${beforeFill}`)).status).toBe(404);
    expect((await fetchBytes(`${strata.url}/up/lib/a.jar?asOf=${beforeFill}`)).status).toBe(404);
    expect(upstream.hitsOf('/files/lib/a.jar')).toBe(hits);
  });
});
