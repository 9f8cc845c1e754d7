import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { StrataError } from '@strata/core';
import { validateDistributionStart } from './release-bundle-model.ts';
import type { DistributionStart } from './release-bundle-model.ts';

/**
 * Where an edge keeps its open distribution transactions, so that they outlive the process
 * (kill -9 mid-transfer): the source resumes them after the edge restarts.
 *
 * `open` → `committing` (one commit claimed it) → `committed` (kept until the TTL, so a
 * source whose commit answer was lost learns the outcome). An aborted or refused transaction
 * is deleted.
 */
export type TransactionStatus = 'open' | 'committing' | 'committed';

export interface StoredTransaction {
  readonly id: string;
  readonly start: DistributionStart;
  readonly openedAt: number;
  readonly status: TransactionStatus;
  /** Set once a transfer was refused: the transaction can only be aborted then. */
  readonly failure: string | undefined;
}

export interface DistributionTransactionStore {
  /** Stores a new open transaction; refuses (STRATA_ERR_BUNDLE_REPLAYED / _EXISTS) one whose distribution or bundle is already open. */
  insert(transaction: StoredTransaction): Promise<void>;
  get(id: string): Promise<StoredTransaction | undefined>;
  /** Transactions not yet committed (open or committing). */
  countUncommitted(): Promise<number>;
  /** Every transaction (open, committing, committed). */
  list(): Promise<readonly StoredTransaction[]>;
  setFailure(id: string, failure: string): Promise<void>;
  /** Moves `from` → `to`; false when the transaction is not (or no longer) in `from`. */
  transition(id: string, from: TransactionStatus, to: TransactionStatus): Promise<boolean>;
  /** False when there was no such transaction. */
  delete(id: string): Promise<boolean>;
  /** Deletes transactions opened before `openedBefore`; returns their ids. */
  deleteOpenedBefore(openedBefore: number): Promise<readonly string[]>;
}

function duplicate(start: DistributionStart, existing: StoredTransaction): StrataError {
  if (existing.start.envelope.distributionId === start.envelope.distributionId) {
    return new StrataError('STRATA_ERR_BUNDLE_REPLAYED', `distribution ${start.envelope.distributionId} is already in progress`);
  }
  return new StrataError('STRATA_ERR_BUNDLE_EXISTS', `release bundle '${start.envelope.name}/${start.envelope.version}' is being received by another transaction`);
}

function bundleKey(start: DistributionStart): string {
  return `${start.envelope.name}\u0000${start.envelope.version}`;
}

/** In memory (tests and single-process apps built without a database). */
export class MemoryDistributionTransactionStore implements DistributionTransactionStore {
  readonly #rows = new Map<string, StoredTransaction>();

  async insert(transaction: StoredTransaction): Promise<void> {
    for (const existing of this.#rows.values()) {
      if (existing.status === 'committed') continue;
      if (existing.start.envelope.distributionId === transaction.start.envelope.distributionId || bundleKey(existing.start) === bundleKey(transaction.start)) {
        throw duplicate(transaction.start, existing);
      }
    }
    this.#rows.set(transaction.id, transaction);
  }

  async get(id: string): Promise<StoredTransaction | undefined> {
    return this.#rows.get(id);
  }

  async countUncommitted(): Promise<number> {
    return [...this.#rows.values()].filter((row) => row.status !== 'committed').length;
  }

  async list(): Promise<readonly StoredTransaction[]> {
    return [...this.#rows.values()];
  }

  async setFailure(id: string, failure: string): Promise<void> {
    const row = this.#rows.get(id);
    if (row !== undefined && row.failure === undefined) this.#rows.set(id, { ...row, failure });
  }

  async transition(id: string, from: TransactionStatus, to: TransactionStatus): Promise<boolean> {
    const row = this.#rows.get(id);
    if (row?.status !== from) return false;
    this.#rows.set(id, { ...row, status: to });
    return true;
  }

  async delete(id: string): Promise<boolean> {
    return this.#rows.delete(id);
  }

  async deleteOpenedBefore(openedBefore: number): Promise<readonly string[]> {
    const ids = [...this.#rows.values()].filter((row) => row.openedAt < openedBefore).map((row) => row.id);
    for (const id of ids) this.#rows.delete(id);
    return ids;
  }
}

interface TransactionRow {
  id: string;
  start: string;
  opened_at: string | number;
  status: string;
  failure: string | null;
}

/**
 * The server's own table (not events: a transaction in progress is not part of the site's
 * history until it commits), created idempotently at start on PostgreSQL and PGlite alike,
 * as sql-download-stats.ts does. Partial unique indexes keep one uncommitted transaction per
 * distribution id and per bundle, across every server of the site.
 */
export class SqlDistributionTransactionStore implements DistributionTransactionStore {
  // The table is the server's own, outside the store's typed schema.
  readonly #db: Kysely<any>;

  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async ensureSchema(): Promise<void> {
    await sql`
      create table if not exists server_distribution_transactions (
        id text collate "C" primary key,
        distribution_id text collate "C" not null,
        bundle_name text collate "C" not null,
        bundle_version text collate "C" not null,
        start text not null,
        opened_at bigint not null,
        status text not null check (status in ('open', 'committing', 'committed')),
        failure text
      )`.execute(this.#db);
    await sql`
      create unique index if not exists server_distribution_transactions_distribution
        on server_distribution_transactions (distribution_id) where status <> 'committed'`.execute(this.#db);
    await sql`
      create unique index if not exists server_distribution_transactions_bundle
        on server_distribution_transactions (bundle_name, bundle_version) where status <> 'committed'`.execute(this.#db);
  }

  async insert(transaction: StoredTransaction): Promise<void> {
    const { start } = transaction;
    const inserted = await sql<{ id: string }>`
      insert into server_distribution_transactions (id, distribution_id, bundle_name, bundle_version, start, opened_at, status, failure)
      values (${transaction.id}, ${start.envelope.distributionId}, ${start.envelope.name}, ${start.envelope.version}, ${JSON.stringify(start)},
              ${transaction.openedAt}, ${transaction.status}, ${transaction.failure ?? null})
      on conflict do nothing
      returning id`.execute(this.#db);
    if (inserted.rows.length > 0) return;
    const existing = await sql<TransactionRow>`
      select id, start, opened_at, status, failure from server_distribution_transactions
      where status <> 'committed' and (distribution_id = ${start.envelope.distributionId} or (bundle_name = ${start.envelope.name} and bundle_version = ${start.envelope.version}))
      limit 1`.execute(this.#db);
    const row = existing.rows[0];
    if (row === undefined) throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `distribution transaction '${transaction.id}' already exists`);
    throw duplicate(start, decode(row));
  }

  async get(id: string): Promise<StoredTransaction | undefined> {
    const result = await sql<TransactionRow>`select id, start, opened_at, status, failure from server_distribution_transactions where id = ${id}`.execute(this.#db);
    const row = result.rows[0];
    return row === undefined ? undefined : decode(row);
  }

  async countUncommitted(): Promise<number> {
    const result = await sql<{ count: string | number }>`select count(*) as count from server_distribution_transactions where status <> 'committed'`.execute(this.#db);
    return Number(result.rows[0]?.count ?? 0);
  }

  async list(): Promise<readonly StoredTransaction[]> {
    const result = await sql<TransactionRow>`select id, start, opened_at, status, failure from server_distribution_transactions order by opened_at`.execute(this.#db);
    return result.rows.map(decode);
  }

  async setFailure(id: string, failure: string): Promise<void> {
    await sql`update server_distribution_transactions set failure = ${failure} where id = ${id} and failure is null`.execute(this.#db);
  }

  async transition(id: string, from: TransactionStatus, to: TransactionStatus): Promise<boolean> {
    const result = await sql<{ id: string }>`
      update server_distribution_transactions set status = ${to} where id = ${id} and status = ${from} returning id`.execute(this.#db);
    return result.rows.length > 0;
  }

  async delete(id: string): Promise<boolean> {
    const result = await sql<{ id: string }>`delete from server_distribution_transactions where id = ${id} returning id`.execute(this.#db);
    return result.rows.length > 0;
  }

  async deleteOpenedBefore(openedBefore: number): Promise<readonly string[]> {
    const result = await sql<{ id: string }>`delete from server_distribution_transactions where opened_at < ${openedBefore} returning id`.execute(this.#db);
    return result.rows.map((row) => row.id);
  }
}

function decode(row: TransactionRow): StoredTransaction {
  const status = row.status;
  if (status !== 'open' && status !== 'committing' && status !== 'committed') {
    throw new StrataError('STRATA_ERR_INVARIANT', `distribution transaction '${row.id}' has status '${status}'`);
  }
  return {
    id: row.id,
    // Validated when it arrived; validated again, as anything read back from storage.
    start: validateDistributionStart(JSON.parse(row.start) as unknown),
    openedAt: Number(row.opened_at),
    status,
    failure: row.failure ?? undefined,
  };
}
