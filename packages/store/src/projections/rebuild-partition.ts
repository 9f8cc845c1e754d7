import { ArtifactTreeFold, repositoryKeyOfStream, type EventType, type RecordedEvent } from '@strata/core';
import { EventCopyDecoder } from '../event-copy-reader.ts';
import type { Checkpoint } from '../event-store.ts';
import { artifactCopySource, folderTombstoneCopySource, propertyCopySource } from './artifact-tree-projection.ts';
import type { BinaryCopySource } from './binary-copy.ts';

/**
 * One share of a rebuild's artifact-tree fold (a rebuild worker's, rebuild-worker-main.ts;
 * tests run it in this thread): every repository belongs to exactly one partition, by a hash
 * of its key, and a partition folds only its repositories' events into a fold of its own.
 * The tree's merge rules never look across repositories, so the partitions' rows together
 * are the rows one fold of every event gives (a fast-check property checks it:
 * test/store/rebuild-workers.int.test.ts).
 *
 * Events reach a partition two ways:
 * - the raw bytes of the rebuild's one binary COPY scan: in a rebuild, its repositories'
 *   rows and every `RepositoryDeleted` only (the main thread routes the rows, see
 *   RebuildWorkers.scan); given a whole scan (as tests give it), it skips the rows of another
 *   partition's streams by their stream and type bytes, with no msgpack decoded;
 * - decoded events (what committed after the scan, read by the main thread with readAll).
 *
 * `RepositoryDeleted` names its repository in its data (`data.key`), not only by its stream:
 * every partition decodes it, and the partition owning `data.key` applies it. Events of the
 * `forwardTypes` (those the other projections of the rebuild fold, on the main thread) are
 * handed back by the partition owning their stream, so each reaches the main thread once.
 */
export interface RebuildPartitionOptions {
  /** This partition, 0 ≤ index < count. */
  readonly index: number;
  readonly count: number;
  /** Event types the main thread's projections fold: handed back through `takeForwarded`. */
  readonly forwardTypes: readonly EventType[];
}

/** Events of a scan decoded per page: a page's events die young (see rebuild-projections.ts). */
const pageEventsMax = 256;

/** The partition of the repository `key` among `count` (FNV-1a over its UTF-16 code units). */
export function partitionOfRepository(key: string, count: number): number {
  let hash = 2166136261 | 0;
  for (let index = 0; index < key.length; index++) hash = Math.imul(hash ^ key.charCodeAt(index), 16777619);
  return (hash >>> 0) % count;
}

/** The partition of a stream: its repository's for `repo-<key>`, else by the stream name. */
export function partitionOfStream(stream: string, count: number): number {
  return partitionOfRepository(repositoryKeyOfStream(stream) ?? stream, count);
}

/** The three tables a partition writes, in the order rebuilds write them. */
export const PARTITION_TABLES = ['artifacts', 'folder_tombstones', 'artifact_properties'] as const;
export type PartitionTable = (typeof PARTITION_TABLES)[number];

export class RebuildPartition {
  readonly fold = new ArtifactTreeFold();
  readonly #index: number;
  readonly #count: number;
  readonly #forward: ReadonlySet<EventType>;
  readonly #streamOwned = new Map<string, boolean>();
  readonly #decoder: EventCopyDecoder;
  #page: RecordedEvent[] = [];
  #forwarded: RecordedEvent[] = [];
  /** Events this partition applied or handed back (its share). */
  events = 0;

  constructor(options: RebuildPartitionOptions) {
    if (!Number.isInteger(options.count) || options.count < 1 || !Number.isInteger(options.index) || options.index < 0 || options.index >= options.count) {
      throw new RangeError(`partition ${options.index} of ${options.count}`);
    }
    this.#index = options.index;
    this.#count = options.count;
    this.#forward = new Set(options.forwardTypes);
    this.#decoder = new EventCopyDecoder(false, (stream, type) => type === 'RepositoryDeleted' || this.#ownsStream(stream));
  }

  /** Rows of the scan read so far, applied or skipped. */
  get scanRows(): number {
    return this.#decoder.rowsRead;
  }

  /** Feeds the next bytes of the scan's binary COPY output (chunks may cut rows anywhere). */
  pushCopy(chunk: Uint8Array): void {
    const decoder = this.#decoder;
    decoder.push(chunk, this.#page, pageEventsMax);
    while (decoder.pageFull) {
      this.#applyPage();
      decoder.continue(this.#page, pageEventsMax);
    }
  }

  /** The end of the scan's output; returns the checkpoint after its last row (undefined: no row). */
  finishCopy(): Checkpoint | undefined {
    this.#decoder.finish();
    this.#applyPage();
    return this.#decoder.checkpoint;
  }

  /** Decoded events (any partition's: this one applies its own). */
  addEvents(events: readonly RecordedEvent[]): void {
    for (const event of events) if (event.type === 'RepositoryDeleted' || this.#ownsStream(event.stream)) this.#apply(event);
  }

  /** The events of forwardTypes this partition was the one to hand back, since the last call. */
  takeForwarded(): RecordedEvent[] {
    const forwarded = this.#forwarded;
    this.#forwarded = [];
    return forwarded;
  }

  /** The rows of `table` from this partition's fold, for a binary COPY (in any order: the tables get their keys afterwards). */
  copySource(table: PartitionTable): BinaryCopySource {
    switch (table) {
      case 'artifacts':
        return artifactCopySource(this.fold, 'any');
      case 'folder_tombstones':
        return folderTombstoneCopySource(this.fold);
      case 'artifact_properties':
        return propertyCopySource(this.fold, 'any');
    }
  }

  #ownsStream(stream: string): boolean {
    let owned = this.#streamOwned.get(stream);
    if (owned === undefined) {
      owned = partitionOfStream(stream, this.#count) === this.#index;
      this.#streamOwned.set(stream, owned);
    }
    return owned;
  }

  #applyPage(): void {
    const page = this.#page;
    for (let index = 0; index < page.length; index++) this.#apply(page[index]!);
    page.length = 0;
  }

  #apply(event: RecordedEvent): void {
    const ownsStream = this.#ownsStream(event.stream);
    if (event.type === 'RepositoryDeleted') {
      // The owner of the deleted repository tombstones it, whichever stream carried it.
      if (partitionOfRepository(event.data.key, this.#count) === this.#index) this.fold.apply(event);
    } else if (ownsStream) {
      this.fold.apply(event);
    }
    if (ownsStream) {
      this.events++;
      if (this.#forward.has(event.type)) this.#forwarded.push(event);
    }
  }
}
