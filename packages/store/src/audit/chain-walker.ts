import {
  CHAIN_GENESIS,
  encodeEventData,
  encodeMeta,
  eventDigest,
  originPrevOf,
  siteChainLink,
  type NewEvent,
} from '@strata/core';
import type { ChainBreak } from './event-audit.ts';
import { siteBreak } from './sql-event-audit.ts';

/** One event of a stream as a chain walker sees it: the envelope, its encodings and its recorded link. */
export interface WalkedEvent {
  readonly event: NewEvent & { readonly stream: string; readonly revision: number };
  /** Encoded data and meta; re-encoded from the event when absent. */
  readonly data?: Uint8Array;
  readonly meta?: Uint8Array;
  /** The site-chain link the copy recorded for its predecessor; undefined: not chained. */
  readonly prevHash: Uint8Array | undefined;
}

/**
 * Checks the site chain and the origin chains of events fed in stream order, stream after
 * stream (the memory store's verifier, and `strata verify --file` over an export). Records
 * the first break of each chain.
 */
export class ChainWalker {
  readonly breaks: ChainBreak[] = [];
  events = 0;
  streams = 0;
  originChained = 0;
  #stream: string | undefined;
  #revision = -1;
  #link: Uint8Array = CHAIN_GENESIS;
  #siteBroken = false;
  /** Per origin of the current stream: the last originSeq and digest seen. */
  #origins = new Map<string, { originSeq: number; digest: Uint8Array; broken: boolean }>();

  add(walked: WalkedEvent): void {
    const { event } = walked;
    if (event.stream !== this.#stream) this.#startStream(event.stream);
    this.events++;
    const data = walked.data ?? encodeEventData(event.type, event.data);
    const meta = walked.meta ?? encodeMeta(event.meta);
    const digest = eventDigest(event, data, meta);
    if (!this.#siteBroken) {
      if (event.revision !== this.#revision + 1) {
        this.#siteBroken = true;
        this.breaks.push(siteBreak(event.stream, event.revision, event.id, this.#revision + 1));
      } else if (walked.prevHash !== undefined && !Buffer.from(walked.prevHash).equals(Buffer.from(this.#link))) {
        this.#siteBroken = true;
        this.breaks.push(siteBreak(event.stream, event.revision, event.id, undefined));
      }
    }
    this.#revision = event.revision;
    this.#link = siteChainLink(walked.prevHash ?? this.#link, event.stream, event.revision, digest);

    const originPrev = originPrevOf(event.meta);
    const before = this.#origins.get(event.origin);
    if (originPrev !== undefined) {
      this.originChained++;
      if (before?.broken !== true) {
        const missing = before === undefined ? event.originSeq !== 1 : event.originSeq !== before.originSeq + 1;
        const expected = before === undefined ? CHAIN_GENESIS : before.digest;
        if (missing || !Buffer.from(originPrev).equals(Buffer.from(expected))) {
          this.breaks.push({
            stream: event.stream,
            reason: missing ? 'origin-missing' : 'origin-altered',
            revision: event.revision,
            eventId: event.id,
            origin: event.origin,
            originSeq: event.originSeq,
            message: missing
              ? `origin ${event.origin}: event ${event.id} (originSeq ${event.originSeq}) follows no event ${event.originSeq - 1} of its origin in this copy`
              : `origin ${event.origin}: event ${event.id} (originSeq ${event.originSeq}) names a predecessor whose digest differs: originSeq ${event.originSeq - 1} or this event was altered`,
          });
          this.#origins.set(event.origin, { originSeq: event.originSeq, digest, broken: true });
          return;
        }
      }
    }
    this.#origins.set(event.origin, { originSeq: event.originSeq, digest, broken: before?.broken ?? false });
  }

  /** Ends the current stream: its recorded head, if known, must be the last link. */
  endStream(recordedHead?: { readonly revision: number; readonly chain: Uint8Array }): void {
    if (this.#stream === undefined || recordedHead === undefined || this.#siteBroken) return;
    if (recordedHead.revision !== this.#revision || !Buffer.from(recordedHead.chain).equals(Buffer.from(this.#link))) {
      this.#siteBroken = true;
      this.breaks.push({
        stream: this.#stream,
        reason: recordedHead.revision > this.#revision ? 'missing' : 'head',
        revision: Math.min(this.#revision + 1, recordedHead.revision),
        eventId: undefined,
        message: `stream ${this.#stream}: the recorded head (revision ${recordedHead.revision}) does not match the last event held (revision ${this.#revision})`,
      });
    }
  }

  #startStream(stream: string): void {
    this.#stream = stream;
    this.streams++;
    this.#revision = -1;
    this.#link = CHAIN_GENESIS;
    this.#siteBroken = false;
    this.#origins = new Map();
  }
}
