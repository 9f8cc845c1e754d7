import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, onSendHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { Principal } from './access-control.ts';
import { securityRoutes } from './security-routes.ts';
import type { SecurityService } from './security-service.ts';

export interface AuthPluginOptions {
  readonly security: SecurityService;
  /** Prefix of the security API routes; '/artifactory' by default. */
  readonly prefix?: string;
  /** Realm named in `WWW-Authenticate` on 401 answers. */
  readonly realm?: string;
  /** Register the security REST API (default true); false leaves only authentication. */
  readonly routes?: boolean;
}

export const DEFAULT_REALM = 'Artifactory Realm';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * The principal of a request's credentials, as the onRequest hook finds it: synchronous
     * unless a password must be hashed; throws a 401 StrataError for bad credentials.
     * Decorated by the auth plugin only.
     */
    authenticateHeaders?: (headers: IncomingHttpHeaders) => Principal | Promise<Principal>;
  }
}

/**
 * Access control for the whole application (fastify-plugin, so it reaches the root):
 * - loads the SecurityService (start) and stops its polling when the app closes;
 * - decorates `app.accessControl` and sets `request.principal` on every request in an
 *   onRequest hook (bad credentials → 401 before any route runs; no credentials → ANONYMOUS);
 * - adds `WWW-Authenticate: Basic realm="…"` to every 401 answer, whoever produced it;
 * - registers the security API under `prefix` in its own encapsulated context.
 *
 * The hook stays synchronous for cached and token credentials: no promise per request.
 */
async function auth(app: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  const { security } = options;
  const challenge = `Basic realm="${options.realm ?? DEFAULT_REALM}"`;
  await security.start();

  app.decorate('accessControl', security.accessControl);
  // The fast download path (fast-path.ts) authenticates without fastify's hooks.
  app.decorate('authenticateHeaders', (headers: IncomingHttpHeaders) => security.authenticate(headers));
  app.decorateRequest('principal', null as unknown as Principal);

  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction) => {
    let result: Principal | Promise<Principal>;
    try {
      result = security.authenticate(request.headers);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (principal) => {
          request.principal = principal;
          done();
        },
        (error: unknown) => done(error as Error),
      );
      return;
    }
    request.principal = result;
    done();
  });

  const addChallenge: onSendHookHandler = (_request, reply, payload, done) => {
    if (reply.statusCode === 401 && !reply.hasHeader('www-authenticate')) reply.header('WWW-Authenticate', challenge);
    done(null, payload);
  };
  app.addHook('onSend', addChallenge);

  app.addHook('onClose', async () => {
    await security.close();
  });

  if (options.routes !== false) await app.register(securityRoutes, { prefix: options.prefix ?? '/artifactory', security });
}

export const authPlugin = fp(auth, { name: 'strata-auth', fastify: '5.x' });
