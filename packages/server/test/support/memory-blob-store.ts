import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { StrataError } from '@strata/core';
import type { BlobLease, BlobStore, ByteRange, PutBlobOptions } from '@strata/store';

/** A test double of the blob store: buffers in memory, same checks and errors as the real one. */
export class MemoryBlobStore implements BlobStore {
  readonly blobs = new Map<string, Buffer>();

  async put(source: Readable | AsyncIterable<Uint8Array>, options: PutBlobOptions = {}): Promise<BlobLease> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of source) {
      options.signal?.throwIfAborted();
      chunks.push(Buffer.from(chunk));
      size += chunk.length;
      if (options.sizeBytesMax !== undefined && size > options.sizeBytesMax) throw new StrataError('STRATA_ERR_BLOB_TOO_LARGE');
    }
    options.signal?.throwIfAborted();
    if (options.expectedSize !== undefined && size !== options.expectedSize) throw new StrataError('STRATA_ERR_BLOB_INCOMPLETE');
    const bytes = Buffer.concat(chunks);
    const info = {
      sha256: createHash('sha256').update(bytes).digest('hex'),
      sha1: createHash('sha1').update(bytes).digest('hex'),
      md5: createHash('md5').update(bytes).digest('hex'),
      size,
    };
    for (const key of ['sha256', 'sha1', 'md5'] as const) {
      const expected = options.expected?.[key];
      if (expected !== undefined && expected.toLowerCase() !== info[key]) throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', `${key} mismatch`);
    }
    this.blobs.set(info.sha256, bytes);
    return { ...info, release() {} };
  }
  async stat(sha256: string) {
    const bytes = this.blobs.get(sha256);
    return bytes === undefined ? undefined : { size: bytes.length };
  }
  async lease(sha256: string): Promise<BlobLease | undefined> {
    const bytes = this.blobs.get(sha256);
    if (bytes === undefined) return undefined;
    return {
      sha256,
      sha1: createHash('sha1').update(bytes).digest('hex'),
      md5: createHash('md5').update(bytes).digest('hex'),
      size: bytes.length,
      release() {},
    };
  }
  async createReadStream(sha256: string, range?: ByteRange): Promise<Readable> {
    const bytes = await this.read(sha256);
    return Readable.from([range === undefined ? bytes : bytes.subarray(range.start, range.end + 1)]);
  }
  async read(sha256: string): Promise<Buffer> {
    const bytes = this.blobs.get(sha256);
    if (bytes === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND');
    return bytes;
  }
  async collectGarbage() {
    return { removed: [] };
  }
}
