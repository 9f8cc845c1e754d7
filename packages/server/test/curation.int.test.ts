import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { curationBlockReason, curationPolicyFromBody, versionGlobMatches } from '../src/curation/curation-policy.ts';
import { fetchBytes, listeningApp, putJson, StaticUpstream } from './support/remote-fixtures.ts';
import type { ListeningApp } from './support/remote-fixtures.ts';

describe('curation policy rules', () => {
  const policy = curationPolicyFromBody('p', {
    repositories: ['r'],
    pathPatterns: ['evil/**'],
    packages: ['left-pad', '@acme/tool@1.2.3'],
    versionPatterns: ['*-rc*'],
    properties: { license: 'GPL-3.0' },
  });

  it('blocks on any listed criterion, only for the repositories it names, and not when disabled', () => {
    expect(curationBlockReason(policy, { repo: 'r', path: 'evil/x.jar' })).toMatch(/path/);
    expect(curationBlockReason(policy, { repo: 'other', path: 'evil/x.jar' })).toBeUndefined();
    expect(curationBlockReason(policy, { repo: 'r', path: 'good/x.jar' })).toBeUndefined();
    expect(curationBlockReason(policy, { repo: 'r', path: 'p', packageCoordinates: { name: 'left-pad', version: '1.0.0' } })).toBe('package left-pad');
    expect(curationBlockReason(policy, { repo: 'r', path: 'p', packageCoordinates: { name: '@acme/tool', version: '1.2.3' } })).toBe('package @acme/tool@1.2.3');
    expect(curationBlockReason(policy, { repo: 'r', path: 'p', packageCoordinates: { name: '@acme/tool', version: '1.2.4' } })).toBeUndefined();
    expect(curationBlockReason(policy, { repo: 'r', path: 'p', packageCoordinates: { name: 'x', version: '2.0.0-rc.1' } })).toMatch(/matches \*-rc\*/);
    expect(curationBlockReason(policy, { repo: 'r', path: 'p', properties: { license: ['MIT', 'GPL-3.0'] } })).toBe('property license=GPL-3.0');
    expect(curationBlockReason({ ...policy, enabled: false }, { repo: 'r', path: 'evil/x.jar' })).toBeUndefined();
  });

  it('refuses invalid policies', () => {
    for (const body of [null, [], {}, { repositories: [] }, { repositories: ['r'] }, { repositories: ['r'], pathPatterns: 'evil/**' }, { repositories: ['r'], pathPatterns: [''] }, { repositories: ['r'], enabled: 'yes', packages: ['a'] }]) {
      expect(() => curationPolicyFromBody('p', body)).toThrow(expect.objectContaining({ code: 'STRATA_ERR_CURATION_POLICY_INVALID' }));
    }
    expect(() => curationPolicyFromBody('bad name', { repositories: ['r'], packages: ['a'] })).toThrow(/policy name/);
  });

  it('property: a version glob made of the version itself matches it, and every character outside * and ? is literal', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }).filter((s) => !/[*?]/.test(s)), fc.string({ maxLength: 5 }), (version, suffix) => {
        expect(versionGlobMatches(version, version)).toBe(true);
        expect(versionGlobMatches(`${version}*`, version + suffix)).toBe(true);
        if (suffix !== '') expect(versionGlobMatches(version, version + suffix)).toBe(false);
      }),
    );
  });
});

describe('curation through remote and virtual repositories (seeds/virtual-resolution-and-curation.txt)', () => {
  let strata: ListeningApp;
  let upstream: StaticUpstream;
  const repo = (key: string, body: Record<string, unknown>) => putJson(`${strata.url}/api/repositories/${key}`, body);
  const remoteTo = (key: string, folder: string, extra: Record<string, unknown> = {}) => repo(key, { rclass: 'remote', url: `${upstream.url}/${folder}`, ...extra });
  const get = (path: string, user = 'alice') => fetchBytes(`${strata.url}/${path}`, { headers: { 'x-test-user': user } });
  const policy = (name: string, body: Record<string, unknown>) => putJson(`${strata.url}/api/curation/policies/${name}`, body);

  beforeEach(async () => {
    strata = await listeningApp();
    upstream = new StaticUpstream();
    await upstream.start();
    for (const folder of ['curated', 'plain']) {
      upstream.files.set(`/${folder}/evil/bad.jar`, { body: Buffer.from(`bad from ${folder}`) });
      upstream.files.set(`/${folder}/good/ok.jar`, { body: Buffer.from(`ok from ${folder}`) });
    }
    upstream.files.set('/curated/evil/only-curated.jar', { body: Buffer.from('only curated') });
    await remoteTo('curated-remote', 'curated');
    await remoteTo('plain-remote', 'plain');
    await repo('empty-remote', { rclass: 'remote', url: `${upstream.url}/empty` });
    expect((await policy('no-evil', { repositories: ['curated-remote'], pathPatterns: ['evil/**'] })).status).toBe(200);
  });
  afterEach(async () => {
    await strata.close();
    await upstream.stop();
  });

  it('manages policies as events: PUT, GET, list, DELETE, with clear errors', async () => {
    const read = await fetchBytes(`${strata.url}/api/curation/policies/no-evil`);
    expect(read.json()).toMatchObject({ name: 'no-evil', repositories: ['curated-remote'], pathPatterns: ['evil/**'], enabled: true });
    expect((await fetchBytes(`${strata.url}/api/curation/policies`)).json()).toHaveLength(1);
    expect(strata.store.all.filter((event) => event.type === 'CurationPolicySaved')).toHaveLength(1);
    const notRemote = await policy('x', { repositories: ['nope'], pathPatterns: ['a/**'] });
    expect(notRemote.status).toBe(400);
    expect(notRemote.json().errors[0].message).toMatch(/'nope' is not a remote repository/);
    expect((await policy('x', { repositories: ['plain-remote'] })).json().errors[0].message).toMatch(/at least one criterion/);
    expect((await fetchBytes(`${strata.url}/api/curation/policies/no-evil`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetchBytes(`${strata.url}/api/curation/policies/no-evil`)).status).toBe(404);
    expect((await fetchBytes(`${strata.url}/api/curation/policies/no-evil`, { method: 'DELETE' })).status).toBe(404);
    expect(strata.store.all.filter((event) => event.type === 'CurationPolicyDeleted')).toHaveLength(1);
    // Without the policy the artifact resolves.
    expect((await get('curated-remote/evil/bad.jar')).status).toBe(200);
  });

  it('row "one curated remote repository": blocked → 403, from the remote and from a virtual holding only it; nothing fetched upstream', async () => {
    const direct = await get('curated-remote/evil/bad.jar');
    expect(direct.status).toBe(403);
    expect(direct.json().errors[0].message).toMatch(/blocked by curation policy 'no-evil'/);
    await repo('v-one', { rclass: 'virtual', repositories: ['curated-remote'] });
    expect((await get('v-one/evil/bad.jar')).status).toBe(403);
    expect(upstream.hitsOf('/curated/evil/bad.jar')).toBe(0);
    expect((await get('curated-remote/good/ok.jar')).status).toBe(200);
  });

  it('row "one smart repository linked to a curated remote": the upstream 403 travels on → 403', async () => {
    await repo('smart', { rclass: 'remote', url: `${strata.url}/curated-remote` });
    const response = await get('smart/evil/bad.jar');
    expect(response.status).toBe(403);
    expect(response.json().errors[0].message).toMatch(/403 \(blocked upstream\)/);
    expect((await get('smart/good/ok.jar')).body.toString()).toBe('ok from curated');
  });

  it('rows "multiple remotes, at least one curated": found → 200, 404 moves on, blocked → 403 only when no later member resolves, nothing → 404', async () => {
    await repo('v-plain-first', { rclass: 'virtual', repositories: ['plain-remote', 'curated-remote'] });
    await repo('v-curated-first', { rclass: 'virtual', repositories: ['curated-remote', 'plain-remote'] });
    await repo('v-miss-then-curated', { rclass: 'virtual', repositories: ['empty-remote', 'curated-remote'] });
    // Found and not blocked → 200.
    expect((await get('v-plain-first/evil/bad.jar')).body.toString()).toBe('bad from plain');
    // 404 in the first remote moves on to the next.
    expect((await get('v-miss-then-curated/good/ok.jar')).body.toString()).toBe('ok from curated');
    // Blocked in the first, resolved by a later member → 200 (the 403 is only remembered).
    expect((await get('v-curated-first/evil/bad.jar')).body.toString()).toBe('bad from plain');
    // Blocked and no later member has it → 403.
    const blocked = await get('v-curated-first/evil/only-curated.jar');
    expect(blocked.status).toBe(403);
    expect(blocked.json().errors[0].status).toBe(403);
    // Nothing has it → 404.
    expect((await get('v-curated-first/good/absent.jar')).status).toBe(404);
    expect(upstream.hitsOf('/curated/evil/bad.jar')).toBe(0);
  });

  it('records every block (who, what, which policy) and lists them newest first, filterable', async () => {
    await repo('v', { rclass: 'virtual', repositories: ['curated-remote'] });
    await get('curated-remote/evil/bad.jar', 'alice');
    await get('v/evil/only-curated.jar', 'bob');
    await policy('no-rc', { repositories: ['plain-remote'], pathPatterns: ['**/*-rc*'] });
    upstream.files.set('/plain/lib/lib-2.0-rc1.jar', { body: Buffer.from('rc') });
    await get('plain-remote/lib/lib-2.0-rc1.jar', 'carol');
    const all = (await fetchBytes(`${strata.url}/api/curation/blocks`)).json().blocks as Record<string, unknown>[];
    expect(all.map((block) => [block.actor, block.repo, block.path, block.policy, block.requestedRepo])).toEqual([
      ['carol', 'plain-remote', 'lib/lib-2.0-rc1.jar', 'no-rc', 'plain-remote'],
      ['bob', 'curated-remote', 'evil/only-curated.jar', 'no-evil', 'v'],
      ['alice', 'curated-remote', 'evil/bad.jar', 'no-evil', 'curated-remote'],
    ]);
    expect(all[0]).toMatchObject({ at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/), reason: expect.any(String) });
    const filtered = (await fetchBytes(`${strata.url}/api/curation/blocks?policy=no-evil&limit=1`)).json().blocks as Record<string, unknown>[];
    expect(filtered).toHaveLength(1);
    expect(filtered[0]).toMatchObject({ actor: 'bob' });
  });

  it('applies package rules through the hook a package format registers, and property rules to cached artifacts', async () => {
    strata.app.curation.registerPackageCoordinates('npm', (path) => {
      const match = /^(.+)\/-\/[^/]+-(\d[^/]*)\.tgz$/.exec(path);
      return match === null ? undefined : { name: match[1]!, version: match[2]! };
    });
    await repo('npm-remote', { rclass: 'remote', packageType: 'npm', url: `${upstream.url}/npm` });
    for (const file of ['left-pad/-/left-pad-1.3.0.tgz', 'lodash/-/lodash-4.17.21.tgz', 'lodash/-/lodash-5.0.0-rc.1.tgz']) upstream.files.set(`/npm/${file}`, { body: Buffer.from(file) });
    await policy('npm-rules', { repositories: ['npm-remote'], packages: ['left-pad'], versionPatterns: ['*-rc*'] });
    expect((await get('npm-remote/left-pad/-/left-pad-1.3.0.tgz')).status).toBe(403);
    expect((await get('npm-remote/lodash/-/lodash-4.17.21.tgz')).status).toBe(200);
    expect((await get('npm-remote/lodash/-/lodash-5.0.0-rc.1.tgz')).status).toBe(403);

    // Property rules: a cached artifact that gets a matching property is blocked from then on.
    expect((await get('plain-remote/good/ok.jar')).status).toBe(200);
    await policy('no-gpl', { repositories: ['plain-remote'], properties: { license: ['GPL-3.0'] } });
    expect((await get('plain-remote/good/ok.jar')).status).toBe(200);
    expect((await fetchBytes(`${strata.url}/api/storage/plain-remote/good/ok.jar?properties=license=GPL-3.0`, { method: 'PUT' })).status).toBe(204);
    expect((await get('plain-remote/good/ok.jar')).status).toBe(403);
    expect((await get('plain-remote-cache/good/ok.jar')).status).toBe(403);
  });
});
