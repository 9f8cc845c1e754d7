import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { RecordedEvent, StreamEvent } from '@strata/core';
import type { InlineProjectionPlan, SqlProjection, StoreDatabase } from '@strata/store';

/**
 * Binaries to fetch, recorded in the same transaction as the events that name them: every
 * deploy another site made (`origin` ≠ this site) goes into `federation_pending_binaries`
 * (migration 003) as it is appended, so a kill -9 right after a received batch cannot lose the
 * fact that its binaries are still to be pulled. The puller removes a row once the binary is
 * stored here — at once when it already was (the same content deployed before, or a rebuild).
 */
export class PendingBinariesProjection implements SqlProjection {
  readonly name = 'federation-pending-binaries';
  readonly #siteId: string;

  constructor(siteId: string) {
    this.#siteId = siteId;
  }

  async apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[]): Promise<void> {
    for (const statement of this.#statements(events)) await statement.execute(db);
  }

  /** No lock, nothing to load: the insert travels with the append's commit. */
  planInline(events: readonly StreamEvent[]): InlineProjectionPlan | undefined {
    // Whether any row can come of the batch: the rows themselves only once, from the events inserted.
    if (!events.some((event) => this.#names(event))) return undefined;
    return { lockKeys: [], apply: (recorded) => this.#statements(recorded) };
  }

  /** Whether the event names a binary to fetch: a deploy another site made in a repository. */
  #names(event: StreamEvent): boolean {
    return event.type === 'ArtifactDeployed' && event.origin !== this.#siteId && event.stream.startsWith('repo-');
  }

  #statements(events: readonly StreamEvent[]): RawBuilder<unknown>[] {
    const sha256: string[] = [];
    const repoKeys: string[] = [];
    const origins: string[] = [];
    // One row per binary and repository: the first deploy of it in the batch names the origin
    // (as `on conflict do nothing` kept it), and the same content deployed again in the batch
    // is not sent to the database once more.
    const seen = new Set<string>();
    for (const event of events) {
      if (!this.#names(event) || event.type !== 'ArtifactDeployed') continue;
      const key = `${event.data.sha256} ${event.stream}`;
      if (seen.has(key)) continue;
      seen.add(key);
      sha256.push(event.data.sha256);
      repoKeys.push(event.stream.slice('repo-'.length));
      origins.push(event.origin);
    }
    if (sha256.length === 0) return [];
    return [
      sql`
      insert into federation_pending_binaries (sha256, repo_key, origin)
      select * from unnest(${sha256}::text[], ${repoKeys}::text[], ${origins}::text[])
      on conflict (sha256, repo_key) do nothing`,
    ];
  }

  async truncate(db: Kysely<StoreDatabase>): Promise<void> {
    await sql`delete from federation_pending_binaries`.execute(db);
  }
}
