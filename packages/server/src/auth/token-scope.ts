import { StrataError } from '@strata/core';
import { scopeLengthMax } from './security-model.ts';

/**
 * What an access token's scope lets it do, read from Artifactory's scope strings:
 * - `applied-permissions/user` (the default): the user's permissions, never admin;
 * - `applied-permissions/admin`: the user's permissions including admin (issuing one needs an admin);
 * - `applied-permissions/groups:a,b` and `member-of-groups:a,b`: only via the listed groups, never admin;
 * - `member-of-groups:*`: the user as they are, admin included (Artifactory 6 tokens);
 * - `api:*` is accepted and changes nothing.
 */
export interface TokenScope {
  /** The token may carry the user's admin status. */
  readonly admin: boolean;
  /** When set, only these of the user's groups count. */
  readonly groups: readonly string[] | undefined;
  /** The scope requested `applied-permissions/admin` explicitly. */
  readonly requestsAdmin: boolean;
}

export const DEFAULT_TOKEN_SCOPE = 'applied-permissions/user';

export function parseTokenScope(scope: string): TokenScope {
  if (scope.length > scopeLengthMax) throw new StrataError('STRATA_ERR_SECURITY_INVALID', 'scope is too long');
  const parts = scope.split(/\s+/).filter((part) => part !== '');
  if (parts.length === 0) parts.push(DEFAULT_TOKEN_SCOPE);
  let admin = false;
  let requestsAdmin = false;
  let allGroups = false;
  const groups = new Set<string>();
  let listsGroups = false;
  for (const part of parts) {
    if (part === 'api:*' || part === 'applied-permissions/user') continue;
    if (part === 'applied-permissions/admin') {
      admin = true;
      requestsAdmin = true;
    } else if (part === 'member-of-groups:*' || part === 'applied-permissions/groups:*') {
      allGroups = true;
      if (part === 'member-of-groups:*') admin = true;
    } else if (part.startsWith('member-of-groups:') || part.startsWith('applied-permissions/groups:')) {
      listsGroups = true;
      const list = part.slice(part.indexOf(':') + 1);
      for (const group of list.split(',')) {
        const trimmed = group.trim().replace(/^"|"$/g, '');
        if (trimmed !== '') groups.add(trimmed);
      }
    } else {
      throw new StrataError('STRATA_ERR_SECURITY_INVALID', `unsupported token scope '${part.slice(0, 64)}'`);
    }
  }
  const restricted = listsGroups && !allGroups && !requestsAdmin;
  return {
    admin: admin && !restricted,
    groups: restricted ? [...groups] : undefined,
    requestsAdmin,
  };
}
