import { repositoryStream, StrataError } from '@strata/core';
import type { Checksums, DomainEvent, EventMeta, Properties, RecordedEvent } from '@strata/core';
import type { BlobLease, BlobStore } from '@strata/store';
import type { Readable } from 'node:stream';
import type { ArtifactReader, FileItem } from '../ports.ts';
import { repositoryNotFound as notFound } from '../repositories/repository-decider.ts';
import type { RepositoryStreamState } from '../repositories/repository-stream.ts';
import type { StreamWriter } from '../stream-writer.ts';
import { checkDeployable, decideDelete, decideDeploy, enforcePatterns } from './artifact-decider.ts';
import type { DeployTimes } from '../deploy-trace.ts';
import type { MetadataCache } from './hot-caches.ts';
import { mimeTypeFor } from './mime-types.ts';
import type { TreeShapeLookups } from './tree-shape-lookups.ts';

export interface DeployRequest {
  readonly repo: string;
  readonly path: string;
  readonly properties: Properties;
  readonly expected: Partial<Checksums>;
  readonly meta: EventMeta;
  /** Checks the stored content before the event is appended (a format's consistency rules); throwing refuses the deploy. */
  readonly verify?: (lease: BlobLease) => Promise<void>;
  /** Phase timestamps for STRATA_DEPLOY_TRACE (deploy-trace.ts); absent when tracing is off. */
  readonly trace?: DeployTimes;
}

export interface DeployedArtifact {
  readonly repo: string;
  readonly path: string;
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
  readonly size: number;
  readonly mimeType: string;
  readonly createdAt: number;
  readonly createdBy: string;
}

export interface CopyMoveRequest {
  readonly source: { readonly repo: string; readonly path: string };
  /** `into`: the target named a folder (trailing '/'): the source keeps its name inside it. */
  readonly target: { readonly repo: string; readonly path: string; readonly into: boolean };
  readonly move: boolean;
  readonly dryRun: boolean;
  readonly meta: EventMeta;
}

export interface CopyMoveResult {
  readonly files: number;
  readonly targetPath: string;
}

function isUnder(path: string, prefix: string): boolean {
  return prefix === '' || path.startsWith(`${prefix}/`);
}

/**
 * Deploys and deletes artifacts. A deploy stores the blob first (streamed, hashed, fsynced),
 * then appends the event that references it: an event never points at a missing blob.
 */
export class ArtifactService {
  readonly #streams: StreamWriter<RepositoryStreamState>;
  readonly #blobs: BlobStore;
  readonly #artifacts: ArtifactReader;
  readonly #cache: MetadataCache;
  readonly #treeShapes: TreeShapeLookups;
  readonly #uploadBytesMax: number;
  readonly #bulkEntriesMax: number;
  readonly #checkWritable: (repo: string) => void;

  constructor(options: {
    streams: StreamWriter<RepositoryStreamState>;
    blobs: BlobStore;
    artifacts: ArtifactReader;
    cache: MetadataCache;
    treeShapes: TreeShapeLookups;
    uploadBytesMax: number;
    bulkEntriesMax: number;
    /** Refuses content writes to a repository this site keeps read-only (an edge node's); default: none. */
    checkWritable?: (repo: string) => void;
  }) {
    this.#checkWritable = options.checkWritable ?? (() => undefined);
    this.#treeShapes = options.treeShapes;
    this.#bulkEntriesMax = options.bulkEntriesMax;
    this.#streams = options.streams;
    this.#blobs = options.blobs;
    this.#artifacts = options.artifacts;
    this.#cache = options.cache;
    this.#uploadBytesMax = options.uploadBytesMax;
  }

  /** Fails fast (before reading a body) when the repository or patterns refuse the deploy. */
  async precheckDeploy(repo: string, path: string): Promise<void> {
    const config = await this.#cache.repository(repo);
    if (config === undefined) throw notFound(repo);
    checkDeployable(repo, config, path);
    this.#checkWritable(repo);
  }

  /** `signal`: aborts the upload (the client went away); none once the whole body has arrived. */
  async deploy(request: DeployRequest, body: Readable, declaredSize: number | undefined, signal?: AbortSignal): Promise<DeployedArtifact> {
    // The stream's next round may wait briefly for this deploy's blob (see roundLingerMs).
    const queued = this.#streams.announce(repositoryStream(request.repo));
    let lease: BlobLease;
    try {
      lease = await this.#blobs.put(body, {
        expected: request.expected,
        ...(declaredSize === undefined ? {} : { expectedSize: declaredSize }),
        sizeBytesMax: this.#uploadBytesMax,
        signal,
        // The event is appended below (#record) before the lease is released: a small blob may
        // be written with it, in the append's transaction (InlineBlobStore).
        deferToAppend: true,
      });
    } finally {
      queued();
    }
    if (request.trace !== undefined) request.trace.body = performance.now();
    return this.#record(request, lease);
  }

  /** `X-Checksum-Deploy: true`: deploys an existing blob by its checksum, 404 when absent. */
  async deployByChecksum(request: DeployRequest): Promise<DeployedArtifact> {
    const sha256 = request.expected.sha256;
    if (sha256 === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', 'checksum deploy needs X-Checksum-Sha256');
    const lease = await this.#blobs.lease(sha256.toLowerCase());
    if (lease === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `no binary with sha256 ${sha256} is stored: deploy the content`);
    if ((request.expected.sha1 !== undefined && request.expected.sha1.toLowerCase() !== lease.sha1) || (request.expected.md5 !== undefined && request.expected.md5.toLowerCase() !== lease.md5)) {
      lease.release();
      throw new StrataError('STRATA_ERR_BLOB_CHECKSUM_MISMATCH', 'the declared checksums do not belong to the same binary');
    }
    return this.#record(request, lease);
  }

  async #record(request: DeployRequest, lease: BlobLease): Promise<DeployedArtifact> {
    const { repo, path } = request;
    try {
      await request.verify?.(lease);
      this.#checkWritable(repo);
      const mimeType = mimeTypeFor(path);
      // The tree-shape lookup is the command's `check`: the checks of a round run together and
      // decisions stay pure, so concurrent deploys share one append. (A folder/file clash
      // between two deploys of the same round is not caught; it is not an invariant.)
      const trace = request.trace;
      if (trace !== undefined) trace.queued = performance.now();
      const { events } = await this.#streams.execute(
        repositoryStream(repo),
        request.meta,
        (state) => {
          if (trace !== undefined) trace.decided = performance.now();
          return { events: decideDeploy({ repo, path, blob: lease, mimeType, properties: request.properties }, state), result: undefined };
        },
        trace === undefined ? () => this.#checkTreeShape(repo, path) : () => this.#checkTreeShape(repo, path).finally(() => (trace.checked = performance.now())),
      );
      if (trace !== undefined) trace.appended = performance.now();
      this.#cache.invalidateItem(repo, path);
      const event = events[0] as RecordedEvent;
      return {
        repo,
        path,
        sha256: lease.sha256,
        sha1: lease.sha1,
        md5: lease.md5,
        size: lease.size,
        mimeType,
        createdAt: event.hlc.wall,
        createdBy: request.meta.actor ?? 'anonymous',
      };
    } finally {
      lease.release();
    }
  }

  /** A file may not replace a folder, nor live below a file. */
  async #checkTreeShape(repo: string, path: string): Promise<void> {
    const slash = path.lastIndexOf('/');
    const parent = slash > 0 ? path.slice(0, slash) : undefined;
    // Batched with the lookups of concurrent deploys: one statement for many.
    const { isFolder, parentIsFile } = await this.#treeShapes.shape(repo, path);
    if (isFolder) throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `'${path}' is a folder in repository '${repo}'`);
    if (parentIsFile) throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `'${parent}' is a file in repository '${repo}'`);
  }

  /** Deletes a file (ArtifactDeleted) or a folder and everything below it (one FolderDeleted). */
  async delete(repo: string, path: string, meta: EventMeta): Promise<void> {
    this.#checkWritable(repo);
    await this.#streams.execute(
      repositoryStream(repo),
      meta,
      async (state) => {
        const existing = state.config === undefined ? undefined : (await this.#artifacts.getItem(repo, path))?.kind;
        return { events: decideDelete({ repo, path, existing }, state), result: undefined };
      },
    );
    this.#cache.invalidateFolder(repo, path);
  }

  /** Deletes these files (ArtifactDeleted each, one append); paths no longer present are skipped. */
  async deleteFiles(repo: string, paths: readonly string[], meta: EventMeta): Promise<void> {
    if (paths.length === 0) return;
    await this.#streams.execute(repositoryStream(repo), meta, async (state) => {
      if (state.config === undefined) throw notFound(repo);
      const events: DomainEvent[] = [];
      for (const path of paths) if (await this.#artifacts.isFile(repo, path)) events.push({ type: 'ArtifactDeleted', data: { path } });
      return { events, result: undefined };
    });
    for (const path of paths) this.#cache.invalidateItem(repo, path);
  }

  /**
   * Sets properties on a path (each key replaces its values) and, with `recursive` on a
   * folder, on everything below it: one PropertiesSet per path, appended atomically.
   */
  async setProperties(repo: string, path: string, properties: Properties, recursive: boolean, meta: EventMeta): Promise<void> {
    if (Object.keys(properties).length === 0) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'no properties given');
    await this.#annotate(repo, path, recursive, meta, (target) => ({ type: 'PropertiesSet', data: { path: target, properties } }));
  }

  async removeProperties(repo: string, path: string, keys: readonly string[], recursive: boolean, meta: EventMeta): Promise<void> {
    if (keys.length === 0) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'no property names given');
    await this.#annotate(repo, path, recursive, meta, (target) => ({ type: 'PropertiesRemoved', data: { path: target, keys } }));
  }

  async #annotate(repo: string, path: string, recursive: boolean, meta: EventMeta, eventFor: (path: string) => DomainEvent): Promise<void> {
    this.#checkWritable(repo);
    await this.#streams.execute(repositoryStream(repo), meta, async (state) => {
      if (state.config === undefined) throw notFound(repo);
      enforcePatterns(repo, state.config, path);
      const item = await this.#artifacts.getItem(repo, path);
      if (item === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not locate artifact '${repo}:${path}'`);
      const targets = [path];
      if (recursive && item.kind === 'folder') {
        const below = await this.#artifacts.list(repo, path, { deep: true, includeFolders: true, limit: this.#bulkEntriesMax + 1 });
        if (below.length > this.#bulkEntriesMax) {
          throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `more than ${this.#bulkEntriesMax} items below '${path}': use recursive=0 or a deeper folder`);
        }
        targets.push(...below.map((entry) => entry.path));
      }
      return { events: targets.map(eventFor), result: undefined };
    });
    this.#cache.invalidateFolder(repo, path);
  }

  /**
   * Copies (or moves) a file or a folder's files to another path, in this or another local
   * repository. The target gets ArtifactDeployed events pointing at the same blobs (with
   * their properties), appended atomically; a move then deletes the source (one
   * ArtifactDeleted or FolderDeleted). A crash between the two leaves both copies, never none.
   */
  async copyOrMove(request: CopyMoveRequest): Promise<CopyMoveResult> {
    const { source, target, move, dryRun, meta } = request;
    this.#checkWritable(target.repo);
    if (move) this.#checkWritable(source.repo);
    const sourceConfig = await this.#cache.repository(source.repo);
    if (sourceConfig === undefined) throw notFound(source.repo);
    enforcePatterns(source.repo, sourceConfig, source.path);
    const sourceItem = await this.#artifacts.getItem(source.repo, source.path);
    if (sourceItem === undefined) throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find item '${source.repo}:${source.path}'`);
    if (sourceItem.kind === 'folder' && source.path === '' && move) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'move a folder, not a whole repository');
    let targetPath = target.path;
    const targetItem = await this.#artifacts.getItem(target.repo, targetPath);
    if (target.into || targetItem?.kind === 'folder') {
      const name = source.path.slice(source.path.lastIndexOf('/') + 1);
      targetPath = targetPath === '' ? name : `${targetPath}/${name}`;
    }
    if (source.repo === target.repo && (isUnder(targetPath, source.path) || targetPath === source.path)) {
      throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `cannot ${move ? 'move' : 'copy'} '${source.path}' onto or into itself`);
    }
    const files: FileItem[] = [];
    if (sourceItem.kind === 'file') files.push(sourceItem);
    else {
      const below = await this.#artifacts.list(source.repo, source.path, { deep: true, includeFolders: false, limit: this.#bulkEntriesMax + 1 });
      if (below.length > this.#bulkEntriesMax) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', `more than ${this.#bulkEntriesMax} files below '${source.path}'`);
      for (const entry of below) if (entry.kind === 'file') files.push(entry);
    }
    const prefixLength = sourceItem.kind === 'file' ? source.path.length : source.path === '' ? 0 : source.path.length + 1;
    const mapped = files.map((file) => ({
      file,
      to: sourceItem.kind === 'file' ? targetPath : targetPath === '' ? file.path.slice(prefixLength) : `${targetPath}/${file.path.slice(prefixLength)}`,
    }));
    const leases: BlobLease[] = [];
    try {
      await this.#streams.execute(repositoryStream(target.repo), meta, async (state) => {
        if (state.config === undefined) throw notFound(target.repo);
        for (const { to } of mapped) checkDeployable(target.repo, state.config, to);
        for (const { to } of mapped.slice(0, 100)) await this.#checkTreeShape(target.repo, to);
        if (dryRun) return { events: [], result: undefined };
        for (const { file } of mapped) {
          const lease = await this.#blobs.lease(file.sha256);
          if (lease === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `the binary of '${source.repo}:${file.path}' is missing`);
          leases.push(lease);
        }
        const events: DomainEvent[] = [];
        for (const { file, to } of mapped) {
          const properties = await this.#artifacts.properties(source.repo, file.path);
          events.push({
            type: 'ArtifactDeployed',
            data: { path: to, sha256: file.sha256, sha1: file.sha1, md5: file.md5, size: file.size, mimeType: file.mimeType, properties },
          });
        }
        return {
          events,
          result: undefined,
        };
      });
    } finally {
      for (const lease of leases) lease.release();
    }
    this.#cache.invalidateFolder(target.repo, targetPath);
    if (move && !dryRun) await this.delete(source.repo, source.path, meta);
    return { files: mapped.length, targetPath };
  }

  async file(repo: string, path: string): Promise<FileItem | undefined> {
    const item = await this.#cache.item(repo, path);
    return item?.kind === 'file' ? item : undefined;
  }
}
