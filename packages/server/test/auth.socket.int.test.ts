import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ADMIN_PASSWORD, startedApp } from './auth-support.ts';

/** The sign-in methods over a real loopback socket, as curl and build tools send them. */
let app: FastifyInstance;
let base: string;

beforeAll(async () => {
  ({ app } = await startedApp());
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  await app?.close();
});

const basicHeader = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('authentication over HTTP', () => {
  it('answers an anonymous write with 401 and the Basic challenge on the wire', async () => {
    const response = await fetch(`${base}/dummy/libs/a.txt`, { method: 'PUT', body: 'x', headers: { 'content-type': 'application/octet-stream' } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="Artifactory Realm"');
    expect(await response.json()).toEqual({ errors: [{ status: 401, message: 'authentication required' }] });
  });

  it('accepts basic auth, a bearer token from the form-encoded token endpoint, and an API key header', async () => {
    const admin = basicHeader('admin', ADMIN_PASSWORD);
    expect((await fetch(`${base}/dummy-admin`, { method: 'POST', headers: { authorization: admin } })).status).toBe(200);

    const issued = await fetch(`${base}/artifactory/api/security/token`, {
      method: 'POST',
      headers: { authorization: admin, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'username=admin&scope=applied-permissions%2Fadmin&expires_in=300',
    });
    expect(issued.status).toBe(200);
    const token = (await issued.json()) as { access_token: string; token_type: string };
    expect(token.token_type).toBe('Bearer');
    expect((await fetch(`${base}/dummy-admin`, { method: 'POST', headers: { authorization: `Bearer ${token.access_token}` } })).status).toBe(200);

    const created = await fetch(`${base}/artifactory/api/security/apiKey`, { method: 'POST', headers: { authorization: admin } });
    expect(created.status).toBe(201);
    const { apiKey } = (await created.json()) as { apiKey: string };
    expect((await fetch(`${base}/dummy-admin`, { method: 'POST', headers: { 'x-jfrog-art-api': apiKey } })).status).toBe(200);
    const wrong = await fetch(`${base}/dummy-admin`, { method: 'POST', headers: { 'x-jfrog-art-api': `${apiKey}0` } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('Basic');
  });
});
