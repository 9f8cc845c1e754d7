import type { BlobStore, SqlBlobRetention } from '@strata/store';

export interface BlobCollectionDeps {
  readonly blobStore: Pick<BlobStore, 'collectGarbage'>;
  readonly retention: Pick<SqlBlobRetention, 'isRetained' | 'deletedReferences' | 'forget'>;
  /** Other holders of blobs (release bundles…): a blob they reference stays whatever its artifacts. */
  readonly isReferencedElsewhere?: (sha256: string) => Promise<boolean>;
  /** Appends ArtifactBinaryCollected to the repository's stream (the history says so). */
  readonly recordCollected: (repo: string, path: string, sha256: string) => Promise<void>;
  /** Blob age (mtime) below which nothing is collected; default the blob store's. */
  readonly gracePeriodMs?: number;
  readonly signal?: AbortSignal;
}

export interface BlobCollectionResult {
  readonly removed: readonly string[];
  readonly failed: readonly { sha256: string; error: unknown }[];
}

/**
 * One blob garbage collection with retention (issue 8): a blob no present artifact
 * references stays for the trash period; when it goes, each deleted artifact that held it
 * gets an ArtifactBinaryCollected event first, so its history says when its binary left.
 */
export async function collectBlobGarbage(deps: BlobCollectionDeps): Promise<BlobCollectionResult> {
  const result = await deps.blobStore.collectGarbage({
    isReferenced: async (sha256) => (await deps.isReferencedElsewhere?.(sha256)) === true || deps.retention.isRetained(sha256),
    onCollect: async (sha256) => {
      for (const { repo, path } of await deps.retention.deletedReferences(sha256)) await deps.recordCollected(repo, path, sha256);
    },
    ...(deps.gracePeriodMs === undefined ? {} : { gracePeriodMs: deps.gracePeriodMs }),
    ...(deps.signal === undefined ? {} : { signal: deps.signal }),
  });
  for (const sha256 of result.removed) await deps.retention.forget(sha256);
  return { removed: result.removed, failed: result.failed ?? [] };
}
