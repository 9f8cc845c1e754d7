import { sql, type Kysely } from 'kysely';
import {
  ArtifactTreePaths,
  compareTreeEntries,
  listDepthOf,
  listEntriesOf,
  type ArtifactChild,
  type ArtifactFile,
  type ArtifactListEntry,
  type ArtifactListOptions,
  type RepositoryTreeStats,
} from '@strata/core';
import type { StoreDatabase } from '../schema.ts';
import { toNumber } from './sql-values.ts';

type Row = Record<string, unknown>;

export interface QueryOptions {
  readonly signal?: AbortSignal;
}

export interface ArtifactFolder {
  readonly repo: string;
  /** '' for the repository root. */
  readonly path: string;
  /** Direct children, sorted by name (a folder before a file of the same name). */
  readonly children: readonly ArtifactChild[];
}

export interface ArtifactTreeListOptions extends ArtifactListOptions, QueryOptions {
  /** Entries returned at most (after sorting). Default: all. */
  readonly limit?: number;
}

const FILE_COLUMNS = sql`repo, path, sha256, sha1, md5, size, mime_type, remote_url, created_at, created_by,
  modified_at, modified_by, content_wall, content_logical, content_origin, content_id`;

function fileFromRow(row: Row): ArtifactFile {
  return {
    repo: String(row.repo),
    path: String(row.path),
    sha256: String(row.sha256),
    sha1: String(row.sha1),
    md5: String(row.md5),
    size: toNumber(row.size),
    mimeType: String(row.mime_type),
    remoteUrl: (row.remote_url as string | null) ?? null,
    createdAt: toNumber(row.created_at),
    createdBy: (row.created_by as string | null) ?? null,
    lastModified: toNumber(row.modified_at),
    modifiedBy: (row.modified_by as string | null) ?? null,
    version: {
      hlc: { wall: toNumber(row.content_wall), logical: toNumber(row.content_logical) },
      origin: String(row.content_origin),
      id: String(row.content_id),
    },
  };
}

/** The range of paths strictly below `folder`: [low, high); no upper bound at the root. */
function below(folder: string) {
  return folder === ''
    ? sql`true`
    : sql`(path >= ${folder + '/'} and path < ${folder + '0'})`;
}

/**
 * Read side of the artifact tree for the server: plain objects (numbers in ms, no driver
 * types), the same shapes and orders as ArtifactTreeModel's queries. Paths are trimmed of
 * leading and trailing slashes; '' is the repository root.
 */
export class ArtifactTreeQueries {
  readonly #db: Kysely<StoreDatabase>;

  constructor(db: Kysely<StoreDatabase>) {
    this.#db = db;
  }

  /** A present file, or undefined. */
  async getFile(repo: string, path: string, options: QueryOptions = {}): Promise<ArtifactFile | undefined> {
    options.signal?.throwIfAborted();
    path = ArtifactTreePaths.trim(path);
    const result = await sql<Row>`select ${FILE_COLUMNS} from artifacts where repo = ${repo} and path = ${path} and present`.execute(this.#db);
    const row = result.rows[0];
    return row === undefined ? undefined : fileFromRow(row);
  }

  /** A folder that exists (a present file lies below it; the root always exists) with its children. */
  async getFolder(repo: string, path: string, options: QueryOptions = {}): Promise<ArtifactFolder | undefined> {
    path = ArtifactTreePaths.trim(path);
    const children = await this.children(repo, path, options);
    if (path !== '' && children.length === 0) return undefined;
    return { repo, path, children };
  }

  /** Whether a folder exists: the root always, any other iff a present file lies below it. */
  async folderExists(repo: string, path: string, options: QueryOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted();
    path = ArtifactTreePaths.trim(path);
    if (path === '') return true;
    const result = await sql<Row>`select exists(select 1 from artifacts where repo = ${repo} and present and ${below(path)}) as found`.execute(this.#db);
    return Boolean(result.rows[0]?.found);
  }

  /** Direct children of a folder, sorted by name (a folder before a file of the same name). */
  async children(repo: string, folder: string, options: QueryOptions = {}): Promise<ArtifactChild[]> {
    folder = ArtifactTreePaths.trim(folder);
    const [files, folders] = await Promise.all([this.#childFiles(repo, folder, options), this.#childFolders(repo, folder, options)]);
    return [
      ...files.map((file) => ({ name: ArtifactTreePaths.name(file.path), folder: false })),
      ...folders.map((name) => ({ name, folder: true })),
    ].sort(compareTreeEntries);
  }

  async #childFiles(repo: string, folder: string, options: QueryOptions): Promise<ArtifactFile[]> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`select ${FILE_COLUMNS} from artifacts
      where repo = ${repo} and parent = ${folder} and present and path <> ''
      order by name`.execute(this.#db);
    return result.rows.map(fileFromRow);
  }

  /**
   * Names of the sub-folders of a folder, by a loose index scan: each step jumps past every
   * path of the previous sub-folder, so the cost grows with the number of sub-folders and
   * direct files, not with everything stored below.
   */
  async #childFolders(repo: string, folder: string, options: QueryOptions): Promise<string[]> {
    options.signal?.throwIfAborted();
    const base = folder === '' ? '' : folder + '/';
    const start = base.length + 1;
    const result = await sql<Row>`
      with recursive folders(name) as (
        select (select split_part(substr(path, ${start}), '/', 1) from artifacts
                where repo = ${repo} and present and ${below(folder)} and strpos(substr(path, ${start}), '/') > 0
                order by path limit 1)
        union all
        select (select split_part(substr(a.path, ${start}), '/', 1) from artifacts a
                where a.repo = ${repo} and a.present and ${below(folder)}
                  and a.path >= ${base} || f.name || '0' and strpos(substr(a.path, ${start}), '/') > 0
                order by a.path limit 1)
        from folders f where f.name is not null
      )
      select name from folders where name is not null`.execute(this.#db);
    return result.rows.map((row) => String(row.name));
  }

  /**
   * Files (and with listFolders, folders) below a folder, as Artifactory's `?list` returns
   * them: relative paths, sorted, within the depth limit (1 unless deep).
   */
  async listFiles(repo: string, folder: string, options: ArtifactTreeListOptions = {}): Promise<ArtifactListEntry[]> {
    folder = ArtifactTreePaths.trim(folder);
    let entries: ArtifactListEntry[];
    if (listDepthOf(options) === 1) {
      const [files, folders] = await Promise.all([
        this.#childFiles(repo, folder, options),
        options.listFolders ? this.#childFolders(repo, folder, options) : Promise.resolve([]),
      ]);
      entries = [
        ...files.map((file): ArtifactListEntry => ({ relativePath: ArtifactTreePaths.name(file.path), folder: false, file })),
        ...folders.map((name): ArtifactListEntry => ({ relativePath: name, folder: true })),
      ].sort((a, b) => compareTreeEntries({ name: a.relativePath, folder: a.folder }, { name: b.relativePath, folder: b.folder }));
    } else {
      options.signal?.throwIfAborted();
      const depth = listDepthOf(options);
      const start = folder === '' ? 1 : folder.length + 2;
      // Depth below the folder = slashes in the relative path + 1; filtered in SQL when bounded.
      const depthFilter = Number.isFinite(depth)
        ? sql`and length(substr(path, ${start})) - length(replace(substr(path, ${start}), '/', '')) < ${depth}`
        : sql``;
      const result = await sql<Row>`select ${FILE_COLUMNS} from artifacts
        where repo = ${repo} and present and ${below(folder)} ${options.listFolders ? sql`` : depthFilter}
        order by path`.execute(this.#db);
      entries = listEntriesOf(folder, result.rows.map(fileFromRow), options);
    }
    return options.limit === undefined ? entries : entries.slice(0, options.limit);
  }

  /** Visible properties of a file or folder, keys sorted. */
  async getProperties(repo: string, path: string, options: QueryOptions = {}): Promise<Record<string, string[]>> {
    options.signal?.throwIfAborted();
    path = ArtifactTreePaths.trim(path);
    const result = await sql<Row>`select key, values from artifact_properties
      where repo = ${repo} and path = ${path} and not removed order by key`.execute(this.#db);
    const properties: Record<string, string[]> = {};
    for (const row of result.rows) {
      properties[String(row.key)] = (typeof row.values === 'string' ? JSON.parse(row.values) : row.values) as string[];
    }
    return properties;
  }

  /** Present files, implicit folders below the root, and bytes of a repository. */
  async countRepository(repo: string, options: QueryOptions = {}): Promise<RepositoryTreeStats> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`
      with recursive folders(folder) as (
        select distinct parent from artifacts where repo = ${repo} and present and parent <> ''
        union
        select left(folder, length(folder) - strpos(reverse(folder), '/')) from folders where strpos(folder, '/') > 0
      )
      select (select count(*) from artifacts where repo = ${repo} and present) as files,
             (select coalesce(sum(size), 0) from artifacts where repo = ${repo} and present) as bytes,
             (select count(*) from folders) as folders`.execute(this.#db);
    const row = result.rows[0]!;
    return { files: toNumber(row.files), folders: toNumber(row.folders), bytes: toNumber(row.bytes) };
  }

  /** Whether any present file has this content (blob garbage collection). */
  async isBlobReferenced(sha256: string, options: QueryOptions = {}): Promise<boolean> {
    options.signal?.throwIfAborted();
    const result = await sql<Row>`select exists(select 1 from artifacts where sha256 = ${sha256} and present) as found`.execute(this.#db);
    return Boolean(result.rows[0]?.found);
  }
}
