/**
 * The contract between the HTTP routes and access control. Routes never inspect
 * credentials themselves: the auth plugin authenticates every request (onRequest hook) and
 * sets `request.principal`; a route calls `app.accessControl.authorize(request.principal,
 * { repo, path, action })` before it acts, which throws StrataError
 * STRATA_ERR_AUTH_UNAUTHENTICATED (401, anonymous caller) or STRATA_ERR_AUTH_FORBIDDEN (403).
 */
export const PERMISSION_ACTIONS = ['read', 'annotate', 'deploy', 'delete', 'manage'] as const;
export type PermissionAction = (typeof PERMISSION_ACTIONS)[number];
export function isPermissionAction(value: unknown): value is PermissionAction {
  return typeof value === 'string' && (PERMISSION_ACTIONS as readonly string[]).includes(value);
}

export interface Principal {
  /** User name; 'anonymous' for unauthenticated callers. */
  readonly name: string;
  readonly anonymous: boolean;
  readonly admin: boolean;
  readonly groups: readonly string[];
}

export const ANONYMOUS: Principal = Object.freeze({ name: 'anonymous', anonymous: true, admin: false, groups: [] });

export interface AuthorizationTarget {
  readonly repo: string;
  /** Path inside the repository ('' for the repository root). */
  readonly path: string;
  readonly action: PermissionAction;
}

export interface AccessControl {
  /** Throws a 401/403 StrataError unless `principal` may perform `action` on `repo/path`. */
  authorize(principal: Principal, target: AuthorizationTarget): void;
  /** True when allowed (for filtering listings without throwing). */
  isAllowed(principal: Principal, target: AuthorizationTarget): boolean;
  /** Throws 401/403 unless `principal` is an administrator (repository config, security API). */
  requireAdmin(principal: Principal): void;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyInstance {
    accessControl: AccessControl;
  }
}
