import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorResponses } from '../http-errors.ts';
import { requestMeta } from '../request-meta.ts';
import { parseArtifactAddress } from './artifact-address.ts';
import type { ArtifactService } from './artifact-service.ts';

export interface CopyMoveRoutesOptions {
  readonly service: ArtifactService;
}

const messagesSchema = {
  type: 'object',
  properties: {
    messages: {
      type: 'array',
      items: { type: 'object', properties: { level: { type: 'string' }, message: { type: 'string' } } },
    },
  },
} as const;

/** `POST /api/copy/{repo}/{path}?to=/{repo}/{path}[&dry=1]` and the same for `/api/move`. */
export const copyMoveRoutes: FastifyPluginAsync<CopyMoveRoutesOptions> = async (app, { service }) => {
  async function handle(request: FastifyRequest, reply: FastifyReply, move: boolean) {
    const operation = move ? 'move' : 'copy';
    const source = parseArtifactAddress(request.url, `/artifactory/api/${operation}/`);
    const query = request.query as { to: string; dry?: string };
    const target = parseArtifactAddress(`/${query.to.replace(/^\/+/, '')}`, '/');
    const dryRun = query.dry === '1' || query.dry === 'true';
    app.accessControl.authorize(request.principal, { repo: source.repo, path: source.path, action: 'read' });
    if (move) app.accessControl.authorize(request.principal, { repo: source.repo, path: source.path, action: 'delete' });
    app.accessControl.authorize(request.principal, { repo: target.repo, path: target.path, action: 'deploy' });
    const result = await service.copyOrMove({
      source: { repo: source.repo, path: source.path },
      target: { repo: target.repo, path: target.path, into: target.trailingSlash },
      move,
      dryRun,
      meta: requestMeta(request),
    });
    const verb = move ? 'moving' : 'copying';
    const message = `${dryRun ? 'dry run: ' : ''}${verb} ${source.repo}:${source.path} to ${target.repo}:${result.targetPath} completed successfully, ${result.files} artifacts were ${move ? 'moved' : 'copied'}`;
    return reply.send({ messages: [{ level: 'INFO', message }] });
  }

  const schema = {
    params: { type: 'object', properties: { '*': { type: 'string' } } },
    querystring: {
      type: 'object',
      properties: {
        to: { type: 'string', minLength: 1 },
        dry: { type: 'string', pattern: '^(0|1|true|false)?$' },
        suppressLayouts: { type: 'string' },
        failFast: { type: 'string' },
      },
      required: ['to'],
    },
    response: { 200: messagesSchema, ...errorResponses },
  } as const;

  app.post('/api/copy/*', { schema }, (request, reply) => handle(request, reply, false));
  app.post('/api/move/*', { schema }, (request, reply) => handle(request, reply, true));
};
