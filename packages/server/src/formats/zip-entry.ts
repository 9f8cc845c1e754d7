import { PassThrough, pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import { fromRandomAccessReaderPromise, RandomAccessReader } from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';

/** Central-directory entries looked at before giving up on an archive. */
const zipEntriesMax = 500_000;

/** A stored blob as yauzl's random-access source: only the central directory and the entries read are fetched. */
class BlobReader extends RandomAccessReader {
  readonly #blobs: BlobStore;
  readonly #sha256: string;
  constructor(blobs: BlobStore, sha256: string) {
    super();
    this.#blobs = blobs;
    this.#sha256 = sha256;
  }
  override _readStreamForRange(start: number, end: number): Readable {
    const out = new PassThrough();
    if (end <= start) {
      out.end();
      return out;
    }
    this.#blobs.createReadStream(this.#sha256, { start, end: end - 1 }).then(
      // pipeline: a destination yauzl closes early also closes the blob's file.
      (stream) => pipeline(stream, out, () => undefined),
      (error: unknown) => out.destroy(error instanceof Error ? error : new Error(String(error))),
    );
    return out;
  }
}

/** The next entry of a zip opened with lazyEntries, or undefined at the end. */
function nextEntry(zip: ZipFile): Promise<Entry | undefined> {
  return new Promise((resolve, reject) => {
    const settle = (then: () => void) => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
      then();
    };
    const onEntry = (entry: Entry) => settle(() => resolve(entry));
    const onEnd = () => settle(() => resolve(undefined));
    const onError = (error: Error) => settle(() => reject(error));
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

function unreadable(what: string, error: unknown): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', `${what} is not a readable zip archive (${error instanceof Error ? error.message : String(error)})`);
}

/**
 * The entries of a stored zip (a wheel, a jar) whose names match, read without loading the
 * archive: yauzl reads the central directory and those entries by ranged reads of the blob.
 * Throws 400 STRATA_ERR_PACKAGE_INVALID for an archive that cannot be read, or an entry above
 * `entryBytesMax`.
 */
export async function readZipEntries(
  blobs: BlobStore,
  blob: { readonly sha256: string; readonly size: number },
  what: string,
  matches: (name: string) => boolean,
  entryBytesMax: number,
): Promise<{ name: string; bytes: Buffer }[]> {
  let zip: ZipFile;
  try {
    zip = await fromRandomAccessReaderPromise(new BlobReader(blobs, blob.sha256), blob.size, { lazyEntries: true, autoClose: false });
  } catch (error) {
    throw unreadable(what, error);
  }
  try {
    const found: Entry[] = [];
    for (let index = 0; index < zipEntriesMax; index++) {
      let entry: Entry | undefined;
      try {
        entry = await nextEntry(zip);
      } catch (error) {
        throw unreadable(what, error);
      }
      if (entry === undefined) break;
      if (matches(entry.fileName)) found.push(entry);
    }
    const read: { name: string; bytes: Buffer }[] = [];
    for (const entry of found) {
      const tooLarge = () => new StrataError('STRATA_ERR_PACKAGE_INVALID', `${what}: '${entry.fileName}' is larger than ${entryBytesMax} bytes`);
      if (entry.uncompressedSize > entryBytesMax) throw tooLarge();
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of await zip.openReadStreamPromise(entry)) {
          size += (chunk as Buffer).length;
          if (size > entryBytesMax) throw tooLarge();
          chunks.push(chunk as Buffer);
        }
      } catch (error) {
        if (error instanceof StrataError) throw error;
        throw new StrataError('STRATA_ERR_PACKAGE_INVALID', `${what}: '${entry.fileName}' cannot be read (${error instanceof Error ? error.message : String(error)})`);
      }
      read.push({ name: entry.fileName, bytes: Buffer.concat(chunks) });
    }
    return read;
  } finally {
    zip.close();
  }
}
