import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../http-errors.ts';
import type { RepositoryReader } from '../ports.ts';
import { baseUrl, requestMeta } from '../request-meta.ts';
import { configForDisplay } from './repository-config.ts';
import { repositoryNotFound as notFound } from './repository-decider.ts';
import type { RepositoryService } from './repository-service.ts';
import type { RepositoryContent } from '../virtual/repository-content.ts';

export interface RepositoriesRoutesOptions {
  readonly service: RepositoryService;
  readonly reader: RepositoryReader;
  readonly content: RepositoryContent;
}

const keyParams = {
  type: 'object',
  properties: { key: { type: 'string', minLength: 1 } },
  required: ['key'],
} as const;

const textResponse = { 200: { type: 'string' }, ...errorResponses } as const;

/** `/api/repositories[/{key}]`: the repository configuration API. */
export const repositoriesRoutes: FastifyPluginAsync<RepositoriesRoutesOptions> = async (app, { service, reader, content }) => {
  // Artifactory clients send vendor media types such as
  // application/vnd.org.jfrog.artifactory.repositories.LocalRepositoryConfiguration+json.
  app.addContentTypeParser(/^application\/[\w.+-]+\+json\s*(;.*)?$/i, { parseAs: 'string' }, app.getDefaultJsonParser('error', 'error'));

  app.get<{ Querystring: { type?: string; packageType?: string } }>(
    '/api/repositories',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { type: { type: 'string' }, packageType: { type: 'string' } },
        },
        response: {
          200: {
            type: 'array',
            items: {
              type: 'object',
              properties: {
                key: { type: 'string' },
                type: { type: 'string' },
                description: { type: 'string' },
                url: { type: 'string' },
                packageType: { type: 'string' },
              },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const type = request.query.type?.toLowerCase();
      const packageType = request.query.packageType?.toLowerCase();
      const base = baseUrl(request);
      return (await reader.list())
        .filter((repo) => type === undefined || type === '' || repo.rclass === type)
        .filter((repo) => packageType === undefined || packageType === '' || repo.packageType.toLowerCase() === packageType)
        .filter((repo) => app.accessControl.isAllowed(request.principal, { repo: repo.key, path: '', action: 'read' }))
        .map((repo) => ({
          key: repo.key,
          type: repo.rclass.toUpperCase(),
          description: typeof repo.description === 'string' ? repo.description : '',
          url: repo.rclass === 'remote' && typeof repo.url === 'string' ? repo.url : `${base}/${repo.key}`,
          packageType: repo.packageType,
        }));
    },
  );

  app.get<{ Params: { key: string } }>(
    '/api/repositories/:key',
    { schema: { params: keyParams, response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } } },
    async (request) => {
      const { key } = request.params;
      app.accessControl.authorize(request.principal, { repo: key, path: '', action: 'read' });
      const config = await reader.get(key);
      if (config === undefined) throw notFound(key);
      // A virtual also shows its effective resolution order (nested virtuals flattened).
      if (config.rclass === 'virtual') {
        const projected = await reader.resolutionOrder?.(key);
        return { ...configForDisplay(config), resolvedRepositories: projected ?? (await content.order(key)) };
      }
      return configForDisplay(config);
    },
  );

  app.put<{ Params: { key: string } }>(
    '/api/repositories/:key',
    { schema: { params: keyParams, body: { type: 'object' }, response: textResponse } },
    async (request, reply) => {
      app.accessControl.requireAdmin(request.principal);
      const { key } = request.params;
      await service.create(key, request.body, requestMeta(request));
      return reply.type('text/plain').send(`Successfully created repository '${key}'`);
    },
  );

  app.post<{ Params: { key: string } }>(
    '/api/repositories/:key',
    { schema: { params: keyParams, body: { type: 'object' }, response: textResponse } },
    async (request, reply) => {
      app.accessControl.requireAdmin(request.principal);
      const { key } = request.params;
      await service.update(key, request.body, requestMeta(request));
      return reply.type('text/plain').send(`Repository ${key} update successfully.`);
    },
  );

  app.delete<{ Params: { key: string } }>(
    '/api/repositories/:key',
    { schema: { params: keyParams, response: textResponse } },
    async (request, reply) => {
      app.accessControl.requireAdmin(request.principal);
      const { key } = request.params;
      await service.delete(key, requestMeta(request));
      return reply.type('text/plain').send(`Repository '${key}' and all its content have been removed successfully.`);
    },
  );
};
