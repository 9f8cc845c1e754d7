/** Access control: authentication, the security projection of the `system` stream, and its REST API. */
export * from './access-control.ts';
export { authPlugin, DEFAULT_REALM, type AuthPluginOptions } from './auth-plugin.ts';
export { BoundedLru } from './bounded-lru.ts';
export { ScryptPasswordHasher, DEFAULT_SCRYPT_PARAMETERS, type PasswordHasher, type ScryptParameters } from './password-hasher.ts';
export { SecurityAccessControl, ANONYMOUS_USER_NAME } from './security-access-control.ts';
export {
  REPOSITORY_WILDCARDS,
  ACTION_LETTERS,
  actionFromArtifactory,
  type RepositoryClass,
  type RepositoryClassResolver,
  type UserRecord,
  type GroupRecord,
  type TokenRecord,
  type PermissionTargetRecord,
  type SecuritySettings,
} from './security-model.ts';
export { securityRoutes, type SecurityRoutesOptions } from './security-routes.ts';
export {
  SecurityService,
  DEFAULT_SECURITY_LIMITS,
  BUILT_IN_ADMIN_NAME,
  type SecurityServiceOptions,
  type SecurityLimits,
  type SecurityEventStore,
  type SecurityCommandContext,
  type UserInput,
  type GroupInput,
  type PermissionTargetInput,
  type IssueTokenInput,
  type IssuedToken,
  type TokenInfo,
} from './security-service.ts';
export { parseTokenScope, DEFAULT_TOKEN_SCOPE, type TokenScope } from './token-scope.ts';
