import { StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import { readZipEntries } from '../zip-entry.ts';
import { normalizeName } from './pypi-model.ts';

/** A wheel's METADATA is read up to this size (real ones are a few KiB; long descriptions reach hundreds). */
const metadataBytesMax = 4 * 1024 * 1024;

function invalid(message: string): StrataError {
  return new StrataError('STRATA_ERR_PACKAGE_INVALID', message);
}

/**
 * The text of a stored wheel's `{name}-{version}.dist-info/METADATA` (PEP 427). Refuses (400) a
 * wheel that is not a readable zip, has no such file, or has several `.dist-info` folders.
 */
export async function readWheelMetadata(blobs: BlobStore, sha256: string, size: number, fileName: string): Promise<Buffer> {
  const found = await readZipEntries(blobs, { sha256, size }, `'${fileName}'`, (name) => /^[^/]+\.dist-info\/METADATA$/.test(name), metadataBytesMax);
  if (found.length === 0) throw invalid(`wheel '${fileName}' has no .dist-info/METADATA`);
  if (found.length > 1) throw invalid(`wheel '${fileName}' has ${found.length} .dist-info folders`);
  return found[0]!.bytes;
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
 * Checks a distribution's own core metadata (a wheel's METADATA, an sdist's PKG-INFO: `what`)
 * against what it is uploaded as: the same project (normalised) and version, or 400
 * STRATA_ERR_PACKAGE_METADATA_MISMATCH.
 */
export function checkCoreMetadata(text: string, fileName: string, name: string, version: string, what = 'METADATA'): void {
  const fields = coreMetadataFields(text);
  if (fields.name === undefined || fields.version === undefined) throw invalid(`the ${what} of '${fileName}' names no Name or Version`);
  if (normalizeName(fields.name) !== normalizeName(name)) {
    throw new StrataError('STRATA_ERR_PACKAGE_METADATA_MISMATCH', `the ${what} of '${fileName}' names project '${fields.name}', not '${name}'`);
  }
  if (versionKey(fields.version) !== versionKey(version)) {
    throw new StrataError('STRATA_ERR_PACKAGE_METADATA_MISMATCH', `the ${what} of '${fileName}' names version '${fields.version}', not '${version}'`);
  }
}
