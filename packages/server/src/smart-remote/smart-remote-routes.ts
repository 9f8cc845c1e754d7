import { StrataError } from '@strata/core';
import type { FastifyPluginAsync } from 'fastify';
import { normalisePath } from '../core-slice.ts';
import { errorResponses } from '../http-errors.ts';
import type { RepositoryContent } from '../virtual/repository-content.ts';
import type { SmartRemoteService } from './smart-remote-service.ts';
import { validateDownloadsReport } from './smart-remote-service.ts';

export interface SmartRemoteRoutesOptions {
  readonly service: SmartRemoteService;
  readonly content: RepositoryContent;
}

/**
 * The origin's side of smart remotes: `POST /api/smart-remote/downloads` takes a batch of
 * downloads a smart remote served from its cache; `?stats` shows them as remote downloads.
 */
export const smartRemoteRoutes: FastifyPluginAsync<SmartRemoteRoutesOptions> = async (app, { service, content }) => {
  app.post(
    '/api/smart-remote/downloads',
    { schema: { body: { type: 'object' }, response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } } },
    async (request) => {
      // Reports change counters: an identified caller (the smart remote's credentials) is required.
      if (request.principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
      // Reports change the origin's counters (metadata): Annotate on the repository, checked before the body is.
      const named = (request.body as { repo?: unknown } | undefined)?.repo;
      app.accessControl.authorize(request.principal, { repo: typeof named === 'string' ? named : '', path: '', action: 'annotate' });
      const report = validateDownloadsReport(request.body);
      const addressed = await content.address(report.repo);
      // Reported against a virtual: counted on the member that stores each file (what ?stats shows).
      const byRepo = new Map<string, typeof report.downloads>();
      for (const download of report.downloads) {
        const path = normalisePath(download.path);
        let repo = addressed.config.key;
        if (addressed.config.rclass === 'virtual') {
          const found = await content.item(report.repo, path, request.principal);
          if (found === undefined || found.item.kind !== 'file') continue;
          repo = found.repo;
        }
        const group = byRepo.get(repo);
        if (group === undefined) byRepo.set(repo, [{ ...download, path }]);
        else group.push({ ...download, path });
      }
      let recorded = 0;
      for (const [repo, downloads] of byRepo) {
        await service.recordRemoteDownloads(repo, downloads);
        recorded += downloads.length;
      }
      return { recorded };
    },
  );
};
