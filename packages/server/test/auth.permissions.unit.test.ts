import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ANONYMOUS, PERMISSION_ACTIONS, type PermissionAction, type Principal } from '../src/auth/index.ts';
import { adminAuth, basic, securityFixture, startedApp, ADMIN_PASSWORD, type SecurityFixture } from './auth-support.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

const admin: Principal = { name: '_test', anonymous: false, admin: true, groups: [] };
const ctx = { principal: admin };

async function given(options: Parameters<typeof securityFixture>[0] = {}): Promise<SecurityFixture> {
  const fixture = securityFixture(options);
  await fixture.security.ensureAdmin(ADMIN_PASSWORD);
  for (const name of ['alice', 'bob', 'carol']) {
    await fixture.security.putUser(ctx, name, { email: `${name}@example.com`, password: `${name}-pass` });
  }
  return fixture;
}

function principal(fixture: SecurityFixture, name: string): Principal {
  const found = fixture.security.principalOf(name);
  if (found === undefined) throw new Error(`no user ${name}`);
  return found;
}

describe('permission targets', () => {
  it('map Artifactory letters r, n, w, d, m to read, annotate, deploy, delete, manage — each on its own', async () => {
    const fixture = await given();
    const letters: Record<PermissionAction, string> = { read: 'r', annotate: 'n', deploy: 'w', delete: 'd', manage: 'm' };
    for (const action of PERMISSION_ACTIONS) {
      await fixture.security.putPermissionTarget(ctx, 'only', { repositories: ['libs'], users: { bob: [action] } });
      const stored = fixture.security.getPermissionTarget(ctx, 'only');
      expect(stored.users).toEqual({ bob: [action] });
      for (const other of PERMISSION_ACTIONS) {
        const allowed = fixture.security.accessControl.isAllowed(principal(fixture, 'bob'), { repo: 'libs', path: 'a/b.jar', action: other });
        expect(allowed, `${letters[action]} grants ${other}?`).toBe(other === action);
      }
    }
  });

  it('are written and read back in Artifactory v1 JSON over HTTP', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/groups/readers', headers: adminAuth(), payload: {} });
    const body = {
      name: 'java-developers',
      includesPattern: 'org/**',
      excludesPattern: 'org/secret/**',
      repositories: ['libs-release', 'ANY REMOTE'],
      principals: { users: { bob: ['m', 'r', 'w'] }, groups: { readers: ['r'] } },
    };
    const put = await app.inject({ method: 'PUT', url: '/artifactory/api/security/permissions/java-developers', headers: adminAuth(), payload: body });
    expect(put.statusCode, put.body).toBe(201);
    const got = await app.inject({ url: '/artifactory/api/security/permissions/java-developers', headers: adminAuth() });
    expect(got.json()).toEqual({ ...body, principals: { users: { bob: ['r', 'w', 'm'] }, groups: { readers: ['r'] } } });
    const replaced = await app.inject({ method: 'PUT', url: '/artifactory/api/security/permissions/java-developers', headers: adminAuth(), payload: { ...body, repositories: ['ANY'] } });
    expect(replaced.statusCode).toBe(200);
    const list = await app.inject({ url: '/artifactory/api/security/permissions', headers: adminAuth() });
    expect(list.json()).toEqual([{ name: 'java-developers', uri: 'http://localhost:80/artifactory/api/security/permissions/java-developers' }]);
    const removed = await app.inject({ method: 'DELETE', url: '/artifactory/api/security/permissions/java-developers', headers: adminAuth() });
    expect(removed.statusCode).toBe(200);
    expect((await app.inject({ url: '/artifactory/api/security/permissions/java-developers', headers: adminAuth() })).statusCode).toBe(404);
  });

  it('refuse unknown letters, unknown principals, missing repositories and bad patterns with 400', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    const put = (payload: unknown) => app!.inject({ method: 'PUT', url: '/artifactory/api/security/permissions/t', headers: adminAuth(), payload: payload as object });
    expect((await put({ repositories: ['libs'], principals: { users: { admin: ['x'] } } })).statusCode).toBe(400);
    expect((await put({ repositories: ['libs'], principals: { users: { ghost: ['r'] } } })).statusCode).toBe(400);
    expect((await put({ repositories: ['libs'], principals: { groups: { ghosts: ['r'] } } })).statusCode).toBe(400);
    expect((await put({ principals: {} })).statusCode).toBe(400);
    expect((await put({ repositories: [] })).statusCode).toBe(400);
    expect((await put({ repositories: ['ANY THING'] })).statusCode).toBe(400);
    expect((await put({ repositories: ['libs'], includesPattern: 'a/../b' })).statusCode).toBe(400);
    expect((await put({ name: 'other', repositories: ['libs'] })).statusCode).toBe(400);
    const bad = await put({ repositories: ['libs'], principals: { users: { admin: ['x'] } } });
    expect(bad.json().errors[0].message).toContain("unknown permission 'x'");
  });

  it('scope access to the named repositories and to the include/exclude patterns', async () => {
    const fixture = await given();
    await fixture.security.putPermissionTarget(ctx, 'org', {
      repositories: ['libs'],
      includesPattern: 'org/**, com/acme/*.jar',
      excludesPattern: 'org/secret/**',
      users: { bob: ['read', 'deploy'] },
    });
    const bob = principal(fixture, 'bob');
    const can = (repo: string, path: string, action: PermissionAction = 'deploy') =>
      fixture.security.accessControl.isAllowed(bob, { repo, path, action });
    expect(can('libs', 'org/a/b.jar')).toBe(true);
    expect(can('libs', 'org')).toBe(true);
    expect(can('libs', 'com/acme/x.jar')).toBe(true);
    expect(can('libs', 'com/acme/deep/x.jar')).toBe(false);
    expect(can('libs', 'org/secret/key.pem')).toBe(false);
    expect(can('libs', 'net/a.jar')).toBe(false);
    expect(can('other', 'org/a/b.jar')).toBe(false);
    // The repository root is covered by any target on the repository, so bob can list it.
    expect(can('libs', '', 'read')).toBe(true);
    expect(can('other', '', 'read')).toBe(false);
    expect(can('libs', 'org/a/b.jar', 'delete')).toBe(false);
  });

  it('grant through groups, and a group with adminPrivileges makes its members administrators', async () => {
    const fixture = await given();
    await fixture.security.putGroup(ctx, 'deployers', {});
    await fixture.security.putGroup(ctx, 'ops', { adminPrivileges: true });
    await fixture.security.updateUser(ctx, 'carol', { groups: ['deployers'] });
    await fixture.security.putPermissionTarget(ctx, 'deploy', { repositories: ['ANY'], groups: { deployers: ['deploy'] } });
    const carol = principal(fixture, 'carol');
    expect(carol.groups).toEqual(['deployers']);
    expect(fixture.security.accessControl.isAllowed(carol, { repo: 'x', path: 'y', action: 'deploy' })).toBe(true);
    expect(fixture.security.accessControl.isAllowed(carol, { repo: 'x', path: 'y', action: 'delete' })).toBe(false);
    await fixture.security.updateGroup(ctx, 'ops', { userNames: ['alice'] });
    const alice = principal(fixture, 'alice');
    expect(alice.admin).toBe(true);
    expect(fixture.security.accessControl.isAllowed(alice, { repo: 'x', path: 'y', action: 'delete' })).toBe(true);
  });

  it('"ANY LOCAL" and "ANY REMOTE" follow the repository class the server reports', async () => {
    const classes: Record<string, 'local' | 'remote' | 'virtual' | 'federated'> = { libs: 'local', fed: 'federated', cache: 'remote', all: 'virtual' };
    const fixture = await given({ repositoryClass: (key) => classes[key] });
    await fixture.security.putPermissionTarget(ctx, 'locals', { repositories: ['ANY LOCAL'], users: { bob: ['deploy'] } });
    await fixture.security.putPermissionTarget(ctx, 'remotes', { repositories: ['ANY REMOTE'], users: { alice: ['deploy'] } });
    const check = (name: string, repo: string) =>
      fixture.security.accessControl.isAllowed(principal(fixture, name), { repo, path: 'a', action: 'deploy' });
    expect([check('bob', 'libs'), check('bob', 'fed'), check('bob', 'cache'), check('bob', 'all'), check('bob', 'nope')]).toEqual([true, true, false, false, false]);
    expect([check('alice', 'libs'), check('alice', 'cache')]).toEqual([false, true]);
  });

  it('a deleted user is removed from targets, so a new user of the same name inherits nothing', async () => {
    const fixture = await given();
    await fixture.security.putPermissionTarget(ctx, 't', { repositories: ['ANY'], users: { bob: ['read'], alice: ['read'] } });
    await fixture.security.deleteUser(ctx, 'bob');
    expect(fixture.security.getPermissionTarget(ctx, 't').users).toEqual({ alice: ['read'] });
    await fixture.security.putUser(ctx, 'bob', { email: 'new@bob.io', password: 'x' });
    expect(fixture.security.accessControl.isAllowed(principal(fixture, 'bob'), { repo: 'r', path: 'p', action: 'read' })).toBe(false);
  });
});

describe('401 versus 403', () => {
  it('an anonymous caller is refused with 401, a known user without the permission with 403', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/permissions/read', headers: adminAuth(), payload: { repositories: ['libs'], principals: { users: { bob: ['r'] } } } });
    expect((await app.inject({ method: 'PUT', url: '/dummy/libs/a' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/dummy/libs/a', headers: basic('bob', 'p') })).statusCode).toBe(200);
    const forbidden = await app.inject({ method: 'PUT', url: '/dummy/libs/a', headers: basic('bob', 'p') });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.headers['www-authenticate']).toBeUndefined();
    expect(forbidden.json().errors[0]).toEqual({ status: 403, message: "The user: 'bob' is not permitted to deploy 'libs:a'." });
    expect((await app.inject({ method: 'POST', url: '/dummy-admin', headers: basic('bob', 'p') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/dummy-admin' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/artifactory/api/security/users', headers: basic('bob', 'p') })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/artifactory/api/security/users' })).statusCode).toBe(401);
  });

  it('administrators may do anything', async () => {
    const fixture = await given();
    const adminPrincipal = principal(fixture, 'admin');
    for (const action of PERMISSION_ACTIONS) {
      expect(fixture.security.accessControl.isAllowed(adminPrincipal, { repo: 'any', path: 'thing', action })).toBe(true);
    }
  });
});

describe('anonymous access', () => {
  it('is off by default: anonymous reads are 401', async () => {
    const fixture = await given();
    expect(fixture.security.settings.anonymousAccess).toBe(false);
    expect(fixture.security.accessControl.isAllowed(ANONYMOUS, { repo: 'libs', path: 'a', action: 'read' })).toBe(false);
  });

  it('when enabled lets anonymous callers read everything and nothing more, unless a target grants "anonymous" more', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    expect((await app.inject({ url: '/artifactory/api/security/anonymous', headers: adminAuth() })).json()).toEqual({ enabled: false });
    const enable = await app.inject({ method: 'PUT', url: '/artifactory/api/security/anonymous', headers: adminAuth(), payload: { enabled: true } });
    expect(enable.json()).toEqual({ enabled: true });
    expect((await app.inject({ method: 'GET', url: '/dummy/libs/a' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/dummy/libs/a' })).statusCode).toBe(401);
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/permissions/anon-drop', headers: adminAuth(), payload: { repositories: ['dropbox'], principals: { users: { anonymous: ['w'] } } } });
    expect((await app.inject({ method: 'PUT', url: '/dummy/dropbox/a' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'PUT', url: '/dummy/libs/a' })).statusCode).toBe(401);
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/anonymous', headers: adminAuth(), payload: { enabled: false } });
    expect((await app.inject({ method: 'GET', url: '/dummy/libs/a' })).statusCode).toBe(401);
    expect((await app.inject({ method: 'PUT', url: '/dummy/dropbox/a' })).statusCode).toBe(401);
    expect(fixture.store.events.filter((event) => event.type === 'SettingsChanged')).toHaveLength(2);
  });

  it('only an administrator may change the setting', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    expect((await app.inject({ method: 'PUT', url: '/artifactory/api/security/anonymous', payload: { enabled: true } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'PUT', url: '/artifactory/api/security/anonymous', headers: basic('bob', 'p'), payload: { enabled: true } })).statusCode).toBe(403);
  });
});

describe('token scopes', () => {
  it('a default token of an admin is not an admin token; applied-permissions/admin is, and only admins may ask for it', async () => {
    const fixture = await startedApp();
    app = fixture.app;
    const issue = async (headers: Record<string, string>, scope?: string) =>
      app!.inject({ method: 'POST', url: '/artifactory/api/security/token', headers, payload: scope === undefined ? {} : { scope } });
    const plain = (await issue(adminAuth())).json().access_token as string;
    const adminToken = (await issue(adminAuth(), 'applied-permissions/admin')).json().access_token as string;
    expect((await app.inject({ method: 'POST', url: '/dummy-admin', headers: { authorization: `Bearer ${plain}` } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'POST', url: '/dummy-admin', headers: { authorization: `Bearer ${adminToken}` } })).statusCode).toBe(200);
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'b@x.io', password: 'p' } });
    expect((await issue(basic('bob', 'p'), 'applied-permissions/admin')).statusCode).toBe(403);
    expect((await issue(basic('bob', 'p'), 'bogus:scope')).statusCode).toBe(400);
  });

  it('member-of-groups:a limits a token to those groups', async () => {
    const fixture = await given();
    await fixture.security.putGroup(ctx, 'readers', {});
    await fixture.security.putGroup(ctx, 'writers', {});
    await fixture.security.updateUser(ctx, 'bob', { groups: ['readers', 'writers'] });
    await fixture.security.putPermissionTarget(ctx, 'w', { repositories: ['ANY'], groups: { writers: ['deploy'], readers: ['read'] } });
    const bob = principal(fixture, 'bob');
    const issued = await fixture.security.issueToken({ principal: bob }, { scope: 'member-of-groups:readers' });
    const tokenPrincipal = fixture.security.authenticate({ authorization: `Bearer ${issued.accessToken}` }) as Principal;
    expect(tokenPrincipal.groups).toEqual(['readers']);
    expect(fixture.security.accessControl.isAllowed(tokenPrincipal, { repo: 'r', path: 'p', action: 'deploy' })).toBe(false);
    expect(fixture.security.accessControl.isAllowed(tokenPrincipal, { repo: 'r', path: 'p', action: 'read' })).toBe(true);
  });

  it('a user may not issue tokens for someone else; an admin may, and non-expiring ones too', async () => {
    const fixture = await given();
    const bob = principal(fixture, 'bob');
    await expect(fixture.security.issueToken({ principal: bob }, { username: 'alice' })).rejects.toMatchObject({ code: 'STRATA_ERR_AUTH_FORBIDDEN' });
    await expect(fixture.security.issueToken({ principal: bob }, { expiresInSeconds: 0 })).rejects.toMatchObject({ code: 'STRATA_ERR_SECURITY_INVALID' });
    const forever = await fixture.security.issueToken(ctx, { username: 'alice', expiresInSeconds: 0 });
    fixture.clock.advance(10 * 365 * 24 * 3600 * 1000);
    expect(fixture.security.authenticate({ authorization: `Bearer ${forever.accessToken}` })).toMatchObject({ name: 'alice' });
  });

  it('a token dies with its user, even if a user of that name is created again', async () => {
    const fixture = await given();
    const issued = await fixture.security.issueToken(ctx, { username: 'carol' });
    await fixture.security.deleteUser(ctx, 'carol');
    expect(() => fixture.security.authenticate({ authorization: `Bearer ${issued.accessToken}` })).toThrow('Bad credentials');
    await fixture.security.putUser(ctx, 'carol', { email: 'c@x.io', password: 'again' });
    expect(() => fixture.security.authenticate({ authorization: `Bearer ${issued.accessToken}` })).toThrow('Bad credentials');
  });
});
