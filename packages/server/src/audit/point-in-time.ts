import { ArtifactTreeModel, RepositoryConfigModel, StrataError, repositoryStream, type Properties } from '@strata/core';
import { parsePointInTime, readStreamUntil, type EventStore, type PointInTime } from '@strata/store';
import type { ArtifactReader, ListOptions, RepositoryConfig, RepositoryUsage, TreeItem } from '../ports.ts';
import { ProjectionReaders } from '../projection-readers.ts';
import { REMOTE_CACHE_SUFFIX } from '../virtual/repository-content.ts';

export interface PointInTimeOptions {
  /** Folded repositories kept for further reads of the same point. */
  readonly viewsCachedMax: number;
  /** A stream longer than this is refused (folding it would hold too much memory). */
  readonly pointInTimeEventsMax: number;
}

/** A repository as it was at a point in time: its configuration and its artifact tree. */
export interface PointInTimeView {
  readonly config: RepositoryConfig | undefined;
  readonly artifacts: ArtifactReader;
}

/**
 * Point-in-time reads (`asOf=`, issue 8): the repository's stream folded up to the point with
 * core's in-memory models (the merge rules the projections use), read through the same
 * ProjectionReaders adapter as the live projections. Views are cached per (repository,
 * point, stream revision), so paging through one point's listing folds once.
 */
export class PointInTimeReads {
  readonly #store: Pick<EventStore, 'readStream' | 'streamRevision'>;
  readonly #options: PointInTimeOptions;
  readonly #cache = new Map<string, Promise<PointInTimeView>>();

  constructor(store: Pick<EventStore, 'readStream' | 'streamRevision'>, options: PointInTimeOptions) {
    this.#store = store;
    this.#options = options;
  }

  /** Parses `asOf` (ISO-8601 time or a position); a bad value is a 400. */
  parse(text: string): PointInTime {
    return parsePointInTime(text);
  }

  /**
   * Every repository as it was at one point: what a virtual needs (its own configuration
   * then, its members' configurations then, and their trees then). Each repository's stream
   * is folded on first use, once per catalogue.
   */
  catalogue(point: PointInTime): PointInTimeCatalogue {
    return new PointInTimeCatalogue((repo) => this.view(repo, point));
  }

  /**
   * The catalogue at `asOf` (request text: a time or a position; a bad one is a 400) for a
   * request naming `repo`: 404 when no repository of that key (or, for `{remote}-cache`, no
   * such remote) existed then.
   */
  async catalogueFor(repo: string, asOf: string): Promise<PointInTimeCatalogue> {
    const then = this.catalogue(this.parse(asOf));
    if ((await then.repository(repo)) !== undefined) return then;
    if (repo.endsWith(REMOTE_CACHE_SUFFIX) && (await then.repository(repo.slice(0, -REMOTE_CACHE_SUFFIX.length)))?.rclass === 'remote') return then;
    throw new StrataError('STRATA_ERR_REPO_NOT_FOUND', `Repository '${repo}' did not exist at ${asOf}`);
  }

  async view(repo: string, point: PointInTime): Promise<PointInTimeView> {
    const stream = repositoryStream(repo);
    const revision = await this.#store.streamRevision(stream);
    if (revision !== undefined && revision + 1 > this.#options.pointInTimeEventsMax) {
      throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `repository '${repo}' holds ${revision + 1} events, more than a point-in-time read folds (${this.#options.pointInTimeEventsMax})`);
    }
    const key = `${repo}\n${point.kind === 'time' ? `t${point.wall}` : `p${point.position}`}\n${revision ?? -1}`;
    let view = this.#cache.get(key);
    if (view === undefined) {
      view = this.#fold(repo, stream, point);
      view.catch(() => this.#cache.delete(key));
      this.#cache.set(key, view);
      while (this.#cache.size > this.#options.viewsCachedMax) this.#cache.delete(this.#cache.keys().next().value!);
    } else {
      // Most recently used last.
      this.#cache.delete(key);
      this.#cache.set(key, view);
    }
    return view;
  }

  async #fold(repo: string, stream: string, point: PointInTime): Promise<PointInTimeView> {
    const tree = new ArtifactTreeModel();
    const configs = new RepositoryConfigModel();
    for await (const page of readStreamUntil(this.#store, stream, { until: point })) {
      for (const event of page) {
        tree.apply(event);
        configs.apply(event);
      }
    }
    const readers = new ProjectionReaders(
      {
        getFile: async (r, path) => tree.file(r, path),
        folderExists: async (r, path) => tree.folderExists(r, path),
        listFiles: async (r, folder, options = {}) => {
          const entries = tree.list(r, folder, options);
          return options.limit === undefined ? entries : entries.slice(0, options.limit);
        },
        getProperties: async (r, path) => tree.properties(r, path),
        countRepository: async (r) => tree.stats(r),
      },
      { get: async (key) => configs.get(key), list: async () => configs.list() },
    );
    const config = await readers.get(repo);
    return { config, artifacts: readers };
  }
}

/**
 * Repositories at one point in time, read like the live ones: the configuration lookups and
 * the artifact reader RepositoryContent resolves virtuals over (`content.at(catalogue)`).
 * A key that had no repository then answers undefined (and an empty tree).
 */
export class PointInTimeCatalogue implements ArtifactReader {
  readonly #view: (repo: string) => Promise<PointInTimeView>;
  readonly #views = new Map<string, Promise<PointInTimeView>>();

  constructor(view: (repo: string) => Promise<PointInTimeView>) {
    this.#view = view;
  }

  #of(repo: string): Promise<PointInTimeView> {
    let view = this.#views.get(repo);
    if (view === undefined) {
      view = this.#view(repo);
      this.#views.set(repo, view);
    }
    return view;
  }

  async repository(key: string): Promise<RepositoryConfig | undefined> {
    return (await this.#of(key)).config;
  }

  async item(repo: string, path: string): Promise<TreeItem | undefined> {
    return this.getItem(repo, path);
  }

  async getItem(repo: string, path: string): Promise<TreeItem | undefined> {
    return (await this.#of(repo)).artifacts.getItem(repo, path);
  }

  async isFolder(repo: string, path: string): Promise<boolean> {
    return (await this.#of(repo)).artifacts.isFolder(repo, path);
  }

  async isFile(repo: string, path: string): Promise<boolean> {
    return (await this.#of(repo)).artifacts.isFile(repo, path);
  }

  async list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]> {
    return (await this.#of(repo)).artifacts.list(repo, path, options);
  }

  async usage(repo: string): Promise<RepositoryUsage> {
    return (await this.#of(repo)).artifacts.usage(repo);
  }

  async properties(repo: string, path: string): Promise<Properties> {
    return (await this.#of(repo)).artifacts.properties(repo, path);
  }
}
