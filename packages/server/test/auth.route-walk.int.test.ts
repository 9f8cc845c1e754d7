import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import Fastify, { type FastifyInstance, type HTTPMethods, type RouteOptions } from 'fastify';
import { HybridLogicalClock } from '@strata/core';
import hyperid from 'hyperid';
import { buildApp } from '../src/app.ts';
import { authPlugin, SecurityService } from '../src/auth/index.ts';
import { installErrorRendering } from '../src/http-errors.ts';
import { BatchingDownloadCounter, MemoryDownloadStatsSink } from '../src/download-counter.ts';
import { FakeEventStore, FakeProjections } from './support/fake-projections.ts';
import { MemoryBlobStore } from './support/memory-blob-store.ts';
import { ADMIN_PASSWORD, CountingHasher, adminAuth, basic, securityFixture } from './auth-support.ts';

/**
 * Walks every write route of the real application — collected with fastify's onRoute hook,
 * so a route added later is walked without touching this file — and proves that each one
 * refuses an anonymous caller (401 with a Basic challenge) and a signed-in user who may only
 * read (403).
 *
 * Self-service routes act on the caller's own credentials and are open to any signed-in user
 * by design (Artifactory semantics); they are still walked anonymously.
 */
const WRITE_METHODS: ReadonlySet<string> = new Set(['PUT', 'POST', 'DELETE', 'PATCH']);
const SELF_SERVICE: ReadonlySet<string> = new Set([
  'POST /artifactory/api/security/token',
  'POST /artifactory/api/security/token/revoke',
  'POST /artifactory/api/security/apiKey',
  'PUT /artifactory/api/security/apiKey',
  'DELETE /artifactory/api/security/apiKey',
]);

interface WriteRoute {
  readonly method: string;
  readonly url: string;
}

let app: FastifyInstance;
const routes: WriteRoute[] = [];

/** A concrete request for a route pattern, aimed at things that exist (so 404 cannot mask 401/403). */
function requestFor(route: WriteRoute) {
  const path = route.url
    .replace(/:repo\b|:key\b/g, 'libs')
    .replace(/:name\b/g, 'walk-target')
    .replace(/:[A-Za-z_]+/g, 'x')
    .replace(/\*$/, 'org/a.txt');
  // Query parameters the copy/move and properties routes require; others ignore them.
  const url = `${path}?to=/libs/org/b.txt&properties=walk=x`;
  // Path routes take no body (a deploy of nothing still has to pass authorization first),
  // except PATCH metadata; JSON routes get an object their schema accepts.
  if (route.url.endsWith('*') && route.method !== 'PATCH') return { method: route.method as HTTPMethods, url, headers: {} };
  return { method: route.method as HTTPMethods, url, headers: {}, payload: { props: { walk: 'x' } } };
}

async function walkAnonymous(target: FastifyInstance, walked: readonly WriteRoute[]): Promise<string[]> {
  const failures: string[] = [];
  for (const route of walked) {
    const response = await target.inject(requestFor(route));
    if (response.statusCode !== 401 || response.headers['www-authenticate'] !== 'Basic realm="Artifactory Realm"') {
      failures.push(`${route.method} ${route.url} → ${response.statusCode} ${response.body.slice(0, 160)}`);
    }
  }
  return failures;
}

async function walkAsReader(target: FastifyInstance, walked: readonly WriteRoute[]): Promise<string[]> {
  const failures: string[] = [];
  for (const route of walked) {
    if (SELF_SERVICE.has(`${route.method} ${route.url}`)) continue;
    const request = requestFor(route);
    const response = await target.inject({ ...request, headers: { ...request.headers, ...basic('reader', 'reader-pass') } });
    if (response.statusCode !== 403) failures.push(`${route.method} ${route.url} → ${response.statusCode} ${response.body.slice(0, 160)}`);
  }
  return failures;
}

beforeAll(async () => {
  const projections = new FakeProjections();
  const store = new FakeEventStore(projections);
  const clock = { now: () => Date.now() };
  const hlc = new HybridLogicalClock({ clock });
  const newId = hyperid({ urlSafe: true });
  const security = new SecurityService({
    eventStore: store,
    siteId: 'site-walk',
    stamp: () => hlc.now(),
    newId,
    clock,
    passwordHasher: new CountingHasher(),
  });
  await security.ensureAdmin(ADMIN_PASSWORD);
  app = await buildApp({
    eventStore: store,
    blobStore: new MemoryBlobStore(),
    repositories: projections,
    artifacts: projections,
    downloads: new BatchingDownloadCounter(new MemoryDownloadStatsSink(), { flushIntervalMs: 0 }),
    clock,
    hlc,
    siteId: 'site-walk',
    newId,
    registerAuth: async (root) => {
      root.addHook('onRoute', (options: RouteOptions) => {
        const methods = Array.isArray(options.method) ? options.method : [options.method];
        for (const method of methods) if (WRITE_METHODS.has(method)) routes.push({ method, url: options.url });
      });
      await root.register(authPlugin, { security });
    },
    limits: { metadataCacheTtlMs: 0 },
  });
  await app.ready();

  // Things to act on: a repository with a file, a user who may read everything, targets of the walk.
  const admin = adminAuth();
  const setUp = [
    await app.inject({ method: 'PUT', url: '/artifactory/api/repositories/libs', headers: admin, payload: { key: 'libs', rclass: 'local', packageType: 'generic' } }),
    await app.inject({ method: 'PUT', url: '/artifactory/libs/org/a.txt', headers: { ...admin, 'content-type': 'application/octet-stream' }, payload: 'hello' }),
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/reader', headers: admin, payload: { email: 'r@x.io', password: 'reader-pass' } }),
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/users/walk-target', headers: admin, payload: { email: 'w@x.io', password: 'p' } }),
    await app.inject({ method: 'PUT', url: '/artifactory/api/security/groups/walk-target', headers: admin, payload: {} }),
    await app.inject({
      method: 'PUT',
      url: '/artifactory/api/security/permissions/walk-target',
      headers: admin,
      payload: { repositories: ['ANY'], principals: { users: { reader: ['r'] } } },
    }),
  ];
  for (const response of setUp) expect(response.statusCode, response.body).toBeLessThan(300);
});

afterAll(async () => {
  await app?.close();
});

describe('every write route', () => {
  it('is collected from the application (the walk is not vacuous)', () => {
    const keys = new Set(routes.map((route) => `${route.method} ${route.url}`));
    for (const expected of [
      'PUT /artifactory/:repo/*',
      'DELETE /artifactory/:repo/*',
      'PUT /artifactory/api/repositories/:key',
      'DELETE /artifactory/api/repositories/:key',
      'PUT /artifactory/api/security/permissions/:name',
      'PUT /artifactory/api/security/users/:name',
    ]) {
      expect(keys, expected).toContain(expected);
    }
    expect(routes.length).toBeGreaterThanOrEqual(20);
  });

  it('refuses an anonymous caller with 401 and a Basic challenge', async () => {
    expect(await walkAnonymous(app, routes)).toEqual([]);
  });

  it('refuses a signed-in user without the permission with 403', async () => {
    expect(await walkAsReader(app, routes)).toEqual([]);
  });

  it('would catch a write route that forgets to authorize (control)', async () => {
    const { security } = securityFixture();
    await security.ensureAdmin(ADMIN_PASSWORD);
    await security.putUser({ principal: security.principalOf('admin')! }, 'reader', { email: 'r@x.io', password: 'reader-pass' });
    const control = Fastify();
    installErrorRendering(control);
    await control.register(authPlugin, { security, routes: false });
    control.put('/open/:repo/*', async () => ({ ok: true }));
    await control.ready();
    const open = [{ method: 'PUT', url: '/open/:repo/*' }];
    expect(await walkAnonymous(control, open)).toHaveLength(1);
    expect(await walkAsReader(control, open)).toHaveLength(1);
    await control.close();
  });

  it('changed nothing: the repository and its file are still there', async () => {
    const file = await app.inject({ url: '/artifactory/libs/org/a.txt', headers: adminAuth() });
    expect(file.statusCode).toBe(200);
    expect(file.body).toBe('hello');
    const repository = await app.inject({ url: '/artifactory/api/repositories/libs', headers: adminAuth() });
    expect(repository.statusCode).toBe(200);
  });
});
