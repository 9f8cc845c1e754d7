import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../http-errors.ts';
import type { ArtifactReader, RepositoryReader, StorageLocation } from '../ports.ts';

export interface StorageInfoRoutesOptions {
  readonly repositories: RepositoryReader;
  readonly artifacts: ArtifactReader;
  readonly storage: StorageLocation | undefined;
}

/** Artifactory renders sizes as display strings ("1.23 GB"). */
export function displaySize(bytes: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(2)} ${units[unit]}`;
}

function percentage(part: number, whole: number): string {
  return `${whole === 0 ? '0.00' : ((part / whole) * 100).toFixed(2)}%`;
}

/** `GET /api/storageinfo`: per-repository usage and the file store's space. */
export const storageInfoRoutes: FastifyPluginAsync<StorageInfoRoutesOptions> = async (app, options) => {
  app.get(
    '/api/storageinfo',
    { schema: { response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } } },
    async (request) => {
      app.accessControl.requireAdmin(request.principal);
      const repositories = await options.repositories.list();
      const rows = [];
      let files = 0;
      let folders = 0;
      let bytes = 0;
      const usages = [];
      for (const repo of repositories) {
        const usage = repo.rclass === 'local' || repo.rclass === 'federated' ? await options.artifacts.usage(repo.key) : { filesCount: 0, foldersCount: 0, usedBytes: 0 };
        usages.push({ repo, usage });
        files += usage.filesCount;
        folders += usage.foldersCount;
        bytes += usage.usedBytes;
      }
      for (const { repo, usage } of usages) {
        rows.push({
          repoKey: repo.key,
          repoType: repo.rclass.toUpperCase(),
          foldersCount: usage.foldersCount,
          filesCount: usage.filesCount,
          usedSpace: displaySize(usage.usedBytes),
          usedSpaceInBytes: usage.usedBytes,
          itemsCount: usage.filesCount + usage.foldersCount,
          packageType: repo.packageType,
          percentage: percentage(usage.usedBytes, bytes),
        });
      }
      rows.push({
        repoKey: 'TOTAL',
        repoType: 'NA',
        foldersCount: folders,
        filesCount: files,
        usedSpace: displaySize(bytes),
        usedSpaceInBytes: bytes,
        itemsCount: files + folders,
        packageType: 'NA',
        percentage: 'N/A',
      });
      const space = await options.storage?.statFs?.();
      return {
        binariesSummary: {
          // Artifacts, not deduplicated binaries: the blob store does not report its own totals yet.
          binariesCount: String(files),
          binariesSize: displaySize(bytes),
          artifactsSize: displaySize(bytes),
          optimization: '100.00%',
          itemsCount: String(files + folders),
          artifactsCount: String(files),
        },
        fileStoreSummary: {
          storageType: options.storage?.storageType ?? 'file-system',
          storageDirectory: options.storage?.storageDirectory ?? '',
          totalSpace: space === undefined ? 'unknown' : displaySize(space.totalBytes),
          usedSpace: space === undefined ? 'unknown' : `${displaySize(space.totalBytes - space.freeBytes)} (${percentage(space.totalBytes - space.freeBytes, space.totalBytes)})`,
          freeSpace: space === undefined ? 'unknown' : `${displaySize(space.freeBytes)} (${percentage(space.freeBytes, space.totalBytes)})`,
        },
        repositoriesSummaryList: rows,
      };
    },
  );
};
