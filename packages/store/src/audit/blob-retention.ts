import { sql, type Kysely } from 'kysely';
import { StrataError, type Clock } from '@strata/core';
import type { StoreDatabase } from '../schema.ts';

/** How long the binary of a deleted (or overwritten) artifact stays by default: 7 days. */
export const blobTrashPeriodMsDefault = 7 * 24 * 60 * 60 * 1000;

export interface BlobRetentionOptions {
  /** How long a binary no present artifact references stays (0: collected by the next GC). */
  readonly trashPeriodMs: number;
  readonly clock: Clock;
}

/**
 * Retention of binaries (issue 8): events are never deleted, and the binary of a deleted or
 * overwritten artifact stays for a trash period so that history downloads (`asOf`) work.
 * The period starts at the artifact's deletion (the physical time of its tombstone's HLC
 * stamp) or, for content that was overwritten, when blob GC first finds the binary
 * unreferenced (kept in `blob_trash`).
 */
export class SqlBlobRetention {
  readonly #db: Kysely<StoreDatabase>;
  readonly #trashPeriodMs: number;
  readonly #clock: Clock;

  constructor(db: Kysely<StoreDatabase>, options: BlobRetentionOptions) {
    if (!Number.isSafeInteger(options.trashPeriodMs) || options.trashPeriodMs < 0) {
      throw new StrataError('STRATA_ERR_INVARIANT', 'trashPeriodMs must be a non-negative integer');
    }
    this.#db = db;
    this.#trashPeriodMs = options.trashPeriodMs;
    this.#clock = options.clock;
  }

  get trashPeriodMs(): number {
    return this.#trashPeriodMs;
  }

  /**
   * Blob GC's question: must the blob stay? Yes while a present artifact references it (its
   * trash entry, if any, is dropped), or while it has been unreferenced for less than the
   * trash period.
   */
  async isRetained(sha256: string): Promise<boolean> {
    const now = this.#clock.now();
    const result = await sql<{ present: boolean; deleted_at: string | number | null }>`
      select exists(select 1 from artifacts where sha256 = ${sha256} and present) as present,
        (select max(tombstone_wall) from artifacts where sha256 = ${sha256} and not present) as deleted_at`.execute(this.#db);
    const row = result.rows[0]!;
    if (row.present) {
      await sql`delete from blob_trash where sha256 = ${sha256}`.execute(this.#db);
      return true;
    }
    const firstSeen = await sql<{ since: string | number }>`
      with added as (
        insert into blob_trash (sha256, since) values (${sha256}, ${now}) on conflict (sha256) do nothing returning since)
      select since from added union all select since from blob_trash where sha256 = ${sha256} limit 1`.execute(this.#db);
    const seen = Number(firstSeen.rows[0]?.since ?? now);
    // From the latest deletion of an artifact with this content; from the first sighting for
    // content that was overwritten (no deleted artifact holds it).
    const since = row.deleted_at === null ? seen : Number(row.deleted_at);
    return now - since < this.#trashPeriodMs;
  }

  /** The deleted artifacts whose content the blob was: where its collection is recorded. */
  async deletedReferences(sha256: string): Promise<{ repo: string; path: string }[]> {
    const result = await sql<{ repo: string; path: string }>`
      select repo, path from artifacts where sha256 = ${sha256} and not present order by repo, path limit 1000`.execute(this.#db);
    return result.rows.map((row) => ({ repo: row.repo, path: row.path }));
  }

  /** Forgets a collected blob's trash entry. */
  async forget(sha256: string): Promise<void> {
    await sql`delete from blob_trash where sha256 = ${sha256}`.execute(this.#db);
  }
}
