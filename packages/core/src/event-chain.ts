/**
 * Tamper evidence (issue 8): two hash chains over encoded events.
 *
 * - Every event has a **digest**: `sha256(header ‖ data ‖ meta)` over the encoded envelope,
 *   where the header lists stream, id, origin, originSeq, hlc and type, and data's length.
 *   It leaves out what differs between sites (revision, position), so every member holding
 *   an event computes the same digest.
 * - The **origin chain** links the events one origin produced in a stream, in `originSeq`
 *   order, and travels inside the envelope: `meta.originPrev` (hex) of event n is the digest
 *   of event n - 1 (64 zeros for originSeq 1). Since meta is digested, each link covers the
 *   whole chain before it; a federation member verifies what it received.
 * - The **site chain** links every event of this site's copy of a stream in revision order,
 *   received events included: event r stores `prev(r) = link(r - 1)` with
 *   `link(r) = sha256(prev(r) ‖ "stream\nrevision\n" ‖ digest(r))` (32 zero bytes before
 *   revision 0). Editing or deleting a stored event breaks the link at that event, or the
 *   stream's recorded head for the last one.
 *
 * The headers are text with one field per line; every field is validated to hold no newline
 * (ids, site ids, stream names and types are restricted, numbers are decimal). The store's
 * verifier builds the same bytes in SQL, so the layout must never change (a new layout is a
 * new version).
 */
import * as crypto from 'node:crypto';
import type { EventType, HlcStamp } from './events.ts';
import { lowercaseHexDigit } from './hex-values.ts';

export const CHAIN_LINK_BYTES = 32;
/** `prev` of the first event of a chain. */
export const CHAIN_GENESIS: Uint8Array = new Uint8Array(CHAIN_LINK_BYTES);
export const CHAIN_GENESIS_HEX = '0'.repeat(CHAIN_LINK_BYTES * 2);
/** The meta key that carries the origin chain. */
export const ORIGIN_PREV_META_KEY = 'originPrev';
/** A link's length in lower-case hex (`meta.originPrev`). */
const HEX_LINK_CHARS = 64;

/** The envelope fields an event digest covers (beyond the encoded data and meta). */
export interface ChainedEnvelope {
  readonly stream: string;
  readonly id: string;
  readonly origin: string;
  readonly originSeq: number;
  readonly hlc: HlcStamp;
  readonly type: EventType | string;
}

export function eventDigestHeader(event: ChainedEnvelope, dataBytes: number): string {
  return `${event.stream}\n${event.id}\n${event.origin}\n${event.originSeq}\n${event.hlc.wall}\n${event.hlc.logical}\n${event.type}\n${dataBytes}\n`;
}

const oneShotHash = typeof crypto.hash === 'function' ? (crypto.hash as (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer) : undefined;

/**
 * sha256 of `before` ‖ UTF-8 of `text` ‖ each of `after`, by one call of `crypto.hash` where
 * Node has it (since 20.12: no Hash object and three updates per digest — a receiver computes
 * two digests per event, and this took a third of their time); else by a Hash.
 */
function sha256(before: Uint8Array | undefined, text: string, after: readonly Uint8Array[]): Buffer {
  if (oneShotHash === undefined) {
    const hash = crypto.createHash('sha256');
    if (before !== undefined) hash.update(before);
    hash.update(text);
    for (const part of after) hash.update(part);
    return hash.digest();
  }
  let bytes = (before?.byteLength ?? 0) + 3 * text.length;
  for (const part of after) bytes += part.byteLength;
  const buffer = Buffer.allocUnsafe(bytes);
  let at = 0;
  if (before !== undefined) {
    buffer.set(before, 0);
    at = before.byteLength;
  }
  at += buffer.write(text, at, 'utf8');
  for (const part of after) {
    buffer.set(part, at);
    at += part.byteLength;
  }
  return oneShotHash('sha256', buffer.subarray(0, at), 'buffer');
}

/** The digest of an encoded event: its origin-chain link, and what its site-chain link covers. */
export function eventDigest(event: ChainedEnvelope, data: Uint8Array, meta: Uint8Array): Buffer {
  return sha256(undefined, eventDigestHeader(event, data.byteLength), [data, meta]);
}

/** The site-chain link of the event at `revision` of `stream`, whose predecessor's link is `prev`. */
export function siteChainLink(prev: Uint8Array, stream: string, revision: number, digest: Uint8Array): Buffer {
  return sha256(prev, `${stream}\n${revision}\n`, [digest]);
}

/** `meta.originPrev` as bytes; undefined when absent (events from before chaining) or malformed. */
export function originPrevOf(meta: { readonly originPrev?: unknown }): Uint8Array | undefined {
  const value = meta.originPrev;
  if (typeof value !== 'string' || value.length !== HEX_LINK_CHARS) return undefined;
  // Parsed digit by digit (exactly /^[0-9a-f]{64}$/, no upper case): a receiver parses one
  // per event, and the regular expression and Buffer.from(hex) took a microsecond and more.
  const link = Buffer.allocUnsafe(HEX_LINK_CHARS / 2);
  for (let index = 0; index < HEX_LINK_CHARS / 2; index++) {
    const high = lowercaseHexDigit(value.charCodeAt(2 * index));
    const low = lowercaseHexDigit(value.charCodeAt(2 * index + 1));
    if (high < 0 || low < 0) return undefined;
    link[index] = (high << 4) | low;
  }
  return link;
}

export function chainLinkHex(link: Uint8Array): string {
  return Buffer.from(link.buffer, link.byteOffset, link.byteLength).toString('hex');
}

/**
 * The path an event is about, for history (issue 8): the artifact path, the folder of a
 * folder delete, '' (the repository root) for a repository's creation, configuration changes
 * (a virtual's members, patterns: what every path's reads went through) and deletion, and
 * undefined for events about no path (system events).
 */
export function eventTargetPath(event: { readonly type: string; readonly data: unknown }): string | undefined {
  const data = event.data as Record<string, unknown>;
  switch (event.type) {
    case 'ArtifactDeployed':
    case 'RemoteArtifactCached':
    case 'ArtifactDeleted':
    case 'PropertiesSet':
    case 'PropertiesRemoved':
    case 'ArtifactBinaryCollected':
      return typeof data['path'] === 'string' ? data['path'] : undefined;
    case 'FolderDeleted':
      return typeof data['prefix'] === 'string' ? data['prefix'] : undefined;
    case 'RepositoryCreated':
    case 'RepositoryConfigChanged':
    case 'RepositoryDeleted':
      return '';
    default:
      return undefined;
  }
}

/** The paths whose events make up the history of `path`: itself, each folder above it, and the root. */
export function historyPathsOf(path: string): string[] {
  const paths = [path];
  let end = path.lastIndexOf('/');
  while (end > 0) {
    paths.push(path.slice(0, end));
    end = path.lastIndexOf('/', end - 1);
  }
  if (path !== '') paths.push('');
  return paths;
}
