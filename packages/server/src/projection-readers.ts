import type { ArtifactFile, ArtifactListEntry, ArtifactListOptions, Properties, RepositoryConfigView, RepositoryTreeStats } from '@strata/core';
import type { ArtifactReader, FileItem, FolderItem, ListOptions, RepositoryConfig, RepositoryReader, RepositoryUsage, TreeItem } from './ports.ts';

/** The slice of the store's ArtifactTreeQueries the server reads. */
export interface ArtifactTreeQueriesSlice {
  getFile(repo: string, path: string): Promise<ArtifactFile | undefined>;
  folderExists(repo: string, path: string): Promise<boolean>;
  listFiles(repo: string, folder: string, options?: ArtifactListOptions & { limit?: number }): Promise<ArtifactListEntry[]>;
  getProperties(repo: string, path: string): Promise<Record<string, string[]>>;
  countRepository(repo: string): Promise<RepositoryTreeStats>;
}

/** The slice of the store's RepositoryQueries the server reads. */
export interface RepositoryQueriesSlice {
  get(key: string): Promise<RepositoryConfigView | undefined>;
  list(): Promise<RepositoryConfigView[]>;
  /** The virtual resolution order projection (absent where it is not maintained). */
  resolutionOrder?(key: string): Promise<string[] | undefined>;
}

function configOf(view: RepositoryConfigView): RepositoryConfig {
  return { ...view.config, key: view.key, rclass: String(view.config.rclass ?? ''), packageType: String(view.config.packageType ?? 'generic') };
}

function fileItem(file: ArtifactFile): FileItem {
  return {
    kind: 'file',
    path: file.path,
    sha256: file.sha256,
    sha1: file.sha1,
    md5: file.md5,
    size: file.size,
    mimeType: file.mimeType,
    created: file.createdAt,
    createdBy: file.createdBy ?? '',
    lastModified: file.lastModified,
    modifiedBy: file.modifiedBy ?? '',
  };
}

/** Adapts the store's projection queries to the readers the routes use. */
export class ProjectionReaders implements RepositoryReader, ArtifactReader {
  readonly #tree: ArtifactTreeQueriesSlice;
  readonly #repositories: RepositoryQueriesSlice;

  constructor(tree: ArtifactTreeQueriesSlice, repositories: RepositoryQueriesSlice) {
    this.#tree = tree;
    this.#repositories = repositories;
  }

  async get(key: string): Promise<RepositoryConfig | undefined> {
    const view = await this.#repositories.get(key);
    return view === undefined ? undefined : configOf(view);
  }

  async resolutionOrder(key: string): Promise<readonly string[] | undefined> {
    return this.#repositories.resolutionOrder?.(key);
  }

  async getItem(repo: string, path: string): Promise<TreeItem | undefined> {
    const file = await this.#tree.getFile(repo, path);
    if (file !== undefined) return fileItem(file);
    if (!(await this.#tree.folderExists(repo, path))) return undefined;
    // Folders are implicit: they carry the repository's times.
    const view = await this.#repositories.get(repo);
    if (view === undefined) return undefined;
    const folder: FolderItem = { kind: 'folder', path, created: view.createdAt, createdBy: '', lastModified: view.lastModified, modifiedBy: '' };
    return folder;
  }

  async isFolder(repo: string, path: string): Promise<boolean> {
    return this.#tree.folderExists(repo, path);
  }

  async isFile(repo: string, path: string): Promise<boolean> {
    return (await this.#tree.getFile(repo, path)) !== undefined;
  }

  list(): Promise<readonly RepositoryConfig[]>;
  list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]>;
  async list(repo?: string, path?: string, options?: ListOptions): Promise<readonly RepositoryConfig[] | readonly TreeItem[]> {
    if (repo === undefined) return (await this.#repositories.list()).map(configOf);
    const folder = path ?? '';
    const entries = await this.#tree.listFiles(repo, folder, {
      deep: options?.deep ?? false,
      ...(options?.depth === undefined ? {} : { depth: options.depth }),
      listFolders: options?.includeFolders ?? false,
      ...(options?.limit === undefined ? {} : { limit: options.limit }),
    });
    const prefix = folder === '' ? '' : `${folder}/`;
    // Implicit folders carry the repository's times (one lookup, only when folders are listed).
    const view = entries.some((entry) => entry.folder) ? await this.#repositories.get(repo) : undefined;
    return entries.map((entry): TreeItem =>
      entry.folder
        ? { kind: 'folder', path: prefix + entry.relativePath, created: view?.createdAt ?? 0, createdBy: '', lastModified: view?.lastModified ?? 0, modifiedBy: '' }
        : fileItem(entry.file),
    );
  }

  async usage(repo: string): Promise<RepositoryUsage> {
    const stats = await this.#tree.countRepository(repo);
    return { filesCount: stats.files, foldersCount: stats.folders, usedBytes: stats.bytes };
  }

  async properties(repo: string, path: string): Promise<Properties> {
    return this.#tree.getProperties(repo, path);
  }
}
