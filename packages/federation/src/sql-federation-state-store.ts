import { sql, type Kysely } from 'kysely';
import type { AppendWrites } from '@strata/store';
import type { FederationStateStore } from './ports.ts';
import { validateVersionVector } from './federation-messages.ts';
import type { VersionVector } from './version-vector.ts';

/** Most pending-binary removals written by one statement. */
const removalsPerStatementMax = 1000;

export interface PendingBinary {
  readonly sha256: string;
  readonly repoKey: string;
  /** The site whose deploy referenced it (asked first). */
  readonly origin: string;
}

/**
 * Federation's durable state in the store's SQL database (migration 003, PostgreSQL and
 * PGlite): outbox cursors (the FederationStateStore port), the site id behind each peer base
 * URL, and the binaries still to fetch. Each write is one statement, committed before it
 * resolves: a cursor saved survives kill -9.
 */
export class SqlFederationStateStore implements FederationStateStore {
  // The tables are federation's own, outside the store's typed schema.
  readonly #db: Kysely<any>;
  /** Pending-binary removals waiting for the statement in flight (see removePendingBinary). */
  readonly #removals: { readonly sha256: string; readonly resolve: () => void; readonly reject: (error: unknown) => void }[] = [];
  #removing = false;
  #removalStatements = 0;

  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async loadCursor(repoKey: string, peerId: string): Promise<VersionVector | undefined> {
    const result = await sql<{ vector: string }>`
      select vector from federation_cursors where repo_key = ${repoKey} and peer_id = ${peerId}`.execute(this.#db);
    const row = result.rows[0];
    // The column is ours; it is still validated, so a damaged row fails loudly, not silently.
    return row === undefined ? undefined : validateVersionVector(JSON.parse(row.vector), 'stored cursor', Number.MAX_SAFE_INTEGER);
  }

  async saveCursor(repoKey: string, peerId: string, cursor: VersionVector): Promise<void> {
    await sql`
      insert into federation_cursors (repo_key, peer_id, vector) values (${repoKey}, ${peerId}, ${JSON.stringify(cursor)})
      on conflict (repo_key, peer_id) do update set vector = excluded.vector`.execute(this.#db);
  }

  async loadPeers(): Promise<{ baseUrl: string; siteId: string }[]> {
    const result = await sql<{ base_url: string; site_id: string }>`select base_url, site_id from federation_peers order by base_url`.execute(this.#db);
    return result.rows.map((row) => ({ baseUrl: row.base_url, siteId: row.site_id }));
  }

  async savePeer(baseUrl: string, siteId: string): Promise<void> {
    await sql`
      insert into federation_peers (base_url, site_id) values (${baseUrl}, ${siteId})
      on conflict (base_url) do update set site_id = excluded.site_id`.execute(this.#db);
  }

  /**
   * Remembers the nonce of an accepted signed request until `expiresAtMs` (migration 006);
   * false when it was remembered already — a replay, even across a restart.
   */
  async rememberNonce(nonce: string, expiresAtMs: number): Promise<boolean> {
    const result = await sql<{ nonce: string }>`
      insert into federation_nonces (nonce, expires_at_ms) values (${nonce}, ${expiresAtMs})
      on conflict (nonce) do nothing returning nonce`.execute(this.#db);
    return result.rows.length === 1;
  }

  /**
   * The same record as `rememberNonce`, as a write of the append that applies the push
   * (`AppendOptions.writes`): it commits with the push's events, or not at all. Conflicts are
   * skipped, as in `rememberNonce` (federation.md, "Circle of trust", says when one can occur).
   */
  nonceWrites(nonce: string, expiresAtMs: number): AppendWrites {
    return {
      statements: () => [sql`insert into federation_nonces (nonce, expires_at_ms) values (${nonce}, ${expiresAtMs}) on conflict (nonce) do nothing`],
    };
  }

  /** Drops the nonces whose requests can no longer pass the timestamp window. */
  async forgetNoncesExpiredBy(nowMs: number): Promise<void> {
    await sql`delete from federation_nonces where expires_at_ms < ${nowMs}`.execute(this.#db);
  }

  async addPendingBinaries(pending: readonly PendingBinary[]): Promise<void> {
    if (pending.length === 0) return;
    await sql`
      insert into federation_pending_binaries (sha256, repo_key, origin)
      select * from unnest(${pending.map((p) => p.sha256)}::text[], ${pending.map((p) => p.repoKey)}::text[], ${pending.map((p) => p.origin)}::text[])
      on conflict (sha256, repo_key) do nothing`.execute(this.#db);
  }

  /**
   * Forgets a binary that arrived. Calls made while a removal is being written are written
   * together by the next statement: a receiver at 500 deploys/s used to clear each binary
   * with a commit of its own (two receivers: ~450 commits/s on the shared database, beside
   * the appends that replication lag waits for). Resolves once the row's delete committed; a
   * failed statement rejects every call it carried.
   */
  removePendingBinary(sha256: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#removals.push({ sha256, resolve, reject });
      if (!this.#removing) void this.#writeRemovals();
    });
  }

  /** Delete statements removePendingBinary has written so far (for tests and diagnostics). */
  get removalStatements(): number {
    return this.#removalStatements;
  }

  async #writeRemovals(): Promise<void> {
    this.#removing = true;
    try {
      while (this.#removals.length > 0) {
        const batch = this.#removals.splice(0, removalsPerStatementMax);
        try {
          const sha256s = [...new Set(batch.map((removal) => removal.sha256))];
          await sql`delete from federation_pending_binaries where sha256 = any(${sha256s}::text[])`.execute(this.#db);
          this.#removalStatements++;
          for (const removal of batch) removal.resolve();
        } catch (error) {
          for (const removal of batch) removal.reject(error);
        }
      }
    } finally {
      this.#removing = false;
    }
  }

  async loadPendingBinaries(limit: number): Promise<PendingBinary[]> {
    const result = await sql<{ sha256: string; repo_key: string; origin: string }>`
      select sha256, repo_key, origin from federation_pending_binaries order by sha256 limit ${limit}`.execute(this.#db);
    return result.rows.map((row) => ({ sha256: row.sha256, repoKey: row.repo_key, origin: row.origin }));
  }
}
