import { eventTargetPath, type RecordedEvent } from '@strata/core';
import type { HistoryEntry, HistoryJsonPage, PathHistoryPage } from './event-audit.ts';

/** What happened, in a word an auditor reads (one per event type of a repository stream). */
export const HISTORY_ACTIONS: Readonly<Record<string, string>> = Object.freeze({
  RepositoryCreated: 'repository-created',
  RepositoryConfigChanged: 'repository-changed',
  RepositoryDeleted: 'repository-deleted',
  ArtifactDeployed: 'deployed',
  RemoteArtifactCached: 'cached',
  ArtifactDeleted: 'deleted',
  FolderDeleted: 'folder-deleted',
  PropertiesSet: 'properties-set',
  PropertiesRemoved: 'properties-removed',
  ArtifactBinaryCollected: 'binary-collected',
});

export interface HistoryEventJson {
  readonly id: string;
  readonly action: string;
  readonly type: string;
  /** The path the event is about, with a leading slash ('/' = the repository root). */
  readonly path: string | null;
  readonly actor: string | null;
  /** The origin's HLC stamp, and its physical part as ISO-8601. */
  readonly hlc: { readonly wall: number; readonly logical: number };
  readonly time: string;
  readonly origin: string;
  readonly originSeq: number;
  /** True when another site produced the event and it arrived here by federation (or import). */
  readonly received: boolean;
  readonly revision: number;
  /** This site's global position (a decimal string: 64-bit). */
  readonly position: string;
  readonly data: unknown;
  readonly meta: Readonly<Record<string, unknown>>;
  /** Site-chain link of the event before it in this site's copy of the stream. */
  readonly prevHash: string | null;
}

/** An event of a path's history as JSON (the history API, `strata audit --json`). */
export function historyEventJson(entry: HistoryEntry | { readonly event: RecordedEvent; readonly prevHash?: string | undefined }, siteId: string): HistoryEventJson {
  const { event } = entry;
  const target = eventTargetPath(event);
  return {
    id: event.id,
    action: HISTORY_ACTIONS[event.type] ?? event.type,
    type: event.type,
    path: target === undefined ? null : `/${target}`,
    actor: event.meta.actor ?? null,
    hlc: { wall: event.hlc.wall, logical: event.hlc.logical },
    time: new Date(event.hlc.wall).toISOString(),
    origin: event.origin,
    originSeq: event.originSeq,
    received: event.origin !== siteId,
    revision: event.revision,
    position: event.position.toString(),
    data: event.data,
    meta: event.meta as Readonly<Record<string, unknown>>,
    prevHash: entry.prevHash ?? null,
  };
}

/** A page of decoded events as the history API's JSON (what pathHistoryJson answers without a faster path). */
export function historyPageJson(page: PathHistoryPage, siteId: string): HistoryJsonPage {
  return {
    eventsJson: [Buffer.from(JSON.stringify(page.entries.map((entry) => historyEventJson(entry, siteId))), 'utf8')],
    events: page.entries.length,
    nextAfterRevision: page.nextAfterRevision,
  };
}
