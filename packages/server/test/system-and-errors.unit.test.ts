import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildUnitApp } from './support/unit-app.ts';
import type { UnitApp } from './support/unit-app.ts';

describe('system routes and error rendering', () => {
  let t: UnitApp;
  beforeAll(async () => {
    t = await buildUnitApp();
  });
  afterAll(async () => {
    await t.app.close();
  });

  it('answers ping with OK', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/system/ping' });
    expect(response.statusCode).toBe(200);
    expect(response.body).toBe('OK');
  });

  it('reports its version with revision and addons', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/system/version' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ version: expect.any(String), revision: expect.any(String), addons: [] });
  });

  it('renders an unknown route as an Artifactory error body', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/nowhere' });
    expect(response.statusCode).toBe(404);
    expect(response.json()).toEqual({ errors: [{ status: 404, message: expect.any(String) }] });
  });

  it('echoes the request id it was given in the logs and uses ids of its own otherwise', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/artifactory/api/system/ping', headers: { 'x-request-id': 'abc' } });
    expect(response.statusCode).toBe(200);
  });
});
