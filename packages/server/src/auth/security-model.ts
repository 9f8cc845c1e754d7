import { StrataError } from '@strata/core';
import { PERMISSION_ACTIONS, isPermissionAction, type PermissionAction } from './access-control.ts';

/**
 * The security entities as the `system` stream records them. Event data is free-form on the
 * wire (core's SystemEventData), so every record is validated twice: by the decider before it
 * is appended and by the projection when it is read back (a record that fails is a corrupt
 * stream and throws STRATA_ERR_EVENT_INVALID — never skipped silently).
 */

/** Names of users, groups and permission targets. */
export const securityNameLengthMax = 64;
export const emailLengthMax = 254;
/** Bounds the cost of one hash and of an attacker's payload. */
export const passwordLengthMax = 256;
export const descriptionLengthMax = 1024;
export const groupsPerUserMax = 256;
export const repositoriesPerTargetMax = 1024;
export const principalsPerTargetMax = 4096;
export const patternLengthMax = 1024;
export const scopeLengthMax = 1024;

const SECURITY_NAME = /^[A-Za-z0-9_][A-Za-z0-9._@-]*$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;

export const TOKEN_KINDS = ['access', 'apiKey'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];
export function isTokenKind(value: unknown): value is TokenKind {
  return typeof value === 'string' && (TOKEN_KINDS as readonly string[]).includes(value);
}

/** "ANY" covers every repository, "ANY LOCAL" local and federated ones, "ANY REMOTE" remote caches. */
export const REPOSITORY_WILDCARDS = ['ANY', 'ANY LOCAL', 'ANY REMOTE'] as const;
export type RepositoryWildcard = (typeof REPOSITORY_WILDCARDS)[number];

/** The repository classes a permission target's wildcards need to know about. */
export type RepositoryClass = 'local' | 'remote' | 'virtual' | 'federated';
export type RepositoryClassResolver = (key: string) => RepositoryClass | undefined;

export interface UserRecord {
  /** Lower case: user names are case-insensitive, as in Artifactory. */
  readonly name: string;
  readonly email: string;
  /** Encoded password hash (see PasswordHasher); undefined when password login is disabled. */
  readonly passwordHash: string | undefined;
  readonly admin: boolean;
  readonly groups: readonly string[];
  readonly profileUpdatable: boolean;
  readonly disableUIAccess: boolean;
  readonly internalPasswordDisabled: boolean;
}

export interface GroupRecord {
  readonly name: string;
  readonly description: string;
  /** New users created without explicit groups join auto-join groups. */
  readonly autoJoin: boolean;
  /** Members of the group are administrators. */
  readonly adminPrivileges: boolean;
}

export interface TokenRecord {
  readonly tokenId: string;
  readonly kind: TokenKind;
  /** User the token authenticates as (lower case). */
  readonly subject: string;
  /** Hex sha256 of the secret; the secret itself is never stored. */
  readonly digest: string;
  readonly scope: string;
  readonly issuer: string;
  /** Epoch ms. */
  readonly issuedAt: number;
  /** Epoch ms; undefined = never expires. */
  readonly expiresAt: number | undefined;
  /** Non-secret prefix shown by GET apiKey (the key itself is not stored). */
  readonly hint: string;
  readonly description: string;
}

export type PermissionMap = Readonly<Record<string, readonly PermissionAction[]>>;

export interface PermissionTargetRecord {
  readonly name: string;
  /** Comma-separated Ant patterns; '**' by default. */
  readonly includesPattern: string;
  /** Comma-separated Ant patterns; '' by default. */
  readonly excludesPattern: string;
  /** Repository keys or wildcards (REPOSITORY_WILDCARDS). */
  readonly repositories: readonly string[];
  readonly users: PermissionMap;
  readonly groups: PermissionMap;
}

export interface SecuritySettings {
  /** Anonymous callers may read every repository. Off by default. */
  readonly anonymousAccess: boolean;
}

export const DEFAULT_SECURITY_SETTINGS: SecuritySettings = Object.freeze({ anonymousAccess: false });

// ---------------------------------------------------------------------------------------
// Field checks shared by deciders (input: 400 STRATA_ERR_SECURITY_INVALID) and projection
// (read back: STRATA_ERR_EVENT_INVALID). `fail` decides which.

export type Fail = (message: string) => never;

export const failInput: Fail = (message) => {
  throw new StrataError('STRATA_ERR_SECURITY_INVALID', message);
};
export const failStored: Fail = (message) => {
  throw new StrataError('STRATA_ERR_EVENT_INVALID', `system stream: ${message}`);
};

export function isSecurityName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= securityNameLengthMax && SECURITY_NAME.test(value);
}

export function checkName(value: unknown, what: string, fail: Fail): string {
  if (!isSecurityName(value)) {
    fail(`${what} name must be 1-${securityNameLengthMax} characters: letters, digits, '.', '_', '@', '-'`);
  }
  return value;
}

export function normaliseUserName(name: string): string {
  return name.toLowerCase();
}

function checkString(value: unknown, field: string, lengthMax: number, fail: Fail): string {
  if (typeof value !== 'string') fail(`${field} must be a string`);
  if (value.length > lengthMax) fail(`${field} is longer than ${lengthMax} characters`);
  return value;
}

function checkBoolean(value: unknown, field: string, fail: Fail): boolean {
  if (typeof value !== 'boolean') fail(`${field} must be true or false`);
  return value;
}

function checkRecord(value: unknown, what: string, fail: Fail): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(`${what} must be an object`);
  return value as Record<string, unknown>;
}

function checkStringArray(value: unknown, field: string, itemsMax: number, fail: Fail): string[] {
  if (!Array.isArray(value)) fail(`${field} must be an array of strings`);
  if (value.length > itemsMax) fail(`${field} holds more than ${itemsMax} entries`);
  for (const item of value) if (typeof item !== 'string') fail(`${field} must be an array of strings`);
  return value as string[];
}

export function checkEmail(value: unknown, fail: Fail): string {
  const email = checkString(value, 'email', emailLengthMax, fail);
  if (email !== '' && !EMAIL.test(email)) fail('email is not an e-mail address');
  return email;
}

export function checkPassword(value: unknown, fail: Fail): string {
  const password = checkString(value, 'password', passwordLengthMax, fail);
  if (password.length === 0) fail('password must not be empty');
  return password;
}

export function checkGroupNames(value: unknown, fail: Fail): string[] {
  const groups = checkStringArray(value, 'groups', groupsPerUserMax, fail);
  for (const group of groups) checkName(group, 'group', fail);
  return [...new Set(groups)];
}

export function checkPatterns(value: unknown, field: string, fail: Fail): string {
  const pattern = checkString(value, field, patternLengthMax, fail);
  // NUL and backslashes never appear in a normalised repository path; refuse them early.
  if (/[\u0000\\]/.test(pattern)) fail(`${field} holds a forbidden character`);
  return pattern;
}

export function checkRepositories(value: unknown, fail: Fail): string[] {
  const repositories = checkStringArray(value, 'repositories', repositoriesPerTargetMax, fail);
  if (repositories.length === 0) fail('repositories must name at least one repository (or "ANY")');
  for (const repo of repositories) {
    if (repo.startsWith('ANY') && (REPOSITORY_WILDCARDS as readonly string[]).includes(repo)) continue;
    if (!isSecurityName(repo)) fail(`repositories: '${String(repo).slice(0, securityNameLengthMax)}' is not a repository key`);
  }
  return [...new Set(repositories)];
}

export function checkPermissionMap(value: unknown, field: string, nameOf: (name: string) => string, fail: Fail): PermissionMap {
  const record = checkRecord(value ?? {}, field, fail);
  const entries = Object.entries(record);
  if (entries.length > principalsPerTargetMax) fail(`${field} names more than ${principalsPerTargetMax} principals`);
  const result: Record<string, PermissionAction[]> = Object.create(null);
  for (const [name, actions] of entries) {
    checkName(name, field === 'users' ? 'user' : 'group', fail);
    if (!Array.isArray(actions)) fail(`${field}.${name} must be an array of actions`);
    const set = new Set<PermissionAction>();
    for (const action of actions) {
      if (!isPermissionAction(action)) fail(`${field}.${name}: unknown action '${String(action).slice(0, 32)}'`);
      set.add(action);
    }
    // Keep a stable order so that equal targets serialise equally.
    result[nameOf(name)] = PERMISSION_ACTIONS.filter((action) => set.has(action));
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Event data → records (used on read-back with failStored and by deciders with failInput).

export function parseUserRecord(data: unknown, fail: Fail): UserRecord {
  const record = checkRecord(data, 'UserSaved data', fail);
  const name = checkName(record.name, 'user', fail);
  if (name !== normaliseUserName(name)) fail('user name must be stored in lower case');
  const passwordHash = record.passwordHash === undefined || record.passwordHash === null
    ? undefined
    : checkString(record.passwordHash, 'passwordHash', 1024, fail);
  return {
    name,
    email: checkEmail(record.email ?? '', fail),
    passwordHash,
    admin: checkBoolean(record.admin, 'admin', fail),
    groups: checkGroupNames(record.groups ?? [], fail),
    profileUpdatable: checkBoolean(record.profileUpdatable ?? true, 'profileUpdatable', fail),
    disableUIAccess: checkBoolean(record.disableUIAccess ?? false, 'disableUIAccess', fail),
    internalPasswordDisabled: checkBoolean(record.internalPasswordDisabled ?? false, 'internalPasswordDisabled', fail),
  };
}

export function parseGroupRecord(data: unknown, fail: Fail): GroupRecord {
  const record = checkRecord(data, 'GroupSaved data', fail);
  const group: GroupRecord = {
    name: checkName(record.name, 'group', fail),
    description: checkString(record.description ?? '', 'description', descriptionLengthMax, fail),
    autoJoin: checkBoolean(record.autoJoin ?? false, 'autoJoin', fail),
    adminPrivileges: checkBoolean(record.adminPrivileges ?? false, 'adminPrivileges', fail),
  };
  if (group.autoJoin && group.adminPrivileges) fail('a group with adminPrivileges cannot be autoJoin');
  return group;
}

export function parseTokenRecord(data: unknown, fail: Fail): TokenRecord {
  const record = checkRecord(data, 'TokenIssued data', fail);
  const tokenId = checkString(record.tokenId, 'tokenId', 128, fail);
  if (tokenId.length === 0) fail('tokenId must not be empty');
  if (!isTokenKind(record.kind)) fail('kind must be access or apiKey');
  const digest = checkString(record.digest, 'digest', 64, fail);
  if (!/^[0-9a-f]{64}$/.test(digest)) fail('digest must be a hex sha256');
  const issuedAt = record.issuedAt;
  if (typeof issuedAt !== 'number' || !Number.isSafeInteger(issuedAt)) fail('issuedAt must be epoch milliseconds');
  const expiresAt = record.expiresAt;
  if (expiresAt !== undefined && expiresAt !== null && (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt))) {
    fail('expiresAt must be epoch milliseconds or null');
  }
  const subject = checkName(record.subject, 'user', fail);
  return {
    tokenId,
    kind: record.kind,
    subject: normaliseUserName(subject),
    digest,
    scope: checkString(record.scope ?? '', 'scope', scopeLengthMax, fail),
    issuer: checkString(record.issuer ?? '', 'issuer', securityNameLengthMax, fail),
    issuedAt,
    expiresAt: typeof expiresAt === 'number' ? expiresAt : undefined,
    hint: checkString(record.hint ?? '', 'hint', 16, fail),
    description: checkString(record.description ?? '', 'description', descriptionLengthMax, fail),
  };
}

export function parsePermissionTargetRecord(data: unknown, fail: Fail): PermissionTargetRecord {
  const record = checkRecord(data, 'PermissionTargetSaved data', fail);
  return {
    name: checkName(record.name, 'permission target', fail),
    includesPattern: checkPatterns(record.includesPattern ?? '**', 'includesPattern', fail),
    excludesPattern: checkPatterns(record.excludesPattern ?? '', 'excludesPattern', fail),
    repositories: checkRepositories(record.repositories, fail),
    users: checkPermissionMap(record.users, 'users', normaliseUserName, fail),
    groups: checkPermissionMap(record.groups, 'groups', (name) => name, fail),
  };
}

/** SettingsChanged carries a patch: only the settings that changed. */
export function parseSettingsPatch(data: unknown, fail: Fail): Partial<SecuritySettings> {
  const record = checkRecord(data, 'SettingsChanged data', fail);
  const patch: { anonymousAccess?: boolean } = {};
  if (record.anonymousAccess !== undefined) patch.anonymousAccess = checkBoolean(record.anonymousAccess, 'anonymousAccess', fail);
  return patch;
}

export function parseNameOnly(data: unknown, what: string, fail: Fail): string {
  const record = checkRecord(data, `${what} data`, fail);
  return checkName(record.name, what, fail);
}

export function parseTokenId(data: unknown, fail: Fail): string {
  const record = checkRecord(data, 'TokenRevoked data', fail);
  return checkString(record.tokenId, 'tokenId', 128, fail);
}

// ---------------------------------------------------------------------------------------
// Artifactory's v1 permission letters.

export const ACTION_LETTERS: Readonly<Record<PermissionAction, string>> = Object.freeze({
  read: 'r',
  annotate: 'n',
  deploy: 'w',
  delete: 'd',
  manage: 'm',
});

const LETTER_ACTIONS: ReadonlyMap<string, PermissionAction> = new Map(
  PERMISSION_ACTIONS.map((action) => [ACTION_LETTERS[action], action] as const),
);

/** Accepts Artifactory's letters (r, n, w, d, m) and the v2 words (read, annotate, write|deploy, delete, manage). */
export function actionFromArtifactory(value: unknown): PermissionAction | undefined {
  if (typeof value !== 'string') return undefined;
  const lower = value.toLowerCase();
  const byLetter = LETTER_ACTIONS.get(lower);
  if (byLetter !== undefined) return byLetter;
  if (lower === 'write') return 'deploy';
  return isPermissionAction(lower) ? lower : undefined;
}
