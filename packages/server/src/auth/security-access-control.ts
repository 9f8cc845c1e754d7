import { StrataError } from '@strata/core';
import type { AccessControl, AuthorizationTarget, Principal } from './access-control.ts';
import type { RepositoryClassResolver } from './security-model.ts';
import { ACTION_BITS, type CompiledPermissionTarget, type SecurityProjection } from './security-projection.ts';

/** The name permission targets use to grant anonymous callers more than read. */
export const ANONYMOUS_USER_NAME = 'anonymous';

/**
 * Decides requests against the projection's compiled permission targets.
 *
 * - Administrators may do anything.
 * - Anonymous callers get nothing unless the anonymousAccess setting is on; then they may
 *   read everything, and targets naming the user "anonymous" may grant them more. A refusal
 *   of an anonymous caller is 401 (log in), of a known user 403.
 * - A user is allowed when some target grants the action to the user or one of the user's
 *   groups, covers the repository (by key, or "ANY" / "ANY LOCAL" / "ANY REMOTE"), and its
 *   patterns cover the path. The repository root ('') is covered by every target on the
 *   repository, so that a user allowed below it can list it.
 *
 * `isAllowed` allocates nothing on the way to an answer and costs O(targets): per target a
 * Map lookup per principal name and group, then a Set lookup, then one RegExp test.
 */
export class SecurityAccessControl implements AccessControl {
  readonly #projection: SecurityProjection;
  readonly #repositoryClass: () => RepositoryClassResolver | undefined;

  constructor(projection: SecurityProjection, repositoryClass: () => RepositoryClassResolver | undefined) {
    this.#projection = projection;
    this.#repositoryClass = repositoryClass;
  }

  isAllowed(principal: Principal, target: AuthorizationTarget): boolean {
    if (principal.admin) return true;
    if (principal.anonymous) {
      if (!this.#projection.settings.anonymousAccess) return false;
      if (target.action === 'read') return true;
    }
    const bit = ACTION_BITS[target.action];
    const name = principal.anonymous ? ANONYMOUS_USER_NAME : principal.name;
    const groups = principal.groups;
    const targets = this.#projection.compiledTargets;
    for (let index = 0; index < targets.length; index++) {
      const permissionTarget = targets[index] as CompiledPermissionTarget;
      let mask = permissionTarget.users.get(name) ?? 0;
      for (let group = 0; (mask & bit) === 0 && group < groups.length; group++) {
        mask |= permissionTarget.groups.get(groups[group] as string) ?? 0;
      }
      if ((mask & bit) === 0) continue;
      if (!this.#coversRepository(permissionTarget, target.repo)) continue;
      if (target.path !== '' && !permissionTarget.patterns.matches(target.path)) continue;
      return true;
    }
    return false;
  }

  authorize(principal: Principal, target: AuthorizationTarget): void {
    if (this.isAllowed(principal, target)) return;
    if (principal.anonymous) {
      throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED', undefined, { repo: target.repo, action: target.action });
    }
    const where = target.path === '' ? target.repo : `${target.repo}:${target.path}`;
    throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', `The user: '${principal.name}' is not permitted to ${target.action} '${where}'.`, {
      repo: target.repo,
      path: target.path,
      action: target.action,
    });
  }

  requireAdmin(principal: Principal): void {
    if (principal.admin) return;
    if (principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
    throw new StrataError('STRATA_ERR_AUTH_FORBIDDEN', `The user: '${principal.name}' is not an administrator.`);
  }

  #coversRepository(target: CompiledPermissionTarget, repo: string): boolean {
    if (target.anyRepository || target.repositories.has(repo)) return true;
    if (!target.anyLocal && !target.anyRemote) return false;
    const repositoryClass = this.#repositoryClass()?.(repo);
    if (repositoryClass === undefined) return false;
    return target.anyLocal ? repositoryClass === 'local' || repositoryClass === 'federated' || (target.anyRemote && repositoryClass === 'remote')
      : repositoryClass === 'remote';
  }
}
