import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { blake2b } from '@noble/hashes/blake2.js';
import { isStrataError, repositoryStream, StrataError } from '@strata/core';
import type { EventMeta } from '@strata/core';
import type { BlobLease, BlobStore } from '@strata/store';
import { checkDeployable } from '../../artifacts/artifact-decider.ts';
import type { MetadataCache } from '../../artifacts/hot-caches.ts';
import type { ArtifactReader, FileItem } from '../../ports.ts';
import { repositoryNotFound } from '../../repositories/repository-decider.ts';
import type { RepositoryStreamState } from '../../repositories/repository-stream.ts';
import type { StreamWriter } from '../../stream-writer.ts';
import { checkDistributionContent, checkDistributionFile, checkProjectName, checkVersion, normalizeName, PYPI_PROPERTY } from './pypi-model.ts';
import type { IndexFile } from './pypi-model.ts';
import { checkCoreMetadata, readWheelMetadata } from './wheel-metadata.ts';
import { readSdistPkgInfo } from './sdist-metadata.ts';
import { BoundedLru } from '../../auth/bounded-lru.ts';

/** Wheel METADATA files kept in memory for PEP 658 requests (by wheel sha256: never stale). */
const coreMetadataCachedMax = 1_000;
/** A METADATA larger than this is served but not kept in memory. */
const coreMetadataCachedBytesMax = 256 * 1024;

/** An upload's stored bytes and the digest the blob store does not compute. */
export interface StoredUpload {
  readonly lease: BlobLease;
  /** BLAKE2b-256, hex (twine's blake2_256_digest). */
  readonly blake2_256: string;
}

/** The form fields of a twine upload this server reads (all strings). */
export type UploadFields = Readonly<Record<string, string>>;

export interface StoredDistribution {
  readonly file: FileItem;
  readonly fileName: string;
  readonly requiresPython: string | undefined;
  /** A wheel's METADATA sha256 recorded at upload (PEP 658); absent for sdists. */
  readonly coreMetadataSha256: string | undefined;
}

/** A file as an index page lists it: its path in the repository serving it, and what the page says. */
export interface IndexedDistribution {
  readonly path: string;
  readonly fileName: string;
  readonly sha256: string | undefined;
  readonly requiresPython: string | undefined;
  readonly yanked?: string | true;
  readonly coreMetadataSha256?: string;
}

function field(fields: UploadFields, name: string): string | undefined {
  const value = fields[name];
  return value === undefined || value === '' ? undefined : value;
}

/**
 * PyPI distributions in a repository: twine uploads (checked against their form metadata and
 * digests, one ArtifactDeployed each) and the simple index computed from the artifact tree.
 */
export class PypiService {
  readonly #streams: StreamWriter<RepositoryStreamState>;
  readonly #blobs: BlobStore;
  readonly #artifacts: ArtifactReader;
  readonly #cache: MetadataCache;
  readonly #listEntriesMax: number;
  readonly #coreMetadata = new BoundedLru<string, Buffer>(coreMetadataCachedMax);

  constructor(options: { streams: StreamWriter<RepositoryStreamState>; blobs: BlobStore; artifacts: ArtifactReader; cache: MetadataCache; listEntriesMax: number }) {
    this.#streams = options.streams;
    this.#blobs = options.blobs;
    this.#artifacts = options.artifacts;
    this.#cache = options.cache;
    this.#listEntriesMax = options.listEntriesMax;
  }

  /** Checks the form fields that must precede the file (so a bad upload is refused before its bytes are stored). */
  checkUploadFields(fields: UploadFields, fileName: string): { name: string; version: string; path: string } {
    const action = field(fields, ':action');
    if (action !== 'file_upload') throw new StrataError('STRATA_ERR_PACKAGE_INVALID', `unsupported :action '${action ?? ''}' (only file_upload)`);
    const name = field(fields, 'name');
    const version = field(fields, 'version');
    if (name === undefined || version === undefined) throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'an upload names the project (name) and its version');
    checkProjectName(name);
    checkVersion(version);
    checkDistributionFile(fileName, name, version, field(fields, 'filetype') ?? '');
    if (field(fields, 'sha256_digest') === undefined && field(fields, 'md5_digest') === undefined) {
      throw new StrataError('STRATA_ERR_PACKAGE_INVALID', 'an upload declares sha256_digest (or md5_digest)');
    }
    return { name, version, path: `${normalizeName(name)}/${version}/${fileName}` };
  }

  /**
   * Stores an upload's bytes (before its form is complete: fields may follow the file), and
   * computes their BLAKE2b-256 on the way (twine declares it; the blob store computes the rest).
   */
  async store(repo: string, content: Readable, uploadBytesMax: number): Promise<StoredUpload> {
    // The stream's next round may wait briefly for this upload (see roundLingerMs).
    const queued = this.#streams.announce(repositoryStream(repo));
    const blake2 = blake2b.create({ dkLen: 32 });
    async function* hashed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      for await (const chunk of source) {
        blake2.update(chunk);
        yield chunk;
      }
    }
    try {
      const lease = await this.#blobs.put(hashed(content), { sizeBytesMax: uploadBytesMax });
      return { lease, blake2_256: Buffer.from(blake2.digest()).toString('hex') };
    } finally {
      queued();
    }
  }

  /**
   * Records an uploaded distribution whose bytes are stored: checks the form (name, version,
   * file name and type, digests, zip/gzip content), then appends one ArtifactDeployed with the
   * metadata as properties. A refused upload appends nothing.
   */
  async upload(repo: string, fields: UploadFields, fileName: string, upload: StoredUpload, meta: EventMeta): Promise<{ path: string }> {
    const { lease } = upload;
    const { name, version, path } = this.checkUploadFields(fields, fileName);
    const sha256 = field(fields, 'sha256_digest')?.toLowerCase();
    const md5 = field(fields, 'md5_digest')?.toLowerCase();
    const blake2_256 = field(fields, 'blake2_256_digest')?.toLowerCase();
    if (sha256 !== undefined && sha256 !== lease.sha256) throw new StrataError('STRATA_ERR_PACKAGE_DIGEST_MISMATCH', `the file's sha256 is ${lease.sha256}, not the declared ${sha256}`);
    if (md5 !== undefined && md5 !== lease.md5) throw new StrataError('STRATA_ERR_PACKAGE_DIGEST_MISMATCH', `the file's md5 is ${lease.md5}, not the declared ${md5}`);
    if (blake2_256 !== undefined && blake2_256 !== upload.blake2_256) {
      throw new StrataError('STRATA_ERR_PACKAGE_DIGEST_MISMATCH', `the file's blake2_256 is ${upload.blake2_256}, not the declared ${blake2_256}`);
    }
    await this.#checkContent(fileName, lease);
    // The distribution's own core metadata (a wheel's METADATA, an sdist's PKG-INFO) must name
    // the project and version it is uploaded as.
    let coreMetadataSha256: string | undefined;
    if (fileName.endsWith('.whl')) {
      const metadata = await readWheelMetadata(this.#blobs, lease.sha256, lease.size, fileName);
      checkCoreMetadata(metadata.toString('utf8'), fileName, name, version);
      coreMetadataSha256 = createHash('sha256').update(metadata).digest('hex');
    } else {
      checkCoreMetadata((await readSdistPkgInfo(this.#blobs, lease.sha256, lease.size, fileName)).toString('utf8'), fileName, name, version, 'PKG-INFO');
    }
    const properties: Record<string, string[]> = {
      [PYPI_PROPERTY.name]: [name],
      [PYPI_PROPERTY.normalizedName]: [normalizeName(name)],
      [PYPI_PROPERTY.version]: [version],
    };
    // PEP 658/714: the index advertises the METADATA's hash, and pip fetches it instead of the wheel.
    if (coreMetadataSha256 !== undefined) properties[PYPI_PROPERTY.coreMetadataSha256] = [coreMetadataSha256];
    const requiresPython = field(fields, 'requires_python');
    if (requiresPython !== undefined) properties[PYPI_PROPERTY.requiresPython] = [requiresPython.slice(0, 1000)];
    const summary = field(fields, 'summary');
    if (summary !== undefined) properties[PYPI_PROPERTY.summary] = [summary.slice(0, 1000)];
    await this.#streams.execute(repositoryStream(repo), meta, async (state) => {
      if (state.config === undefined) throw repositoryNotFound(repo);
      checkDeployable(repo, state.config, path);
      if (await this.#artifacts.isFile(repo, path)) throw new StrataError('STRATA_ERR_PACKAGE_VERSION_EXISTS', `File already exists: '${fileName}'`);
      return {
        events: [
          {
            type: 'ArtifactDeployed',
            data: { path, sha256: lease.sha256, sha1: lease.sha1, md5: lease.md5, size: lease.size, mimeType: 'application/octet-stream', properties },
          },
        ],
        result: undefined,
      };
    });
    this.#cache.invalidateItem(repo, path);
    return { path };
  }

  async #checkContent(fileName: string, lease: BlobLease): Promise<void> {
    const stream = await this.#blobs.createReadStream(lease.sha256, { start: 0, end: Math.min(3, Math.max(0, lease.size - 1)) });
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    checkDistributionContent(fileName, lease.size === 0 ? Buffer.alloc(0) : Buffer.concat(chunks));
  }

  /** Normalised names of the projects stored in the repository. */
  async projects(repo: string): Promise<string[]> {
    const top = await this.#artifacts.list(repo, '', { deep: false, includeFolders: true, limit: this.#listEntriesMax });
    return top.filter((item) => item.kind === 'folder' && normalizeName(item.path) === item.path).map((item) => item.path);
  }

  /** The distributions of a project (by its normalised name), in path order. */
  async distributions(repo: string, project: string): Promise<StoredDistribution[]> {
    if (normalizeName(project) !== project || project.includes('/')) return [];
    let listed;
    try {
      listed = await this.#artifacts.list(repo, project, { deep: true, depth: 2, includeFolders: false, limit: this.#listEntriesMax });
    } catch (error) {
      if (isStrataError(error)) return [];
      throw error;
    }
    const files = listed.filter((item): item is FileItem => item.kind === 'file');
    return Promise.all(
      files.map(async (file) => {
        const properties = await this.#artifacts.properties(repo, file.path);
        return {
          file,
          fileName: file.path.slice(file.path.lastIndexOf('/') + 1),
          requiresPython: properties[PYPI_PROPERTY.requiresPython]?.[0],
          coreMetadataSha256: properties[PYPI_PROPERTY.coreMetadataSha256]?.[0],
        };
      }),
    );
  }

  /** Stored distributions as index entries (path in the repository, hashes, requires-python). */
  indexed(distributions: readonly StoredDistribution[]): IndexedDistribution[] {
    return distributions.map(({ file, fileName, requiresPython, coreMetadataSha256 }) => ({
      path: file.path,
      fileName,
      sha256: file.sha256,
      requiresPython,
      ...(coreMetadataSha256 === undefined || !/^[0-9a-f]{64}$/.test(coreMetadataSha256) ? {} : { coreMetadataSha256 }),
    }));
  }

  /**
   * A stored wheel's METADATA (PEP 658's `{file}.metadata`), read from the blob by ranged reads
   * of its zip directory and that entry; undefined for a file that is not a wheel.
   */
  async coreMetadata(file: FileItem): Promise<Buffer | undefined> {
    if (!file.path.endsWith('.whl')) return undefined;
    const cached = this.#coreMetadata.get(file.sha256);
    if (cached !== undefined) return cached;
    const metadata = await readWheelMetadata(this.#blobs, file.sha256, file.size, file.path.slice(file.path.lastIndexOf('/') + 1));
    if (metadata.length <= coreMetadataCachedBytesMax) this.#coreMetadata.set(file.sha256, metadata);
    return metadata;
  }

  /** Index entries with their URLs below `packagesBase` (`…/api/pypi/{repo}/packages`). */
  indexFiles(distributions: readonly IndexedDistribution[], packagesBase: string): IndexFile[] {
    return distributions.map(({ path, ...file }) => ({ ...file, url: `${packagesBase}/${path.split('/').map(encodeURIComponent).join('/')}` }));
  }
}
