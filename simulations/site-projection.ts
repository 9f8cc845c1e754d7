/**
 * What a simulated site shows its users: the pure core models (artifact tree, repository
 * configuration) plus an audit count of applied events per origin, which — unlike the LWW
 * registers — is not idempotent, so an event applied twice shows. `drop-tombstones` plants
 * its bug here: deletes clear registers instead of keeping their stamp.
 */
import {
  ArtifactTreeModel,
  EMPTY_FILE_REGISTER,
  type EventStamp,
  RepositoryConfigModel,
  type StreamEvent,
  compareStamps,
  digestOf,
  repositoryKeyOfStream,
} from '@strata/core';

export class SiteProjection {
  readonly tree = new ArtifactTreeModel();
  readonly config = new RepositoryConfigModel();
  readonly #applied = new Map<string, number>();
  readonly #dropTombstones: boolean;
  /** The newest stamp applied: a local write must be stamped after it (causality). */
  newest: EventStamp | null = null;

  constructor({ dropTombstones = false }: { dropTombstones?: boolean } = {}) {
    this.#dropTombstones = dropTombstones;
  }

  apply(event: StreamEvent): void {
    this.#applied.set(event.origin, (this.#applied.get(event.origin) ?? 0) + 1);
    if (this.newest === null || compareStamps(event, this.newest) > 0) this.newest = { hlc: event.hlc, origin: event.origin };
    if (this.#dropTombstones && this.#forgetTombstone(event)) return;
    this.tree.apply(event);
    this.config.apply(event);
  }

  applyAll(events: Iterable<StreamEvent>): this {
    for (const event of events) this.apply(event);
    return this;
  }

  /** Events applied, per origin. */
  appliedCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const origin of [...this.#applied.keys()].sort()) counts[origin] = this.#applied.get(origin)!;
    return counts;
  }

  appliedTotal(): number {
    let total = 0;
    for (const count of this.#applied.values()) total += count;
    return total;
  }

  snapshot(): unknown {
    return { tree: this.tree.snapshot(), config: this.config.snapshot(), applied: this.appliedCounts() };
  }

  digest(): string {
    return digestOf(this.snapshot());
  }

  /** The planted bug: a delete removes what it hides and keeps no stamp, so older deploys arriving later come back. */
  #forgetTombstone(event: StreamEvent): boolean {
    const repo = repositoryKeyOfStream(event.stream);
    if (repo === undefined) return false;
    if (event.type === 'ArtifactDeleted') {
      this.tree.setFile(repo, event.data.path, EMPTY_FILE_REGISTER);
      return true;
    }
    if (event.type === 'FolderDeleted') {
      const prefix = event.data.prefix;
      for (const { path } of this.tree.sortedEntries(repo).files) {
        if (prefix === '' || path === prefix || path.startsWith(`${prefix}/`)) this.tree.setFile(repo, path, EMPTY_FILE_REGISTER);
      }
      return true;
    }
    return false;
  }
}
