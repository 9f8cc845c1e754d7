import type { Clock, HlcStamp, Properties } from '@strata/core';
import type { BlobStore, EventAudit, EventStore } from '@strata/store';
import type { AccessControl } from './auth/access-control.ts';

/**
 * The slices of other packages the server calls, declared here so that tests can fake them
 * and production wires the real ones (STYLE: depend on the slice you use).
 */

/** Stamps local events (core's HybridLogicalClock provides this). */
export interface LocalHlc {
  /** A stamp strictly greater than every stamp this clock issued or received. */
  now(): HlcStamp;
}

/** Globally unique, url-safe event and request ids (hyperid in production). */
export type IdGenerator = () => string;

/** A repository configuration as Artifactory JSON, as the config projection serves it. */
export type RepositoryConfig = Readonly<Record<string, unknown>> & {
  readonly key: string;
  readonly rclass: string;
  readonly packageType: string;
};

export interface RepositoryReader {
  /** The repository with exactly this key, or undefined (deleted repositories are absent). */
  get(key: string): Promise<RepositoryConfig | undefined>;
  /** Every repository, ordered by key. */
  list(): Promise<readonly RepositoryConfig[]>;
  /**
   * A virtual's effective resolution order from the virtual-resolution projection; undefined
   * when not projected (the server then computes it from the configurations).
   */
  resolutionOrder?(key: string): Promise<readonly string[] | undefined>;
}

export interface FileItem {
  readonly kind: 'file';
  readonly path: string;
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
  readonly size: number;
  readonly mimeType: string;
  readonly created: number;
  readonly createdBy: string;
  readonly lastModified: number;
  readonly modifiedBy: string;
}

export interface FolderItem {
  readonly kind: 'folder';
  /** '' for the repository root. */
  readonly path: string;
  readonly created: number;
  readonly createdBy: string;
  readonly lastModified: number;
  readonly modifiedBy: string;
}

export type TreeItem = FileItem | FolderItem;

export interface ListOptions {
  /** Descend into sub-folders. */
  readonly deep: boolean;
  /** With deep: how many levels below `path` (1 = direct children); undefined = unlimited. */
  readonly depth?: number;
  /** Include folder entries in the result. */
  readonly includeFolders: boolean;
  /** Bound on entries returned. */
  readonly limit: number;
}

export interface RepositoryUsage {
  readonly filesCount: number;
  readonly foldersCount: number;
  readonly usedBytes: number;
}

/** Reads of the artifact-tree projection. Paths are normalised, without a leading slash. */
export interface ArtifactReader {
  /** A file, a folder (explicit or implied by a file below it), or undefined. '' = root. */
  getItem(repo: string, path: string): Promise<TreeItem | undefined>;
  /** Whether a present file lies below `path` (cheaper than getItem). */
  isFolder(repo: string, path: string): Promise<boolean>;
  /** Whether `path` is a present file (cheaper than getItem). */
  isFile(repo: string, path: string): Promise<boolean>;
  /** Direct children of a folder (or, with deep, descendants), in path order. */
  list(repo: string, path: string, options: ListOptions): Promise<readonly TreeItem[]>;
  usage(repo: string): Promise<RepositoryUsage>;
  /** Visible properties of a file or folder (empty when none). */
  properties(repo: string, path: string): Promise<Properties>;
}

export interface DownloadStats {
  readonly downloadCount: number;
  /** Epoch ms, 0 when never downloaded. */
  readonly lastDownloaded: number;
  readonly lastDownloadedBy: string;
}

/** Download counters: a side table, never events (DESIGN §3). */
export interface DownloadCounter {
  /** Counts one download; cheap (batched behind the scenes). */
  record(repo: string, path: string, user: string, at: number): void;
  get(repo: string, path: string): Promise<DownloadStats | undefined>;
  /** Writes pending counts; called on shutdown. */
  flush(): Promise<void>;
}

export interface StorageLocation {
  readonly storageType: string;
  readonly storageDirectory: string;
  /** Bytes; undefined when unknown. */
  statFs?(): Promise<{ totalBytes: number; freeBytes: number } | undefined>;
}

/** Exchanges a user's password for an access token (`npm login`). */
export interface ClientLogin {
  /** A new access token of `username`; throws 401 on bad credentials. */
  login(username: string, password: string, meta: import('@strata/core').EventMeta): Promise<string>;
}

/** Everything buildApp needs; production and tests wire different implementations. */
export interface AppDeps {
  readonly eventStore: EventStore;
  readonly blobStore: BlobStore;
  readonly repositories: RepositoryReader;
  readonly artifacts: ArtifactReader;
  readonly downloads: DownloadCounter;
  readonly clock: Clock;
  readonly hlc: LocalHlc;
  readonly siteId: string;
  readonly newId: IdGenerator;
  /** When omitted the app expects an auth plugin to have been registered by `registerAuth`. */
  readonly registerAuth: AuthRegistration;
  readonly storage?: StorageLocation;
  readonly version?: { version: string; revision: string };
  readonly limits?: Partial<ServerLimits>;
  readonly logger?: boolean | Record<string, unknown>;
  /**
   * Where a repository stream's write state starts when this process first touches it; without
   * it the stream is read from its first event (slow for repositories with millions of events).
   */
  readonly repositoryStreamSeed?: (stream: string) => Promise<{ revision: number; originSeq: number; config: Readonly<Record<string, unknown>> | undefined } | undefined>;
  /**
   * Answers a deploy's tree-shape questions (is the path a folder, is its parent a file?) many
   * at a time; without it each question costs two `artifacts` reader calls.
   */
  readonly treeShapeQuery?: import('./artifacts/tree-shape-lookups.ts').TreeShapeQuery;
  /**
   * Whether a command's check (the tree-shape lookup) may run while an append transaction is
   * open (StreamWriterOptions.checksDuringAppend): true on PostgreSQL, whose pool has other
   * connections; never on PGlite, whose one connection the open transaction holds (the check
   * would wait for the transaction, the transaction for the check). Default false. With it,
   * tree-shape lookups may also run two queries at a time (TreeShapeLookups).
   */
  readonly checksDuringAppend?: boolean;
  /**
   * Whether commands may check inside their round's append transaction (CommandGuard,
   * AppendOptions.guard): true where the event store is a SQL store (PostgreSQL, PGlite). An
   * npm publish's "already published" lookup then runs after the append's locks, in the round
   * trip that takes them, instead of as a query of its own. Default false (the memory store
   * refuses guards).
   */
  readonly checksInAppend?: boolean;
  /** Where curation blocks are recorded; default: in memory (bounded). */
  readonly curationBlocks?: import('./curation/curation-service.ts').CurationBlockLog;
  /** HTTP client of remote repositories' upstreams; default: undici with redirects followed. */
  readonly upstream?: import('./remote/upstream-client.ts').UpstreamClient;
  /** Password → token exchange for package clients (`npm login`); without it they use tokens issued elsewhere. */
  readonly clientLogin?: ClientLogin;
  /** History of paths and chain verification (issue 8); without it `/api/history` is not served. */
  readonly audit?: EventAudit;
  /** Called after this server changed a repository's configuration (created, updated, deleted). */
  readonly onRepositoryChange?: (key: string) => void;
  /** The site's release-bundle signing key (kept in the data dir); without it an ephemeral one. */
  readonly signingKey?: import('./distribution/signing-keys.ts').SigningKey;
  /** An edge's open distribution transactions; default in memory (`strata serve` keeps them in the database). */
  readonly distributionTransactions?: import('./distribution/transaction-store.ts').DistributionTransactionStore;
  /** Edge-node mode (docs/edge.md): repositories read-only except artifactory-edge-uploads, smart remotes only. */
  readonly edge?: boolean;
  readonly distributionLimits?: Partial<import('./distribution/distribution-service.ts').DistributionLimits>;
  /** Hands over services the process wiring needs (blob GC asks the bundles which binaries they keep). */
  readonly onServices?: (services: { readonly distribution: import('./distribution/distribution-service.ts').DistributionService }) => void;
  /** Federation, when this site takes part in one. */
  readonly federation?: FederationHooks;
  /** Durable queue of smart-remote downloads to report to origins; default: in memory. */
  readonly smartRemoteQueue?: import('./smart-remote/smart-remote-stores.ts').SmartRemoteStatsQueue;
  /** Downloads reported by smart remotes of this origin; default: in memory. */
  readonly remoteDownloadStats?: import('./smart-remote/smart-remote-stores.ts').RemoteDownloadStatsStore;
  readonly smartRemoteLimits?: Partial<import('./smart-remote/smart-remote-service.ts').SmartRemoteLimits>;
}

/**
 * What the HTTP application asks of federation (packages/server/src/federation), when the
 * site is configured for it: hear about local appends, learn of received events, adjust a
 * federated repository's configuration, fetch binaries not arrived yet, serve its routes.
 */
export interface FederationHooks {
  /** After every successful local append to a stream (called in append order per stream). */
  localAppended(stream: string, events: readonly import('@strata/core').RecordedEvent[]): void;
  /** Registers a listener of events received from peers (already appended and projected). */
  onRemoteAppended(listener: (repoKey: string, events: readonly import('@strata/core').StreamEvent[]) => void): void;
  /** The body of a repository create, adjusted (e.g. this site added to the members). */
  prepareCreate(key: string, body: unknown): unknown;
  /** The body of a repository update, adjusted. */
  prepareUpdate(key: string, body: unknown): unknown;
  isFederated(repoKey: string): boolean;
  /** A federated repository's members without this site (undefined: not federated here), for deleting it here only. */
  membersAfterLeaving(key: string): Promise<readonly { url: string; enabled: boolean }[] | undefined>;
  /** Once the members edit without this site is appended: lets the others learn it (bounded wait), then stops federating `key`. */
  leaveFederation(key: string): Promise<void>;
  /** Fetches a binary this site lacks from a member now; true once it is stored. */
  fetchMissingBinary(repoKey: string, sha256: string, origin: string): Promise<boolean>;
  /** Whether a binary is known to be missing here (still being pulled). */
  isBinaryPending(sha256: string): boolean;
  /** The federation routes, registered under /artifactory. */
  readonly routes: import('fastify').FastifyPluginAsync;
}

/**
 * How access control is attached: a function that registers a plugin on the root instance
 * which decorates `accessControl` and sets `request.principal` (contract: auth/access-control.ts).
 */
export type AuthRegistration = (app: import('fastify').FastifyInstance) => Promise<void> | void;

export interface ServerLimits {
  /** Largest artifact accepted by a deploy. */
  readonly uploadBytesMax: number;
  /** Blobs at most this large are kept in the in-memory cache. */
  readonly blobCacheEntryBytesMax: number;
  /** Total bytes the blob cache may hold. */
  readonly blobCacheBytesMax: number;
  /** Number of repo/path metadata entries cached for downloads. */
  readonly metadataCacheEntriesMax: number;
  /** How long a cached item may be served without re-reading the projection (other servers may write). */
  readonly metadataCacheTtlMs: number;
  /** Optimistic-concurrency retries of one command. */
  readonly appendRetriesMax: number;
  /** How long a stream's append round waits for deploys still writing their blob (0 = not at all). */
  readonly roundLingerMs: number;
  /** How long a stream's append round waits for the clients the previous round answered (0 = not at all; see StreamWriterOptions.roundGatherMs). */
  readonly roundGatherMs: number;
  /** Entries a listing returns at most. */
  readonly listEntriesMax: number;
  /** Entries one copy/move/recursive property change touches at most. */
  readonly bulkEntriesMax: number;
  /** A remote fetch answers its client after this many bytes (or the whole file): failures before are clean 502/504s. */
  readonly remoteStreamHoldbackBytes: number;
  /** Remembered upstream 404s and revalidation times, per process. */
  readonly remoteRememberedEntriesMax: number;
  /** How long the curation policy set is served before looking for changes by other servers. */
  readonly curationRefreshIntervalMs: number;
  /** Blocks one /api/curation/blocks answer lists at most. */
  readonly curationBlocksListMax: number;
  /** Largest npm publish document (JSON holding the base64 tarball). */
  readonly npmPublishBytesMax: number;
  /** Packages whose computed packument stays cached (for metadataCacheTtlMs). */
  readonly packagesCachedMax: number;
}

export const DEFAULT_LIMITS: ServerLimits = Object.freeze({
  uploadBytesMax: 16 * 1024 ** 3,
  blobCacheEntryBytesMax: 64 * 1024,
  blobCacheBytesMax: 64 * 1024 * 1024,
  metadataCacheEntriesMax: 50_000,
  metadataCacheTtlMs: 1_000,
  appendRetriesMax: 8,
  roundLingerMs: 0,
  roundGatherMs: 5,
  listEntriesMax: 100_000,
  bulkEntriesMax: 10_000,
  remoteStreamHoldbackBytes: 1024 * 1024,
  remoteRememberedEntriesMax: 100_000,
  curationRefreshIntervalMs: 1_000,
  curationBlocksListMax: 1_000,
  npmPublishBytesMax: 256 * 1024 * 1024,
  packagesCachedMax: 10_000,
});
