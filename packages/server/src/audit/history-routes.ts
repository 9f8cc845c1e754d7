import { Readable } from 'node:stream';
import { StrataError, repositoryStream } from '@strata/core';
import type { EventAudit } from '@strata/store';
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
        const page = await options.audit.pathHistoryJson(repositoryStream(repo), path, {
          limit,
          deep,
          siteId: options.siteId,
          ...(cursor === undefined ? {} : { afterRevision: cursor }),
        });
        // A repository that never existed has no history (a deleted one keeps its own).
        if (page.events === 0 && cursor === undefined) throw repositoryNotFound(repo);
        const self = `${baseUrl(request)}/api/history/${repo}${path === '' ? '' : `/${path}`}`;
        // The events come rendered (a 10,000-event page is 6 MB of JSON: rendering it from
        // the stored bytes, not from objects through JSON.stringify, is most of what makes it
        // fast); the envelope around them is what JSON.stringify makes of
        // { repo, path, uri, siteId, events, next?, nextUri? }.
        const head = JSON.stringify({ repo, path: `/${path}`, uri: self, siteId: options.siteId });
        const tail =
          page.nextAfterRevision === undefined
            ? '}'
            : `,"next":${JSON.stringify(String(page.nextAfterRevision))},"nextUri":${JSON.stringify(`${self}?limit=${limit}&cursor=${page.nextAfterRevision}${deep ? '&deep=1' : ''}`)}}`;
        // The pieces as they are (no 6 MB copy into one buffer), handed back to the store once
        // the socket took them ('finish'; an aborted response just leaves them to the GC).
        const body = [Buffer.from(`${head.slice(0, -1)},"events":`, 'utf8'), ...page.eventsJson, Buffer.from(tail, 'utf8')];
        if (page.release !== undefined) reply.raw.once('finish', page.release);
        return reply
          .type('application/json; charset=utf-8')
          .header('content-length', body.reduce((bytes, piece) => bytes + piece.length, 0))
          .send(Readable.from(body, { objectMode: false }));
      },
    );
  }
};
