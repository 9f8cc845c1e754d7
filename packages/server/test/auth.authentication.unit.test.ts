import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ADMIN_PASSWORD, adminAuth, basic, bearer, startedApp } from './auth-support.ts';

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function withUser(options: Parameters<typeof startedApp>[0] = {}) {
  const fixture = await startedApp(options);
  app = fixture.app;
  await fixture.app.inject({ method: 'PUT', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { email: 'bob@example.com', password: 'bob-pass' } });
  await fixture.app.inject({
    method: 'PUT',
    url: '/artifactory/api/security/permissions/bob-all',
    headers: adminAuth(),
    payload: { repositories: ['ANY'], principals: { users: { bob: ['r', 'w'] } } },
  });
  return fixture;
}

async function issueToken(target: FastifyInstance, headers: Record<string, string>, payload: Record<string, unknown> = {}) {
  const response = await target.inject({ method: 'POST', url: '/artifactory/api/security/token', headers, payload });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { access_token: string; expires_in: number; scope: string; token_type: string; token_id: string };
}

describe('authentication', () => {
  it('a request without credentials is anonymous and a protected route answers 401 with a Basic challenge', async () => {
    ({ app } = await withUser());
    const response = await app.inject({ method: 'GET', url: '/dummy/libs/a.txt' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['www-authenticate']).toBe('Basic realm="Artifactory Realm"');
    expect(response.json()).toEqual({ errors: [{ status: 401, message: 'authentication required' }] });
    expect((await app.inject({ url: '/whoami' })).json()).toMatchObject({ name: 'anonymous', anonymous: true });
  });

  it('basic auth with the right password authenticates, a wrong password is 401 Bad credentials', async () => {
    ({ app } = await withUser());
    const ok = await app.inject({ method: 'GET', url: '/dummy/libs/a.txt', headers: basic('bob', 'bob-pass') });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ user: 'bob' });
    const wrong = await app.inject({ method: 'GET', url: '/dummy/libs/a.txt', headers: basic('bob', 'nope') });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.headers['www-authenticate']).toContain('Basic realm=');
    expect(wrong.json()).toEqual({ errors: [{ status: 401, message: 'Bad credentials' }] });
    const unknownUser = await app.inject({ url: '/whoami', headers: basic('mallory', 'x') });
    expect(unknownUser.statusCode).toBe(401);
  });

  it('user names are case-insensitive at login', async () => {
    ({ app } = await withUser());
    const response = await app.inject({ url: '/whoami', headers: basic('BoB', 'bob-pass') });
    expect(response.json()).toMatchObject({ name: 'bob' });
  });

  it('repeated basic-auth requests hash the password once, not per request', async () => {
    const fixture = await withUser();
    app = fixture.app;
    const before = fixture.hasher.verifications;
    const responses = await Promise.all(
      Array.from({ length: 50 }, () => fixture.app.inject({ method: 'GET', url: '/dummy/libs/a.txt', headers: basic('bob', 'bob-pass') })),
    );
    expect(responses.every((response) => response.statusCode === 200)).toBe(true);
    for (let index = 0; index < 50; index++) {
      expect((await fixture.app.inject({ url: '/whoami', headers: basic('bob', 'bob-pass') })).statusCode).toBe(200);
    }
    expect(fixture.hasher.verifications - before).toBe(1);
    // Wrong passwords are cached as refusals too.
    for (let index = 0; index < 5; index++) await fixture.app.inject({ url: '/whoami', headers: basic('bob', 'wrong') });
    expect(fixture.hasher.verifications - before).toBe(2);
  });

  it('a password change invalidates the cached verification', async () => {
    const fixture = await withUser();
    app = fixture.app;
    expect((await app.inject({ url: '/whoami', headers: basic('bob', 'bob-pass') })).statusCode).toBe(200);
    const changed = await app.inject({ method: 'POST', url: '/artifactory/api/security/users/bob', headers: adminAuth(), payload: { password: 'new-pass' } });
    expect(changed.statusCode).toBe(200);
    expect((await app.inject({ url: '/whoami', headers: basic('bob', 'bob-pass') })).statusCode).toBe(401);
    expect((await app.inject({ url: '/whoami', headers: basic('bob', 'new-pass') })).statusCode).toBe(200);
  });

  it('a bearer access token authenticates as its user until it expires', async () => {
    const fixture = await withUser();
    app = fixture.app;
    const token = await issueToken(app, basic('bob', 'bob-pass'), { expires_in: 60 });
    expect(token).toMatchObject({ expires_in: 60, scope: 'applied-permissions/user', token_type: 'Bearer' });
    const ok = await app.inject({ method: 'PUT', url: '/dummy/libs/a.txt', headers: bearer(token.access_token) });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toMatchObject({ user: 'bob', action: 'deploy' });
    fixture.clock.advance(60_000);
    const expired = await app.inject({ method: 'PUT', url: '/dummy/libs/a.txt', headers: bearer(token.access_token) });
    expect(expired.statusCode).toBe(401);
    expect(expired.headers['www-authenticate']).toBeDefined();
  });

  it('the token endpoint takes an HTML form, as curl -d sends it', async () => {
    ({ app } = await withUser());
    const response = await app.inject({
      method: 'POST',
      url: '/artifactory/api/security/token',
      headers: { ...basic('bob', 'bob-pass'), 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'username=bob&scope=applied-permissions%2Fuser&expires_in=120',
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toMatchObject({ expires_in: 120, token_type: 'Bearer' });
  });

  it('a revoked token is refused at once, by token or by token_id', async () => {
    ({ app } = await withUser());
    const first = await issueToken(app, basic('bob', 'bob-pass'));
    const second = await issueToken(app, basic('bob', 'bob-pass'));
    expect((await app.inject({ url: '/whoami', headers: bearer(first.access_token) })).statusCode).toBe(200);
    const byToken = await app.inject({ method: 'POST', url: '/artifactory/api/security/token/revoke', headers: basic('bob', 'bob-pass'), payload: { token: first.access_token } });
    expect(byToken.statusCode).toBe(200);
    expect(byToken.body).toBe('Token revoked');
    expect((await app.inject({ url: '/whoami', headers: bearer(first.access_token) })).statusCode).toBe(401);
    const byId = await app.inject({
      method: 'POST',
      url: '/artifactory/api/security/token/revoke',
      headers: { ...adminAuth(), 'content-type': 'application/x-www-form-urlencoded' },
      payload: `token_id=${encodeURIComponent(second.token_id)}`,
    });
    expect(byId.statusCode).toBe(200);
    expect((await app.inject({ url: '/whoami', headers: bearer(second.access_token) })).statusCode).toBe(401);
    const again = await app.inject({ method: 'POST', url: '/artifactory/api/security/token/revoke', headers: adminAuth(), payload: { token_id: second.token_id } });
    expect(again.statusCode).toBe(404);
  });

  it('an API key authenticates via X-JFrog-Art-Api and as a basic-auth password, without hashing', async () => {
    const fixture = await withUser();
    app = fixture.app;
    const created = await app.inject({ method: 'POST', url: '/artifactory/api/security/apiKey', headers: basic('bob', 'bob-pass') });
    expect(created.statusCode).toBe(201);
    const { apiKey } = created.json() as { apiKey: string };
    expect(apiKey).toMatch(/^AKC[0-9a-f]{70}$/);
    const verifications = fixture.hasher.verifications;
    const viaHeader = await app.inject({ method: 'PUT', url: '/dummy/libs/a.txt', headers: { 'x-jfrog-art-api': apiKey } });
    expect(viaHeader.statusCode).toBe(200);
    expect(viaHeader.json()).toMatchObject({ user: 'bob' });
    const viaBasic = await app.inject({ url: '/whoami', headers: basic('bob', apiKey) });
    expect(viaBasic.json()).toMatchObject({ name: 'bob' });
    expect(fixture.hasher.verifications).toBe(verifications);
    // Not for another user name.
    expect((await app.inject({ url: '/whoami', headers: basic('admin', apiKey) })).statusCode).toBe(401);
  });

  it('an API key is regenerated by PUT, shown masked by GET, and revoked by DELETE', async () => {
    ({ app } = await withUser());
    const headers = basic('bob', 'bob-pass');
    expect((await app.inject({ url: '/artifactory/api/security/apiKey', headers })).json()).toEqual({});
    const first = (await app.inject({ method: 'POST', url: '/artifactory/api/security/apiKey', headers })).json() as { apiKey: string };
    expect((await app.inject({ method: 'POST', url: '/artifactory/api/security/apiKey', headers })).statusCode).toBe(400);
    const shown = (await app.inject({ url: '/artifactory/api/security/apiKey', headers })).json() as { apiKey: string };
    expect(shown.apiKey.startsWith(first.apiKey.slice(0, 8))).toBe(true);
    expect(shown.apiKey).not.toBe(first.apiKey);
    const second = (await app.inject({ method: 'PUT', url: '/artifactory/api/security/apiKey', headers })).json() as { apiKey: string };
    expect(second.apiKey).not.toBe(first.apiKey);
    expect((await app.inject({ url: '/whoami', headers: { 'x-jfrog-art-api': first.apiKey } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/whoami', headers: { 'x-jfrog-art-api': second.apiKey } })).statusCode).toBe(200);
    const removed = await app.inject({ method: 'DELETE', url: '/artifactory/api/security/apiKey', headers });
    expect(removed.json()).toEqual({ info: 'Api key removed' });
    expect((await app.inject({ url: '/whoami', headers: { 'x-jfrog-art-api': second.apiKey } })).statusCode).toBe(401);
  });

  it('an access token is not accepted as an API key header, nor an API key as a bearer token', async () => {
    ({ app } = await withUser());
    const token = await issueToken(app, basic('bob', 'bob-pass'));
    const { apiKey } = (await app.inject({ method: 'POST', url: '/artifactory/api/security/apiKey', headers: basic('bob', 'bob-pass') })).json() as { apiKey: string };
    expect((await app.inject({ url: '/whoami', headers: { 'x-jfrog-art-api': token.access_token } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/whoami', headers: bearer(apiKey) })).statusCode).toBe(401);
  });

  it('an unknown authorization scheme is 401', async () => {
    ({ app } = await withUser());
    expect((await app.inject({ url: '/whoami', headers: { authorization: 'Digest abc' } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/whoami', headers: { authorization: 'Basic !!!' } })).statusCode).toBe(401);
  });

  it('the built-in admin logs in with the password given at first start', async () => {
    ({ app } = await withUser());
    const response = await app.inject({ method: 'POST', url: '/dummy-admin', headers: basic('admin', ADMIN_PASSWORD) });
    expect(response.statusCode).toBe(200);
  });
});
