import { sql, type Kysely, type RawBuilder } from 'kysely';
import {
  ArtifactDeployedDataReader,
  ArtifactTreeFold,
  ArtifactTreePaths,
  type ArtifactTreeRowOrder,
  artifactTreeTarget,
  canonicalArtifactTreeSnapshot,
  effectiveTombstone,
  evolveArtifactTree,
  fileSnapshotOf,
  fileView,
  normalizePropertyRegister,
  propertySnapshotOf,
  stampJson,
  type ArtifactTreeEntries,
  type ArtifactTreeSnapshot,
  type ArtifactTreeState,
  type DeployRecord,
  type EventStamp,
  type FileRegister,
  type FirstDeploy,
  type PropertyRegister,
  type EventType,
  type RecordedEvent,
  type StreamEvent,
  repositoryStream,
  StrataError,
} from '@strata/core';
import type { InlineProjectionPlan, ProjectionBulkWrites, ProjectionCopy, ProjectionStatement, SqlProjection } from '../projection.ts';
import { executeStatement, joinText, rawText, sqlText, type SqlText } from '../sql-text.ts';
import type { StoreDatabase } from '../schema.ts';
import type { BinaryCopySource, BinaryCopyWriter } from './binary-copy.ts';
import type { CopyRows } from './bulk-copy.ts';
import type { ProjectionRebuild, ProjectionWriteOptions, RebuildableSqlProjection, ShadowTableWriter } from './rebuildable-projection.ts';
import {
  columnList,
  columnListText,
  excludedAssignments,
  excludedAssignmentsText,
  lockKeysStatement,
  stampFromColumns,
  toNullableNumber,
  toNumber,
  unnestRows,
  unnestRowsText,
  versionFromColumns,
  type UnnestColumn,
} from './sql-values.ts';

export const ARTIFACT_COLUMNS = [
  ['repo', 'text'],
  ['path', 'text'],
  ['parent', 'text'],
  ['name', 'text'],
  ['present', 'bool'],
  ['sha256', 'text'],
  ['sha1', 'text'],
  ['md5', 'text'],
  ['size', 'int8'],
  ['mime_type', 'text'],
  ['remote_url', 'text'],
  ['created_at', 'int8'],
  ['created_by', 'text'],
  ['modified_at', 'int8'],
  ['modified_by', 'text'],
  ['content_wall', 'int8'],
  ['content_logical', 'int4'],
  ['content_origin', 'text'],
  ['content_id', 'text'],
  ['first_wall', 'int8'],
  ['first_logical', 'int4'],
  ['first_origin', 'text'],
  ['first_id', 'text'],
  ['first_actor', 'text'],
  ['tombstone_wall', 'int8'],
  ['tombstone_logical', 'int4'],
  ['tombstone_origin', 'text'],
] as const satisfies readonly UnnestColumn[];

export const FOLDER_TOMBSTONE_COLUMNS = [
  ['repo', 'text'],
  ['prefix', 'text'],
  ['wall', 'int8'],
  ['logical', 'int4'],
  ['origin', 'text'],
] as const satisfies readonly UnnestColumn[];

export const PROPERTY_COLUMNS = [
  ['repo', 'text'],
  ['path', 'text'],
  ['key', 'text'],
  ['removed', 'bool'],
  ['wall', 'int8'],
  ['logical', 'int4'],
  ['origin', 'text'],
  ['event_id', 'text'],
  ['values', 'jsonb'],
] as const satisfies readonly UnnestColumn[];

/** The artifacts row of a register whose effective tombstone is `tombstone`. */
export function artifactRow(repo: string, path: string, register: FileRegister, tombstone: EventStamp | null): unknown[] {
  const view = fileView(register, tombstone);
  const content = register.content;
  const first = register.first;
  return [
    repo,
    path,
    ArtifactTreePaths.parent(path),
    ArtifactTreePaths.name(path),
    view.present,
    content?.sha256 ?? null,
    content?.sha1 ?? null,
    content?.md5 ?? null,
    content?.size ?? null,
    content?.mimeType ?? null,
    content?.remoteUrl ?? null,
    view.created?.version.hlc.wall ?? null,
    view.created?.actor ?? null,
    content?.version.hlc.wall ?? null,
    content?.actor ?? null,
    content?.version.hlc.wall ?? null,
    content?.version.hlc.logical ?? null,
    content?.version.origin ?? null,
    content?.version.id ?? null,
    first?.version.hlc.wall ?? null,
    first?.version.hlc.logical ?? null,
    first?.version.origin ?? null,
    first?.version.id ?? null,
    first?.actor ?? null,
    tombstone?.hlc.wall ?? null,
    tombstone?.hlc.logical ?? null,
    tombstone?.origin ?? null,
  ];
}

export function folderTombstoneRow(repo: string, prefix: string, stamp: EventStamp): unknown[] {
  return [repo, prefix, stamp.hlc.wall, stamp.hlc.logical, stamp.origin];
}

export function propertyRow(repo: string, path: string, key: string, register: PropertyRegister): unknown[] {
  return register.kind === 'value'
    ? [repo, path, key, false, register.version.hlc.wall, register.version.hlc.logical, register.version.origin, register.version.id, JSON.stringify(register.values)]
    : [repo, path, key, true, register.stamp.hlc.wall, register.stamp.hlc.logical, register.stamp.origin, null, '[]'];
}

type Row = Record<string, unknown>;

export function fileRegisterFromRow(row: Row): FileRegister {
  const contentVersion = versionFromColumns(row.content_wall, row.content_logical, row.content_origin, row.content_id);
  const content: DeployRecord | null =
    contentVersion === null
      ? null
      : {
          version: contentVersion,
          sha256: String(row.sha256),
          sha1: String(row.sha1),
          md5: String(row.md5),
          size: toNumber(row.size),
          mimeType: String(row.mime_type),
          remoteUrl: (row.remote_url as string | null) ?? null,
          actor: (row.modified_by as string | null) ?? null,
        };
  const firstVersion = versionFromColumns(row.first_wall, row.first_logical, row.first_origin, row.first_id);
  const first: FirstDeploy | null = firstVersion === null ? null : { version: firstVersion, actor: (row.first_actor as string | null) ?? null };
  return { content, first, tombstone: stampFromColumns(row.tombstone_wall, row.tombstone_logical, row.tombstone_origin) };
}

export function propertyRegisterFromRow(row: Row): PropertyRegister {
  const stamp = stampFromColumns(row.wall, row.logical, row.origin)!;
  if (row.removed) return { kind: 'removed', stamp };
  const values = typeof row.values === 'string' ? (JSON.parse(row.values) as string[]) : (row.values as string[]);
  return { kind: 'value', version: { ...stamp, id: String(row.event_id) }, values };
}

const SEPARATOR = '\u0000';

/**
 * The registers one batch touches, loaded from the tables, evolved in memory by core's
 * `evolveArtifactTree`, and written back. Folder tombstones are loaded for every prefix
 * covering a touched path, so `effectiveTombstone` sees all that apply.
 */
class TreeBatch implements ArtifactTreeState {
  readonly files = new Map<string, { repo: string; path: string; register: FileRegister; loaded: FileRegister | undefined }>();
  readonly properties = new Map<
    string,
    { repo: string; path: string; key: string; register: PropertyRegister | undefined; loaded: PropertyRegister | undefined }
  >();
  readonly folderTombstones = new Map<string, { repo: string; prefix: string; stamp: EventStamp; loaded: EventStamp | undefined }>();

  getFile(repo: string, path: string): FileRegister | undefined {
    return this.files.get(repo + SEPARATOR + path)?.register;
  }
  setFile(repo: string, path: string, register: FileRegister): void {
    const id = repo + SEPARATOR + path;
    const entry = this.files.get(id);
    if (entry === undefined) this.files.set(id, { repo, path, register, loaded: undefined });
    else entry.register = register;
  }
  getProperty(repo: string, path: string, key: string): PropertyRegister | undefined {
    return this.properties.get(repo + SEPARATOR + path + SEPARATOR + key)?.register;
  }
  setProperty(repo: string, path: string, key: string, register: PropertyRegister | undefined): void {
    const id = repo + SEPARATOR + path + SEPARATOR + key;
    const entry = this.properties.get(id);
    if (entry === undefined) this.properties.set(id, { repo, path, key, register, loaded: undefined });
    else entry.register = register;
  }
  getFolderTombstone(repo: string, prefix: string): EventStamp | undefined {
    return this.folderTombstones.get(repo + SEPARATOR + prefix)?.stamp;
  }
  setFolderTombstone(repo: string, prefix: string, stamp: EventStamp): void {
    const id = repo + SEPARATOR + prefix;
    const entry = this.folderTombstones.get(id);
    if (entry === undefined) this.folderTombstones.set(id, { repo, prefix, stamp, loaded: undefined });
    else entry.stamp = stamp;
  }

  loadRow(kind: string, row: Row): void {
    const repo = String(row.repo);
    if (kind === 'a') {
      const path = String(row.path);
      const register = fileRegisterFromRow(row);
      this.files.set(repo + SEPARATOR + path, { repo, path, register, loaded: register });
    } else if (kind === 'p') {
      const path = String(row.path);
      const key = String(row.key);
      const register = propertyRegisterFromRow(row);
      this.properties.set(repo + SEPARATOR + path + SEPARATOR + key, { repo, path, key, register, loaded: register });
    } else {
      const prefix = String(row.prefix);
      const stamp = stampFromColumns(row.wall, row.logical, row.origin)!;
      this.folderTombstones.set(repo + SEPARATOR + prefix, { repo, prefix, stamp, loaded: stamp });
    }
  }
}

export interface ArtifactTreeProjectionOptions {
  /**
   * Take a transaction-scoped advisory lock per repository before loading rows, so that two
   * transactions never evolve the same rows from the same stale read. Default true. The SQL
   * event store also serialises appends per stream; the lock covers catch-up and rebuild.
   */
  readonly lockRepositories?: boolean;
  /** Rows per INSERT during a rebuild. */
  readonly rebuildChunkRowsMax?: number;
}

/**
 * The artifact tree (content, folder tombstones, properties) as SQL rows, maintained inside
 * the append transaction. Per batch: one advisory-lock statement, one load of every row the
 * batch touches, one multi-row upsert per table that changed, and for each folder delete one
 * stamp-guarded UPDATE (plus a DELETE of the properties it hides) for rows not loaded.
 */
export class ArtifactTreeProjection implements SqlProjection, RebuildableSqlProjection {
  readonly name = 'artifact-tree';
  readonly tables = ['artifacts', 'folder_tombstones', 'artifact_properties'] as const;
  readonly #lockRepositories: boolean;
  readonly #rebuildChunkRowsMax: number;

  constructor(options: ArtifactTreeProjectionOptions = {}) {
    this.#lockRepositories = options.lockRepositories ?? true;
    this.#rebuildChunkRowsMax = options.rebuildChunkRowsMax ?? 10_000;
  }

  async apply(db: Kysely<StoreDatabase>, events: readonly RecordedEvent[]): Promise<void> {
    const plan = this.#plan(events);
    if (plan === undefined) return;
    if (this.#lockRepositories) await lockKeysStatement(plan.lockKeys).execute(db);
    const loaded = await executeStatement<{ kind: string; row: unknown }, StoreDatabase>(plan.load, db);
    for (const statement of plan.apply(events, loaded)) await executeStatement(statement, db);
  }

  planInline(events: readonly StreamEvent[]): InlineProjectionPlan | undefined {
    const plan = this.#plan(events);
    return plan === undefined || this.#lockRepositories ? plan : { ...plan, lockKeys: [] };
  }

  /** The lock keys and the load of every row `events` touch, and the apply that evolves them. */
  #plan(events: readonly StreamEvent[]): (InlineProjectionPlan & { readonly load: SqlText }) | undefined {
    // Per repository: the paths touched, and the prefixes whose folder tombstones cover them.
    // A path's covering prefixes are its folder's and the path itself, so a folder already
    // expanded adds only the path (a catch-up page of 5,000 deploys into a few hundred
    // folders: this loop, with a key string and a pair per prefix, was a twentieth of the
    // receiver's busy time).
    const touched = new Map<string, { paths: Set<string>; prefixes: Set<string>; folders: Set<string> }>();
    for (const event of events) {
      const target = artifactTreeTarget(event);
      if (target === undefined) continue;
      let repo = touched.get(target.repo);
      if (repo === undefined) touched.set(target.repo, (repo = { paths: new Set(), prefixes: new Set(), folders: new Set() }));
      const path = target.path;
      if (path !== undefined) {
        repo.paths.add(path);
        const folder = ArtifactTreePaths.parent(path);
        if (path === '' || !repo.folders.has(folder)) {
          for (const prefix of ArtifactTreePaths.coveringPrefixes(path)) repo.prefixes.add(prefix);
          if (path !== '') repo.folders.add(folder);
        } else {
          repo.prefixes.add(path);
        }
      }
      if (target.prefix !== undefined) repo.prefixes.add(target.prefix);
    }
    if (touched.size === 0) return undefined;
    const pathRepos: string[] = [];
    const pathNames: string[] = [];
    const prefixRepos: string[] = [];
    const prefixNames: string[] = [];
    for (const [repo, { paths, prefixes }] of touched) {
      for (const path of paths) {
        pathRepos.push(repo);
        pathNames.push(path);
      }
      for (const prefix of prefixes) {
        prefixRepos.push(repo);
        prefixNames.push(prefix);
      }
    }
    // The touched rows by their primary keys, one index probe per path (`offset 0` keeps
    // each lateral subquery a parameterised index scan): a semi-join would let the planner
    // pick a sequential scan while its statistics think the table small, at a cost that
    // grows with the table. Folder tombstones too: the statement is prepared once hot, and a
    // generic plan made while the table was empty (a semi-join over a sequential scan) would
    // read every tombstone on every batch once a site has deleted many folders.
    const load = sqlText`
      with touched as (select * from unnest(${pathRepos}::text[], ${pathNames}::text[]) as t(repo, path)),
           covering as (select * from unnest(${prefixRepos}::text[], ${prefixNames}::text[]) as t(repo, prefix))
      select 'a' as kind, to_jsonb(a) as row
        from touched t cross join lateral (select * from artifacts a where a.repo = t.repo and a.path = t.path offset 0) as a
      union all
      select 'p', to_jsonb(p)
        from touched t cross join lateral (select * from artifact_properties p where p.repo = t.repo and p.path = t.path offset 0) as p
      union all
      select 'f', to_jsonb(f)
        from covering c cross join lateral (select * from folder_tombstones f where f.repo = c.repo and f.prefix = c.prefix offset 0) as f
    `;
    return {
      lockKeys: [...touched.keys()].map((repo) => `repo:${repo}`),
      load,
      apply: (recorded, loaded) => {
        const batch = evolvedBatch(recorded, loaded);
        return batch === undefined ? [] : writeBackStatements(writeBack(batch), this.#lockRepositories);
      },
      applyBulk: (recorded, loaded) => {
        const batch = evolvedBatch(recorded, loaded);
        return batch === undefined ? { copies: [], statements: [] } : writeBackBulk(writeBack(batch), this.#lockRepositories);
      },
    };
  }

  async truncate(db: Kysely<StoreDatabase>): Promise<void> {
    await sql`truncate artifacts, folder_tombstones, artifact_properties`.execute(db);
  }

  /**
   * A repository's rows come from its own stream's events: the only event that names another
   * repository, RepositoryDeleted, is refused by the store in any other stream than its own
   * (append-preparation.ts); one found there anyway sends a rebuild back to one fold.
   */
  readonly rebuildByStream = {
    crosses: (event: RecordedEvent): boolean => event.type === 'RepositoryDeleted' && event.stream !== repositoryStream(event.data.key),
  };

  startRebuild(): ProjectionRebuild {
    // The compact fold (core's artifact-tree-fold.ts): same rules as ArtifactTreeModel, a
    // fraction of its objects for the garbage collector to walk.
    const model = new ArtifactTreeFold();
    const chunkRowsMax = this.#rebuildChunkRowsMax;
    // The bulk scan's ArtifactDeployed, ArtifactDeleted and PropertiesSet rows straight from
    // their msgpack bytes (no event object, no string for the path, checksums or mime type);
    // any other shape is decoded.
    const data = new ArtifactDeployedDataReader();
    /** The type of the row whose data was read last. */
    let read: EventType = 'ArtifactDeployed';
    return {
      add(events: readonly RecordedEvent[]): void {
        for (const event of events) model.apply(event);
      },
      rowSink: {
        types: ['ArtifactDeployed', 'ArtifactDeleted', 'PropertiesSet'],
        readData: (type, bytes, start, end) => {
          read = type;
          if (type === 'ArtifactDeployed') return data.read(bytes, start, end);
          if (type === 'ArtifactDeleted') return data.readDeleted(bytes, start, end);
          return type === 'PropertiesSet' && data.readPropertiesSet(bytes, start, end);
        },
        take: (stream, id, origin, wall, logical, meta) => {
          if (read === 'ArtifactDeployed') model.applyDeployedData(stream, id, origin, wall, logical, meta.actor, data);
          else if (read === 'ArtifactDeleted') model.applyDeletedData(stream, origin, wall, logical, data);
          else model.applyPropertiesSetData(stream, id, origin, wall, logical, data);
        },
      },
      async write(db: Kysely<StoreDatabase>, onRows?: (rows: number) => void, copy?: CopyRows, options: ProjectionWriteOptions = {}): Promise<number> {
        if (copy?.binary === undefined) return writeArtifactTreeModel(db, model, chunkRowsMax, onRows, copy);
        // Binary COPY straight from the fold's columns; in any order when the tables get
        // their indexes afterwards (no sort of 780,000 paths here, none per row there).
        const order: ArtifactTreeRowOrder = options.unindexed === true ? 'any' : 'key';
        let rows = 0;
        for (const source of [artifactCopySource(model, order), folderTombstoneCopySource(model), propertyCopySource(model, order)]) {
          const written = await copy.binary(source);
          onRows?.(written);
          rows += written;
        }
        return rows;
      },
      async writeTables(writeTable: ShadowTableWriter, onRows?: (rows: number) => void): Promise<number> {
        // Each table committed before the next is encoded: the artifacts' index builds (the
        // longest) start while the tombstones and properties are written.
        let rows = 0;
        for (const source of [() => artifactCopySource(model, 'any'), () => folderTombstoneCopySource(model), () => propertyCopySource(model, 'any')]) {
          const written = await writeTableByBinaryCopy(writeTable, source);
          onRows?.(written);
          rows += written;
        }
        return rows;
      },
    };
  }
}

/** One table's rows by binary COPY in a transaction of its own (ProjectionRebuild.writeTables). */
function writeTableByBinaryCopy(writeTable: ShadowTableWriter, source: () => BinaryCopySource): Promise<number> {
  const opened = source();
  return writeTable(opened.table, async (_tx, copy) => {
    if (copy.binary === undefined) throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', 'a rebuild table by table writes with binary COPY');
    return copy.binary(opened);
  });
}

/** The artifacts rows of a fold, written column by column from its file cursor (same values as artifactRow). */
export function artifactCopySource(fold: ArtifactTreeFold, order: ArtifactTreeRowOrder): BinaryCopySource {
  const row = fold.fileRows(order);
  return {
    table: 'artifacts',
    columns: ARTIFACT_COLUMNS,
    writeRow(out: BinaryCopyWriter): boolean {
      if (!row.next()) return false;
      out.row(ARTIFACT_COLUMNS.length);
      out.text(row.repo);
      // path, parent, name
      if (row.pathLength >= 0) out.utf8AndParts(row.pathBytes, row.pathStart, row.pathLength);
      else out.textAndParts(row.path, row.path.lastIndexOf('/'));
      out.bool(row.present);
      if (row.hasContent) {
        const odd = row.oddChecksums;
        if (odd === undefined) {
          const index = row.checksumIndex;
          out.hex(row.checksumBytes.sha256, index * 32, 32);
          out.hex(row.checksumBytes.sha1, index * 20, 20);
          out.hex(row.checksumBytes.md5, index * 16, 16);
        } else {
          out.text(odd.sha256);
          out.text(odd.sha1);
          out.text(odd.md5);
        }
        out.int8(row.size);
        out.text(row.mimeType);
        nullableText(out, row.remoteUrl);
        if (row.present) {
          out.int8(row.createdAt);
          nullableText(out, row.createdBy);
        } else {
          out.null();
          out.null();
        }
        out.int8(row.contentWall); // modified_at
        nullableText(out, row.contentActor); // modified_by
        out.int8(row.contentWall);
        out.int4(row.contentLogical);
        out.text(row.contentOrigin);
        if (row.contentIdLength >= 0) out.utf8(row.idBytes, row.contentIdStart, row.contentIdLength);
        else out.text(row.contentId);
        out.int8(row.firstWall);
        out.int4(row.firstLogical);
        out.text(row.firstOrigin);
        if (row.firstIdLength >= 0) out.utf8(row.idBytes, row.firstIdStart, row.firstIdLength);
        else out.text(row.firstId);
        nullableText(out, row.firstActor);
      } else {
        // sha256 … modified_by, content_*, first_*: 19 columns without a deploy.
        for (let column = 0; column < 19; column++) out.null();
      }
      if (row.hasTombstone) {
        out.int8(row.tombstoneWall);
        out.int4(row.tombstoneLogical);
        out.text(row.tombstoneOrigin);
      } else {
        out.null();
        out.null();
        out.null();
      }
      out.endRow();
      return true;
    },
  };
}

export function folderTombstoneCopySource(fold: ArtifactTreeFold): BinaryCopySource {
  const rows = (function* () {
    for (const repo of fold.repositories()) for (const { prefix, stamp } of fold.sortedEntries(repo).folderTombstones) yield { repo, prefix, stamp };
  })();
  return {
    table: 'folder_tombstones',
    columns: FOLDER_TOMBSTONE_COLUMNS,
    writeRow(out: BinaryCopyWriter): boolean {
      const next = rows.next();
      if (next.done === true) return false;
      const { repo, prefix, stamp } = next.value;
      out.row(FOLDER_TOMBSTONE_COLUMNS.length);
      out.text(repo);
      out.text(prefix);
      out.int8(stamp.hlc.wall);
      out.int4(stamp.hlc.logical);
      out.text(stamp.origin);
      out.endRow();
      return true;
    },
  };
}

/** The artifact_properties rows of a fold, from its property cursor (same values as propertyRow). */
export function propertyCopySource(fold: ArtifactTreeFold, order: ArtifactTreeRowOrder): BinaryCopySource {
  const row = fold.propertyRows(order);
  return {
    table: 'artifact_properties',
    columns: PROPERTY_COLUMNS,
    writeRow(out: BinaryCopyWriter): boolean {
      if (!row.next()) return false;
      out.row(PROPERTY_COLUMNS.length);
      out.text(row.repo);
      if (row.pathLength >= 0) out.utf8(row.pathBytes, row.pathStart, row.pathLength);
      else out.text(row.path);
      out.text(row.key);
      out.bool(row.removed);
      out.int8(row.wall);
      out.int4(row.logical);
      out.text(row.origin);
      if (row.removed) out.null();
      else if (row.idLength >= 0) out.utf8(row.idBytes, row.idStart, row.idLength);
      else nullableText(out, row.id);
      out.jsonb(row.removed ? '[]' : JSON.stringify(row.values));
      out.endRow();
      return true;
    },
  };
}

function nullableText(out: BinaryCopyWriter, value: string | null): void {
  if (value === null) out.null();
  else out.text(value);
}

/** The batch's registers after `recorded`, from the rows `loaded`; undefined when nothing changed. */
function evolvedBatch(recorded: readonly StreamEvent[], loaded: readonly { kind: string; row: unknown }[]): TreeBatch | undefined {
  const batch = new TreeBatch();
  for (const { kind, row } of loaded) batch.loadRow(kind, typeof row === 'string' ? (JSON.parse(row) as Row) : (row as Row));
  let changed = false;
  for (const event of recorded) changed = evolveArtifactTree(batch, event) || changed;
  return changed ? batch : undefined;
}

/** The rows a batch writes back (and deletes), and the folder tombstones it raised. */
interface TreeWriteBack {
  readonly fileRows: unknown[][];
  readonly propertyRows: unknown[][];
  readonly propertyDeletes: [string, string, string][];
  readonly folderRows: unknown[][];
  readonly grownFolders: { repo: string; prefix: string; stamp: EventStamp }[];
  /**
   * Per table: none of its rows written had been loaded. The load reads every row a batch
   * touches (under the repositories' locks), so a row it did not return does not exist, and
   * such rows go in by a plain INSERT instead of an upsert (no speculative insertion, no
   * `on conflict` arbiter). Should a row exist after all, the insert breaks the key, and the
   * batch is retried (23505) the usual way, which loads it.
   */
  readonly fresh: { readonly files: boolean; readonly properties: boolean; readonly folders: boolean };
}

function writeBack(batch: TreeBatch): TreeWriteBack {
  const fileRows: unknown[][] = [];
  let freshFiles = true;
  for (const { repo, path, register, loaded } of batch.files.values()) {
    const tombstone = effectiveTombstone(batch, repo, path);
    // A loaded row whose tombstone only grew through a folder delete of this batch is
    // left to the guarded UPDATE below.
    if (register !== loaded) {
      fileRows.push(artifactRow(repo, path, register, tombstone));
      if (loaded !== undefined) freshFiles = false;
    }
  }
  const propertyRows: unknown[][] = [];
  const propertyDeletes: [string, string, string][] = [];
  let freshProperties = true;
  for (const entry of batch.properties.values()) {
    const normalized = normalizePropertyRegister(entry.register, effectiveTombstone(batch, entry.repo, entry.path));
    if (normalized === entry.loaded) continue;
    if (normalized === undefined) propertyDeletes.push([entry.repo, entry.path, entry.key]);
    else {
      propertyRows.push(propertyRow(entry.repo, entry.path, entry.key, normalized));
      if (entry.loaded !== undefined) freshProperties = false;
    }
  }
  const folderRows: unknown[][] = [];
  const grownFolders: { repo: string; prefix: string; stamp: EventStamp }[] = [];
  let freshFolders = true;
  for (const { repo, prefix, stamp, loaded } of batch.folderTombstones.values()) {
    if (stamp === loaded) continue;
    folderRows.push(folderTombstoneRow(repo, prefix, stamp));
    grownFolders.push({ repo, prefix, stamp });
    if (loaded !== undefined) freshFolders = false;
  }
  return { fileRows, propertyRows, propertyDeletes, folderRows, grownFolders, fresh: { files: freshFiles, properties: freshProperties, folders: freshFolders } };
}

/**
 * The statements that write a batch's evolved registers back: one upsert per table that
 * changed (data-modifying CTEs of one statement; a plain insert for a table none of whose
 * rows was loaded, when `plainInserts`: TreeWriteBack.fresh), then per grown folder
 * tombstone the stamp-guarded UPDATE of rows not loaded.
 */
function writeBackStatements({ fileRows, propertyRows, propertyDeletes, folderRows, grownFolders, fresh }: TreeWriteBack, plainInserts: boolean): ProjectionStatement[] {
  // One statement for every table that changed: data-modifying CTEs on distinct tables.
  // Text without Kysely's nodes (sql-text.ts): this runs for every append batch.
  const parts: SqlText[] = [];
  const upsert = (fresh: boolean, assignments: string) => (plainInserts && fresh ? rawText('') : rawText(assignments));
  if (fileRows.length > 0) parts.push(sqlText`w_artifacts as (insert into artifacts (${rawText(ARTIFACT_UPSERT.columns)}) ${unnestRowsText(ARTIFACT_COLUMNS, fileRows)}
      ${upsert(fresh.files, ARTIFACT_UPSERT.onConflict)} returning 1)`);
  if (propertyRows.length > 0) parts.push(sqlText`w_properties as (insert into artifact_properties (${rawText(PROPERTY_UPSERT.columns)}) ${unnestRowsText(PROPERTY_COLUMNS, propertyRows)}
      ${upsert(fresh.properties, PROPERTY_UPSERT.onConflict)} returning 1)`);
  if (propertyDeletes.length > 0) {
    parts.push(sqlText`d_properties as (delete from artifact_properties where (repo, path, key) in (
      select * from unnest(${propertyDeletes.map((d) => d[0])}::text[], ${propertyDeletes.map((d) => d[1])}::text[], ${propertyDeletes.map((d) => d[2])}::text[])) returning 1)`);
  }
  if (folderRows.length > 0) parts.push(sqlText`w_folders as (insert into folder_tombstones (${rawText(FOLDER_UPSERT.columns)}) ${unnestRowsText(FOLDER_TOMBSTONE_COLUMNS, folderRows)}
      ${upsert(fresh.folders, FOLDER_UPSERT.onConflict)} returning 1)`);
  return [
    ...(parts.length > 0 ? [sqlText`with ${joinText(parts)} select 1`] : []),
    ...grownFolders.map((folder) => folderTombstoneStatement(folder.repo, folder.prefix, folder.stamp)),
  ];
}

/** The column list and the `on conflict` assignments of each write-back upsert, as text. */
const ARTIFACT_UPSERT = {
  columns: columnListText(ARTIFACT_COLUMNS),
  onConflict: `on conflict (repo, path) do update set ${excludedAssignmentsText(ARTIFACT_COLUMNS, ['repo', 'path'])}`,
};
const PROPERTY_UPSERT = {
  columns: columnListText(PROPERTY_COLUMNS),
  onConflict: `on conflict (repo, path, key) do update set ${excludedAssignmentsText(PROPERTY_COLUMNS, ['repo', 'path', 'key'])}`,
};
const FOLDER_UPSERT = {
  columns: columnListText(FOLDER_TOMBSTONE_COLUMNS),
  onConflict: `on conflict (repo, prefix) do update set ${excludedAssignmentsText(FOLDER_TOMBSTONE_COLUMNS, ['repo', 'prefix'])}`,
};

function propertyDeleteStatement(propertyDeletes: readonly [string, string, string][]): RawBuilder<unknown> {
  return sql`delete from artifact_properties where (repo, path, key) in (
      select * from unnest(${propertyDeletes.map((d) => d[0])}::text[], ${propertyDeletes.map((d) => d[1])}::text[], ${propertyDeletes.map((d) => d[2])}::text[]))`;
}

/** Temporary tables of a large batch's rows (InlineProjectionPlan.applyBulk). */
const BULK_TABLES = { artifacts: 'strata_bulk_artifacts', artifact_properties: 'strata_bulk_artifact_properties', folder_tombstones: 'strata_bulk_folder_tombstones' } as const;

/**
 * writeBackStatements for a large batch: the upserted rows go in by COPY into temporary
 * tables, each merged by one INSERT … SELECT … ON CONFLICT; the same writes in the same
 * order (the deletes of properties touch other keys than the upserts). A table none of whose
 * rows was loaded (TreeWriteBack.fresh), when `plainInserts` (the repositories are locked, as
 * writeBackStatements' plain inserts): its rows by COPY straight into it, no temporary table
 * and no merge.
 */
function writeBackBulk({ fileRows, propertyRows, propertyDeletes, folderRows, grownFolders, fresh }: TreeWriteBack, plainInserts: boolean): ProjectionBulkWrites {
  const copies: ProjectionCopy[] = [];
  const statements: ProjectionStatement[] = [];
  const merge = (like: keyof typeof BULK_TABLES, columns: readonly UnnestColumn[], key: readonly string[], rows: unknown[][], freshRows: boolean) => {
    if (rows.length === 0) return;
    if (plainInserts && freshRows) {
      copies.push({ table: like, columns, rows });
      return;
    }
    const table = BULK_TABLES[like];
    copies.push({ table, like, columns, rows });
    statements.push(sql`insert into ${sql.table(like)} (${columnList(columns)}) select ${columnList(columns)} from ${sql.table(table)}
      on conflict (${sql.join(key.map((name) => sql.id(name)))}) do update set ${excludedAssignments(columns, key)}`);
  };
  merge('artifacts', ARTIFACT_COLUMNS, ['repo', 'path'], fileRows, fresh.files);
  merge('artifact_properties', PROPERTY_COLUMNS, ['repo', 'path', 'key'], propertyRows, fresh.properties);
  if (propertyDeletes.length > 0) statements.push(propertyDeleteStatement(propertyDeletes));
  merge('folder_tombstones', FOLDER_TOMBSTONE_COLUMNS, ['repo', 'prefix'], folderRows, fresh.folders);
  for (const folder of grownFolders) statements.push(folderTombstoneStatement(folder.repo, folder.prefix, folder.stamp));
  return { copies, statements };
}

/**
 * Raises the tombstone of every row at or below `prefix` that is stamped lower, with the
 * derived columns recomputed exactly as `fileView` does, and drops the property registers
 * it now hides (normalised registers stamped at or before it).
 */
function folderTombstoneStatement(repo: string, prefix: string, stamp: EventStamp): SqlText {
  const t = sqlText`(${stamp.hlc.wall}::int8, ${stamp.hlc.logical}::int4, ${stamp.origin}::text collate "C")`;
  const under =
    prefix === ''
      ? sqlText`true`
      : sqlText`(path = ${prefix} or (path >= ${prefix + '/'} and path < ${prefix + '0'}))`;
  return sqlText`
    with raised as (
      update artifacts set
        tombstone_wall = ${stamp.hlc.wall}, tombstone_logical = ${stamp.hlc.logical}, tombstone_origin = ${stamp.origin},
        present = coalesce((content_wall, content_logical, content_origin) > ${t}, false),
        created_at = case when (content_wall, content_logical, content_origin) > ${t}
          then case when (first_wall, first_logical, first_origin) > ${t} then first_wall else content_wall end end,
        created_by = case when (content_wall, content_logical, content_origin) > ${t}
          then case when (first_wall, first_logical, first_origin) > ${t} then first_actor else modified_by end end
      where repo = ${repo} and ${under}
        and (tombstone_wall is null or (tombstone_wall, tombstone_logical, tombstone_origin) < ${t})
      returning 1),
    hidden as (
      delete from artifact_properties where repo = ${repo} and ${under} and (wall, logical, origin) <= ${t}
      returning 1)
    select (select count(*) from raised) as raised, (select count(*) from hidden) as hidden`;
}

/**
 * Bulk-inserts a model's state into empty tables, in primary-key order (each insert then
 * appends to the right edge of the index); returns the number of rows written. With `copy`
 * (a COPY in the same transaction) each table is one COPY, else chunked unnest INSERTs.
 */
export async function writeArtifactTreeModel(
  db: Kysely<StoreDatabase>,
  model: ArtifactTreeEntries,
  chunkRowsMax = 10_000,
  onRows?: (rows: number) => void,
  copy?: CopyRows,
): Promise<number> {
  const entries = model.repositories().map((repo) => ({ repo, ...model.sortedEntries(repo) }));
  const tables = [
    {
      table: 'artifacts',
      columns: ARTIFACT_COLUMNS,
      rows: function* () {
        for (const { repo, files } of entries) for (const { path, register, tombstone } of files) yield artifactRow(repo, path, register, tombstone);
      },
    },
    {
      table: 'folder_tombstones',
      columns: FOLDER_TOMBSTONE_COLUMNS,
      rows: function* () {
        for (const { repo, folderTombstones } of entries) for (const { prefix, stamp } of folderTombstones) yield folderTombstoneRow(repo, prefix, stamp);
      },
    },
    {
      table: 'artifact_properties',
      columns: PROPERTY_COLUMNS,
      rows: function* () {
        for (const { repo, properties } of entries) for (const { path, key, register } of properties) yield propertyRow(repo, path, key, register);
      },
    },
  ];
  let rows = 0;
  for (const { table, columns, rows: tableRows } of tables) {
    if (copy !== undefined) {
      const written = await copy(table, columns, tableRows());
      onRows?.(written);
      rows += written;
      continue;
    }
    const writer = new ChunkWriter(db, table, columns, chunkRowsMax, onRows);
    for (const row of tableRows()) await writer.add(row);
    rows += await writer.finish();
  }
  return rows;
}

/** Accumulates rows and inserts them with one unnest() statement per chunk. */
export class ChunkWriter {
  readonly #db: Kysely<StoreDatabase>;
  readonly #table: string;
  readonly #columns: readonly UnnestColumn[];
  readonly #chunkRowsMax: number;
  readonly #onRows: ((rows: number) => void) | undefined;
  readonly #rows: unknown[][] = [];
  #written = 0;
  #pending: Promise<unknown> = Promise.resolve();

  constructor(
    db: Kysely<StoreDatabase>,
    table: string,
    columns: readonly UnnestColumn[],
    chunkRowsMax: number,
    onRows?: (rows: number) => void,
  ) {
    this.#db = db;
    this.#table = table;
    this.#columns = columns;
    this.#chunkRowsMax = chunkRowsMax;
    this.#onRows = onRows;
  }

  async add(row: unknown[]): Promise<void> {
    this.#rows.push(row);
    if (this.#rows.length >= this.#chunkRowsMax) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#rows.length === 0) return;
    const rows = this.#rows.splice(0, this.#rows.length);
    // The next chunk is built while this one is inserted; at most one insert is in flight.
    await this.#pending;
    this.#pending = sql`insert into ${sql.table(this.#table)} (${columnList(this.#columns)}) ${unnestRows(this.#columns, rows)}`
      .execute(this.#db)
      .then(() => {
        this.#written += rows.length;
        this.#onRows?.(rows.length);
      });
  }

  async finish(): Promise<number> {
    await this.#flush();
    await this.#pending;
    return this.#written;
  }
}

/** Reads the projection tables back as the canonical snapshot the model produces. */
export async function readArtifactTreeSnapshot(db: Kysely<StoreDatabase>): Promise<ArtifactTreeSnapshot> {
  const artifacts = await sql<Row>`select * from artifacts`.execute(db);
  const folders = await sql<Row>`select * from folder_tombstones`.execute(db);
  const properties = await sql<Row>`select * from artifact_properties`.execute(db);
  return canonicalArtifactTreeSnapshot({
    files: artifacts.rows.map((row) => {
      const repo = String(row.repo);
      const path = String(row.path);
      const register = fileRegisterFromRow(row);
      const snapshot = fileSnapshotOf(repo, path, register, register.tombstone);
      // The stored derived columns must agree with what fileView derives from the register.
      return {
        ...snapshot,
        present: Boolean(row.present),
        createdAt: toNullableNumber(row.created_at),
        createdBy: (row.created_by as string | null) ?? null,
      };
    }),
    folderTombstones: folders.rows.map((row) => ({
      repo: String(row.repo),
      prefix: String(row.prefix),
      stamp: stampJson(stampFromColumns(row.wall, row.logical, row.origin)!),
    })),
    properties: properties.rows.map((row) =>
      propertySnapshotOf(String(row.repo), String(row.path), String(row.key), propertyRegisterFromRow(row)),
    ),
  });
}
