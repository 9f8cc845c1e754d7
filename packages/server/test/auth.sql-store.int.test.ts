import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HybridLogicalClock, type Clock } from '@strata/core';
import { openEventStore, type OpenedEventStore } from '@strata/store';
import hyperid from 'hyperid';
import { SecurityService, type Principal } from '../src/auth/index.ts';
import { CountingHasher, basic } from './auth-support.ts';

/**
 * The security service over the real SQL event store (PGlite in memory): every security
 * event passes the store's validation and codec, reads back into the same state, and two
 * services over one database (two servers over one PostgreSQL) lose no write.
 */
let opened: OpenedEventStore;
const clock: Clock = { now: () => Date.now() };
const newId = hyperid({ urlSafe: true });

function service(limits: { refreshIntervalMs?: number } = {}): SecurityService {
  const hlc = new HybridLogicalClock({ clock });
  return new SecurityService({
    eventStore: opened.store,
    siteId: 'site-sql',
    stamp: () => hlc.now(),
    newId,
    clock,
    passwordHasher: new CountingHasher(),
    limits,
  });
}

beforeAll(async () => {
  opened = await openEventStore();
});

afterAll(async () => {
  await opened?.close();
});

describe('security over the SQL event store', () => {
  it('stores every kind of security event and replays it into the same state', async () => {
    const first = service();
    const generated = await first.ensureAdmin(undefined);
    expect(generated).toBeDefined();
    const admin = first.principalOf('admin') as Principal;
    const ctx = { principal: admin, requestId: 'r1', clientAddress: '127.0.0.1' };
    await first.putGroup(ctx, 'devs', { description: 'Developers' });
    await first.putUser(ctx, 'bob', { email: 'bob@example.com', password: 'bob-pass', groups: ['devs'] });
    await first.putPermissionTarget(ctx, 'libs-devs', {
      repositories: ['libs', 'ANY REMOTE'],
      includesPattern: 'org/**',
      excludesPattern: 'org/secret/**',
      groups: { devs: ['read', 'deploy'] },
    });
    await first.setAnonymousAccess(ctx, true);
    const token = await first.issueToken(ctx, { username: 'bob', expiresInSeconds: 600 });
    const revoked = await first.issueToken(ctx, { username: 'bob' });
    await first.revokeToken(ctx, { tokenId: revoked.tokenId });
    const apiKey = await first.createApiKey({ principal: first.principalOf('bob') as Principal }, { regenerate: false });

    const second = service();
    await second.start();
    expect(second.revision).toBe(first.revision);
    expect(await second.authenticate(basic('bob', 'bob-pass'))).toMatchObject({ name: 'bob', groups: ['devs'] });
    expect(second.authenticate({ authorization: `Bearer ${token.accessToken}` })).toMatchObject({ name: 'bob' });
    expect(() => second.authenticate({ authorization: `Bearer ${revoked.accessToken}` })).toThrow('Bad credentials');
    expect(second.authenticate({ 'x-jfrog-art-api': apiKey })).toMatchObject({ name: 'bob' });
    expect(second.getPermissionTarget(ctx, 'libs-devs')).toEqual(first.getPermissionTarget(ctx, 'libs-devs'));
    expect(second.settings.anonymousAccess).toBe(true);
    const bob = second.principalOf('bob') as Principal;
    expect(second.accessControl.isAllowed(bob, { repo: 'libs', path: 'org/a.jar', action: 'deploy' })).toBe(true);
    expect(second.accessControl.isAllowed(bob, { repo: 'libs', path: 'org/secret/a.jar', action: 'deploy' })).toBe(false);
  });

  it('two services writing at once over one database lose nothing', async () => {
    const a = service();
    const b = service({ refreshIntervalMs: 20 });
    await Promise.all([a.start(), b.start()]);
    const ctx = (security: SecurityService) => ({ principal: security.principalOf('admin') as Principal });
    await Promise.all(
      Array.from({ length: 10 }, (_, index) => (index % 2 === 0 ? a : b).putGroup(ctx(index % 2 === 0 ? a : b), `g${index}`, {})),
    );
    await a.refresh();
    await new Promise((resolve) => setTimeout(resolve, 100));
    const names = (security: SecurityService) => security.listGroups(ctx(security)).map((group) => group.name).filter((name) => name.startsWith('g'));
    expect(names(a)).toEqual(['g0', 'g1', 'g2', 'g3', 'g4', 'g5', 'g6', 'g7', 'g8', 'g9']);
    expect(names(b)).toEqual(names(a));
    await b.close();
  });
});
