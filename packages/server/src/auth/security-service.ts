import { hash, randomBytes as cryptoRandomBytes } from 'node:crypto';
import {
  SYSTEM_STREAM,
  StrataError,
  isStrataError,
  type Clock,
  type DomainEvent,
  type EventMeta,
  type HlcStamp,
  type NewEvent,
} from '@strata/core';
import { readBatchEventsMax, type EventStore } from '@strata/store';
import { ANONYMOUS, type AccessControl, type Principal } from './access-control.ts';
import { BoundedLru } from './bounded-lru.ts';
import { ScryptPasswordHasher, type PasswordHasher } from './password-hasher.ts';
import { compilePermissionPatterns } from './permission-patterns.ts';
import { SecurityAccessControl, ANONYMOUS_USER_NAME } from './security-access-control.ts';
import {
  checkEmail,
  checkGroupNames,
  checkName,
  checkPassword,
  checkPatterns,
  checkPermissionMap,
  checkRepositories,
  descriptionLengthMax,
  failInput,
  normaliseUserName,
  parseGroupRecord,
  parseUserRecord,
  type GroupRecord,
  type PermissionMap,
  type PermissionTargetRecord,
  type RepositoryClassResolver,
  type SecuritySettings,
  type TokenRecord,
  type UserRecord,
} from './security-model.ts';
import { SecurityProjection } from './security-projection.ts';
import { DEFAULT_TOKEN_SCOPE, parseTokenScope, type TokenScope } from './token-scope.ts';

/** The slice of EventStore the security service uses. */
export type SecurityEventStore = Pick<EventStore, 'append' | 'readStream' | 'streamRevision'>;

export interface SecurityLimits {
  /** Cached basic-auth verifications (successes and refusals), least recently used evicted. */
  readonly basicAuthCacheEntriesMax: number;
  /** A cached verification is re-checked after this long even without a change. */
  readonly basicAuthCacheTtlMs: number;
  /** Poll the system stream for other servers' changes this often; 0 = never (one server). */
  readonly refreshIntervalMs: number;
  /** Optimistic-concurrency retries of one command. */
  readonly appendRetriesMax: number;
  readonly tokenExpiresInDefaultSeconds: number;
  /** Longest lifetime a non-admin may ask for (admins may also ask for 0 = never expires). */
  readonly tokenExpiresInMaxSeconds: number;
  /** Live access tokens one user may hold. */
  readonly tokensPerUserMax: number;
  /** Distinct password verifications awaited at once (deduplicated per credential). */
  readonly passwordVerificationsInFlightMax: number;
}

export const DEFAULT_SECURITY_LIMITS: SecurityLimits = Object.freeze({
  basicAuthCacheEntriesMax: 10_000,
  basicAuthCacheTtlMs: 10 * 60_000,
  refreshIntervalMs: 0,
  appendRetriesMax: 8,
  tokenExpiresInDefaultSeconds: 3_600,
  tokenExpiresInMaxSeconds: 365 * 24 * 3_600,
  tokensPerUserMax: 1_000,
  passwordVerificationsInFlightMax: 1_024,
});

export interface SecurityServiceOptions {
  readonly eventStore: SecurityEventStore;
  /** This site's id: the `origin` of the events the service appends. */
  readonly siteId: string;
  /** Stamps each appended event (the site's HybridLogicalClock). */
  readonly stamp: () => HlcStamp;
  /** Event ids and token ids (hyperid in production). */
  readonly newId: () => string;
  /** Physical time for token expiry; Date.now by default. */
  readonly clock?: Clock;
  /** Secret material (salts are drawn by the hasher); node:crypto by default. */
  readonly randomBytes?: (length: number) => Uint8Array;
  readonly passwordHasher?: PasswordHasher;
  /** Tells "ANY LOCAL" / "ANY REMOTE" targets what class a repository is; see setRepositoryClassResolver. */
  readonly repositoryClass?: RepositoryClassResolver;
  readonly limits?: Partial<SecurityLimits>;
  /** Called when a background refresh fails (the next one retries). */
  readonly onRefreshError?: (error: unknown) => void;
}

/** Who asks, for permission checks and event meta. */
export interface SecurityCommandContext {
  readonly principal: Principal;
  readonly requestId?: string;
  readonly clientAddress?: string;
}

export interface UserInput {
  readonly email?: string;
  readonly password?: string;
  readonly admin?: boolean;
  readonly groups?: readonly string[];
  readonly profileUpdatable?: boolean;
  readonly disableUIAccess?: boolean;
  readonly internalPasswordDisabled?: boolean;
}

export interface GroupInput {
  readonly description?: string;
  readonly autoJoin?: boolean;
  readonly adminPrivileges?: boolean;
  /** When given, exactly these users are the group's members afterwards. */
  readonly userNames?: readonly string[];
}

export interface PermissionTargetInput {
  readonly includesPattern?: string;
  readonly excludesPattern?: string;
  readonly repositories: readonly string[];
  readonly users?: PermissionMap;
  readonly groups?: PermissionMap;
}

export interface IssueTokenInput {
  /** Default: the caller. */
  readonly username?: string;
  readonly scope?: string;
  /** Seconds; 0 = never expires (admins only). Default tokenExpiresInDefaultSeconds. */
  readonly expiresInSeconds?: number;
  readonly description?: string;
}

export interface IssuedToken {
  readonly accessToken: string;
  readonly tokenId: string;
  readonly expiresInSeconds: number;
  readonly scope: string;
}

export interface TokenInfo {
  readonly tokenId: string;
  readonly subject: string;
  readonly issuer: string;
  readonly scope: string;
  readonly issuedAt: number;
  readonly expiresAt: number | undefined;
  readonly description: string;
}

interface CachedVerification {
  /** undefined = the credentials were refused. */
  readonly principal: Principal | undefined;
  readonly userName: string;
  readonly userStamp: number;
  readonly groupsStamp: number;
  readonly expiresAt: number;
}

interface CachedPrincipal {
  readonly principal: Principal;
  readonly groupsStamp: number;
}

interface Decision<R> {
  readonly events: readonly DomainEvent[];
  readonly result: R;
}

const SYSTEM_PRINCIPAL: Principal = Object.freeze({ name: '_system', anonymous: false, admin: true, groups: [] });
export const BUILT_IN_ADMIN_NAME = 'admin';
const API_KEY_PREFIX = 'AKC';

/** UserSaved data: JSON only (an absent password hash is null). */
function userEventData(user: UserRecord): Record<string, unknown> {
  return { ...user, groups: [...user.groups], passwordHash: user.passwordHash ?? null };
}

/** One-shot sha256 (node:crypto `hash`, about 3x cheaper than createHash on short input). */
function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

function badCredentials(): StrataError {
  return new StrataError('STRATA_ERR_AUTH_INVALID_CREDENTIALS', 'Bad credentials');
}

function notFound(what: string, name: string): StrataError {
  return new StrataError('STRATA_ERR_SECURITY_NOT_FOUND', `${what} '${name}' does not exist`);
}

/** Case-insensitive scheme test without allocating (`scheme` is lower case). */
function startsWithScheme(header: string, scheme: string): boolean {
  if (header.length <= scheme.length) return false;
  for (let index = 0; index < scheme.length; index++) {
    // OR 0x20 lower-cases ASCII letters and leaves ' ' (0x20) as it is.
    if ((header.charCodeAt(index) | 0x20) !== scheme.charCodeAt(index)) return false;
  }
  return true;
}

/**
 * Users, groups, tokens, API keys, permission targets and security settings: the owner of
 * the `system` stream.
 *
 * Reads come from an in-memory projection (SecurityProjection) loaded by `start()` and
 * updated after each successful append. Writes are deciders: a pure function of the
 * projection returns the events, which are appended with `expectedRevision` = the
 * projection's revision; on a concurrency conflict the service catches up from the store and
 * decides again (up to appendRetriesMax times). Writes and catch-ups of one service are
 * serialised, so the projection is applied in revision order exactly once.
 *
 * Several servers over one PostgreSQL: each appends with expectedRevision, so none loses a
 * change; before each write a server reads what the others appended (so it decides on the
 * latest state), a race in between ends in a conflict and a retry, and when
 * limits.refreshIntervalMs > 0 it also polls `streamRevision` (one cheap query) and reads what
 * it lacks. Between polls another server's change (a revoked token, a new password) may be
 * unseen by authentication for up to refreshIntervalMs.
 */
export class SecurityService {
  readonly accessControl: AccessControl;
  readonly #store: SecurityEventStore;
  readonly #siteId: string;
  readonly #stamp: () => HlcStamp;
  readonly #newId: () => string;
  readonly #clock: Clock;
  readonly #randomBytes: (length: number) => Uint8Array;
  readonly #hasher: PasswordHasher;
  readonly #limits: SecurityLimits;
  readonly #onRefreshError: (error: unknown) => void;
  readonly #projection = new SecurityProjection();
  readonly #basicCache: BoundedLru<string, CachedVerification>;
  readonly #verifications = new Map<string, Promise<Principal>>();
  readonly #userPrincipals = new WeakMap<UserRecord, CachedPrincipal>();
  readonly #tokenPrincipals = new WeakMap<TokenRecord, CachedPrincipal & { readonly userStamp: number }>();
  #repositoryClass: RepositoryClassResolver | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #started: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: SecurityServiceOptions) {
    this.#store = options.eventStore;
    this.#siteId = options.siteId;
    this.#stamp = options.stamp;
    this.#newId = options.newId;
    this.#clock = options.clock ?? { now: () => Date.now() };
    this.#randomBytes = options.randomBytes ?? ((length) => cryptoRandomBytes(length));
    this.#hasher = options.passwordHasher ?? new ScryptPasswordHasher();
    this.#limits = { ...DEFAULT_SECURITY_LIMITS, ...options.limits };
    this.#onRefreshError = options.onRefreshError ?? (() => {});
    this.#repositoryClass = options.repositoryClass;
    this.#basicCache = new BoundedLru(this.#limits.basicAuthCacheEntriesMax);
    this.accessControl = new SecurityAccessControl(this.#projection, () => this.#repositoryClass);
  }

  /** Lets the server tell "ANY LOCAL"/"ANY REMOTE" targets a repository's class once it has a reader. */
  setRepositoryClassResolver(resolver: RepositoryClassResolver | undefined): void {
    this.#repositoryClass = resolver;
  }

  /** Loads the system stream (idempotent) and starts polling when refreshIntervalMs > 0. */
  start(): Promise<void> {
    this.#started ??= this.#exclusive(async () => {
      await this.#catchUp();
      if (this.#limits.refreshIntervalMs > 0 && !this.#closed) {
        this.#timer = setInterval(() => {
          this.refresh().catch((error: unknown) => this.#onRefreshError(error));
        }, this.#limits.refreshIntervalMs);
        this.#timer.unref();
      }
    });
    return this.#started;
  }

  /** Reads events other servers appended since the last look; cheap when there are none. */
  refresh(): Promise<void> {
    return this.#exclusive(async () => {
      const revision = await this.#store.streamRevision(SYSTEM_STREAM);
      if (revision !== undefined && revision > this.#projection.revision) await this.#catchUp();
      this.#projection.pruneExpired(this.#clock.now());
    });
  }

  /** Stops polling. The event store belongs to the caller and stays open. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#queue.catch(() => {});
  }

  get settings(): SecuritySettings {
    return this.#projection.settings;
  }

  /** Revision of the system stream the projection has applied (-1 when empty). */
  get revision(): number {
    return this.#projection.revision;
  }

  // -------------------------------------------------------------------------------------
  // Authentication (hot path)

  /**
   * The principal of a request's credentials: `Authorization: Basic` (password, API key or
   * access token as the password), `Authorization: Bearer <access token>`, or
   * `X-JFrog-Art-Api: <API key>`; ANONYMOUS without credentials. Bad credentials throw
   * STRATA_ERR_AUTH_INVALID_CREDENTIALS (401). Synchronous unless a password must be hashed,
   * which happens once per credential until the user changes (cache keyed by sha256 of the
   * header).
   */
  authenticate(headers: { readonly authorization?: string | undefined; readonly 'x-jfrog-art-api'?: string | string[] | undefined }): Principal | Promise<Principal> {
    const authorization = headers.authorization;
    if (authorization !== undefined && authorization !== '') {
      if (startsWithScheme(authorization, 'basic ')) return this.#authenticateBasic(authorization);
      if (startsWithScheme(authorization, 'bearer ')) return this.#authenticateToken(authorization.slice(7).trim(), 'access');
      throw badCredentials();
    }
    const apiKey = headers['x-jfrog-art-api'];
    if (typeof apiKey === 'string' && apiKey !== '') return this.#authenticateToken(apiKey.trim(), 'apiKey');
    return ANONYMOUS;
  }

  #authenticateToken(secret: string, kind: 'access' | 'apiKey'): Principal {
    const token = this.#projection.tokenByDigest(sha256Hex(secret));
    if (token === undefined || token.kind !== kind) throw badCredentials();
    const principal = this.#tokenPrincipal(token);
    if (principal === undefined) throw badCredentials();
    return principal;
  }

  /** The principal a live token stands for, or undefined when expired or its user is gone. */
  #tokenPrincipal(token: TokenRecord): Principal | undefined {
    if (token.expiresAt !== undefined && token.expiresAt <= this.#clock.now()) return undefined;
    const user = this.#projection.user(token.subject);
    if (user === undefined) return undefined;
    const userStamp = this.#projection.userStamp(user.name);
    const groupsStamp = this.#projection.groupsStamp;
    const cached = this.#tokenPrincipals.get(token);
    if (cached !== undefined && cached.userStamp === userStamp && cached.groupsStamp === groupsStamp) return cached.principal;
    const principal = this.#buildPrincipal(user, token.kind === 'access' ? parseTokenScope(token.scope) : undefined);
    this.#tokenPrincipals.set(token, { principal, userStamp, groupsStamp });
    return principal;
  }

  #authenticateBasic(header: string): Principal | Promise<Principal> {
    const cacheKey = sha256Hex(header);
    const now = this.#clock.now();
    const cached = this.#basicCache.get(cacheKey);
    if (
      cached !== undefined &&
      cached.expiresAt > now &&
      cached.userStamp === this.#projection.userStamp(cached.userName) &&
      cached.groupsStamp === this.#projection.groupsStamp
    ) {
      if (cached.principal === undefined) throw badCredentials();
      return cached.principal;
    }
    const inFlight = this.#verifications.get(cacheKey);
    if (inFlight !== undefined) return inFlight;

    const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) throw badCredentials();
    const userName = normaliseUserName(decoded.slice(0, colon));
    const password = decoded.slice(colon + 1);
    const userStamp = this.#projection.userStamp(userName);
    const groupsStamp = this.#projection.groupsStamp;
    const remember = (principal: Principal | undefined, expiresAt = now + this.#limits.basicAuthCacheTtlMs): void => {
      // Only when nothing changed while we looked: a stale answer must not outlive a change.
      if (this.#projection.userStamp(userName) !== userStamp || this.#projection.groupsStamp !== groupsStamp) return;
      this.#basicCache.set(cacheKey, { principal, userName, userStamp, groupsStamp, expiresAt });
    };

    const user = this.#projection.user(userName);
    if (user === undefined || password === '' || password.length > 4_096) {
      remember(undefined);
      throw badCredentials();
    }
    // An API key or access token of this user given as the password: a digest lookup, no hash.
    const token = this.#projection.tokenByDigest(sha256Hex(password));
    if (token !== undefined && token.subject === user.name) {
      const principal = this.#tokenPrincipal(token);
      if (principal === undefined) throw badCredentials();
      remember(principal, Math.min(now + this.#limits.basicAuthCacheTtlMs, token.expiresAt ?? Number.MAX_SAFE_INTEGER));
      return principal;
    }
    const passwordHash = user.passwordHash;
    if (passwordHash === undefined || user.internalPasswordDisabled) {
      remember(undefined);
      throw badCredentials();
    }
    const verification = this.#hasher.verify(password, passwordHash).then(
      (valid) => {
        this.#verifications.delete(cacheKey);
        const current = this.#projection.user(userName);
        // The password may have changed while hashing: the answer holds for the hash we checked.
        const principal = valid && current !== undefined && current.passwordHash === passwordHash && !current.internalPasswordDisabled
          ? this.#userPrincipal(current)
          : undefined;
        remember(principal);
        if (principal === undefined) throw badCredentials();
        return principal;
      },
      (error: unknown) => {
        this.#verifications.delete(cacheKey);
        throw error;
      },
    );
    if (this.#verifications.size < this.#limits.passwordVerificationsInFlightMax) this.#verifications.set(cacheKey, verification);
    return verification;
  }

  #userPrincipal(user: UserRecord): Principal {
    const groupsStamp = this.#projection.groupsStamp;
    const cached = this.#userPrincipals.get(user);
    if (cached !== undefined && cached.groupsStamp === groupsStamp) return cached.principal;
    const principal = this.#buildPrincipal(user, undefined);
    this.#userPrincipals.set(user, { principal, groupsStamp });
    return principal;
  }

  #buildPrincipal(user: UserRecord, scope: TokenScope | undefined): Principal {
    const groups: string[] = [];
    let groupAdmin = false;
    for (const name of user.groups) {
      const group = this.#projection.group(name);
      if (group === undefined) continue;
      if (scope?.groups !== undefined && !scope.groups.includes(name)) continue;
      groups.push(name);
      if (group.adminPrivileges) groupAdmin = true;
    }
    const admin = (user.admin || groupAdmin) && (scope === undefined || scope.admin);
    return Object.freeze({ name: user.name, anonymous: false, admin, groups: Object.freeze(groups) });
  }

  /** The principal of a user as a password login would see it (for tests and tooling). */
  principalOf(userName: string): Principal | undefined {
    const user = this.#projection.user(normaliseUserName(userName));
    return user === undefined ? undefined : this.#userPrincipal(user);
  }

  // -------------------------------------------------------------------------------------
  // Built-in admin

  /**
   * Creates the built-in `admin` user at first start — when there is no `admin` user and no
   * administrator at all — with `password`, or a generated one. Returns the generated
   * password (to print once), undefined otherwise. `preparedPasswordHash`: the hash of
   * `password` made beforehand with this service's hasher (used only if the admin is created).
   */
  async ensureAdmin(password: string | undefined, preparedPasswordHash?: Promise<string>): Promise<string | undefined> {
    await this.start();
    const hasAdmin = (): boolean =>
      this.#projection.user(BUILT_IN_ADMIN_NAME) !== undefined || this.#adminExists(new Map(), new Map());
    if (hasAdmin()) return undefined;
    const chosen = password ?? Buffer.from(this.#randomBytes(18)).toString('base64url');
    checkPassword(chosen, failInput);
    // The caller may have hashed the given password already (with this service's hasher).
    const passwordHash = password !== undefined && preparedPasswordHash !== undefined ? await preparedPasswordHash : await this.#hasher.hash(chosen);
    const created = await this.#execute({ principal: SYSTEM_PRINCIPAL }, () => {
      if (hasAdmin()) return { events: [], result: false };
      const user: UserRecord = {
        name: BUILT_IN_ADMIN_NAME,
        email: '',
        passwordHash,
        admin: true,
        groups: [],
        profileUpdatable: true,
        disableUIAccess: false,
        internalPasswordDisabled: false,
      };
      return { events: [{ type: 'UserSaved', data: userEventData(user) }], result: true };
    });
    return created && password === undefined ? chosen : undefined;
  }

  // -------------------------------------------------------------------------------------
  // Users

  getUser(context: SecurityCommandContext, name: string): UserRecord {
    const userName = normaliseUserName(name);
    if (context.principal.name !== userName || context.principal.anonymous) this.accessControl.requireAdmin(context.principal);
    const user = this.#projection.user(userName);
    if (user === undefined) throw notFound('User', name);
    return { ...user, groups: user.groups.filter((group) => this.#projection.group(group) !== undefined) };
  }

  listUsers(context: SecurityCommandContext): UserRecord[] {
    this.accessControl.requireAdmin(context.principal);
    return [...this.#projection.users()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Creates or replaces a user (fields not given take their defaults; the password is kept). */
  async putUser(context: SecurityCommandContext, name: string, input: UserInput): Promise<{ created: boolean }> {
    this.accessControl.requireAdmin(context.principal);
    const userName = normaliseUserName(checkName(name, 'user', failInput));
    const passwordHash = input.password === undefined ? undefined : await this.#hasher.hash(checkPassword(input.password, failInput));
    return this.#execute(context, (state) => {
      const existing = state.user(userName);
      if (existing === undefined) {
        if (input.email === undefined || input.email === '') failInput('email is required to create a user');
        if (passwordHash === undefined && input.internalPasswordDisabled !== true) failInput('password is required to create a user');
      }
      const groups = input.groups ?? (existing === undefined ? [...state.groups()].filter((group) => group.autoJoin).map((group) => group.name) : []);
      const user = this.#validUser({
        name: userName,
        email: input.email ?? existing?.email ?? '',
        passwordHash: passwordHash ?? existing?.passwordHash,
        admin: input.admin ?? false,
        groups,
        profileUpdatable: input.profileUpdatable ?? true,
        disableUIAccess: input.disableUIAccess ?? false,
        internalPasswordDisabled: input.internalPasswordDisabled ?? false,
      });
      this.#assertAdminRemains(new Map([[userName, user]]), new Map());
      return { events: [{ type: 'UserSaved', data: userEventData(user) }], result: { created: existing === undefined } };
    });
  }

  /** Changes the given fields of an existing user. */
  async updateUser(context: SecurityCommandContext, name: string, input: UserInput): Promise<void> {
    this.accessControl.requireAdmin(context.principal);
    const userName = normaliseUserName(checkName(name, 'user', failInput));
    if (this.#projection.user(userName) === undefined) throw notFound('User', name);
    const passwordHash = input.password === undefined ? undefined : await this.#hasher.hash(checkPassword(input.password, failInput));
    await this.#execute(context, (state) => {
      const existing = state.user(userName);
      if (existing === undefined) throw notFound('User', name);
      const user = this.#validUser({
        name: userName,
        email: input.email ?? existing.email,
        passwordHash: passwordHash ?? existing.passwordHash,
        admin: input.admin ?? existing.admin,
        groups: input.groups ?? existing.groups,
        profileUpdatable: input.profileUpdatable ?? existing.profileUpdatable,
        disableUIAccess: input.disableUIAccess ?? existing.disableUIAccess,
        internalPasswordDisabled: input.internalPasswordDisabled ?? existing.internalPasswordDisabled,
      });
      this.#assertAdminRemains(new Map([[userName, user]]), new Map());
      return { events: [{ type: 'UserSaved', data: userEventData(user) }], result: undefined };
    });
  }

  /** Deletes a user, their tokens and API key, and their entries in permission targets. */
  async deleteUser(context: SecurityCommandContext, name: string): Promise<void> {
    this.accessControl.requireAdmin(context.principal);
    const userName = normaliseUserName(name);
    await this.#execute(context, (state) => {
      if (state.user(userName) === undefined) throw notFound('User', name);
      this.#assertAdminRemains(new Map([[userName, null]]), new Map());
      const events: DomainEvent[] = [];
      for (const target of state.permissionTargets()) {
        if (userName in target.users) {
          const users = { ...target.users };
          delete users[userName];
          events.push({ type: 'PermissionTargetSaved', data: this.#targetData({ ...target, users }) });
        }
      }
      events.push({ type: 'UserDeleted', data: { name: userName } });
      return { events, result: undefined };
    });
  }

  #validUser(user: UserRecord): UserRecord {
    const valid = parseUserRecord(user, failInput);
    for (const group of valid.groups) {
      if (this.#projection.group(group) === undefined) failInput(`group '${group}' does not exist`);
    }
    return valid;
  }

  /** Refuses a change that would leave no administrator (nobody could manage security). */
  #assertAdminRemains(users: ReadonlyMap<string, UserRecord | null>, groups: ReadonlyMap<string, GroupRecord | null>): void {
    if (!this.#adminExists(users, groups)) failInput('the change would leave no administrator');
  }

  #adminExists(users: ReadonlyMap<string, UserRecord | null>, groups: ReadonlyMap<string, GroupRecord | null>): boolean {
    const groupOf = (name: string): GroupRecord | undefined => {
      const changed = groups.get(name);
      return changed === undefined ? this.#projection.group(name) : changed ?? undefined;
    };
    const isAdmin = (user: UserRecord): boolean => user.admin || user.groups.some((group) => groupOf(group)?.adminPrivileges === true);
    for (const user of users.values()) if (user !== null && isAdmin(user)) return true;
    for (const user of this.#projection.users()) if (!users.has(user.name) && isAdmin(user)) return true;
    return false;
  }

  // -------------------------------------------------------------------------------------
  // Groups

  getGroup(context: SecurityCommandContext, name: string): GroupRecord & { readonly userNames: readonly string[] } {
    this.accessControl.requireAdmin(context.principal);
    const group = this.#projection.group(name);
    if (group === undefined) throw notFound('Group', name);
    const userNames = [...this.#projection.users()].filter((user) => user.groups.includes(group.name)).map((user) => user.name).sort();
    return { ...group, userNames };
  }

  listGroups(context: SecurityCommandContext): GroupRecord[] {
    this.accessControl.requireAdmin(context.principal);
    return [...this.#projection.groups()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  async putGroup(context: SecurityCommandContext, name: string, input: GroupInput): Promise<{ created: boolean }> {
    return this.#saveGroup(context, name, input, 'replace');
  }

  async updateGroup(context: SecurityCommandContext, name: string, input: GroupInput): Promise<void> {
    await this.#saveGroup(context, name, input, 'update');
  }

  async #saveGroup(context: SecurityCommandContext, name: string, input: GroupInput, mode: 'replace' | 'update'): Promise<{ created: boolean }> {
    this.accessControl.requireAdmin(context.principal);
    checkName(name, 'group', failInput);
    return this.#execute(context, (state) => {
      const existing = state.group(name);
      if (existing === undefined && mode === 'update') throw notFound('Group', name);
      const base = mode === 'update' && existing !== undefined ? existing : undefined;
      if (input.description !== undefined && input.description.length > descriptionLengthMax) failInput('description is too long');
      const group = parseGroupRecord(
        {
          name,
          description: input.description ?? base?.description ?? '',
          autoJoin: input.autoJoin ?? base?.autoJoin ?? false,
          adminPrivileges: input.adminPrivileges ?? base?.adminPrivileges ?? false,
        },
        failInput,
      );
      const changedUsers = new Map<string, UserRecord>();
      if (input.userNames !== undefined) {
        const members = new Set(input.userNames.map((userName) => normaliseUserName(checkName(userName, 'user', failInput))));
        for (const member of members) if (state.user(member) === undefined) failInput(`user '${member}' does not exist`);
        for (const user of state.users()) {
          const isMember = user.groups.includes(name);
          if (members.has(user.name) && !isMember) changedUsers.set(user.name, { ...user, groups: [...user.groups, name] });
          if (!members.has(user.name) && isMember) changedUsers.set(user.name, { ...user, groups: user.groups.filter((group) => group !== name) });
        }
      }
      this.#assertAdminRemains(changedUsers, new Map([[name, group]]));
      const events: DomainEvent[] = [{ type: 'GroupSaved', data: { ...group } }];
      for (const user of changedUsers.values()) events.push({ type: 'UserSaved', data: userEventData(user) });
      return { events, result: { created: existing === undefined } };
    });
  }

  /** Deletes a group, its memberships and its entries in permission targets. */
  async deleteGroup(context: SecurityCommandContext, name: string): Promise<void> {
    this.accessControl.requireAdmin(context.principal);
    await this.#execute(context, (state) => {
      if (state.group(name) === undefined) throw notFound('Group', name);
      const changedUsers = new Map<string, UserRecord>();
      for (const user of state.users()) {
        if (user.groups.includes(name)) changedUsers.set(user.name, { ...user, groups: user.groups.filter((group) => group !== name) });
      }
      this.#assertAdminRemains(changedUsers, new Map([[name, null]]));
      const events: DomainEvent[] = [];
      for (const user of changedUsers.values()) events.push({ type: 'UserSaved', data: userEventData(user) });
      for (const target of state.permissionTargets()) {
        if (name in target.groups) {
          const groups = { ...target.groups };
          delete groups[name];
          events.push({ type: 'PermissionTargetSaved', data: this.#targetData({ ...target, groups }) });
        }
      }
      events.push({ type: 'GroupDeleted', data: { name } });
      return { events, result: undefined };
    });
  }

  // -------------------------------------------------------------------------------------
  // Permission targets

  getPermissionTarget(context: SecurityCommandContext, name: string): PermissionTargetRecord {
    this.accessControl.requireAdmin(context.principal);
    const target = this.#projection.permissionTarget(name);
    if (target === undefined) throw notFound('Permission target', name);
    return target;
  }

  listPermissionTargets(context: SecurityCommandContext): PermissionTargetRecord[] {
    this.accessControl.requireAdmin(context.principal);
    return [...this.#projection.permissionTargets()].sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  /** Creates or replaces a permission target. Every user and group it names must exist. */
  async putPermissionTarget(context: SecurityCommandContext, name: string, input: PermissionTargetInput): Promise<{ created: boolean }> {
    this.accessControl.requireAdmin(context.principal);
    const target: PermissionTargetRecord = {
      name: checkName(name, 'permission target', failInput),
      includesPattern: checkPatterns(input.includesPattern ?? '**', 'includesPattern', failInput),
      excludesPattern: checkPatterns(input.excludesPattern ?? '', 'excludesPattern', failInput),
      repositories: checkRepositories(input.repositories, failInput),
      users: checkPermissionMap(input.users ?? {}, 'users', normaliseUserName, failInput),
      groups: checkPermissionMap(input.groups ?? {}, 'groups', (group) => group, failInput),
    };
    compilePermissionPatterns(target.includesPattern, target.excludesPattern); // throws STRATA_ERR_PATTERN_INVALID
    return this.#execute(context, (state) => {
      for (const user of Object.keys(target.users)) {
        if (user !== ANONYMOUS_USER_NAME && state.user(user) === undefined) failInput(`user '${user}' does not exist`);
      }
      for (const group of Object.keys(target.groups)) {
        if (state.group(group) === undefined) failInput(`group '${group}' does not exist`);
      }
      return {
        events: [{ type: 'PermissionTargetSaved', data: this.#targetData(target) }],
        result: { created: state.permissionTarget(name) === undefined },
      };
    });
  }

  async deletePermissionTarget(context: SecurityCommandContext, name: string): Promise<void> {
    this.accessControl.requireAdmin(context.principal);
    await this.#execute(context, (state) => {
      if (state.permissionTarget(name) === undefined) throw notFound('Permission target', name);
      return { events: [{ type: 'PermissionTargetDeleted', data: { name } }], result: undefined };
    });
  }

  #targetData(target: PermissionTargetRecord): Record<string, unknown> {
    return {
      name: target.name,
      includesPattern: target.includesPattern,
      excludesPattern: target.excludesPattern,
      repositories: [...target.repositories],
      users: { ...target.users },
      groups: { ...target.groups },
    };
  }

  // -------------------------------------------------------------------------------------
  // Settings

  async setAnonymousAccess(context: SecurityCommandContext, enabled: boolean): Promise<void> {
    this.accessControl.requireAdmin(context.principal);
    await this.#execute(context, (state) =>
      state.settings.anonymousAccess === enabled
        ? { events: [], result: undefined }
        : { events: [{ type: 'SettingsChanged', data: { anonymousAccess: enabled } }], result: undefined },
    );
  }

  // -------------------------------------------------------------------------------------
  // Access tokens

  /**
   * Issues an access token. A user may issue tokens for themself; an admin for any user.
   * The token is JWT-shaped so that clients which read its payload (the JFrog CLI reads
   * `sub`) find the user, but it is opaque to the server: the payload is never trusted, the
   * whole token is looked up by its sha256 digest, and its last part is 256 random bits.
   */
  async issueToken(context: SecurityCommandContext, input: IssueTokenInput): Promise<IssuedToken> {
    const caller = this.#requireAuthenticated(context.principal);
    const subject = normaliseUserName(input.username ?? caller.name);
    if (subject !== caller.name && !caller.admin) {
      throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', 'Only an administrator may create a token for another user');
    }
    const scope = (input.scope ?? DEFAULT_TOKEN_SCOPE).trim() || DEFAULT_TOKEN_SCOPE;
    const parsedScope = parseTokenScope(scope);
    if (parsedScope.requestsAdmin && !caller.admin) {
      throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', 'Only an administrator may create a token with admin scope');
    }
    const expiresInSeconds = input.expiresInSeconds ?? this.#limits.tokenExpiresInDefaultSeconds;
    if (!Number.isSafeInteger(expiresInSeconds) || expiresInSeconds < 0) failInput('expires_in must be a whole number of seconds');
    if (!caller.admin && (expiresInSeconds === 0 || expiresInSeconds > this.#limits.tokenExpiresInMaxSeconds)) {
      failInput(`expires_in must be between 1 and ${this.#limits.tokenExpiresInMaxSeconds} seconds`);
    }
    const description = input.description ?? '';
    if (description.length > descriptionLengthMax) failInput('description is too long');
    this.#projection.pruneExpired(this.#clock.now());

    return this.#execute(context, (state) => {
      const user = state.user(subject);
      if (user === undefined) throw notFound('User', subject);
      let live = 0;
      for (const token of state.tokens()) if (token.subject === subject && token.kind === 'access') live++;
      if (live >= this.#limits.tokensPerUserMax) failInput(`user '${subject}' already holds ${live} tokens; revoke some first`);
      const now = this.#clock.now();
      const tokenId = this.#newId();
      const expiresAt = expiresInSeconds === 0 ? undefined : now + expiresInSeconds * 1000;
      const accessToken = this.#accessTokenText(tokenId, subject, scope, now, expiresAt);
      const data: Record<string, unknown> = {
        tokenId,
        kind: 'access',
        subject,
        digest: sha256Hex(accessToken),
        scope,
        issuer: caller.name,
        issuedAt: now,
        expiresAt: expiresAt ?? null,
        hint: '',
        description,
      };
      return { events: [{ type: 'TokenIssued', data }], result: { accessToken, tokenId, expiresInSeconds, scope } };
    });
  }

  #accessTokenText(tokenId: string, subject: string, scope: string, now: number, expiresAt: number | undefined): string {
    const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
    const header = encode({ typ: 'JWT', alg: 'none', kid: 'strata-opaque' });
    const payload = encode({
      sub: `jfrt@${this.#siteId}/users/${subject}`,
      scp: scope,
      aud: '*@*',
      iss: `jfrt@${this.#siteId}`,
      iat: Math.floor(now / 1000),
      ...(expiresAt === undefined ? {} : { exp: Math.floor(expiresAt / 1000) }),
      jti: tokenId,
    });
    return `${header}.${payload}.${Buffer.from(this.#randomBytes(32)).toString('base64url')}`;
  }

  /**
   * Revokes an access token given the token itself (whoever holds it may revoke it) or its
   * id (its subject, its issuer or an admin). Returns false when no such live token exists.
   */
  async revokeToken(context: SecurityCommandContext, which: { readonly token?: string; readonly tokenId?: string }): Promise<boolean> {
    const caller = this.#requireAuthenticated(context.principal);
    return this.#execute(context, (state) => {
      let token: TokenRecord | undefined;
      if (which.token !== undefined) token = state.tokenByDigest(sha256Hex(which.token));
      else if (which.tokenId !== undefined) {
        token = state.tokenById(which.tokenId);
        if (token !== undefined && !caller.admin && token.subject !== caller.name && token.issuer !== caller.name) {
          throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', 'Only the token owner or an administrator may revoke it');
        }
      } else failInput('give token or token_id');
      if (token === undefined || token.kind !== 'access') return { events: [], result: false };
      return { events: [{ type: 'TokenRevoked', data: { tokenId: token.tokenId } }], result: true };
    });
  }

  /** Live access tokens: all for an admin, the caller's own otherwise. */
  listTokens(context: SecurityCommandContext): TokenInfo[] {
    const caller = this.#requireAuthenticated(context.principal);
    const now = this.#clock.now();
    const result: TokenInfo[] = [];
    for (const token of this.#projection.tokens()) {
      if (token.kind !== 'access' || (token.expiresAt !== undefined && token.expiresAt <= now)) continue;
      if (!caller.admin && token.subject !== caller.name) continue;
      const { tokenId, subject, issuer, scope, issuedAt, expiresAt, description } = token;
      result.push({ tokenId, subject, issuer, scope, issuedAt, expiresAt, description });
    }
    return result.sort((a, b) => a.issuedAt - b.issuedAt || (a.tokenId < b.tokenId ? -1 : 1));
  }

  // -------------------------------------------------------------------------------------
  // API keys (one per user; Artifactory semantics for the caller)

  /**
   * Creates the caller's API key (`regenerate` replaces an existing one; without it an
   * existing key is an error). The key is returned once: only its digest is stored.
   */
  async createApiKey(context: SecurityCommandContext, options: { readonly regenerate: boolean }): Promise<string> {
    const caller = this.#requireAuthenticated(context.principal);
    return this.#execute(context, (state) => {
      if (state.user(caller.name) === undefined) throw notFound('User', caller.name);
      const existing = state.apiKeyOf(caller.name);
      if (existing !== undefined && !options.regenerate) failInput('an API key already exists for this user; regenerate it with PUT');
      if (existing === undefined && options.regenerate) throw notFound('API key of user', caller.name);
      const apiKey = API_KEY_PREFIX + Buffer.from(this.#randomBytes(35)).toString('hex');
      const events: DomainEvent[] = [];
      if (existing !== undefined) events.push({ type: 'TokenRevoked', data: { tokenId: existing.tokenId } });
      events.push({
        type: 'TokenIssued',
        data: {
          tokenId: this.#newId(),
          kind: 'apiKey',
          subject: caller.name,
          digest: sha256Hex(apiKey),
          scope: '',
          issuer: caller.name,
          issuedAt: this.#clock.now(),
          expiresAt: null,
          hint: apiKey.slice(0, 8),
          description: '',
        },
      });
      return { events, result: apiKey };
    });
  }

  /** A non-secret hint of the caller's API key (its first characters), undefined when none. */
  apiKeyHint(context: SecurityCommandContext): string | undefined {
    const caller = this.#requireAuthenticated(context.principal);
    return this.#projection.apiKeyOf(caller.name)?.hint;
  }

  /** Revokes the API key of the caller, or of `username` (admins only). False when there was none. */
  async revokeApiKey(context: SecurityCommandContext, username?: string): Promise<boolean> {
    const caller = this.#requireAuthenticated(context.principal);
    const subject = normaliseUserName(username ?? caller.name);
    if (subject !== caller.name) this.accessControl.requireAdmin(caller);
    return this.#execute(context, (state) => {
      const existing = state.apiKeyOf(subject);
      if (existing === undefined) return { events: [], result: false };
      return { events: [{ type: 'TokenRevoked', data: { tokenId: existing.tokenId } }], result: true };
    });
  }

  #requireAuthenticated(principal: Principal): Principal {
    if (principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
    return principal;
  }

  // -------------------------------------------------------------------------------------
  // Appending

  /** Runs `task` after every earlier write or catch-up of this service. */
  #exclusive<R>(task: () => Promise<R>): Promise<R> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #catchUp(): Promise<void> {
    for (;;) {
      const events = await this.#store.readStream(SYSTEM_STREAM, {
        fromRevision: this.#projection.revision + 1,
        maxCount: readBatchEventsMax,
      });
      for (const event of events) this.#projection.apply(event);
      if (events.length < readBatchEventsMax) return;
    }
  }

  /**
   * Decide, append with the projection's revision as expectation, apply. On a conflict
   * (another server wrote), catch up and decide again.
   */
  async #execute<R>(context: SecurityCommandContext, decide: (state: SecurityProjection) => Decision<R>): Promise<R> {
    if (this.#closed) throw new StrataError('STRATA_ERR_STORE_CLOSED', 'security service is closed');
    await this.start();
    const meta: EventMeta = {
      actor: context.principal.name,
      ...(context.requestId === undefined ? {} : { requestId: context.requestId }),
      ...(context.clientAddress === undefined ? {} : { clientAddress: context.clientAddress }),
    };
    return this.#exclusive(async () => {
      // Decide on the latest state (other servers may have written): one cheap read per write.
      await this.#catchUp();
      for (let attempt = 0; ; attempt++) {
        const { events, result } = decide(this.#projection);
        if (events.length === 0) return result;
        const firstOriginSeq = this.#projection.originSeq(this.#siteId) + 1;
        const newEvents = events.map(
          (event, index) =>
            ({
              ...event,
              id: this.#newId(),
              origin: this.#siteId,
              originSeq: firstOriginSeq + index,
              hlc: this.#stamp(),
              meta,
            }) as NewEvent,
        );
        const revision = this.#projection.revision;
        try {
          const appended = await this.#store.append(SYSTEM_STREAM, newEvents, {
            expectedRevision: revision === -1 ? 'no_stream' : revision,
          });
          for (const event of appended.events) this.#projection.apply(event);
          return result;
        } catch (error) {
          if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT') || attempt >= this.#limits.appendRetriesMax) throw error;
          await this.#catchUp();
        }
      }
    });
  }
}
