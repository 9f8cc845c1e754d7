import type { RepositoryConfigView } from '@strata/core';
import type { EventStore, StoreDatabase } from '@strata/store';
import type { Kysely } from 'kysely';

export interface RepositoryStreamSeedSource {
  readonly db: Kysely<StoreDatabase>;
  readonly eventStore: Pick<EventStore, 'streamRevision'>;
  readonly repositories: { get(key: string): Promise<RepositoryConfigView | undefined> };
  readonly siteId: string;
}

/**
 * Where a repository stream's write state starts without reading the stream: its revision,
 * this site's last originSeq in it (gapless per origin, so the last one is the highest: a
 * backward scan of the (stream, revision) index that stops at the first match) and the
 * configuration from the projection. The configuration may already include events after
 * `revision`; folding them again changes nothing.
 */
export function sqlRepositoryStreamSeed(source: RepositoryStreamSeedSource) {
  return async (stream: string) => {
    const revision = await source.eventStore.streamRevision(stream);
    if (revision === undefined) return { revision: -1, originSeq: 0, config: undefined };
    const last = await source.db
      .selectFrom('events')
      .select('origin_seq')
      .where('stream', '=', stream)
      .where('origin', '=', source.siteId)
      .where('revision', '<=', revision)
      .orderBy('revision', 'desc')
      .limit(1)
      .executeTakeFirst();
    const view = await source.repositories.get(stream.slice('repo-'.length));
    return { revision, originSeq: last?.origin_seq ?? 0, config: view === undefined ? undefined : { ...view.config, key: view.key } };
  };
}
