import { ArtifactTreeModel, RepositoryConfigModel } from '@strata/core';
import type { Properties, RecordedEvent } from '@strata/core';
import { MemoryEventStore } from '@strata/store';
import type { MemoryProjection } from '@strata/store';
import type { ArtifactReader, ListOptions, RepositoryConfig, RepositoryReader, RepositoryUsage, TreeItem } from '../../src/ports.ts';
import { ProjectionReaders } from '../../src/projection-readers.ts';

/**
 * The read side for tests without SQL: core's in-memory ArtifactTreeModel and
 * RepositoryConfigModel (the very merge rules the SQL projections use), fed by the store's
 * MemoryEventStore before each append resolves, and read through the server's own
 * ProjectionReaders adapter — so unit tests exercise the same mapping as production.
 */
export class FakeProjections implements RepositoryReader, ArtifactReader, MemoryProjection {
  readonly tree = new ArtifactTreeModel();
  readonly configs = new RepositoryConfigModel();
  readonly #readers: ProjectionReaders;

  constructor() {
    const tree = this.tree;
    const configs = this.configs;
    this.#readers = new ProjectionReaders(
      {
        getFile: async (repo, path) => tree.file(repo, path),
        folderExists: async (repo, path) => tree.folderExists(repo, path),
        listFiles: async (repo, folder, options = {}) => {
          const entries = tree.list(repo, folder, options);
          return options.limit === undefined ? entries : entries.slice(0, options.limit);
        },
        getProperties: async (repo, path) => tree.properties(repo, path),
        countRepository: async (repo) => tree.stats(repo),
      },
      {
        get: async (key) => configs.get(key),
        list: async () => configs.list(),
      },
    );
  }

  apply(events: readonly RecordedEvent[]): void {
    for (const event of events) {
      this.tree.apply(event);
      this.configs.apply(event);
    }
  }

  get(key: string): Promise<RepositoryConfig | undefined> {
    return this.#readers.get(key);
  }
  list(): Promise<readonly RepositoryConfig[]>;
  list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]>;
  list(repo?: string, path?: string, options?: ListOptions): Promise<readonly RepositoryConfig[] | readonly TreeItem[]> {
    if (repo === undefined) return this.#readers.list();
    return this.#readers.list(repo, path ?? '', options ?? { deep: false, includeFolders: false, limit: 100_000 });
  }
  async getItem(repo: string, path: string): Promise<TreeItem | undefined> {
    // The models keep a deleted repository's registers; the SQL read side answers only for existing ones.
    if (this.configs.get(repo) === undefined) return undefined;
    return this.#readers.getItem(repo, path);
  }
  isFolder(repo: string, path: string): Promise<boolean> {
    return this.#readers.isFolder(repo, path);
  }
  isFile(repo: string, path: string): Promise<boolean> {
    return this.#readers.isFile(repo, path);
  }
  usage(repo: string): Promise<RepositoryUsage> {
    return this.#readers.usage(repo);
  }
  properties(repo: string, path: string): Promise<Properties> {
    return this.#readers.properties(repo, path);
  }
}

/**
 * The store's MemoryEventStore feeding `projections`, plus synchronous views of what was
 * appended (`streams`, `all`) for assertions.
 */
export class FakeEventStore extends MemoryEventStore {
  readonly streams = new Map<string, RecordedEvent[]>();
  readonly all: RecordedEvent[] = [];

  constructor(projections: FakeProjections) {
    const recorder: MemoryProjection = {
      apply: (events) => {
        for (const event of events) {
          const stream = this.streams.get(event.stream) ?? [];
          stream.push(event);
          this.streams.set(event.stream, stream);
          this.all.push(event);
        }
      },
    };
    super({ projections: [projections, recorder] });
  }
}
