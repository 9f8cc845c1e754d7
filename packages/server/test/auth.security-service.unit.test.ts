import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { RecordedEvent } from '@strata/core';
import { BoundedLru, ScryptPasswordHasher, type Principal } from '../src/auth/index.ts';
import { ADMIN_PASSWORD, ManualClock, SystemStreamStore, adminAuth, basic, securityFixture, startedApp } from './auth-support.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const admin: Principal = { name: '_test', anonymous: false, admin: true, groups: [] };
const ctx = { principal: admin, requestId: 'req-1', clientAddress: '127.0.0.1' };

describe('the built-in admin', () => {
  it('is created at first start with the given password, and not again', async () => {
    const { security, store } = securityFixture();
    expect(await security.ensureAdmin('s3cret')).toBeUndefined();
    expect(security.principalOf('admin')).toMatchObject({ name: 'admin', admin: true });
    expect(await security.ensureAdmin('other')).toBeUndefined();
    expect(store.events.filter((event) => event.type === 'UserSaved')).toHaveLength(1);
    expect(await security.authenticate(basic('admin', 's3cret'))).toMatchObject({ name: 'admin' });
  });

  it('is created with a hash of its password made beforehand (no hashing then), which signs in', async () => {
    const { security, hasher } = securityFixture();
    const prepared = hasher.hash('s3cret');
    const hashesBefore = hasher.hashes;
    expect(await security.ensureAdmin('s3cret', prepared)).toBeUndefined();
    expect(hasher.hashes).toBe(hashesBefore);
    expect(await security.authenticate(basic('admin', 's3cret'))).toMatchObject({ name: 'admin', admin: true });
  });

  it('ignores a hash made beforehand when the admin already exists (a failed one too)', async () => {
    const { security, store } = securityFixture();
    await security.ensureAdmin('s3cret');
    const failed = Promise.reject(new Error('hashing failed'));
    failed.catch(() => undefined);
    expect(await security.ensureAdmin('other', failed)).toBeUndefined();
    expect(store.events.filter((event) => event.type === 'UserSaved')).toHaveLength(1);
    expect(await security.authenticate(basic('admin', 's3cret'))).toMatchObject({ name: 'admin' });
  });

  it('gets a generated password, returned once, when none is given', async () => {
    const { security } = securityFixture();
    const generated = await security.ensureAdmin(undefined);
    expect(generated).toMatch(/^[A-Za-z0-9_-]{24}$/);
    expect(await security.authenticate(basic('admin', generated!))).toMatchObject({ admin: true });
    expect(await security.ensureAdmin(undefined)).toBeUndefined();
  });

  it('is not re-created by a second server over the same store', async () => {
    const store = new SystemStreamStore();
    const first = securityFixture({ store });
    const second = securityFixture({ store, siteId: 'site-a' });
    await second.security.start(); // loaded before the first creates admin: learns of it on conflict
    await first.security.ensureAdmin('one');
    expect(await second.security.ensureAdmin('two')).toBeUndefined();
    expect(store.events.filter((event) => event.type === 'UserSaved')).toHaveLength(1);
  });

  it('the last administrator cannot be deleted or demoted', async () => {
    const { security } = securityFixture();
    await security.ensureAdmin(ADMIN_PASSWORD);
    await expect(security.deleteUser(ctx, 'admin')).rejects.toMatchObject({ code: 'STRATA_ERR_SECURITY_INVALID' });
    await expect(security.updateUser(ctx, 'admin', { admin: false })).rejects.toMatchObject({ code: 'STRATA_ERR_SECURITY_INVALID' });
    await security.putUser(ctx, 'root2', { email: 'r@x.io', password: 'p', admin: true });
    await security.deleteUser(ctx, 'admin');
    expect(security.principalOf('admin')).toBeUndefined();
  });
});

describe('the system stream', () => {
  it('holds every change as an event with origin, gapless originSeq, hlc and meta, and no secret in clear', async () => {
    const { security, store } = securityFixture({ siteId: 'site-x' });
    await security.ensureAdmin(ADMIN_PASSWORD);
    await security.putUser(ctx, 'bob', { email: 'b@x.io', password: 'bob-password' });
    const token = await security.issueToken(ctx, { username: 'bob' });
    const apiKey = await security.createApiKey({ principal: security.principalOf('bob')! }, { regenerate: false });
    expect(store.events.map((event) => event.type)).toEqual(['UserSaved', 'UserSaved', 'TokenIssued', 'TokenIssued']);
    expect(store.events.map((event) => [event.origin, event.originSeq])).toEqual([['site-x', 1], ['site-x', 2], ['site-x', 3], ['site-x', 4]]);
    expect(store.events[1]?.meta).toEqual({ actor: '_test', requestId: 'req-1', clientAddress: '127.0.0.1' });
    const serialised = JSON.stringify(store.events, (_key, value: unknown) => (typeof value === 'bigint' ? value.toString() : value));
    for (const secret of [ADMIN_PASSWORD, 'bob-password', token.accessToken, apiKey]) expect(serialised).not.toContain(secret);
    expect(String((store.events[1]?.data as Record<string, unknown>).passwordHash)).toMatch(/^scrypt\$/);
  });

  it('is replayed at start into the same state', async () => {
    const store = new SystemStreamStore();
    const first = securityFixture({ store });
    await first.security.ensureAdmin(ADMIN_PASSWORD);
    await first.security.putGroup(ctx, 'devs', {});
    await first.security.putUser(ctx, 'bob', { email: 'b@x.io', password: 'p', groups: ['devs'] });
    await first.security.putPermissionTarget(ctx, 't', { repositories: ['libs'], groups: { devs: ['deploy'] } });
    await first.security.setAnonymousAccess(ctx, true);
    const token = await first.security.issueToken(ctx, { username: 'bob', expiresInSeconds: 600 });

    const second = securityFixture({ store, clock: first.clock });
    await second.security.start();
    expect(second.security.revision).toBe(first.security.revision);
    expect(second.security.settings.anonymousAccess).toBe(true);
    const bob = second.security.authenticate({ authorization: `Bearer ${token.accessToken}` }) as Principal;
    expect(bob).toMatchObject({ name: 'bob', groups: ['devs'] });
    expect(second.security.accessControl.isAllowed(bob, { repo: 'libs', path: 'x', action: 'deploy' })).toBe(true);
    expect(second.security.getPermissionTarget(ctx, 't')).toEqual(first.security.getPermissionTarget(ctx, 't'));
  });

  it('retries an append that lost a race, deciding again on the caught-up state', async () => {
    const { security, store } = securityFixture();
    await security.ensureAdmin(ADMIN_PASSWORD);
    store.failNextAppendsWithConflict(2);
    await security.putUser(ctx, 'bob', { email: 'b@x.io', password: 'p' });
    expect(store.events.at(-1)?.type).toBe('UserSaved');
    expect(security.principalOf('bob')).toBeDefined();
  });

  it('gives up after appendRetriesMax conflicts', async () => {
    const { security, store } = securityFixture({ limits: { appendRetriesMax: 2 } });
    await security.ensureAdmin(ADMIN_PASSWORD);
    store.failNextAppendsWithConflict(10);
    await expect(security.putGroup(ctx, 'g', {})).rejects.toMatchObject({ code: 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT' });
  });

  it('two servers over one store never lose a change, and a server decides on the other’s changes', async () => {
    const store = new SystemStreamStore();
    const clock = new ManualClock();
    const a = securityFixture({ store, clock, siteId: 'site-a' });
    const b = securityFixture({ store, clock, siteId: 'site-a' });
    await a.security.ensureAdmin(ADMIN_PASSWORD);
    await b.security.start();
    await a.security.putGroup(ctx, 'devs', {});
    // b has not seen the group yet; its write conflicts, catches up and then validates against it.
    await b.security.putUser(ctx, 'bob', { email: 'b@x.io', password: 'p', groups: ['devs'] });
    expect(store.events.map((event) => event.revision)).toEqual([0, 1, 2]);
    await a.security.refresh();
    expect(a.security.principalOf('bob')).toMatchObject({ groups: ['devs'] });
    expect(new Set(store.events.map((event) => event.originSeq)).size).toBe(3);
  });

  it('a token revoked on one server is refused by another after it refreshes (polling)', async () => {
    const store = new SystemStreamStore();
    const clock = new ManualClock();
    const a = securityFixture({ store, clock });
    const b = securityFixture({ store, clock, limits: { refreshIntervalMs: 10 } });
    await a.security.ensureAdmin(ADMIN_PASSWORD);
    const token = await a.security.issueToken(ctx, { username: 'admin' });
    await b.security.start();
    expect(b.security.authenticate({ authorization: `Bearer ${token.accessToken}` })).toMatchObject({ name: 'admin' });
    await a.security.revokeToken(ctx, { token: token.accessToken });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(() => b.security.authenticate({ authorization: `Bearer ${token.accessToken}` })).toThrow('Bad credentials');
    await b.security.close();
  });

  it('refuses to load a stream holding an invalid security record', async () => {
    const store = new SystemStreamStore();
    const { security } = securityFixture({ store });
    await security.ensureAdmin(ADMIN_PASSWORD);
    const bad = { ...store.events[0], data: { name: 'Bad Name', admin: 'yes' } } as unknown as RecordedEvent;
    store.events[0] = bad;
    const reader = securityFixture({ store });
    await expect(reader.security.start()).rejects.toMatchObject({ code: 'STRATA_ERR_EVENT_INVALID' });
  });
});

describe('users and groups over HTTP', () => {
  it('PUT creates (201), GET shows Artifactory JSON without the password, POST updates, DELETE removes', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/groups/readers', headers: adminAuth(), payload: { description: 'Readers' } });
    const created = await app.inject({
      method: 'PUT',
      url: '/artifactory/api/security/users/davids',
      headers: { ...adminAuth(), 'content-type': 'application/vnd.org.jfrog.artifactory.security.User+json' },
      payload: JSON.stringify({ name: 'davids', email: 'davids@jfrog.com', password: 'pw', groups: ['readers'] }),
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.body).toBe('');
    const user = await app.inject({ url: '/artifactory/api/security/users/davids', headers: adminAuth() });
    expect(user.json()).toEqual({
      name: 'davids',
      email: 'davids@jfrog.com',
      admin: false,
      profileUpdatable: true,
      disableUIAccess: false,
      internalPasswordDisabled: false,
      realm: 'internal',
      groups: ['readers'],
    });
    expect(user.body).not.toContain('password"');
    const updated = await app.inject({ method: 'POST', url: '/artifactory/api/security/users/davids', headers: adminAuth(), payload: { email: 'd@x.io' } });
    expect(updated.statusCode).toBe(200);
    expect((await app.inject({ url: '/artifactory/api/security/users/davids', headers: adminAuth() })).json()).toMatchObject({ email: 'd@x.io', groups: ['readers'] });
    expect((await app.inject({ url: '/whoami', headers: basic('davids', 'pw') })).statusCode).toBe(200);
    const list = await app.inject({ url: '/artifactory/api/security/users', headers: adminAuth() });
    expect(list.json()).toEqual([
      { name: 'admin', uri: 'http://localhost:80/artifactory/api/security/users/admin', realm: 'internal' },
      { name: 'davids', uri: 'http://localhost:80/artifactory/api/security/users/davids', realm: 'internal' },
    ]);
    const group = await app.inject({ url: '/artifactory/api/security/groups/readers?includeUsers=true', headers: adminAuth() });
    expect(group.json()).toEqual({ name: 'readers', description: 'Readers', autoJoin: false, adminPrivileges: false, realm: 'internal', userNames: ['davids'] });
    const removed = await app.inject({ method: 'DELETE', url: '/artifactory/api/security/users/davids', headers: adminAuth() });
    expect(removed.body).toBe("User 'davids' has been removed successfully.");
    expect((await app.inject({ url: '/artifactory/api/security/users/davids', headers: adminAuth() })).statusCode).toBe(404);
    expect((await app.inject({ url: '/whoami', headers: basic('davids', 'pw') })).statusCode).toBe(401);
  });

  it('refuses bad user input with 400 and unknown users with 404', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    const put = (name: string, payload: object) => app!.inject({ method: 'PUT', url: `/artifactory/api/security/users/${name}`, headers: adminAuth(), payload });
    expect((await put('bob', { password: 'p' })).statusCode).toBe(400); // no email
    expect((await put('bob', { email: 'b@x.io' })).statusCode).toBe(400); // no password
    expect((await put('bob', { email: 'not-an-email', password: 'p' })).statusCode).toBe(400);
    expect((await put('bob', { email: 'b@x.io', password: 'p', groups: ['nope'] })).statusCode).toBe(400);
    expect((await put('bob', { email: 'b@x.io', password: 'p', admin: 'yes' })).statusCode).toBe(400);
    expect((await put('b%20ob', { email: 'b@x.io', password: 'p' })).statusCode).toBe(400);
    expect((await put('bob', { email: 'b@x.io', password: 'x'.repeat(300) })).statusCode).toBe(400);
    expect((await app.inject({ method: 'POST', url: '/artifactory/api/security/users/ghost', headers: adminAuth(), payload: { email: 'g@x.io' } })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/artifactory/api/security/groups/ghost', headers: adminAuth() })).statusCode).toBe(404);
  });

  it('a user may read their own record but not another’s', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    expect((await app.inject({ url: '/artifactory/api/security/users/bob', headers: basic('bob', 'p') })).statusCode).toBe(200);
    expect((await app.inject({ url: '/artifactory/api/security/users/admin', headers: basic('bob', 'p') })).statusCode).toBe(403);
  });

  it('new users join autoJoin groups; deleting a group removes its memberships', async () => {
    const { security } = securityFixture();
    await security.ensureAdmin(ADMIN_PASSWORD);
    await security.putGroup(ctx, 'everyone', { autoJoin: true });
    await security.putUser(ctx, 'bob', { email: 'b@x.io', password: 'p' });
    expect(security.getUser(ctx, 'bob').groups).toEqual(['everyone']);
    await security.deleteGroup(ctx, 'everyone');
    await security.putGroup(ctx, 'everyone', {});
    expect(security.getUser(ctx, 'bob').groups).toEqual([]);
  });

  it('lists tokens: all for an admin, own for a user', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    await app.inject({ method: 'POST', url: '/artifactory/api/security/token', headers: adminAuth(), payload: {} });
    await app.inject({ method: 'POST', url: '/artifactory/api/security/token', headers: basic('bob', 'p'), payload: { expires_in: '300' } });
    const all = (await app.inject({ url: '/artifactory/api/security/token', headers: adminAuth() })).json() as { tokens: { subject: string }[] };
    expect(all.tokens.map((token) => token.subject).sort()).toEqual(['admin', 'bob']);
    const own = (await app.inject({ url: '/artifactory/api/security/token', headers: basic('bob', 'p') })).json() as { tokens: Record<string, unknown>[] };
    expect(own.tokens).toHaveLength(1);
    expect(own.tokens[0]).toMatchObject({ subject: 'bob', issuer: 'bob', refreshable: false, scope: 'applied-permissions/user' });
    expect(own.tokens[0]?.expiry).toBe((own.tokens[0]?.issued_at as number) + 300);
  });

  it('the token endpoint refuses anonymous callers with 401', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    const response = await app.inject({ method: 'POST', url: '/artifactory/api/security/token', payload: { username: 'admin' } });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Basic realm="Artifactory Realm"');
  });
});

describe('building blocks', () => {
  it('scrypt hashes are salted and verify in constant time; malformed encodings are refused', async () => {
    const hasher = new ScryptPasswordHasher({ cost: 2 ** 10 });
    const one = await hasher.hash('pw');
    const two = await hasher.hash('pw');
    expect(one).not.toBe(two);
    expect(await hasher.verify('pw', one)).toBe(true);
    expect(await hasher.verify('pW', one)).toBe(false);
    expect(await hasher.verify('pw', 'scrypt$3$8$1$abc$def')).toBe(false);
    expect(await hasher.verify('pw', `scrypt$${2 ** 30}$8$1$abc$def`)).toBe(false);
    expect(await hasher.verify('pw', 'bcrypt$whatever')).toBe(false);
  });

  it('the LRU evicts the least recently used entry', () => {
    const lru = new BoundedLru<string, number>(2);
    lru.set('a', 1);
    lru.set('b', 2);
    lru.get('a');
    lru.set('c', 3);
    expect([lru.get('a'), lru.get('b'), lru.get('c'), lru.size]).toEqual([1, undefined, 3, 2]);
  });
});
