import { createGunzip } from 'node:zlib';
import { StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import { readZipEntries } from '../zip-entry.ts';

/** An sdist's PKG-INFO is read up to this size (real ones are a few KiB; long descriptions reach hundreds). */
const pkgInfoBytesMax = 4 * 1024 * 1024;
/** A pax extended header or GNU long name is read up to this size. */
const tarHeaderDataBytesMax = 1024 * 1024;
/** Tar entries looked at before giving up on finding PKG-INFO. */
const tarEntriesMax = 500_000;
const TAR_BLOCK_BYTES = 512;

/** `{root}/PKG-INFO` at the top of an sdist (PEP 625 / the sdist format: `{name}-{version}/PKG-INFO`). */
const PKG_INFO = /^[^/]+\/PKG-INFO$/;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

/** Reads exact byte counts from an async stream of chunks (a gunzipped tar). */
class ChunkReader {
  readonly #source: AsyncIterator<Buffer>;
  #chunks: Buffer[] = [];
  #buffered = 0;
  #ended = false;
  constructor(source: AsyncIterable<Buffer>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  async #fill(bytes: number): Promise<boolean> {
    while (this.#buffered < bytes && !this.#ended) {
      const next = await this.#source.next();
      if (next.done === true) this.#ended = true;
      else {
        this.#chunks.push(next.value);
        this.#buffered += next.value.length;
      }
    }
    return this.#buffered >= bytes;
  }

  /** Exactly `bytes` bytes, or undefined at the end of the stream. */
  async read(bytes: number): Promise<Buffer | undefined> {
    if (!(await this.#fill(bytes))) return undefined;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    const out = all.subarray(0, bytes);
    const rest = all.subarray(bytes);
    this.#chunks = rest.length === 0 ? [] : [rest];
    this.#buffered = rest.length;
    return out;
  }

  /** Skips `bytes` bytes without keeping them; false when the stream ended first. */
  async skip(bytes: number): Promise<boolean> {
    let left = bytes;
    while (left > 0) {
      if (this.#buffered === 0 && !(await this.#fill(1))) return false;
      const head = this.#chunks[0]!;
      if (head.length <= left) {
        left -= head.length;
        this.#buffered -= head.length;
        this.#chunks.shift();
      } else {
        this.#chunks[0] = head.subarray(left);
        this.#buffered -= left;
        left = 0;
      }
    }
    return true;
  }
}

function nulTerminated(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return (end < 0 ? bytes : bytes.subarray(0, end)).toString('utf8');
}

/** A tar header's numeric field: octal text, or base-256 when the high bit of the first byte is set. */
function tarNumber(field: Buffer): number {
  if ((field[0]! & 0x80) !== 0) {
    let value = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = nulTerminated(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`bad number field '${text}'`);
  return Number.parseInt(text, 8);
}

/** The `path` record of a pax extended header (`{length} path={value}\n` records). */
function paxPath(data: Buffer): string | undefined {
  let path: string | undefined;
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space < 0) break;
    const length = Number(data.subarray(offset, space).toString('latin1'));
    if (!Number.isInteger(length) || length <= 0 || offset + length > data.length) break;
    const record = data.subarray(space + 1, offset + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0 && record.slice(0, equals) === 'path') path = record.slice(equals + 1);
    offset += length;
  }
  return path;
}

/**
 * The bytes of the first top-level `{root}/PKG-INFO` of a gzipped tar, read as a stream (the
 * archive is decompressed only up to that entry), or undefined when the archive has none.
 * Understands ustar prefixes, pax `path` records and GNU long names.
 */
async function tarGzPkgInfo(source: AsyncIterable<Buffer>): Promise<Buffer | undefined> {
  const reader = new ChunkReader(source);
  let longName: string | undefined;
  for (let index = 0; index < tarEntriesMax; index++) {
    const header = await reader.read(TAR_BLOCK_BYTES);
    if (header === undefined || header.every((byte) => byte === 0)) return undefined;
    const size = tarNumber(header.subarray(124, 136));
    const type = String.fromCharCode(header[156]!);
    const padded = Math.ceil(size / TAR_BLOCK_BYTES) * TAR_BLOCK_BYTES;
    if (type === 'L' || type === 'x') {
      if (size > tarHeaderDataBytesMax) throw new Error(`a ${type === 'L' ? 'long name' : 'pax header'} of ${size} bytes`);
      const data = await reader.read(padded);
      if (data === undefined) throw new Error('the archive ends inside an entry');
      const named = type === 'L' ? nulTerminated(data.subarray(0, size)) : paxPath(data.subarray(0, size));
      if (named !== undefined) longName = named;
      continue;
    }
    let name = nulTerminated(header.subarray(0, 100));
    if (header.subarray(257, 262).toString('latin1') === 'ustar') {
      const prefix = nulTerminated(header.subarray(345, 500));
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    if (longName !== undefined) name = longName;
    longName = undefined;
    name = name.replace(/^(\.\/)+/, '');
    if ((type === '0' || type === '\0') && PKG_INFO.test(name)) {
      if (size > pkgInfoBytesMax) throw new Error(`'${name}' is larger than ${pkgInfoBytesMax} bytes`);
      const data = await reader.read(padded);
      if (data === undefined) throw new Error('the archive ends inside an entry');
      return data.subarray(0, size);
    }
    if (!(await reader.skip(padded))) throw new Error('the archive ends inside an entry');
  }
  return undefined;
}

/**
 * The PKG-INFO of a stored sdist (`.tar.gz` or `.zip`): `{name}-{version}/PKG-INFO`, the core
 * metadata the sdist format requires. Refuses (400) an archive that cannot be read or has no
 * PKG-INFO at its top. A `.tar.gz` is decompressed as a stream up to that entry; a `.zip`
 * is read by its central directory.
 */
export async function readSdistPkgInfo(blobs: BlobStore, sha256: string, size: number, fileName: string): Promise<Buffer> {
  if (fileName.endsWith('.zip')) {
    const found = await readZipEntries(blobs, { sha256, size }, `sdist '${fileName}'`, (name) => PKG_INFO.test(name), pkgInfoBytesMax);
    if (found.length === 0) throw invalid(`sdist '${fileName}' has no PKG-INFO`);
    if (found.length > 1) throw invalid(`sdist '${fileName}' has ${found.length} top-level folders with a PKG-INFO`);
    return found[0]!.bytes;
  }
  const stream = await blobs.createReadStream(sha256);
  const gunzip = createGunzip();
  stream.on('error', (error) => gunzip.destroy(error));
  stream.pipe(gunzip);
  let found: Buffer | undefined;
  try {
    found = await tarGzPkgInfo(gunzip);
  } catch (error) {
    throw invalid(`sdist '${fileName}' is not a readable .tar.gz archive (${error instanceof Error ? error.message : String(error)})`);
  } finally {
    stream.destroy();
    gunzip.destroy();
  }
  if (found === undefined) throw invalid(`sdist '${fileName}' has no PKG-INFO`);
  return found;
}
