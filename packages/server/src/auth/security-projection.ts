import { SYSTEM_STREAM, invariant, type RecordedEvent } from '@strata/core';
import type { PermissionAction } from './access-control.ts';
import { compilePermissionPatterns, type PermissionPatterns } from './permission-patterns.ts';
import {
  DEFAULT_SECURITY_SETTINGS,
  failStored,
  parseGroupRecord,
  parseNameOnly,
  parsePermissionTargetRecord,
  parseSettingsPatch,
  parseTokenId,
  parseTokenRecord,
  parseUserRecord,
  type GroupRecord,
  type PermissionMap,
  type PermissionTargetRecord,
  type SecuritySettings,
  type TokenRecord,
  type UserRecord,
} from './security-model.ts';

export const ACTION_BITS: Readonly<Record<PermissionAction, number>> = Object.freeze({
  read: 1,
  annotate: 2,
  deploy: 4,
  delete: 8,
  manage: 16,
});

/** A permission target ready for `authorize`: sets, bit masks and compiled patterns. */
export interface CompiledPermissionTarget {
  readonly name: string;
  readonly anyRepository: boolean;
  readonly anyLocal: boolean;
  readonly anyRemote: boolean;
  readonly repositories: ReadonlySet<string>;
  readonly patterns: PermissionPatterns;
  /** User name → ACTION_BITS mask. */
  readonly users: ReadonlyMap<string, number>;
  /** Group name → ACTION_BITS mask. */
  readonly groups: ReadonlyMap<string, number>;
}

function masks(map: PermissionMap): Map<string, number> {
  const result = new Map<string, number>();
  for (const [name, actions] of Object.entries(map)) {
    let mask = 0;
    for (const action of actions) mask |= ACTION_BITS[action];
    if (mask !== 0) result.set(name, mask);
  }
  return result;
}

export function compilePermissionTarget(target: PermissionTargetRecord): CompiledPermissionTarget {
  const repositories = new Set(target.repositories.filter((repo) => !repo.startsWith('ANY')));
  return {
    name: target.name,
    anyRepository: target.repositories.includes('ANY'),
    anyLocal: target.repositories.includes('ANY LOCAL'),
    anyRemote: target.repositories.includes('ANY REMOTE'),
    repositories,
    patterns: compilePermissionPatterns(target.includesPattern, target.excludesPattern),
    users: masks(target.users),
    groups: masks(target.groups),
  };
}

/**
 * The in-memory projection of the `system` stream. It is a function of the stream: events
 * are applied in revision order, each exactly once, and every record is validated on the way
 * in. It mutates in place rather than copying per event (a pure `evolve` returning new Maps
 * would make loading n tokens O(n²)); deciders only read it.
 */
export class SecurityProjection {
  /** Revision of the last applied event; -1 before the first. */
  #revision = -1;
  readonly #originSeqs = new Map<string, number>();
  readonly #users = new Map<string, UserRecord>();
  readonly #groups = new Map<string, GroupRecord>();
  readonly #tokensById = new Map<string, TokenRecord>();
  readonly #tokensByDigest = new Map<string, TokenRecord>();
  readonly #apiKeysBySubject = new Map<string, TokenRecord>();
  readonly #targets = new Map<string, PermissionTargetRecord>();
  readonly #compiledTargets = new Map<string, CompiledPermissionTarget>();
  #compiledTargetList: readonly CompiledPermissionTarget[] = [];
  #settings: SecuritySettings = DEFAULT_SECURITY_SETTINGS;
  /**
   * Change stamps for cache invalidation: a cached authentication of user u stays valid while
   * `userStamp(u)` and `groupsStamp` are unchanged.
   */
  #changeCounter = 0;
  readonly #userStamps = new Map<string, number>();
  #groupsStamp = 0;

  get revision(): number {
    return this.#revision;
  }
  get settings(): SecuritySettings {
    return this.#settings;
  }
  get groupsStamp(): number {
    return this.#groupsStamp;
  }
  userStamp(name: string): number {
    return this.#userStamps.get(name) ?? 0;
  }
  /** Highest originSeq of `origin` in the stream (0 when none). */
  originSeq(origin: string): number {
    return this.#originSeqs.get(origin) ?? 0;
  }

  user(name: string): UserRecord | undefined {
    return this.#users.get(name);
  }
  users(): IterableIterator<UserRecord> {
    return this.#users.values();
  }
  group(name: string): GroupRecord | undefined {
    return this.#groups.get(name);
  }
  groups(): IterableIterator<GroupRecord> {
    return this.#groups.values();
  }
  tokenById(tokenId: string): TokenRecord | undefined {
    return this.#tokensById.get(tokenId);
  }
  tokenByDigest(digest: string): TokenRecord | undefined {
    return this.#tokensByDigest.get(digest);
  }
  tokens(): IterableIterator<TokenRecord> {
    return this.#tokensById.values();
  }
  apiKeyOf(subject: string): TokenRecord | undefined {
    return this.#apiKeysBySubject.get(subject);
  }
  permissionTarget(name: string): PermissionTargetRecord | undefined {
    return this.#targets.get(name);
  }
  permissionTargets(): IterableIterator<PermissionTargetRecord> {
    return this.#targets.values();
  }
  /** Compiled targets for authorize; a fresh array after each change, never mutated. */
  get compiledTargets(): readonly CompiledPermissionTarget[] {
    return this.#compiledTargetList;
  }

  apply(event: RecordedEvent): void {
    invariant(event.stream === SYSTEM_STREAM, `security projection got an event of stream '${event.stream}'`);
    invariant(
      event.revision === this.#revision + 1,
      `system stream revision ${event.revision} applied after ${this.#revision} (gap or replay)`,
    );
    this.#revision = event.revision;
    if (event.originSeq > this.originSeq(event.origin)) this.#originSeqs.set(event.origin, event.originSeq);

    switch (event.type) {
      case 'UserSaved': {
        const user = parseUserRecord(event.data, failStored);
        this.#users.set(user.name, user);
        this.#touchUser(user.name);
        break;
      }
      case 'UserDeleted': {
        const name = parseNameOnly(event.data, 'user', failStored).toLowerCase();
        this.#users.delete(name);
        // A user re-created under the same name must not inherit the old tokens.
        for (const token of [...this.#tokensById.values()]) if (token.subject === name) this.#dropToken(token);
        this.#touchUser(name);
        break;
      }
      case 'GroupSaved': {
        const group = parseGroupRecord(event.data, failStored);
        this.#groups.set(group.name, group);
        this.#groupsStamp = ++this.#changeCounter;
        break;
      }
      case 'GroupDeleted': {
        this.#groups.delete(parseNameOnly(event.data, 'group', failStored));
        this.#groupsStamp = ++this.#changeCounter;
        break;
      }
      case 'TokenIssued': {
        const token = parseTokenRecord(event.data, failStored);
        const previous = this.#tokensById.get(token.tokenId);
        if (previous !== undefined) this.#dropToken(previous);
        if (token.kind === 'apiKey') {
          const previousKey = this.#apiKeysBySubject.get(token.subject);
          if (previousKey !== undefined) this.#dropToken(previousKey);
          this.#apiKeysBySubject.set(token.subject, token);
        }
        this.#tokensById.set(token.tokenId, token);
        this.#tokensByDigest.set(token.digest, token);
        // No cache invalidation: a fresh random secret cannot sit in a cached refusal.
        break;
      }
      case 'TokenRevoked': {
        const token = this.#tokensById.get(parseTokenId(event.data, failStored));
        if (token !== undefined) this.#dropToken(token);
        break;
      }
      case 'PermissionTargetSaved': {
        const target = parsePermissionTargetRecord(event.data, failStored);
        this.#targets.set(target.name, target);
        this.#compiledTargets.set(target.name, compilePermissionTarget(target));
        this.#compiledTargetList = [...this.#compiledTargets.values()];
        break;
      }
      case 'PermissionTargetDeleted': {
        const name = parseNameOnly(event.data, 'permission target', failStored);
        this.#targets.delete(name);
        this.#compiledTargets.delete(name);
        this.#compiledTargetList = [...this.#compiledTargets.values()];
        break;
      }
      case 'SettingsChanged': {
        this.#settings = { ...this.#settings, ...parseSettingsPatch(event.data, failStored) };
        break;
      }
      default:
        // Other event types do not belong in the system stream; the store refuses them there,
        // so seeing one is a broken invariant rather than something to skip.
        invariant(false, `unexpected event type '${event.type}' in the system stream`);
    }
  }

  /**
   * Forgets tokens that expired before `now`. Not an event: an expired token can never become
   * valid again, so dropping it from memory changes no answer.
   */
  pruneExpired(now: number): number {
    let pruned = 0;
    for (const token of [...this.#tokensById.values()]) {
      if (token.expiresAt !== undefined && token.expiresAt <= now) {
        this.#dropToken(token);
        pruned++;
      }
    }
    return pruned;
  }

  #dropToken(token: TokenRecord): void {
    this.#tokensById.delete(token.tokenId);
    if (this.#tokensByDigest.get(token.digest) === token) this.#tokensByDigest.delete(token.digest);
    if (this.#apiKeysBySubject.get(token.subject) === token) this.#apiKeysBySubject.delete(token.subject);
    this.#touchUser(token.subject);
  }

  #touchUser(name: string): void {
    this.#userStamps.set(name, ++this.#changeCounter);
  }
}
