import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../http-errors.ts';

export interface SystemRoutesOptions {
  readonly version: string;
  readonly revision: string;
}

/** `/api/system/ping` and `/api/system/version`: what Artifactory clients call first. */
export const systemRoutes: FastifyPluginAsync<SystemRoutesOptions> = async (app, options) => {
  app.get(
    '/api/system/ping',
    { schema: { response: { 200: { type: 'string' }, ...errorResponses } } },
    async (_request, reply) => reply.type('text/plain').send('OK'),
  );

  app.get(
    '/api/system/version',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              version: { type: 'string' },
              revision: { type: 'string' },
              addons: { type: 'array', items: { type: 'string' } },
              license: { type: 'string' },
            },
            required: ['version', 'revision', 'addons'],
          },
          ...errorResponses,
        },
      },
    },
    async () => ({ version: options.version, revision: options.revision, addons: [] as string[], license: 'Strata' }),
  );
};
