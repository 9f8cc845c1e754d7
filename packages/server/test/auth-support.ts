import Fastify, { type FastifyInstance } from 'fastify';
import { StrataError, SYSTEM_STREAM, type HlcStamp, type NewEvent, type RecordedEvent } from '@strata/core';
import type { AppendOptions, AppendResult, ReadStreamOptions } from '@strata/store';
import { installErrorRendering } from '../src/http-errors.ts';
import {
  authPlugin,
  ScryptPasswordHasher,
  SecurityService,
  type PasswordHasher,
  type PermissionAction,
  type RepositoryClassResolver,
  type SecurityEventStore,
  type SecurityLimits,
} from '../src/auth/index.ts';

/**
 * A tiny system-stream store for the auth tests (only what SecurityService uses): exact
 * expectedRevision checks, gapless revisions, shared between services to model several
 * servers over one database. `failNextAppendWithConflict` injects a concurrent writer.
 */
export class SystemStreamStore implements SecurityEventStore {
  readonly events: RecordedEvent[] = [];
  appendCalls = 0;
  readStreamCalls = 0;
  #conflicts = 0;

  failNextAppendsWithConflict(count: number): void {
    this.#conflicts = count;
  }

  async append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult> {
    this.appendCalls++;
    if (stream !== SYSTEM_STREAM) throw new StrataError('STRATA_ERR_EVENT_WRONG_STREAM');
    const current = this.events.length - 1;
    const expected = options?.expectedRevision ?? 'any';
    const ok =
      expected === 'any' ||
      (expected === 'no_stream' && current === -1) ||
      (expected === 'exists' && current >= 0) ||
      expected === current;
    if (!ok || this.#conflicts > 0) {
      if (this.#conflicts > 0) this.#conflicts--;
      throw new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT');
    }
    const recorded = events.map((event, index) => {
      // Round-trip through JSON, as a real store would serialise (catches non-JSON data).
      const copy = JSON.parse(JSON.stringify(event)) as NewEvent;
      return { ...copy, stream, revision: current + 1 + index, position: BigInt(current + 1 + index) } as RecordedEvent;
    });
    this.events.push(...recorded);
    return { nextRevision: this.events.length - 1, events: recorded, appendedCount: recorded.length };
  }

  async readStream(stream: string, options?: ReadStreamOptions): Promise<readonly RecordedEvent[]> {
    this.readStreamCalls++;
    if (stream !== SYSTEM_STREAM) return [];
    const from = options?.fromRevision ?? 0;
    return this.events.slice(from, from + (options?.maxCount ?? 10_000));
  }

  async streamRevision(stream: string): Promise<number | undefined> {
    if (stream !== SYSTEM_STREAM || this.events.length === 0) return undefined;
    return this.events.length - 1;
  }
}

/** Scrypt with cheap parameters that counts hashes and verifications. */
export class CountingHasher implements PasswordHasher {
  hashes = 0;
  verifications = 0;
  readonly #inner = new ScryptPasswordHasher({ cost: 2 ** 10 });
  hash(password: string): Promise<string> {
    this.hashes++;
    return this.#inner.hash(password);
  }
  verify(password: string, encoded: string): Promise<boolean> {
    this.verifications++;
    return this.#inner.verify(password, encoded);
  }
}

export class ManualClock {
  constructor(public nowMs = Date.UTC(2026, 0, 1)) {}
  now(): number {
    return this.nowMs;
  }
  advance(ms: number): void {
    this.nowMs += ms;
  }
}

export interface SecurityFixture {
  readonly security: SecurityService;
  readonly store: SystemStreamStore;
  readonly hasher: CountingHasher;
  readonly clock: ManualClock;
}

let ids = 0;
export function newTestId(): string {
  return `id-${++ids}`;
}

export function securityFixture(
  options: {
    store?: SystemStreamStore;
    clock?: ManualClock;
    siteId?: string;
    limits?: Partial<SecurityLimits>;
    repositoryClass?: RepositoryClassResolver;
  } = {},
): SecurityFixture {
  const store = options.store ?? new SystemStreamStore();
  const clock = options.clock ?? new ManualClock();
  const hasher = new CountingHasher();
  let logical = 0;
  const security = new SecurityService({
    eventStore: store,
    siteId: options.siteId ?? 'site-a',
    stamp: (): HlcStamp => ({ wall: clock.now(), logical: logical++ }),
    newId: newTestId,
    clock,
    passwordHasher: hasher,
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.repositoryClass === undefined ? {} : { repositoryClass: options.repositoryClass }),
  });
  return { security, store, hasher, clock };
}

export const ADMIN_PASSWORD = 'admin-secret';

/**
 * A minimal app: the server's error rendering, the auth plugin, and dummy routes that
 * authorize like the real ones: GET = read, PUT = deploy, DELETE = delete, POST = annotate,
 * PATCH = manage, on /dummy/{repo}/{path}; POST /dummy-admin requires an admin.
 */
export async function authTestApp(security: SecurityService): Promise<FastifyInstance> {
  const app = Fastify({ logger: false });
  installErrorRendering(app);
  await app.register(authPlugin, { security });
  const methods: Record<string, PermissionAction> = { GET: 'read', PUT: 'deploy', DELETE: 'delete', POST: 'annotate', PATCH: 'manage' };
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.route<{ Params: { repo: string; '*': string } }>({
    method: ['GET', 'PUT', 'DELETE', 'POST', 'PATCH'],
    url: '/dummy/:repo/*',
    handler: async (request) => {
      const action = methods[request.method] as PermissionAction;
      app.accessControl.authorize(request.principal, { repo: request.params.repo, path: request.params['*'], action });
      return { ok: true, user: request.principal.name, action };
    },
  });
  app.post('/dummy-admin', async (request) => {
    app.accessControl.requireAdmin(request.principal);
    return { ok: true };
  });
  app.get('/whoami', async (request) => request.principal);
  await app.ready();
  return app;
}

export function basic(user: string, password: string): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

export const adminAuth = (): { authorization: string } => basic('admin', ADMIN_PASSWORD);

/** A started service with the built-in admin, plus its app. */
export async function startedApp(
  options: Parameters<typeof securityFixture>[0] = {},
): Promise<SecurityFixture & { app: FastifyInstance }> {
  const fixture = securityFixture(options);
  await fixture.security.ensureAdmin(ADMIN_PASSWORD);
  const app = await authTestApp(fixture.security);
  return { ...fixture, app };
}
