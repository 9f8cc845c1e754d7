import { StrataError } from '@strata/core';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PERMISSION_ACTIONS, type PermissionAction } from './access-control.ts';
import {
  ACTION_LETTERS,
  actionFromArtifactory,
  failInput,
  type GroupRecord,
  type PermissionMap,
  type PermissionTargetRecord,
  type UserRecord,
} from './security-model.ts';
import type {
  GroupInput,
  PermissionTargetInput,
  SecurityCommandContext,
  SecurityService,
  UserInput,
} from './security-service.ts';

/**
 * Artifactory's security REST API over SecurityService: users, groups, permission targets
 * (v1 JSON), access tokens, API keys and the anonymous-access setting. Every handler maps
 * Artifactory JSON to service input and back; the service checks who may do what.
 */
export interface SecurityRoutesOptions {
  readonly security: SecurityService;
}

/** Bodies of the security API are small; refuse big ones before parsing. */
export const securityBodyBytesMax = 256 * 1024;

const errorResponse = {
  type: 'object',
  properties: {
    errors: {
      type: 'array',
      items: { type: 'object', properties: { status: { type: 'integer' }, message: { type: 'string' } } },
    },
  },
} as const;
const errorResponses = { '4xx': errorResponse, '5xx': errorResponse } as const;
const nameParams = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 256 } },
  required: ['name'],
} as const;
const textResponses = { 200: { type: 'string' }, ...errorResponses } as const;
const emptyResponses = { 200: { type: 'null' }, 201: { type: 'null' }, ...errorResponses } as const;
const namedListResponse = {
  200: {
    type: 'array',
    items: { type: 'object', properties: { name: { type: 'string' }, uri: { type: 'string' }, realm: { type: 'string' } } },
  },
  ...errorResponses,
} as const;
const anyObjectBody = { type: 'object' } as const;
const principalActions = { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } } as const;

type Named = { Params: { name: string } };

function context(request: FastifyRequest): SecurityCommandContext {
  return { principal: request.principal, requestId: request.id, clientAddress: request.ip };
}

function apiBase(request: FastifyRequest): string {
  const forwarded = request.headers['x-forwarded-proto'];
  const protocol = typeof forwarded === 'string' && forwarded !== '' ? (forwarded.split(',')[0] ?? '').trim() : request.protocol;
  return `${protocol}://${request.headers.host ?? 'localhost'}/artifactory/api/security`;
}

function body(request: FastifyRequest): Record<string, unknown> {
  const value = request.body;
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) failInput('the request body must be a JSON object');
  return value as Record<string, unknown>;
}

function optionalString(record: Record<string, unknown>, field: string): string | undefined {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') failInput(`${field} must be a string`);
  return value;
}

function optionalBoolean(record: Record<string, unknown>, field: string): boolean | undefined {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  if (value === 'true' || value === 'false') return value === 'true';
  if (typeof value !== 'boolean') failInput(`${field} must be true or false`);
  return value;
}

function optionalStrings(record: Record<string, unknown>, field: string): string[] | undefined {
  const value = record[field];
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) failInput(`${field} must be an array of strings`);
  return value as string[];
}

function checkBodyName(record: Record<string, unknown>, name: string): void {
  const bodyName = record.name;
  if (bodyName !== undefined && bodyName !== null && bodyName !== name) {
    failInput(`the name in the body ('${String(bodyName).slice(0, 64)}') differs from the name in the path`);
  }
}

function userInput(record: Record<string, unknown>): UserInput {
  const input: Record<string, unknown> = {};
  const email = optionalString(record, 'email');
  const password = optionalString(record, 'password');
  const groups = optionalStrings(record, 'groups');
  if (email !== undefined) input.email = email;
  if (password !== undefined) input.password = password;
  if (groups !== undefined) input.groups = groups;
  for (const field of ['admin', 'profileUpdatable', 'disableUIAccess', 'internalPasswordDisabled'] as const) {
    const value = optionalBoolean(record, field);
    if (value !== undefined) input[field] = value;
  }
  return input as UserInput;
}

function groupInput(record: Record<string, unknown>): GroupInput {
  const input: Record<string, unknown> = {};
  const description = optionalString(record, 'description');
  const userNames = optionalStrings(record, 'userNames');
  if (description !== undefined) input.description = description;
  if (userNames !== undefined) input.userNames = userNames;
  for (const field of ['autoJoin', 'adminPrivileges'] as const) {
    const value = optionalBoolean(record, field);
    if (value !== undefined) input[field] = value;
  }
  return input as GroupInput;
}

function permissionMapFromLetters(value: unknown, field: string): PermissionMap {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) failInput(`principals.${field} must be an object`);
  const result: Record<string, PermissionAction[]> = {};
  for (const [name, letters] of Object.entries(value as Record<string, unknown>)) {
    if (!Array.isArray(letters)) failInput(`principals.${field}.${name} must be an array such as ["r","w"]`);
    const actions: PermissionAction[] = [];
    for (const letter of letters) {
      const action = actionFromArtifactory(letter);
      if (action === undefined) failInput(`principals.${field}.${name}: unknown permission '${String(letter).slice(0, 16)}' (use r, n, w, d, m)`);
      actions.push(action);
    }
    result[name] = actions;
  }
  return result;
}

function permissionTargetInput(record: Record<string, unknown>): PermissionTargetInput {
  const principals = record.principals ?? {};
  if (typeof principals !== 'object' || principals === null || Array.isArray(principals)) failInput('principals must be an object');
  const { users, groups } = principals as Record<string, unknown>;
  const repositories = optionalStrings(record, 'repositories');
  if (repositories === undefined) failInput('repositories is required');
  const input: Record<string, unknown> = {
    repositories,
    users: permissionMapFromLetters(users, 'users'),
    groups: permissionMapFromLetters(groups, 'groups'),
  };
  const includesPattern = optionalString(record, 'includesPattern');
  const excludesPattern = optionalString(record, 'excludesPattern');
  if (includesPattern !== undefined) input.includesPattern = includesPattern;
  if (excludesPattern !== undefined) input.excludesPattern = excludesPattern;
  return input as unknown as PermissionTargetInput;
}

function lettersOf(map: PermissionMap): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const [name, actions] of Object.entries(map)) {
    result[name] = PERMISSION_ACTIONS.filter((action) => actions.includes(action)).map((action) => ACTION_LETTERS[action]);
  }
  return result;
}

function userJson(user: UserRecord): Record<string, unknown> {
  return {
    name: user.name,
    email: user.email,
    admin: user.admin,
    profileUpdatable: user.profileUpdatable,
    disableUIAccess: user.disableUIAccess,
    internalPasswordDisabled: user.internalPasswordDisabled,
    realm: 'internal',
    groups: [...user.groups],
  };
}

function groupJson(group: GroupRecord, userNames: readonly string[] | undefined): Record<string, unknown> {
  return {
    name: group.name,
    description: group.description,
    autoJoin: group.autoJoin,
    adminPrivileges: group.adminPrivileges,
    realm: 'internal',
    ...(userNames === undefined ? {} : { userNames: [...userNames] }),
  };
}

function permissionTargetJson(target: PermissionTargetRecord): Record<string, unknown> {
  return {
    name: target.name,
    includesPattern: target.includesPattern,
    excludesPattern: target.excludesPattern,
    repositories: [...target.repositories],
    principals: { users: lettersOf(target.users), groups: lettersOf(target.groups) },
  };
}

function expiresInSeconds(value: unknown): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const number = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,12}$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(number) || number < 0) failInput('expires_in must be a whole number of seconds');
  return number;
}

function requireAuthenticated(request: FastifyRequest): void {
  if (request.principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
}

function text(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(message);
}

export const securityRoutes: FastifyPluginAsync<SecurityRoutesOptions> = async (app, { security }) => {
  // Artifactory clients send vendor media types (application/vnd.org.jfrog.artifactory.security.User+json)
  // and the token endpoint takes an HTML form, as Artifactory's does.
  const vendorJson = /^application\/[\w.+-]+\+json\s*(;.*)?$/i;
  if (!app.hasContentTypeParser(vendorJson)) {
    app.addContentTypeParser(vendorJson, { parseAs: 'string', bodyLimit: securityBodyBytesMax }, app.getDefaultJsonParser('error', 'error'));
  }
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) {
    app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: securityBodyBytesMax }, (_request, form, done) => {
      done(null, Object.fromEntries(new URLSearchParams(form as string)));
    });
  }
  const bodyLimit = securityBodyBytesMax;

  // ---- users -----------------------------------------------------------------------------
  app.get('/api/security/users', { schema: { response: namedListResponse } }, async (request) => {
    const base = apiBase(request);
    return security.listUsers(context(request)).map((user) => ({ name: user.name, uri: `${base}/users/${user.name}`, realm: 'internal' }));
  });

  const userResponse = {
    200: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        email: { type: 'string' },
        admin: { type: 'boolean' },
        profileUpdatable: { type: 'boolean' },
        disableUIAccess: { type: 'boolean' },
        internalPasswordDisabled: { type: 'boolean' },
        realm: { type: 'string' },
        groups: { type: 'array', items: { type: 'string' } },
      },
    },
    ...errorResponses,
  } as const;

  app.get<Named>('/api/security/users/:name', { schema: { params: nameParams, response: userResponse } }, async (request) =>
    userJson(security.getUser(context(request), request.params.name)),
  );

  app.put<Named>('/api/security/users/:name', { bodyLimit, schema: { params: nameParams, body: anyObjectBody, response: emptyResponses } }, async (request, reply) => {
    security.accessControl.requireAdmin(request.principal); // before saying what is wrong with the body
    const record = body(request);
    checkBodyName(record, request.params.name);
    const { created } = await security.putUser(context(request), request.params.name, userInput(record));
    return reply.code(created ? 201 : 200).send();
  });

  app.post<Named>('/api/security/users/:name', { bodyLimit, schema: { params: nameParams, body: anyObjectBody, response: emptyResponses } }, async (request, reply) => {
    security.accessControl.requireAdmin(request.principal);
    const record = body(request);
    checkBodyName(record, request.params.name);
    await security.updateUser(context(request), request.params.name, userInput(record));
    return reply.code(200).send();
  });

  app.delete<Named>('/api/security/users/:name', { schema: { params: nameParams, response: textResponses } }, async (request, reply) => {
    await security.deleteUser(context(request), request.params.name);
    return text(reply, 200, `User '${request.params.name}' has been removed successfully.`);
  });

  // ---- groups ----------------------------------------------------------------------------
  app.get('/api/security/groups', { schema: { response: namedListResponse } }, async (request) => {
    const base = apiBase(request);
    return security.listGroups(context(request)).map((group) => ({ name: group.name, uri: `${base}/groups/${group.name}` }));
  });

  const groupResponse = {
    200: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        description: { type: 'string' },
        autoJoin: { type: 'boolean' },
        adminPrivileges: { type: 'boolean' },
        realm: { type: 'string' },
        userNames: { type: 'array', items: { type: 'string' } },
      },
    },
    ...errorResponses,
  } as const;

  app.get<Named & { Querystring: { includeUsers?: string } }>(
    '/api/security/groups/:name',
    {
      schema: {
        params: nameParams,
        querystring: { type: 'object', properties: { includeUsers: { type: 'string' } } },
        response: groupResponse,
      },
    },
    async (request) => {
      const group = security.getGroup(context(request), request.params.name);
      const includeUsers = request.query.includeUsers === 'true' || request.query.includeUsers === '1';
      return groupJson(group, includeUsers ? group.userNames : undefined);
    },
  );

  app.put<Named>('/api/security/groups/:name', { bodyLimit, schema: { params: nameParams, body: anyObjectBody, response: emptyResponses } }, async (request, reply) => {
    security.accessControl.requireAdmin(request.principal);
    const record = body(request);
    checkBodyName(record, request.params.name);
    const { created } = await security.putGroup(context(request), request.params.name, groupInput(record));
    return reply.code(created ? 201 : 200).send();
  });

  app.post<Named>('/api/security/groups/:name', { bodyLimit, schema: { params: nameParams, body: anyObjectBody, response: emptyResponses } }, async (request, reply) => {
    security.accessControl.requireAdmin(request.principal);
    const record = body(request);
    checkBodyName(record, request.params.name);
    await security.updateGroup(context(request), request.params.name, groupInput(record));
    return reply.code(200).send();
  });

  app.delete<Named>('/api/security/groups/:name', { schema: { params: nameParams, response: textResponses } }, async (request, reply) => {
    await security.deleteGroup(context(request), request.params.name);
    return text(reply, 200, `Group '${request.params.name}' has been removed successfully.`);
  });

  // ---- permission targets (v1 JSON) -------------------------------------------------------
  app.get('/api/security/permissions', { schema: { response: namedListResponse } }, async (request) => {
    const base = apiBase(request);
    return security.listPermissionTargets(context(request)).map((target) => ({ name: target.name, uri: `${base}/permissions/${target.name}` }));
  });

  const permissionResponse = {
    200: {
      type: 'object',
      properties: {
        name: { type: 'string' },
        includesPattern: { type: 'string' },
        excludesPattern: { type: 'string' },
        repositories: { type: 'array', items: { type: 'string' } },
        principals: { type: 'object', properties: { users: principalActions, groups: principalActions } },
      },
    },
    ...errorResponses,
  } as const;

  app.get<Named>('/api/security/permissions/:name', { schema: { params: nameParams, response: permissionResponse } }, async (request) =>
    permissionTargetJson(security.getPermissionTarget(context(request), request.params.name)),
  );

  app.put<Named>('/api/security/permissions/:name', { bodyLimit, schema: { params: nameParams, body: anyObjectBody, response: emptyResponses } }, async (request, reply) => {
    security.accessControl.requireAdmin(request.principal);
    const record = body(request);
    checkBodyName(record, request.params.name);
    const { created } = await security.putPermissionTarget(context(request), request.params.name, permissionTargetInput(record));
    return reply.code(created ? 201 : 200).send();
  });

  app.delete<Named>('/api/security/permissions/:name', { schema: { params: nameParams, response: textResponses } }, async (request, reply) => {
    await security.deletePermissionTarget(context(request), request.params.name);
    return text(reply, 200, `Permission Target '${request.params.name}' has been removed successfully.`);
  });

  // ---- anonymous access setting ------------------------------------------------------------
  const anonymousResponse = {
    200: { type: 'object', properties: { enabled: { type: 'boolean' } } },
    ...errorResponses,
  } as const;

  app.get('/api/security/anonymous', { schema: { response: anonymousResponse } }, async (request) => {
    security.accessControl.requireAdmin(request.principal);
    return { enabled: security.settings.anonymousAccess };
  });

  app.put('/api/security/anonymous', { bodyLimit, schema: { body: anyObjectBody, response: anonymousResponse } }, async (request) => {
    security.accessControl.requireAdmin(request.principal);
    const record = body(request);
    const enabled = optionalBoolean(record, 'enabled') ?? optionalBoolean(record, 'anonAccessEnabled');
    if (enabled === undefined) failInput('give {"enabled": true|false}');
    await security.setAnonymousAccess(context(request), enabled);
    return { enabled: security.settings.anonymousAccess };
  });

  // ---- access tokens ----------------------------------------------------------------------
  const tokenResponse = {
    200: {
      type: 'object',
      properties: {
        access_token: { type: 'string' },
        expires_in: { type: 'integer' },
        scope: { type: 'string' },
        token_type: { type: 'string' },
        token_id: { type: 'string' },
      },
    },
    ...errorResponses,
  } as const;

  app.post('/api/security/token', { bodyLimit, schema: { response: tokenResponse } }, async (request) => {
    requireAuthenticated(request);
    const record = body(request);
    const input: Record<string, unknown> = {};
    const username = optionalString(record, 'username');
    const scope = optionalString(record, 'scope');
    const description = optionalString(record, 'description');
    const expiresIn = expiresInSeconds(record.expires_in);
    if (username !== undefined && username !== '') input.username = username;
    if (scope !== undefined) input.scope = scope;
    if (description !== undefined) input.description = description;
    if (expiresIn !== undefined) input.expiresInSeconds = expiresIn;
    const issued = await security.issueToken(context(request), input);
    return {
      access_token: issued.accessToken,
      expires_in: issued.expiresInSeconds,
      scope: issued.scope,
      token_type: 'Bearer',
      token_id: issued.tokenId,
    };
  });

  app.post('/api/security/token/revoke', { bodyLimit, schema: { response: textResponses } }, async (request, reply) => {
    requireAuthenticated(request);
    const record = body(request);
    const token = optionalString(record, 'token');
    const tokenId = optionalString(record, 'token_id');
    const revoked = await security.revokeToken(context(request), token !== undefined ? { token } : tokenId !== undefined ? { tokenId } : {});
    if (!revoked) throw new StrataError('STRATA_ERR_SECURITY_NOT_FOUND', 'Token not found');
    return text(reply, 200, 'Token revoked');
  });

  const tokenListResponse = {
    200: {
      type: 'object',
      properties: {
        tokens: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              token_id: { type: 'string' },
              issuer: { type: 'string' },
              subject: { type: 'string' },
              scope: { type: 'string' },
              expiry: { type: 'integer' },
              issued_at: { type: 'integer' },
              refreshable: { type: 'boolean' },
              description: { type: 'string' },
            },
          },
        },
      },
    },
    ...errorResponses,
  } as const;

  app.get('/api/security/token', { schema: { response: tokenListResponse } }, async (request) => ({
    tokens: security.listTokens(context(request)).map((token) => ({
      token_id: token.tokenId,
      issuer: token.issuer,
      subject: token.subject,
      scope: token.scope,
      ...(token.expiresAt === undefined ? {} : { expiry: Math.floor(token.expiresAt / 1000) }),
      issued_at: Math.floor(token.issuedAt / 1000),
      refreshable: false,
      description: token.description,
    })),
  }));

  // ---- API keys (the caller's own) ---------------------------------------------------------
  const apiKeyResponse = {
    200: { type: 'object', properties: { apiKey: { type: 'string' } } },
    201: { type: 'object', properties: { apiKey: { type: 'string' } } },
    ...errorResponses,
  } as const;
  const infoResponse = { 200: { type: 'object', properties: { info: { type: 'string' } } }, ...errorResponses } as const;

  app.post('/api/security/apiKey', { schema: { response: apiKeyResponse } }, async (request, reply) => {
    const apiKey = await security.createApiKey(context(request), { regenerate: false });
    return reply.code(201).send({ apiKey });
  });

  app.put('/api/security/apiKey', { schema: { response: apiKeyResponse } }, async (request) => ({
    apiKey: await security.createApiKey(context(request), { regenerate: true }),
  }));

  // Only a digest is stored, so the key cannot be shown again: GET answers with a masked hint.
  app.get('/api/security/apiKey', { schema: { response: apiKeyResponse } }, async (request) => {
    const hint = security.apiKeyHint(context(request));
    return hint === undefined ? {} : { apiKey: `${hint}${'*'.repeat(16)}` };
  });

  app.delete('/api/security/apiKey', { schema: { response: infoResponse } }, async (request) => {
    const removed = await security.revokeApiKey(context(request));
    return { info: removed ? 'Api key removed' : 'No api key to remove' };
  });

  app.delete<{ Params: { name: string } }>('/api/security/apiKey/:name', { schema: { params: nameParams, response: infoResponse } }, async (request) => {
    const removed = await security.revokeApiKey(context(request), request.params.name);
    return { info: removed ? 'Api key removed' : 'No api key to remove' };
  });
};
