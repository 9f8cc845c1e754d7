import { compareStamps, isPathUnder, StrataError } from '@strata/core';
import type { EventStamp, NewEvent, Properties, RecordedEvent } from '@strata/core';
import type { AppendOptions, AppendResult, EventStore, ReadAllResult, Subscription } from '@strata/store';
import type { ArtifactReader, FileItem, FolderItem, ListOptions, RepositoryConfig, RepositoryReader, RepositoryUsage, TreeItem } from '../../src/ports.ts';

/**
 * Test doubles for unit tests that run before (or without) the store package's real
 * projections: a tiny in-memory event store that feeds a naive fold of the artifact tree
 * and repository configs. Last applied wins; no federation merge rules here.
 */
interface StoredFile extends FileItem {
  readonly stamp: EventStamp;
  readonly properties: Properties;
}

export class FakeProjections implements RepositoryReader, ArtifactReader {
  readonly configs = new Map<string, RepositoryConfig>();
  readonly files = new Map<string, Map<string, StoredFile>>();
  readonly folderProperties = new Map<string, Record<string, readonly string[]>>();

  apply(event: RecordedEvent): void {
    const repo = event.stream.slice('repo-'.length);
    const stamp = { hlc: event.hlc, origin: event.origin };
    const actor = event.meta.actor ?? 'anonymous';
    const tree = this.files.get(repo) ?? new Map<string, StoredFile>();
    this.files.set(repo, tree);
    switch (event.type) {
      case 'RepositoryCreated':
        this.configs.set(event.data.key, event.data.config as RepositoryConfig);
        tree.clear();
        break;
      case 'RepositoryConfigChanged': {
        const current = this.configs.get(event.data.key);
        if (current) this.configs.set(event.data.key, { ...current, ...event.data.patch });
        break;
      }
      case 'RepositoryDeleted':
        this.configs.delete(event.data.key);
        tree.clear();
        break;
      case 'ArtifactDeployed': {
        const previous = tree.get(event.data.path);
        tree.set(event.data.path, {
          kind: 'file',
          path: event.data.path,
          sha256: event.data.sha256,
          sha1: event.data.sha1,
          md5: event.data.md5,
          size: event.data.size,
          mimeType: event.data.mimeType,
          created: previous?.created ?? event.hlc.wall,
          createdBy: previous?.createdBy ?? actor,
          lastModified: event.hlc.wall,
          modifiedBy: actor,
          properties: event.data.properties,
          stamp,
        });
        break;
      }
      case 'ArtifactDeleted':
        tree.delete(event.data.path);
        break;
      case 'FolderDeleted':
        for (const path of [...tree.keys()]) if (isPathUnder(path, event.data.prefix) && compareStamps(tree.get(path)!.stamp, stamp) < 0) tree.delete(path);
        for (const key of [...this.folderProperties.keys()]) if (key.startsWith(`${repo}\0`) && isPathUnder(key.slice(repo.length + 1), event.data.prefix)) this.folderProperties.delete(key);
        break;
      case 'PropertiesSet':
      case 'PropertiesRemoved': {
        const file = tree.get(event.data.path);
        const current: Record<string, readonly string[]> = { ...(file?.properties ?? this.folderProperties.get(`${repo}\0${event.data.path}`) ?? {}) };
        if (event.type === 'PropertiesSet') Object.assign(current, event.data.properties);
        else for (const key of event.data.keys) delete current[key];
        if (file) tree.set(event.data.path, { ...file, properties: current, lastModified: event.hlc.wall });
        else this.folderProperties.set(`${repo}\0${event.data.path}`, current);
        break;
      }
      default:
        break;
    }
  }

  async get(key: string): Promise<RepositoryConfig | undefined> {
    return this.configs.get(key);
  }
  async list(): Promise<readonly RepositoryConfig[]>;
  async list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]>;
  async list(repo?: string, path?: string, options?: ListOptions): Promise<readonly RepositoryConfig[] | readonly TreeItem[]> {
    if (repo === undefined) return [...this.configs.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    const base = path ?? '';
    const items = new Map<string, TreeItem>();
    for (const file of this.files.get(repo)?.values() ?? []) {
      if (!isPathUnder(file.path, base) || file.path === base) continue;
      const relative = base === '' ? file.path : file.path.slice(base.length + 1);
      const segments = relative.split('/');
      const depthMax = options?.deep ? (options.depth ?? Number.MAX_SAFE_INTEGER) : 1;
      for (let depth = 1; depth <= Math.min(segments.length, depthMax); depth++) {
        const itemPath = (base === '' ? '' : `${base}/`) + segments.slice(0, depth).join('/');
        if (depth === segments.length) items.set(itemPath, this.#strip(file));
        else if (options?.includeFolders) items.set(itemPath, this.#folder(repo, itemPath));
      }
    }
    return [...items.values()].sort((a, b) => (a.path < b.path ? -1 : 1)).slice(0, options?.limit);
  }
  async getItem(repo: string, path: string): Promise<TreeItem | undefined> {
    if (!this.configs.has(repo)) return undefined;
    const file = this.files.get(repo)?.get(path);
    if (file) return this.#strip(file);
    if (path === '') return this.#folder(repo, '');
    for (const other of this.files.get(repo)?.values() ?? []) if (isPathUnder(other.path, path)) return this.#folder(repo, path);
    return undefined;
  }
  async isFolder(repo: string, path: string): Promise<boolean> {
    return (await this.getItem(repo, path))?.kind === 'folder';
  }
  async isFile(repo: string, path: string): Promise<boolean> {
    return (await this.getItem(repo, path))?.kind === 'file';
  }
  async usage(repo: string): Promise<RepositoryUsage> {
    const files = [...(this.files.get(repo)?.values() ?? [])];
    const folders = new Set<string>();
    for (const file of files) {
      const segments = file.path.split('/');
      for (let i = 1; i < segments.length; i++) folders.add(segments.slice(0, i).join('/'));
    }
    return { filesCount: files.length, foldersCount: folders.size, usedBytes: files.reduce((sum, f) => sum + f.size, 0) };
  }
  async properties(repo: string, path: string): Promise<Properties> {
    return this.files.get(repo)?.get(path)?.properties ?? this.folderProperties.get(`${repo}\0${path}`) ?? {};
  }
  #strip(file: StoredFile): FileItem {
    const { stamp: _stamp, properties: _properties, ...item } = file;
    return item;
  }
  #folder(_repo: string, path: string): FolderItem {
    return { kind: 'folder', path, created: 0, createdBy: 'system', lastModified: 0, modifiedBy: 'system' };
  }
}

/** A minimal in-memory event store for unit tests; appends feed `projections` synchronously. */
export class FakeEventStore implements EventStore {
  readonly streams = new Map<string, RecordedEvent[]>();
  readonly all: RecordedEvent[] = [];
  readonly #projections: FakeProjections;
  constructor(projections: FakeProjections) {
    this.#projections = projections;
  }
  async append(stream: string, events: readonly NewEvent[], options?: AppendOptions): Promise<AppendResult> {
    const existing = this.streams.get(stream) ?? [];
    const current = existing.length - 1;
    const expected = options?.expectedRevision ?? 'any';
    const ok = expected === 'any' || (expected === 'no_stream' && current === -1) || (expected === 'exists' && current >= 0) || expected === current;
    if (!ok) throw new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', `expected ${String(expected)}, stream is at ${current}`);
    const recorded = events.map((event, index) => ({ ...event, stream, revision: current + 1 + index, position: BigInt(this.all.length + index) }) as RecordedEvent);
    existing.push(...recorded);
    this.streams.set(stream, existing);
    this.all.push(...recorded);
    for (const event of recorded) this.#projections.apply(event);
    return { nextRevision: current + recorded.length, events: recorded, appendedCount: recorded.length };
  }
  async readStream(stream: string, options?: { fromRevision?: number; maxCount?: number }): Promise<readonly RecordedEvent[]> {
    const from = options?.fromRevision ?? 0;
    return (this.streams.get(stream) ?? []).slice(from, from + (options?.maxCount ?? 10_000));
  }
  async streamRevision(stream: string): Promise<number | undefined> {
    const length = this.streams.get(stream)?.length ?? 0;
    return length === 0 ? undefined : length - 1;
  }
  async readAll(): Promise<ReadAllResult> {
    throw new Error('not used by server unit tests');
  }
  subscribe(): Subscription {
    throw new Error('not used by server unit tests');
  }
  async close(): Promise<void> {}
}
