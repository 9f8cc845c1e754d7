import { sql, type Kysely, type RawBuilder } from 'kysely';
import {
  REPOSITORY_CONFIG_EVENT_TYPES,
  RepositoryConfigModel,
  canonicalRepositorySnapshots,
  evolveRepositoryRegister,
  repositoryClassOf,
  repositoryConfigTarget,
  repositoryExists,
  repositoryKeyIdentity,
  repositorySnapshotOf,
  repositoryViewOf,
  type ConfigFieldRegister,
  type RecordedEvent,
  type RepositoryRegister,
  type RepositorySnapshot,
  type StreamEvent,
} from '@strata/core';
import type { InlineProjectionPlan, SqlProjection } from '../projection.ts';
import { executeStatement } from '../sql-text.ts';
import type { StoreDatabase } from '../schema.ts';
import type { ProjectionRebuild, RebuildableSqlProjection } from './rebuildable-projection.ts';
import { ChunkWriter } from './artifact-tree-projection.ts';
import {
  columnList,
  excludedAssignments,
  lockKeysStatement,
  stampFromColumns,
  toNumber,
  unnestRows,
  versionFromColumns,
  type UnnestColumn,
} from './sql-values.ts';

export const REPOSITORY_COLUMNS = [
  ['key', 'text'],
  ['key_identity', 'text'],
  ['exists', 'bool'],
  ['rclass', 'text'],
  ['config', 'jsonb'],
  ['fields', 'jsonb'],
  ['created_at', 'int8'],
  ['modified_at', 'int8'],
  ['created_wall', 'int8'],
  ['created_logical', 'int4'],
  ['created_origin', 'text'],
  ['created_id', 'text'],
  ['deleted_wall', 'int8'],
  ['deleted_logical', 'int4'],
  ['deleted_origin', 'text'],
] as const satisfies readonly UnnestColumn[];

type Row = Record<string, unknown>;
interface FieldJson {
  value?: unknown;
  wall: number;
  logical: number;
  origin: string;
  id: string;
}

export function repositoryRow(register: RepositoryRegister): unknown[] {
  const view = repositoryViewOf(register);
  const fields: Record<string, FieldJson> = {};
  for (const [field, { version, value }] of register.fields) {
    fields[field] = { value, wall: version.hlc.wall, logical: version.hlc.logical, origin: version.origin, id: version.id };
  }
  return [
    register.key,
    repositoryKeyIdentity(register.key),
    repositoryExists(register),
    view === undefined ? null : (repositoryClassOf(view) ?? null),
    JSON.stringify(view?.config ?? {}),
    JSON.stringify(fields),
    view?.createdAt ?? null,
    view?.lastModified ?? null,
    register.created?.hlc.wall ?? null,
    register.created?.hlc.logical ?? null,
    register.created?.origin ?? null,
    register.created?.id ?? null,
    register.deleted?.hlc.wall ?? null,
    register.deleted?.hlc.logical ?? null,
    register.deleted?.origin ?? null,
  ];
}

function parseJson<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

export function repositoryRegisterFromRow(row: Row): RepositoryRegister {
  const fields = new Map<string, ConfigFieldRegister>();
  const stored = parseJson<Record<string, FieldJson>>(row.fields);
  for (const field of Object.keys(stored)) {
    const entry = stored[field]!;
    fields.set(field, {
      version: { hlc: { wall: toNumber(entry.wall), logical: toNumber(entry.logical) }, origin: entry.origin, id: entry.id },
      value: entry.value,
    });
  }
  return {
    key: String(row.key),
    created: versionFromColumns(row.created_wall, row.created_logical, row.created_origin, row.created_id),
    deleted: stampFromColumns(row.deleted_wall, row.deleted_logical, row.deleted_origin),
    fields,
  };
}

/**
 * Repository configuration rows (per-field LWW registers in `fields`, the visible config in
 * `config`), maintained inside the append transaction: lock, load the touched keys, evolve
 * with core's `evolveRepositoryRegister`, upsert.
 */
export class RepositoryConfigProjection implements SqlProjection, RebuildableSqlProjection {
  readonly name = 'repository-config';
  readonly tables = ['repositories'] as const;
  readonly #lockRepositories: boolean;

  constructor(options: { lockRepositories?: boolean } = {}) {
    this.#lockRepositories = options.lockRepositories ?? true;
  }

  async apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[]): Promise<void> {
    const plan = this.#plan(events);
    if (plan === undefined) return;
    if (plan.lockKeys.length > 0) await lockKeysStatement(plan.lockKeys).execute(db);
    const loaded = await plan.load.execute(db);
    for (const statement of plan.apply(events, loaded.rows)) await executeStatement(statement, db);
  }

  planInline(events: readonly StreamEvent[]): InlineProjectionPlan | undefined {
    return this.#plan(events);
  }

  /** Lock and load the repositories `events` configure, evolve them, upsert the changed rows. */
  #plan(events: readonly StreamEvent[]): (InlineProjectionPlan & { readonly load: RawBuilder<{ kind: string; row: unknown }> }) | undefined {
    const keys = [...new Set(events.flatMap((event) => repositoryConfigTarget(event) ?? []))];
    if (keys.length === 0) return undefined;
    return {
      lockKeys: this.#lockRepositories ? keys.map((key) => `repo:${key}`) : [],
      load: sql<{ kind: string; row: unknown }>`select 'r' as kind, to_jsonb(r) as row from repositories r where key = any(${keys}::text[])`,
      apply: (recorded, loaded) => {
        const registers = new Map<string, { register: RepositoryRegister | undefined; loaded: RepositoryRegister | undefined }>();
        for (const { row } of loaded) {
          const register = repositoryRegisterFromRow(typeof row === 'string' ? (JSON.parse(row) as Row) : (row as Row));
          registers.set(register.key, { register, loaded: register });
        }
        for (const event of recorded) {
          const key = repositoryConfigTarget(event);
          if (key === undefined) continue;
          const entry = registers.get(key) ?? { register: undefined, loaded: undefined };
          entry.register = evolveRepositoryRegister(entry.register, event);
          registers.set(key, entry);
        }
        const rows: unknown[][] = [];
        for (const { register, loaded: before } of registers.values()) {
          if (register !== undefined && register !== before) rows.push(repositoryRow(register));
        }
        if (rows.length === 0) return [];
        return [
          sql`insert into repositories (${columnList(REPOSITORY_COLUMNS)}) ${unnestRows(REPOSITORY_COLUMNS, rows)}
            on conflict (key) do update set ${excludedAssignments(REPOSITORY_COLUMNS, ['key'])}`,
        ];
      },
    };
  }

  async truncate(db: Kysely<StoreDatabase>): Promise<void> {
    await sql`truncate repositories`.execute(db);
  }

  /** Its rebuild folds RepositoryConfigModel, which looks at these only. */
  readonly rebuildEventTypes = REPOSITORY_CONFIG_EVENT_TYPES;

  startRebuild(): ProjectionRebuild {
    const model = new RepositoryConfigModel();
    return {
      add(events: readonly RecordedEvent[]): void {
        for (const event of events) model.apply(event);
      },
      async write(db: Kysely<StoreDatabase>, onRows?: (rows: number) => void): Promise<number> {
        const writer = new ChunkWriter(db, 'repositories', REPOSITORY_COLUMNS, 1_000, onRows);
        for (const register of model.registers()) await writer.add(repositoryRow(register));
        return writer.finish();
      },
    };
  }
}

/** Reads the repositories table back as the canonical snapshot RepositoryConfigModel produces. */
export async function readRepositorySnapshot(db: Kysely<StoreDatabase>): Promise<RepositorySnapshot[]> {
  const rows = await sql<Row>`select * from repositories`.execute(db);
  return canonicalRepositorySnapshots(
    rows.rows.map((row) => ({ ...repositorySnapshotOf(repositoryRegisterFromRow(row)), exists: Boolean(row.exists) })),
  );
}
