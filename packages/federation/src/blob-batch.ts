/**
 * Several binaries per request (federation's binary pulls): a member that received deploys
 * asks the deploying member for their binaries by sha256, many at once, instead of one signed
 * request (and, on the answering side, one stat and one read) per binary.
 *
 * Request body: JSON `{"sha256":[…]}` — 1 to blobBatchShasMax distinct lower-case hex
 * sha256s; signed like every peer request (peer-request-signing.ts). Reply body (signed,
 * bound to the request's nonce): `[u32 header length][header JSON][bytes…]`, the header
 * `{"blobs":[{sha256, status, size?}]}` with one entry per requested sha256 in the request's
 * order — `found` (its `size` bytes follow, in that order), `missing` (not stored there),
 * `too-large` (more than blobBatchBlobBytesMax: fetch it alone, streamed), `deferred` (the
 * reply's byte budget was spent: ask again).
 *
 * Anything else is refused whole, with a typed error: a malformed request
 * (STRATA_ERR_FEDERATION_MALFORMED, HTTP 400, nothing read), a malformed reply, and a reply
 * in which any binary's bytes do not match its sha256 (STRATA_ERR_BLOB_CHECKSUM_MISMATCH:
 * nothing of it is stored).
 */
import { createHash } from 'node:crypto';
import { StrataError } from '@strata/core';
import { federationError } from './federation-errors.ts';
import { decodeFramedHeader, encodeFramed } from './framed-message.ts';

/** Binaries asked for in one request at most. */
export const blobBatchShasMax = 128;
/** Larger binaries are not sent in a batch (`too-large`): the single-blob route streams them. */
export const blobBatchBlobBytesMax = 256 * 1024;
/** Bytes of binaries in one reply at most; the rest of the batch is `deferred`. */
export const blobBatchReplyBytesMax = 4 * 1024 * 1024;

export const BLOB_BATCH_STATUSES = ['found', 'missing', 'too-large', 'deferred'] as const;
export type BlobBatchStatus = (typeof BLOB_BATCH_STATUSES)[number];
const BLOB_BATCH_STATUS_SET: ReadonlySet<string> = new Set(BLOB_BATCH_STATUSES);

export type BlobBatchEntry =
  | { readonly sha256: string; readonly status: 'found'; readonly bytes: Uint8Array }
  | { readonly sha256: string; readonly status: 'missing' | 'deferred' }
  | { readonly sha256: string; readonly status: 'too-large'; readonly size: number };

const SHA256_HEX = /^[0-9a-f]{64}$/;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });
/** A header of blobBatchShasMax entries is about 12 KiB. */
const headerBytesMax = 64 * 1024;
const requestBytesMax = 16 * 1024;
/** A whole reply's bytes at most (header and binaries): what a client reads before refusing it. */
export const blobBatchReplyWireBytesMax = 4 + headerBytesMax + blobBatchReplyBytesMax;

function malformed(message: string): never {
  throw federationError('STRATA_ERR_FEDERATION_MALFORMED', message);
}

function checkShas(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > blobBatchShasMax) malformed(`${what} must list 1 to ${blobBatchShasMax} sha256s`);
  const seen = new Set<string>();
  for (const [index, sha256] of value.entries()) {
    if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) malformed(`${what}[${index}] must be a lower-case hex sha256`);
    if (seen.has(sha256)) malformed(`${what}[${index}] names ${sha256} twice`);
    seen.add(sha256);
  }
  return value as string[];
}

export function encodeBlobBatchRequest(sha256s: readonly string[]): Uint8Array {
  checkShas(sha256s, 'sha256');
  return textEncoder.encode(JSON.stringify({ sha256: sha256s }));
}

/** The sha256s a request asks for; STRATA_ERR_FEDERATION_MALFORMED for anything else. */
export function decodeBlobBatchRequest(bytes: Uint8Array): string[] {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength > requestBytesMax) malformed(`a blob batch request is at most ${requestBytesMax} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(textDecoder.decode(bytes));
  } catch {
    malformed('a blob batch request is JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value) || Object.keys(value).some((key) => key !== 'sha256')) {
    malformed('a blob batch request is an object with one field, sha256');
  }
  return checkShas((value as { sha256?: unknown }).sha256, 'sha256');
}

export function encodeBlobBatchReply(entries: readonly BlobBatchEntry[]): Uint8Array {
  const header = entries.map((entry) => {
    if (entry.status === 'found') {
      return { sha256: entry.sha256, status: entry.status, size: entry.bytes.byteLength };
    }
    return entry.status === 'too-large' ? { sha256: entry.sha256, status: entry.status, size: entry.size } : { sha256: entry.sha256, status: entry.status };
  });
  const bodies: Uint8Array[] = [];
  for (const entry of entries) if (entry.status === 'found') bodies.push(entry.bytes);
  return encodeFramed({ blobs: header }, bodies);
}

/**
 * The reply to a request for `requested`: one entry per requested sha256, in order, every
 * found binary's bytes checked against its sha256. Refused whole (nothing of it to be stored)
 * when malformed (STRATA_ERR_FEDERATION_MALFORMED) or when any bytes do not match
 * (STRATA_ERR_BLOB_CHECKSUM_MISMATCH).
 */
export function decodeBlobBatchReply(bytes: Uint8Array, requested: readonly string[]): BlobBatchEntry[] {
  const { header, bodyStart } = decodeFramedHeader(bytes, { what: 'blob batch reply', headerBytesMax, malformed });
  const listed = (header as { blobs?: unknown } | null)?.blobs;
  if (!Array.isArray(listed) || listed.length !== requested.length) malformed(`blob batch reply must list the ${requested.length} binaries asked for`);
  let offset = bodyStart;
  let foundBytes = 0;
  const entries: BlobBatchEntry[] = [];
  for (const [index, value] of listed.entries()) {
    const entry = value as { sha256?: unknown; status?: unknown; size?: unknown } | null;
    if (typeof entry !== 'object' || entry === null || entry.sha256 !== requested[index]) malformed(`blob batch reply entry ${index} must name ${requested[index]}`);
    const { status, size } = entry;
    if (typeof status !== 'string' || !BLOB_BATCH_STATUS_SET.has(status)) malformed(`blob batch reply entry ${index} has an unknown status`);
    const sha256 = requested[index]!;
    if (status === 'missing' || status === 'deferred') {
      entries.push({ sha256, status });
      continue;
    }
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) malformed(`blob batch reply entry ${index} has no valid size`);
    if (status === 'too-large') {
      entries.push({ sha256, status, size });
      continue;
    }
    if (size > blobBatchBlobBytesMax || offset + size > bytes.byteLength) malformed(`blob batch reply entry ${index} size out of range`);
    foundBytes += size;
    if (foundBytes > blobBatchReplyBytesMax) malformed(`blob batch reply carries more than ${blobBatchReplyBytesMax} bytes`);
    const content = bytes.subarray(offset, offset + size);
    offset += size;
    const actual = createHash('sha256').update(content).digest('hex');
    if (actual !== sha256) {
      throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', `binary ${sha256} sent in a blob batch hashes to ${actual}: the whole reply is refused`, {
        algorithm: 'sha256',
        expected: sha256,
        actual,
      });
    }
    entries.push({ sha256, status: 'found', bytes: content });
  }
  if (offset !== bytes.byteLength) malformed('bytes left after the binaries of a blob batch reply');
  return entries;
}
