import { StrataError, repositoryStream } from '@strata/core';
import { historyEventJson, type EventAudit } from '@strata/store';
import type { FastifyPluginAsync } from 'fastify';
import { parseArtifactAddress } from '../artifacts/artifact-address.ts';
import { errorResponses } from '../http-errors.ts';
import { repositoryNotFound } from '../repositories/repository-decider.ts';
import { baseUrl } from '../request-meta.ts';

export interface HistoryRoutesOptions {
  readonly audit: EventAudit;
  readonly siteId: string;
  /** Events one page returns when the client names no limit. */
  readonly historyPageEventsDefault: number;
  /** Most events one page returns. */
  readonly historyPageEventsMax: number;
}

const PREFIX = '/artifactory/api/history/';

const querystring = {
  type: 'object',
  properties: {
    limit: { type: 'string', pattern: '^[0-9]{1,6}$' },
    cursor: { type: 'string', pattern: '^[0-9]{1,10}$' },
    deep: { type: 'string', pattern: '^(0|1|true|false)?$' },
  },
} as const;

/**
 * `GET /api/history/{repo}/{path}` (issue 8): every event that touched the path or a folder
 * above it, oldest first (this site's order of the repository's stream), with who, when
 * (HLC and physical time), from which site and the event id. `?limit=` bounds a page; the
 * response's `next` is the `?cursor=` of the following page. `?deep=1` adds every path below.
 */
export const historyRoutes: FastifyPluginAsync<HistoryRoutesOptions> = async (app, options) => {
  for (const url of ['/api/history/:repo', '/api/history/:repo/*']) {
    app.get(
      url,
      {
        schema: {
          params: { type: 'object', properties: { repo: { type: 'string' }, '*': { type: 'string' } } },
          querystring,
          response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses },
        },
      },
      async (request, reply) => {
        const { repo, path } = parseArtifactAddress(request.url, PREFIX);
        app.accessControl.authorize(request.principal, { repo, path, action: 'read' });
        const query = request.query as { limit?: string; cursor?: string; deep?: string };
        const limit = query.limit === undefined ? options.historyPageEventsDefault : Number(query.limit);
        if (limit < 1 || limit > options.historyPageEventsMax) {
          throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `limit must be between 1 and ${options.historyPageEventsMax}`);
        }
        const cursor = query.cursor === undefined ? undefined : Number(query.cursor);
        const deep = query.deep === '1' || query.deep === 'true';
        const page = await options.audit.pathHistory(repositoryStream(repo), path, {
          limit,
          deep,
          ...(cursor === undefined ? {} : { afterRevision: cursor }),
        });
        // A repository that never existed has no history (a deleted one keeps its own).
        if (page.entries.length === 0 && cursor === undefined) throw repositoryNotFound(repo);
        const self = `${baseUrl(request)}/api/history/${repo}${path === '' ? '' : `/${path}`}`;
        return reply.type('application/json; charset=utf-8').send({
          repo,
          path: `/${path}`,
          uri: self,
          siteId: options.siteId,
          events: page.entries.map((entry) => historyEventJson(entry, options.siteId)),
          ...(page.nextAfterRevision === undefined
            ? {}
            : { next: String(page.nextAfterRevision), nextUri: `${self}?limit=${limit}&cursor=${page.nextAfterRevision}${deep ? '&deep=1' : ''}` }),
        });
      },
    );
  }
};
