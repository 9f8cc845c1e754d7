import { PassThrough, pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import { StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import { fromRandomAccessReaderPromise, RandomAccessReader } from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { normalizeName } from './pypi-model.ts';

/** A wheel's METADATA is read up to this size (real ones are a few KiB; long descriptions reach hundreds). */
const metadataBytesMax = 4 * 1024 * 1024;
/** Central-directory entries looked at before giving up on finding `*.dist-info/METADATA`. */
const wheelEntriesMax = 500_000;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

/** A stored blob as yauzl's random-access source: only the central directory and METADATA are read. */
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
    const onEntry = (entry: Entry) => settle(() => resolve(entry));
    const onEnd = () => settle(() => resolve(undefined));
    const onError = (error: Error) => settle(() => reject(error));
    const settle = (then: () => void) => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
      then();
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

/**
 * The text of a stored wheel's `{name}-{version}.dist-info/METADATA` (PEP 427). Refuses (400) a
 * wheel that is not a readable zip, has no such file, or has several `.dist-info` folders.
 */
export async function readWheelMetadata(blobs: BlobStore, sha256: string, size: number, fileName: string): Promise<string> {
  let zip: ZipFile;
  try {
    zip = await fromRandomAccessReaderPromise(new BlobReader(blobs, sha256), size, { lazyEntries: true, autoClose: false });
  } catch (error) {
    throw invalid(`'${fileName}' is not a readable zip archive (${error instanceof Error ? error.message : String(error)})`);
  }
  try {
    const found: Entry[] = [];
    for (let index = 0; index < wheelEntriesMax; index++) {
      let entry: Entry | undefined;
      try {
        entry = await nextEntry(zip);
      } catch (error) {
        throw invalid(`'${fileName}' is not a readable zip archive (${error instanceof Error ? error.message : String(error)})`);
      }
      if (entry === undefined) break;
      if (/^[^/]+\.dist-info\/METADATA$/.test(entry.fileName)) found.push(entry);
    }
    if (found.length === 0) throw invalid(`wheel '${fileName}' has no .dist-info/METADATA`);
    if (found.length > 1) throw invalid(`wheel '${fileName}' has ${found.length} .dist-info folders`);
    const entry = found[0]!;
    if (entry.uncompressedSize > metadataBytesMax) throw invalid(`wheel '${fileName}' has a METADATA larger than ${metadataBytesMax} bytes`);
    const chunks: Buffer[] = [];
    let read = 0;
    try {
      for await (const chunk of await zip.openReadStreamPromise(entry)) {
        read += (chunk as Buffer).length;
        if (read > metadataBytesMax) throw invalid(`wheel '${fileName}' has a METADATA larger than ${metadataBytesMax} bytes`);
        chunks.push(chunk as Buffer);
      }
    } catch (error) {
      if (error instanceof StrataError) throw error;
      throw invalid(`the METADATA of wheel '${fileName}' cannot be read (${error instanceof Error ? error.message : String(error)})`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    zip.close();
  }
}

/** `Name` and `Version` of core metadata (RFC 822 style headers, up to the first blank line). */
export function coreMetadataFields(text: string): { name: string | undefined; version: string | undefined } {
  let name: string | undefined;
  let version: string | undefined;
  for (const line of text.split(/\r?\n/)) {
    if (line === '') break;
    const match = /^([A-Za-z0-9-]+):[ \t]*(.*?)\s*$/.exec(line);
    if (match === null) continue;
    const field = match[1]!.toLowerCase();
    if (field === 'name' && name === undefined) name = match[2];
    else if (field === 'version' && version === undefined) version = match[2];
  }
  return { name, version };
}

/** Comparable form of a version (case, leading v, separators), as for file names. */
function versionKey(version: string): string {
  return version.toLowerCase().replace(/^v/, '').replace(/[-_]/g, '.');
}

/**
 * Checks a wheel's own METADATA against what it is uploaded as: the same project (normalised)
 * and version, or 400 STRATA_ERR_PACKAGE_METADATA_MISMATCH.
 */
export function checkCoreMetadata(text: string, fileName: string, name: string, version: string): void {
  const fields = coreMetadataFields(text);
  if (fields.name === undefined || fields.version === undefined) throw invalid(`the METADATA of '${fileName}' names no Name or Version`);
  if (normalizeName(fields.name) !== normalizeName(name)) {
    throw new StrataError('STRATA_ERR_PACKAGE_METADATA_MISMATCH', `the METADATA of '${fileName}' names project '${fields.name}', not '${name}'`);
  }
  if (versionKey(fields.version) !== versionKey(version)) {
    throw new StrataError('STRATA_ERR_PACKAGE_METADATA_MISMATCH', `the METADATA of '${fileName}' names version '${fields.version}', not '${version}'`);
  }
}
