/**
 * What an append adds to each new event for tamper evidence (core's event-chain.ts): its
 * history target, its site-chain `prev`, and — for an event this site produced that does not
 * carry one yet — its origin chain in `meta.originPrev`. Both event stores call this inside
 * their append, in revision order, with the stream's chain heads.
 */
import {
  CHAIN_GENESIS,
  chainLinkHex,
  encodeMeta,
  eventTargetPath,
  eventDigest,
  originPrevOf,
  siteChainLink,
  type NewEvent,
} from '@strata/core';
import type { PreparedEvent } from './append-preparation.ts';

export interface StreamChainHeads {
  /** Site-chain link of the stream's last event (CHAIN_GENESIS when empty). */
  head: Uint8Array;
  /** Origin-chain link of the last event this site produced in the stream; undefined: none. */
  originHead: Uint8Array | undefined;
}

export interface ChainedEvent {
  /** The event as stored (meta may have gained `originPrev`). */
  readonly event: NewEvent;
  readonly data: Uint8Array;
  readonly meta: Uint8Array;
  readonly target: string | null;
  readonly prevHash: Uint8Array;
  readonly originPrev: Uint8Array | null;
  readonly digest: Uint8Array;
}

/** Chains one new event at `revision`; advances `heads`. `siteId` undefined: never adds an origin chain. */
export function chainEvent(stream: string, revision: number, prepared: PreparedEvent, heads: StreamChainHeads, siteId: string | undefined): ChainedEvent {
  let event = prepared.event;
  let meta = prepared.meta;
  let originPrev = prepared.originPrev !== undefined ? prepared.originPrev : (originPrevOf(event.meta) ?? null);
  const local = siteId !== undefined && event.origin === siteId;
  if (local && event.meta.originPrev === undefined) {
    const prev = heads.originHead ?? CHAIN_GENESIS;
    event = { ...event, meta: { ...event.meta, originPrev: chainLinkHex(prev) } } as NewEvent;
    meta = encodeMeta(event.meta);
    originPrev = prev;
  }
  const digest =
    prepared.digest !== undefined && meta === prepared.meta
      ? prepared.digest
      : eventDigest({ stream, id: event.id, origin: event.origin, originSeq: event.originSeq, hlc: event.hlc, type: event.type }, prepared.data, meta);
  if (local) heads.originHead = digest;
  const prevHash = heads.head;
  heads.head = siteChainLink(prevHash, stream, revision, digest);
  return { event, data: prepared.data, meta, target: eventTargetPath(event) ?? null, prevHash, originPrev, digest };
}
