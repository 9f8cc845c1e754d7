/**
 * The frame of the peer messages that carry bytes beside their JSON: `[u32 header length]
 * [header JSON][body bytes…]` — a push with attachments (federation-messages.ts) and a blob
 * batch reply (blob-batch.ts).
 */
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true });

/** The header as JSON, then the bodies one after the other. */
export function encodeFramed(header: unknown, bodies: readonly Uint8Array[]): Uint8Array {
  const headerBytes = textEncoder.encode(JSON.stringify(header));
  let bodyBytes = 0;
  for (const body of bodies) bodyBytes += body.byteLength;
  const bytes = new Uint8Array(4 + headerBytes.byteLength + bodyBytes);
  new DataView(bytes.buffer).setUint32(0, headerBytes.byteLength);
  bytes.set(headerBytes, 4);
  let offset = 4 + headerBytes.byteLength;
  for (const body of bodies) {
    bytes.set(body, offset);
    offset += body.byteLength;
  }
  return bytes;
}

/**
 * The parsed header and where the bodies start; `malformed` is called (and throws) for a
 * message shorter than its header, a header length out of range, or a header that is not JSON.
 */
export function decodeFramedHeader(
  bytes: Uint8Array,
  options: { readonly what: string; readonly headerBytesMax: number; readonly malformed: (message: string) => never },
): { readonly header: unknown; readonly bodyStart: number } {
  const { what, headerBytesMax, malformed } = options;
  if (!(bytes instanceof Uint8Array) || bytes.byteLength < 4) malformed(`${what} is shorter than its header`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0);
  if (headerLength > headerBytesMax || 4 + headerLength > bytes.byteLength) malformed(`${what} header length out of range`);
  let header: unknown;
  try {
    header = JSON.parse(textDecoder.decode(bytes.subarray(4, 4 + headerLength)));
  } catch {
    malformed(`${what} header is not JSON`);
  }
  return { header, bodyStart: 4 + headerLength };
}
