import type { RecordedEvent } from '@strata/core';

/** Most events one history page returns. */
export const historyPageEventsMax = 10_000;

export interface PathHistoryOptions {
  /** Events after this revision of the stream (the cursor of the previous page); default: from the start. */
  readonly afterRevision?: number;
  /** Most events returned (capped at historyPageEventsMax). */
  readonly limit: number;
  /** Also the events of every path below `path` (a folder's whole subtree). */
  readonly deep?: boolean;
  readonly signal?: AbortSignal;
}

export interface HistoryEntry {
  readonly event: RecordedEvent;
  /** Site-chain link of the event before it in this site's copy of the stream (hex). */
  readonly prevHash: string | undefined;
}

export interface PathHistoryPage {
  readonly entries: readonly HistoryEntry[];
  /** Pass as `afterRevision` for the next page; undefined when this page is the last. */
  readonly nextAfterRevision: number | undefined;
}

/** A history page rendered as the history API's JSON (EventAudit.pathHistoryJson). */
export interface HistoryJsonPage {
  /**
   * The page's events as a JSON array, UTF-8, in pieces: concatenated, the bytes of
   * `JSON.stringify(page.entries.map((entry) => historyEventJson(entry, siteId)))`.
   */
  readonly eventsJson: readonly Buffer[];
  /** Events in the page. */
  readonly events: number;
  /** Pass as `afterRevision` for the next page; undefined when this page is the last. */
  readonly nextAfterRevision: number | undefined;
  /**
   * Where the backend reuses the pieces' memory: hands them back once they were sent.
   * Nothing may read `eventsJson` after it; not calling it is fine (they are collected).
   */
  readonly release?: () => void;
}

export interface PathHistoryJsonOptions extends PathHistoryOptions {
  /** This site's id: an event from another origin is shown as received. */
  readonly siteId: string;
}

export const CHAIN_BREAK_REASONS = [
  /** A revision is missing: the event was deleted (or the next one renumbered). */
  'missing',
  /** The recorded link does not match the event before it: that event (or this record) was altered. */
  'altered',
  /** The stream's recorded head (revision, last link) does not match its last event. */
  'head',
  /** An origin-chain link does not match the digest of the origin's previous event in the stream. */
  'origin-altered',
  /** The origin's previous event is not in this copy of the stream. */
  'origin-missing',
] as const;
export type ChainBreakReason = (typeof CHAIN_BREAK_REASONS)[number];

export interface ChainBreak {
  readonly stream: string;
  readonly reason: ChainBreakReason;
  /** The revision where the check failed (for `missing`, the first absent one). */
  readonly revision: number;
  /** Id of the event at `revision`, when there is one. */
  readonly eventId: string | undefined;
  /** For origin-chain breaks: the origin and the originSeq whose link failed. */
  readonly origin?: string;
  readonly originSeq?: number;
  readonly message: string;
}

export interface VerifyOptions {
  /** Only this stream; default every stream. */
  readonly stream?: string;
  readonly signal?: AbortSignal;
}

export interface VerifyResult {
  readonly streams: number;
  readonly events: number;
  /** Events carrying an origin chain (meta.originPrev). */
  readonly originChained: number;
  /** The first break of each stream's site chain and of each origin chain, in stream order. */
  readonly breaks: readonly ChainBreak[];
  readonly elapsedMs: number;
}

/** History of paths and verification of the hash chains (issue 8); one per event store backend. */
export interface EventAudit {
  /**
   * The events of `stream` that touched `path` or a folder above it (or, with `deep`, any
   * path below it), in revision order (this site's order of the stream).
   */
  pathHistory(stream: string, path: string, options: PathHistoryOptions): Promise<PathHistoryPage>;
  /**
   * The same page as the history API's JSON (what the HTTP route sends): byte for byte
   * what historyEventJson and JSON.stringify make of pathHistory's entries, rendered
   * without building them where the backend can (SqlEventAudit with COPY).
   */
  pathHistoryJson(stream: string, path: string, options: PathHistoryJsonOptions): Promise<HistoryJsonPage>;
  /** Events of a stream in revision order with their site-chain links (export). */
  readChained(stream: string, options: { readonly fromRevision: number; readonly maxCount: number; readonly signal?: AbortSignal }): Promise<readonly HistoryEntry[]>;
  /** Walks the site chain of every stream (or one) and every origin chain; reports the first break of each. */
  verify(options?: VerifyOptions): Promise<VerifyResult>;
}
