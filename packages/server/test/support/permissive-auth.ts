import type { FastifyInstance } from 'fastify';
import type { AccessControl, Principal } from '../../src/auth/access-control.ts';

/**
 * A stand-in for the auth plugin in tests that are not about access control: every caller
 * is an administrator named by the `x-test-user` header (default `admin`).
 */
export function registerPermissiveAuth(app: FastifyInstance): void {
  const allowAll: AccessControl = {
    authorize() {},
    isAllowed: () => true,
    requireAdmin() {},
  };
  app.decorate('accessControl', allowAll);
  app.decorateRequest('principal', null as unknown as Principal);
  app.addHook('onRequest', async (request) => {
    const header = request.headers['x-test-user'];
    const name = typeof header === 'string' && header !== '' ? header : 'admin';
    request.principal = { name, anonymous: false, admin: true, groups: [] };
  });
}
