/**
 * The artifact tree merge rules (DESIGN §4) as pure code, and an in-memory model built on
 * them. The SQL projection in packages/store evolves the rows it loads with the very same
 * functions (`evolveArtifactTree`, `mergeDeploy`, `fileView`, `normalizePropertyRegister`…),
 * so both produce the same state; `snapshot()` is the canonical form used to compare them.
 *
 * Rules, with every comparison made by `compareStamps` (wall, logical, origin):
 *
 * - Content per (repo, path) is a register over deploys (`ArtifactDeployed`,
 *   `RemoteArtifactCached`) and tombstones (`ArtifactDeleted` of the path, `FolderDeleted` of
 *   any prefix covering it, and `RepositoryDeleted`, which tombstones the whole tree of the
 *   repository so that a re-created repository starts empty). The register keeps the
 *   highest deploy (`content`), the lowest deploy (`first`) and the highest tombstone. A path
 *   is present iff its highest deploy is stamped strictly after its effective tombstone
 *   (a tombstone wins a tie). Two deploys with the same stamp are ordered by event id.
 * - lastModified/modifiedBy come from the winning deploy. created/createdBy come from the
 *   earliest deploy if it is stamped after the effective tombstone (the path was never
 *   deleted since it first appeared), otherwise from the winning deploy (a re-created path
 *   starts its life with its current content). This is the exact "first deploy of the
 *   current life" whenever the current life holds one deploy or no delete ever happened,
 *   and it needs no history: min, max and max are order-independent, so the rule is a
 *   function of the set of events. (The exact rule would have to keep every deploy stamped
 *   after the tombstone, because a late tombstone can land between any two of them.)
 * - Properties are a register per (repo, path, key) over `PropertiesSet` (a deploy's initial
 *   properties count as a set at the deploy's stamp) and `PropertiesRemoved` (a per-key
 *   tombstone; it wins a tie). A value is visible only if stamped strictly after the path's
 *   effective tombstone, so deleting and re-deploying never brings old properties back.
 *   Registers are kept normalised (`normalizePropertyRegister`): whatever is stamped at or
 *   before the path tombstone, or is dominated by the other half of the register, can never
 *   matter again (tombstones only grow) and is dropped. A normalised register is either a
 *   value or a removal, which is exactly one SQL row.
 * - Folders are implicit: a folder exists iff a present file lies below it.
 *
 * Every merge is a max or a min, so applying an event twice changes nothing; no set of seen
 * event ids is needed to make redelivery idempotent.
 */
import type { EventStamp, NewEvent, Properties } from './events.ts';
import { createHash } from 'node:crypto';
import { invariant } from './errors.ts';
import { compareStamps } from './stamp.ts';

/** An event the models accept: a recorded event, or a new one together with its stream. */
export type StreamEvent = NewEvent & { readonly stream: string };

/** An event's stamp plus its id: a total order over distinct events. */
export interface EventVersion extends EventStamp {
  readonly id: string;
}

/** compareStamps, then event id (code-unit order), so distinct events never tie. */
export function compareVersions(a: EventVersion, b: EventVersion): number {
  const byStamp = compareStamps(a, b);
  if (byStamp !== 0) return byStamp;
  if (a.id === b.id) return 0;
  return a.id < b.id ? -1 : 1;
}

/** The later of two optional stamps. */
export function maxStamp(a: EventStamp | null, b: EventStamp | null): EventStamp | null {
  if (a === null) return b;
  if (b === null) return a;
  return compareStamps(a, b) >= 0 ? a : b;
}

/** True iff `stamp` is strictly after `tombstone` (a tombstone wins a tie). */
export function isAfterTombstone(stamp: EventStamp, tombstone: EventStamp | null): boolean {
  return tombstone === null || compareStamps(stamp, tombstone) > 0;
}

export function versionOf(event: NewEvent): EventVersion {
  return { hlc: { wall: event.hlc.wall, logical: event.hlc.logical }, origin: event.origin, id: event.id };
}

export function stampOf(event: NewEvent): EventStamp {
  return { hlc: { wall: event.hlc.wall, logical: event.hlc.logical }, origin: event.origin };
}

// ---------------------------------------------------------------------------------------
// Paths of the tree (relative, '/'-separated, no leading or trailing slash; '' is the root)

/** The path helpers the tree rules rely on. Paths arrive normalised (the server's job). */
export const ArtifactTreePaths = {
  parent(path: string): string {
    const slash = path.lastIndexOf('/');
    return slash < 0 ? '' : path.slice(0, slash);
  },
  name(path: string): string {
    return path.slice(path.lastIndexOf('/') + 1);
  },
  /** Every prefix whose folder tombstone covers `path`: '', 'a', 'a/b', … , path itself. */
  coveringPrefixes(path: string): string[] {
    const prefixes = [''];
    if (path === '') return prefixes;
    let slash = path.indexOf('/');
    while (slash >= 0) {
      prefixes.push(path.slice(0, slash));
      slash = path.indexOf('/', slash + 1);
    }
    prefixes.push(path);
    return prefixes;
  },
  /** True iff `path` is at or below `prefix`. */
  covers(prefix: string, path: string): boolean {
    return prefix === '' || path === prefix || (path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47);
  },
  /** Trims leading and trailing slashes: query input from the HTTP layer. */
  trim(path: string): string {
    let start = 0;
    let end = path.length;
    while (start < end && path.charCodeAt(start) === 47) start++;
    while (end > start && path.charCodeAt(end - 1) === 47) end--;
    return path.slice(start, end);
  },
} as const;

/** The repository a tree event belongs to: the key of its `repo-<key>` stream. */
export function repositoryKeyOfStream(stream: string): string | undefined {
  return stream.startsWith('repo-') ? stream.slice(5) : undefined;
}

// ---------------------------------------------------------------------------------------
// Content registers

export interface DeployRecord {
  readonly version: EventVersion;
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
  readonly size: number;
  readonly mimeType: string;
  /** Set for RemoteArtifactCached. */
  readonly remoteUrl: string | null;
  readonly actor: string | null;
}

export interface FirstDeploy {
  readonly version: EventVersion;
  readonly actor: string | null;
}

/** The merge state of one (repo, path). */
export interface FileRegister {
  /** The highest deploy. */
  readonly content: DeployRecord | null;
  /** The lowest deploy (created/createdBy, see the module comment). */
  readonly first: FirstDeploy | null;
  /**
   * The highest tombstone applied to this register. The in-memory model records only the
   * path's own deletes here; the SQL projection also folds covering folder tombstones in.
   * Both read it through `effectiveTombstone`, which adds the covering folder tombstones.
   */
  readonly tombstone: EventStamp | null;
}

export const EMPTY_FILE_REGISTER: FileRegister = Object.freeze({ content: null, first: null, tombstone: null });

export function mergeDeploy(register: FileRegister, deploy: DeployRecord): FileRegister {
  const content =
    register.content === null || compareVersions(deploy.version, register.content.version) > 0
      ? deploy
      : register.content;
  const first =
    register.first === null || compareVersions(deploy.version, register.first.version) < 0
      ? { version: deploy.version, actor: deploy.actor }
      : register.first;
  return content === register.content && first === register.first ? register : { ...register, content, first };
}

export function mergeTombstone(register: FileRegister, stamp: EventStamp): FileRegister {
  const tombstone = maxStamp(register.tombstone, stamp);
  return tombstone === register.tombstone ? register : { ...register, tombstone };
}

/** What a present file looks like to readers. */
export interface ArtifactFile {
  readonly repo: string;
  readonly path: string;
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
  readonly size: number;
  readonly mimeType: string;
  readonly remoteUrl: string | null;
  /** Wall-clock ms of the deploy that started the current life. */
  readonly createdAt: number;
  readonly createdBy: string | null;
  /** Wall-clock ms of the winning deploy. */
  readonly lastModified: number;
  readonly modifiedBy: string | null;
  /** The winning deploy's version. */
  readonly version: EventVersion;
}

/** The derived view of a register: what the SQL row stores in its present, created and modified columns. */
export interface FileView {
  readonly present: boolean;
  readonly created: FirstDeploy | null;
  readonly content: DeployRecord | null;
}

export function fileView(register: FileRegister, effectiveTombstone: EventStamp | null): FileView {
  const content = register.content;
  if (content === null || !isAfterTombstone(content.version, effectiveTombstone)) {
    return { present: false, created: null, content };
  }
  const first = register.first;
  invariant(first !== null, 'a register with content has a first deploy');
  const created = isAfterTombstone(first.version, effectiveTombstone)
    ? first
    : { version: content.version, actor: content.actor };
  return { present: true, created, content };
}

export function artifactFileOf(repo: string, path: string, view: FileView): ArtifactFile | undefined {
  if (!view.present || view.content === null || view.created === null) return undefined;
  const content = view.content;
  return {
    repo,
    path,
    sha256: content.sha256,
    sha1: content.sha1,
    md5: content.md5,
    size: content.size,
    mimeType: content.mimeType,
    remoteUrl: content.remoteUrl,
    createdAt: view.created.version.hlc.wall,
    createdBy: view.created.actor,
    lastModified: content.version.hlc.wall,
    modifiedBy: content.actor,
    version: content.version,
  };
}

// ---------------------------------------------------------------------------------------
// Property registers

/** A normalised property register: the winning value, or the winning removal. */
export type PropertyRegister =
  | { readonly kind: 'value'; readonly version: EventVersion; readonly values: readonly string[] }
  | { readonly kind: 'removed'; readonly stamp: EventStamp };

/** Drops what can never matter again, given the path's effective tombstone; undefined = nothing left. */
export function normalizePropertyRegister(
  register: PropertyRegister | undefined,
  pathTombstone: EventStamp | null,
): PropertyRegister | undefined {
  if (register === undefined) return undefined;
  const stamp = register.kind === 'value' ? register.version : register.stamp;
  return isAfterTombstone(stamp, pathTombstone) ? register : undefined;
}

export function mergePropertyValue(
  register: PropertyRegister | undefined,
  version: EventVersion,
  values: readonly string[],
  pathTombstone: EventStamp | null,
): PropertyRegister | undefined {
  let merged: PropertyRegister | undefined;
  if (register === undefined) merged = { kind: 'value', version, values };
  else if (register.kind === 'value')
    merged = compareVersions(version, register.version) > 0 ? { kind: 'value', version, values } : register;
  else merged = compareStamps(version, register.stamp) > 0 ? { kind: 'value', version, values } : register;
  return normalizePropertyRegister(merged, pathTombstone);
}

export function mergePropertyRemoval(
  register: PropertyRegister | undefined,
  stamp: EventStamp,
  pathTombstone: EventStamp | null,
): PropertyRegister | undefined {
  let merged: PropertyRegister | undefined;
  if (register === undefined) merged = { kind: 'removed', stamp };
  else if (register.kind === 'value')
    merged = compareStamps(stamp, register.version) >= 0 ? { kind: 'removed', stamp } : register;
  else merged = compareStamps(stamp, register.stamp) > 0 ? { kind: 'removed', stamp } : register;
  return normalizePropertyRegister(merged, pathTombstone);
}

// ---------------------------------------------------------------------------------------
// Evolving any state that can hand out and take back registers

/**
 * Access to the registers an event touches. The in-memory model backs it with maps of the
 * whole tree; the SQL projection backs it with the rows a batch loaded.
 */
export interface ArtifactTreeState {
  getFile(repo: string, path: string): FileRegister | undefined;
  setFile(repo: string, path: string, register: FileRegister): void;
  getProperty(repo: string, path: string, key: string): PropertyRegister | undefined;
  /** undefined removes the register. */
  setProperty(repo: string, path: string, key: string, register: PropertyRegister | undefined): void;
  getFolderTombstone(repo: string, prefix: string): EventStamp | undefined;
  setFolderTombstone(repo: string, prefix: string, stamp: EventStamp): void;
  /** Optional shortcut: false when the repository has no folder tombstone at all. */
  hasFolderTombstones?(repo: string): boolean;
}

/** The tombstone that applies to `path`: its own, and every covering folder tombstone. */
export function effectiveTombstone(state: ArtifactTreeState, repo: string, path: string): EventStamp | null {
  let tombstone = state.getFile(repo, path)?.tombstone ?? null;
  if (state.hasFolderTombstones?.(repo) === false) return tombstone;
  for (const prefix of ArtifactTreePaths.coveringPrefixes(path)) {
    tombstone = maxStamp(tombstone, state.getFolderTombstone(repo, prefix) ?? null);
  }
  return tombstone;
}

export const ARTIFACT_TREE_EVENT_TYPES = [
  'ArtifactDeployed',
  'RemoteArtifactCached',
  'ArtifactDeleted',
  'FolderDeleted',
  'PropertiesSet',
  'PropertiesRemoved',
  'RepositoryDeleted',
] as const;
export type ArtifactTreeEventType = (typeof ARTIFACT_TREE_EVENT_TYPES)[number];
const TREE_EVENT_TYPE_SET: ReadonlySet<string> = new Set(ARTIFACT_TREE_EVENT_TYPES);
export function isArtifactTreeEvent(event: { readonly type: string }): boolean {
  return TREE_EVENT_TYPE_SET.has(event.type);
}

/** The paths (in its repository) whose registers an event reads or writes; prefixes excluded. */
export function artifactTreeTarget(
  event: StreamEvent,
): { repo: string; path?: string; prefix?: string } | undefined {
  if (!isArtifactTreeEvent(event)) return undefined;
  if (event.type === 'RepositoryDeleted') return { repo: event.data.key, prefix: '' };
  const repo = repositoryKeyOfStream(event.stream);
  if (repo === undefined) return undefined;
  switch (event.type) {
    case 'ArtifactDeployed':
    case 'RemoteArtifactCached':
    case 'ArtifactDeleted':
    case 'PropertiesSet':
    case 'PropertiesRemoved':
      return { repo, path: event.data.path };
    case 'FolderDeleted':
      return { repo, prefix: event.data.prefix };
    default:
      return undefined;
  }
}

function sortedKeys(properties: Properties): string[] {
  return Object.keys(properties).sort();
}

/**
 * Applies one event to `state` with the rules above. Returns false for events the tree
 * ignores (other types, other streams).
 */
export function evolveArtifactTree(state: ArtifactTreeState, event: StreamEvent): boolean {
  const target = artifactTreeTarget(event);
  if (target === undefined) return false;
  const { repo } = target;
  switch (event.type) {
    case 'ArtifactDeployed':
    case 'RemoteArtifactCached': {
      const data = event.data;
      const version = versionOf(event);
      const deploy: DeployRecord = {
        version,
        sha256: data.sha256,
        sha1: data.sha1,
        md5: data.md5,
        size: data.size,
        mimeType: data.mimeType,
        remoteUrl: event.type === 'RemoteArtifactCached' ? event.data.remoteUrl : null,
        actor: event.meta.actor ?? null,
      };
      state.setFile(repo, data.path, mergeDeploy(state.getFile(repo, data.path) ?? EMPTY_FILE_REGISTER, deploy));
      setProperties(state, repo, data.path, version, data.properties ?? {});
      return true;
    }
    case 'ArtifactDeleted': {
      const path = event.data.path;
      state.setFile(repo, path, mergeTombstone(state.getFile(repo, path) ?? EMPTY_FILE_REGISTER, stampOf(event)));
      return true;
    }
    case 'FolderDeleted':
    case 'RepositoryDeleted': {
      const prefix = target.prefix ?? '';
      const stamp = maxStamp(state.getFolderTombstone(repo, prefix) ?? null, stampOf(event));
      invariant(stamp !== null, 'a folder tombstone has a stamp');
      state.setFolderTombstone(repo, prefix, stamp);
      return true;
    }
    case 'PropertiesSet':
      setProperties(state, repo, event.data.path, versionOf(event), event.data.properties);
      return true;
    case 'PropertiesRemoved': {
      const path = event.data.path;
      const tombstone = effectiveTombstone(state, repo, path);
      const stamp = stampOf(event);
      for (const key of [...event.data.keys].sort()) {
        state.setProperty(repo, path, key, mergePropertyRemoval(state.getProperty(repo, path, key), stamp, tombstone));
      }
      return true;
    }
    default:
      return false;
  }
}

function setProperties(
  state: ArtifactTreeState,
  repo: string,
  path: string,
  version: EventVersion,
  properties: Properties,
): void {
  const keys = sortedKeys(properties);
  if (keys.length === 0) return;
  const tombstone = effectiveTombstone(state, repo, path);
  for (const key of keys) {
    const values = properties[key] ?? [];
    state.setProperty(repo, path, key, mergePropertyValue(state.getProperty(repo, path, key), version, values, tombstone));
  }
}

// ---------------------------------------------------------------------------------------
// Canonical snapshot: sorted, JSON-able; what the model and the SQL projection must agree on

export interface StampJson {
  readonly wall: number;
  readonly logical: number;
  readonly origin: string;
}
export interface VersionJson extends StampJson {
  readonly id: string;
}

export interface FileSnapshot {
  readonly repo: string;
  readonly path: string;
  readonly present: boolean;
  /** Effective tombstone: own deletes and covering folder tombstones. */
  readonly tombstone: StampJson | null;
  readonly first: { readonly version: VersionJson; readonly actor: string | null } | null;
  readonly content: {
    readonly version: VersionJson;
    readonly sha256: string;
    readonly sha1: string;
    readonly md5: string;
    readonly size: number;
    readonly mimeType: string;
    readonly remoteUrl: string | null;
    readonly actor: string | null;
  } | null;
  readonly createdAt: number | null;
  readonly createdBy: string | null;
}
export interface FolderTombstoneSnapshot {
  readonly repo: string;
  readonly prefix: string;
  readonly stamp: StampJson;
}
export interface PropertySnapshot {
  readonly repo: string;
  readonly path: string;
  readonly key: string;
  readonly removed: boolean;
  readonly stamp: StampJson;
  /** The event id of a value (null for a removal). */
  readonly id: string | null;
  readonly values: readonly string[];
}
export interface ArtifactTreeSnapshot {
  readonly files: readonly FileSnapshot[];
  readonly folderTombstones: readonly FolderTombstoneSnapshot[];
  readonly properties: readonly PropertySnapshot[];
}

export function stampJson(stamp: EventStamp): StampJson {
  return { wall: stamp.hlc.wall, logical: stamp.hlc.logical, origin: stamp.origin };
}
export function versionJson(version: EventVersion): VersionJson {
  return { wall: version.hlc.wall, logical: version.hlc.logical, origin: version.origin, id: version.id };
}

export function fileSnapshotOf(repo: string, path: string, register: FileRegister, tombstone: EventStamp | null): FileSnapshot {
  const view = fileView(register, tombstone);
  const content = register.content;
  return {
    repo,
    path,
    present: view.present,
    tombstone: tombstone === null ? null : stampJson(tombstone),
    first: register.first === null ? null : { version: versionJson(register.first.version), actor: register.first.actor },
    content:
      content === null
        ? null
        : {
            version: versionJson(content.version),
            sha256: content.sha256,
            sha1: content.sha1,
            md5: content.md5,
            size: content.size,
            mimeType: content.mimeType,
            remoteUrl: content.remoteUrl,
            actor: content.actor,
          },
    createdAt: view.created === null ? null : view.created.version.hlc.wall,
    createdBy: view.created === null ? null : view.created.actor,
  };
}

export function propertySnapshotOf(repo: string, path: string, key: string, register: PropertyRegister): PropertySnapshot {
  return register.kind === 'value'
    ? { repo, path, key, removed: false, stamp: stampJson(register.version), id: register.version.id, values: [...register.values] }
    : { repo, path, key, removed: true, stamp: stampJson(register.stamp), id: null, values: [] };
}

function compareStrings(a: string, b: string): number {
  return a === b ? 0 : a < b ? -1 : 1;
}

/** Sorts a snapshot's lists into canonical order (repo, path/prefix, key by code units). */
export function canonicalArtifactTreeSnapshot(snapshot: ArtifactTreeSnapshot): ArtifactTreeSnapshot {
  return {
    files: [...snapshot.files].sort((a, b) => compareStrings(a.repo, b.repo) || compareStrings(a.path, b.path)),
    folderTombstones: [...snapshot.folderTombstones].sort(
      (a, b) => compareStrings(a.repo, b.repo) || compareStrings(a.prefix, b.prefix),
    ),
    properties: [...snapshot.properties].sort(
      (a, b) => compareStrings(a.repo, b.repo) || compareStrings(a.path, b.path) || compareStrings(a.key, b.key),
    ),
  };
}

/** JSON with object keys sorted recursively: the input of every digest. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeysDeep(value));
}
function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (value !== null && typeof value === 'object') {
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) sorted[key] = sortKeysDeep((value as Record<string, unknown>)[key]);
    return sorted;
  }
  return value;
}
export function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

// ---------------------------------------------------------------------------------------
// Read-side shapes shared with the SQL queries

export interface ArtifactChild {
  readonly name: string;
  readonly folder: boolean;
}

export interface ArtifactListOptions {
  /** Descend below direct children. Default false (depth 1). */
  readonly deep?: boolean;
  /** With deep: the deepest relative depth listed (1 = direct children). Default unlimited. */
  readonly depth?: number;
  /** Include folders. Default false. */
  readonly listFolders?: boolean;
}

export type ArtifactListEntry =
  | { readonly relativePath: string; readonly folder: true }
  | { readonly relativePath: string; readonly folder: false; readonly file: ArtifactFile };

export interface RepositoryTreeStats {
  readonly files: number;
  /** Implicit folders below the root (the root is not counted). */
  readonly folders: number;
  readonly bytes: number;
}

/** Order of children and list entries: by name/path in code units, a folder before a file of the same name. */
export function compareTreeEntries(
  a: { readonly name: string; readonly folder: boolean },
  b: { readonly name: string; readonly folder: boolean },
): number {
  return compareStrings(a.name, b.name) || (a.folder === b.folder ? 0 : a.folder ? -1 : 1);
}

/** The depth limit a ArtifactListOptions means: 1 unless deep, then `depth` or unlimited. */
export function listDepthOf(options: ArtifactListOptions): number {
  if (!options.deep) return 1;
  const depth = options.depth;
  return depth === undefined || !Number.isFinite(depth) || depth <= 0 ? Number.POSITIVE_INFINITY : Math.floor(depth);
}

/**
 * Builds list entries from the present files below `folder` (any order): files within the
 * depth limit and, with listFolders, every implicit folder within it. Shared by the model
 * and the SQL queries so both list identically.
 */
export function listEntriesOf(
  folder: string,
  files: Iterable<ArtifactFile>,
  options: ArtifactListOptions,
): ArtifactListEntry[] {
  const depthMax = listDepthOf(options);
  const base = folder === '' ? 0 : folder.length + 1;
  const entries: ArtifactListEntry[] = [];
  const folders = new Set<string>();
  for (const file of files) {
    if (!ArtifactTreePaths.covers(folder, file.path) || file.path === folder) continue;
    const relative = file.path.slice(base);
    const segments = relative.split('/');
    if (segments.length <= depthMax) entries.push({ relativePath: relative, folder: false, file });
    if (options.listFolders) {
      const folderDepthMax = Math.min(segments.length - 1, depthMax);
      let end = -1;
      for (let depth = 1; depth <= folderDepthMax; depth++) {
        end = relative.indexOf('/', end + 1);
        folders.add(relative.slice(0, end));
      }
    }
  }
  for (const relativePath of folders) entries.push({ relativePath, folder: true });
  return entries.sort((a, b) =>
    compareTreeEntries({ name: a.relativePath, folder: a.folder }, { name: b.relativePath, folder: b.folder }),
  );
}

/** Counts implicit folders (below the root) of a set of present file paths. */
export function countFolders(paths: Iterable<string>): number {
  const folders = new Set<string>();
  for (const path of paths) {
    let parent = ArtifactTreePaths.parent(path);
    while (parent !== '' && !folders.has(parent)) {
      folders.add(parent);
      parent = ArtifactTreePaths.parent(parent);
    }
  }
  return folders.size;
}

/**
 * The registers of a folded tree as bulk writers read them (a rebuild's COPY): each kind
 * sorted by path (then key) in code-unit order, property registers normalised against the
 * path's effective tombstone. ArtifactTreeModel and ArtifactTreeFold provide it.
 */
export interface ArtifactTreeEntries {
  /** Repositories that have any tree state, sorted. */
  repositories(): string[];
  sortedEntries(repo: string): {
    files: Iterable<{ path: string; register: FileRegister; tombstone: EventStamp | null }>;
    folderTombstones: Iterable<{ prefix: string; stamp: EventStamp }>;
    properties: Iterable<{ path: string; key: string; register: PropertyRegister }>;
  };
}

// ---------------------------------------------------------------------------------------
// The in-memory model

interface RepositoryTree {
  readonly files: Map<string, FileRegister>;
  readonly properties: Map<string, Map<string, PropertyRegister>>;
  readonly folderTombstones: Map<string, EventStamp>;
}

/**
 * The artifact tree of every repository, in memory. Mutable and single-owner: `apply`
 * changes it in place (cheap enough to rebuild a million events). Queries scan the
 * repository's registers (O(files)); the SQL projection is the indexed read side, this is
 * the reference it is checked against and the engine of `rebuildProjections`.
 */
export class ArtifactTreeModel implements ArtifactTreeState, ArtifactTreeEntries {
  readonly #repos = new Map<string, RepositoryTree>();

  /** Applies one event; returns false if the tree ignores it. Idempotent. */
  apply(event: StreamEvent): boolean {
    return evolveArtifactTree(this, event);
  }

  applyAll(events: Iterable<StreamEvent>): this {
    for (const event of events) evolveArtifactTree(this, event);
    return this;
  }

  // ArtifactTreeState ------------------------------------------------------------------

  getFile(repo: string, path: string): FileRegister | undefined {
    return this.#repos.get(repo)?.files.get(path);
  }
  setFile(repo: string, path: string, register: FileRegister): void {
    this.#tree(repo).files.set(path, register);
  }
  getProperty(repo: string, path: string, key: string): PropertyRegister | undefined {
    return this.#repos.get(repo)?.properties.get(path)?.get(key);
  }
  setProperty(repo: string, path: string, key: string, register: PropertyRegister | undefined): void {
    const properties = this.#tree(repo).properties;
    let byKey = properties.get(path);
    if (register === undefined) {
      byKey?.delete(key);
      if (byKey?.size === 0) properties.delete(path);
      return;
    }
    if (byKey === undefined) properties.set(path, (byKey = new Map()));
    byKey.set(key, register);
  }
  getFolderTombstone(repo: string, prefix: string): EventStamp | undefined {
    return this.#repos.get(repo)?.folderTombstones.get(prefix);
  }
  setFolderTombstone(repo: string, prefix: string, stamp: EventStamp): void {
    this.#tree(repo).folderTombstones.set(prefix, stamp);
  }
  hasFolderTombstones(repo: string): boolean {
    return (this.#repos.get(repo)?.folderTombstones.size ?? 0) > 0;
  }

  #tree(repo: string): RepositoryTree {
    let tree = this.#repos.get(repo);
    if (tree === undefined) {
      tree = { files: new Map(), properties: new Map(), folderTombstones: new Map() };
      this.#repos.set(repo, tree);
    }
    return tree;
  }

  // Queries -----------------------------------------------------------------------------

  /** Repositories that have any tree state, sorted. */
  repositories(): string[] {
    return [...this.#repos.keys()].sort(compareStrings);
  }

  /** The effective tombstone of a path (own deletes and covering folder deletes). */
  tombstone(repo: string, path: string): EventStamp | null {
    return effectiveTombstone(this, repo, path);
  }

  file(repo: string, path: string): ArtifactFile | undefined {
    const register = this.getFile(repo, path);
    if (register === undefined) return undefined;
    return artifactFileOf(repo, path, fileView(register, this.tombstone(repo, path)));
  }

  /** Every present file of a repository, sorted by path. */
  files(repo: string): ArtifactFile[] {
    const tree = this.#repos.get(repo);
    if (tree === undefined) return [];
    const files: ArtifactFile[] = [];
    for (const [path, register] of tree.files) {
      const file = artifactFileOf(repo, path, fileView(register, this.tombstone(repo, path)));
      if (file !== undefined) files.push(file);
    }
    return files.sort((a, b) => compareStrings(a.path, b.path));
  }

  /** A folder exists iff a present file lies below it; the root always exists. */
  folderExists(repo: string, folder: string): boolean {
    folder = ArtifactTreePaths.trim(folder);
    if (folder === '') return true;
    return this.files(repo).some((file) => file.path.startsWith(folder + '/'));
  }

  /** Direct children of a folder, sorted by name (a folder before a file of the same name). */
  children(repo: string, folder: string): ArtifactChild[] {
    folder = ArtifactTreePaths.trim(folder);
    return listEntriesOf(folder, this.files(repo), { deep: false, listFolders: true }).map((entry) => ({
      name: entry.relativePath,
      folder: entry.folder,
    }));
  }

  list(repo: string, folder: string, options: ArtifactListOptions = {}): ArtifactListEntry[] {
    return listEntriesOf(ArtifactTreePaths.trim(folder), this.files(repo), options);
  }

  /** Visible properties of a path (file or folder), keys sorted. */
  properties(repo: string, path: string): Record<string, string[]> {
    path = ArtifactTreePaths.trim(path);
    const byKey = this.#repos.get(repo)?.properties.get(path);
    const result: Record<string, string[]> = {};
    if (byKey === undefined) return result;
    const tombstone = this.tombstone(repo, path);
    for (const key of [...byKey.keys()].sort(compareStrings)) {
      const register = normalizePropertyRegister(byKey.get(key), tombstone);
      if (register?.kind === 'value') result[key] = [...register.values];
    }
    return result;
  }

  stats(repo: string): RepositoryTreeStats {
    const files = this.files(repo);
    return {
      files: files.length,
      folders: countFolders(files.map((file) => file.path)),
      bytes: files.reduce((sum, file) => sum + file.size, 0),
    };
  }

  // Canonical state ---------------------------------------------------------------------

  snapshot(): ArtifactTreeSnapshot {
    const files: FileSnapshot[] = [];
    const folderTombstones: FolderTombstoneSnapshot[] = [];
    const properties: PropertySnapshot[] = [];
    for (const [repo, tree] of this.#repos) {
      for (const [path, register] of tree.files) {
        files.push(fileSnapshotOf(repo, path, register, this.tombstone(repo, path)));
      }
      for (const [prefix, stamp] of tree.folderTombstones) {
        folderTombstones.push({ repo, prefix, stamp: stampJson(stamp) });
      }
      for (const [path, byKey] of tree.properties) {
        const tombstone = this.tombstone(repo, path);
        for (const [key, register] of byKey) {
          const normalized = normalizePropertyRegister(register, tombstone);
          if (normalized !== undefined) properties.push(propertySnapshotOf(repo, path, key, normalized));
        }
      }
    }
    return canonicalArtifactTreeSnapshot({ files, folderTombstones, properties });
  }

  digest(): string {
    return digestOf(this.snapshot());
  }

  /**
   * The registers of one repository for bulk writers (rebuild), each kind sorted by path
   * (then key) in code-unit order, so that inserts append to the primary-key indexes.
   * Property registers are normalised against the path's effective tombstone, as the SQL
   * rows are.
   */
  sortedEntries(repo: string): {
    files: { path: string; register: FileRegister; tombstone: EventStamp | null }[];
    folderTombstones: { prefix: string; stamp: EventStamp }[];
    properties: { path: string; key: string; register: PropertyRegister }[];
  } {
    const tree = this.#repos.get(repo);
    if (tree === undefined) return { files: [], folderTombstones: [], properties: [] };
    const files = [...tree.files.keys()].sort().map((path) => ({
      path,
      register: tree.files.get(path)!,
      tombstone: this.tombstone(repo, path),
    }));
    const folderTombstones = [...tree.folderTombstones.keys()].sort().map((prefix) => ({ prefix, stamp: tree.folderTombstones.get(prefix)! }));
    const properties: { path: string; key: string; register: PropertyRegister }[] = [];
    for (const path of [...tree.properties.keys()].sort()) {
      const byKey = tree.properties.get(path)!;
      const tombstone = this.tombstone(repo, path);
      for (const key of [...byKey.keys()].sort()) {
        const normalized = normalizePropertyRegister(byKey.get(key), tombstone);
        if (normalized !== undefined) properties.push({ path, key, register: normalized });
      }
    }
    return { files, folderTombstones, properties };
  }
}
