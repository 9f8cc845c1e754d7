import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../http-errors.ts';
import type { RepositoryReader } from '../ports.ts';
import { requestMeta } from '../request-meta.ts';
import type { CurationService } from './curation-service.ts';

export interface CurationRoutesOptions {
  readonly curation: CurationService;
  readonly repositories: RepositoryReader;
  readonly blocksListMax: number;
}

const nameParams = { type: 'object', properties: { name: { type: 'string', minLength: 1 } }, required: ['name'] } as const;
const policySchema = { type: 'object', additionalProperties: true } as const;

/**
 * `/api/curation/policies[/{name}]` (admin): curation policies, each change an event;
 * `/api/curation/blocks` (admin): every blocked request, newest first.
 */
export const curationRoutes: FastifyPluginAsync<CurationRoutesOptions> = async (app, { curation, repositories, blocksListMax }) => {
  app.get('/api/curation/policies', { schema: { response: { 200: { type: 'array', items: policySchema }, ...errorResponses } } }, async (request) => {
    app.accessControl.requireAdmin(request.principal);
    return curation.list();
  });

  app.get<{ Params: { name: string } }>('/api/curation/policies/:name', { schema: { params: nameParams, response: { 200: policySchema, ...errorResponses } } }, async (request) => {
    app.accessControl.requireAdmin(request.principal);
    return curation.get(request.params.name);
  });

  app.put<{ Params: { name: string } }>(
    '/api/curation/policies/:name',
    { schema: { params: nameParams, body: { type: 'object' }, response: { 200: policySchema, ...errorResponses } } },
    async (request) => {
      app.accessControl.requireAdmin(request.principal);
      return curation.save(request.params.name, request.body, requestMeta(request), async (key) => (await repositories.get(key))?.rclass === 'remote');
    },
  );

  app.delete<{ Params: { name: string } }>('/api/curation/policies/:name', { schema: { params: nameParams, response: { 204: { type: 'null' }, ...errorResponses } } }, async (request, reply) => {
    app.accessControl.requireAdmin(request.principal);
    await curation.delete(request.params.name, requestMeta(request));
    return reply.code(204).send();
  });

  app.get<{ Querystring: { repo?: string; policy?: string; limit?: number } }>(
    '/api/curation/blocks',
    {
      schema: {
        querystring: { type: 'object', properties: { repo: { type: 'string' }, policy: { type: 'string' }, limit: { type: 'integer', minimum: 1 } } },
        response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
      },
    },
    async (request) => {
      app.accessControl.requireAdmin(request.principal);
      const { repo, policy, limit } = request.query;
      const blocks = await curation.blocks({
        limit: Math.min(limit ?? blocksListMax, blocksListMax),
        ...(repo === undefined ? {} : { repo }),
        ...(policy === undefined ? {} : { policy }),
      });
      return { blocks: blocks.map((block) => ({ ...block, at: new Date(block.at).toISOString() })) };
    },
  );
};
