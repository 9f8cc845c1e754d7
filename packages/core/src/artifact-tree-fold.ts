/**
 * A compact fold of the artifact tree for rebuilds and replays: the merge rules of
 * artifact-tree-model.ts over a million events without a million-object model.
 *
 * ArtifactTreeModel keeps a register as a small graph of objects (register, deploy, first,
 * version, stamp, hlc…): a rebuild of 1,000,000 events holds millions of them, and every
 * major garbage collection walks them all (a third of a rebuild's time went there). This
 * fold keeps the same registers in columns — typed arrays per field, indexed by a path
 * number, strings that repeat (origins, actors, mime types, property keys) interned — and
 * creates the register objects only when they are written out.
 *
 * It applies the same rules (module comment of artifact-tree-model.ts), with one difference
 * in bookkeeping that changes no result: property registers are normalised against the
 * path's effective tombstone when they are read out, not at every merge. A register is the
 * LWW maximum of its sets and removals; the model drops it whenever that maximum is stamped
 * at or before the tombstone of the moment, and tombstones only grow, so the model ends
 * with the maximum iff it is stamped after the final tombstone — which is what this fold
 * reports. Property tests check that both give the identical snapshot for any delivery of
 * any event set, with duplicates (packages/core/test/artifact-tree-fold.unit.test.ts).
 *
 * Mutable and single-owner, like ArtifactTreeModel.
 */
import { Buffer } from 'node:buffer';
import type { EventStamp } from './events.ts';
import {
  ArtifactTreePaths,
  canonicalArtifactTreeSnapshot,
  digestOf,
  fileSnapshotOf,
  maxStamp,
  normalizePropertyRegister,
  propertySnapshotOf,
  repositoryKeyOfStream,
  stampJson,
  type ArtifactTreeEntries,
  type ArtifactTreeSnapshot,
  type FileRegister,
  type FileSnapshot,
  type FolderTombstoneSnapshot,
  type PropertyRegister,
  type PropertySnapshot,
  type StreamEvent,
} from './artifact-tree-model.ts';
import { DEPLOYED_MD5_AT, DEPLOYED_SHA1_AT, DEPLOYED_SHA256_AT, type ArtifactDeployedDataReader } from './deployed-data-reader.ts';
import { LOWERCASE_HEX_VALUES as HEX_VALUES } from './hex-values.ts';

const NONE = -1;
/** An id length in the fold's columns: no id (a removal's register). */
const NULL_ID = -1;
/** An id length in the fold's columns: the id is a string of #oddIds (not ASCII). */
const ODD_ID = -2;
/** A path length in the fold's columns: the path is a string of #oddPaths (not ASCII). */
const ODD_PATH = -1;
/** fileState bits. */
const HAS_REGISTER = 1;
const HAS_CONTENT = 2;
const HAS_TOMBSTONE = 4;
/** The winning deploy's checksums are not canonical lowercase hex: kept as strings aside. */
const ODD_CHECKSUMS = 8;

/** compareVersions (wall, logical, origin, then id) over columns; a null id ties with any id. */
function compareParts(
  wallA: number,
  logicalA: number,
  originA: string,
  idA: string | null,
  wallB: number,
  logicalB: number,
  originB: string,
  idB: string | null,
): number {
  if (wallA !== wallB) return wallA < wallB ? -1 : 1;
  if (logicalA !== logicalB) return logicalA < logicalB ? -1 : 1;
  if (originA !== originB) return originA < originB ? -1 : 1;
  if (idA === null || idB === null || idA === idB) return 0;
  return idA < idB ? -1 : 1;
}

/**
 * `value` as a string of its own. A decoded string is often a slice of a larger one (msgpackr
 * cuts an event's strings out of one string of them all, and V8 slices strings of 13 code
 * units or more by reference): kept for good in the fold, it would keep the whole event's
 * text alive. Cutting a concatenation copies it.
 */
function ownString(value: string): string {
  return value.length < 13 ? value : (' ' + value).slice(1);
}

/** A few bytes copied by hand (Buffer#copy's call costs more than the copy). */
function copyBytes(from: Uint8Array, fromAt: number, to: Uint8Array, toAt: number, length: number): void {
  for (let index = 0; index < length; index++) to[toAt + index] = from[fromAt + index]!;
}

function grown<T extends Float64Array | Int32Array | Uint8Array>(array: T, size: number): T {
  if (array.length >= size) return array;
  const next = new (array.constructor as new (length: number) => T)(Math.max(size, array.length * 2));
  next.set(array);
  return next;
}

function grownBuffer(buffer: Buffer, size: number): Buffer {
  if (buffer.length >= size) return buffer;
  const next = Buffer.alloc(Math.max(size, buffer.length * 2));
  buffer.copy(next);
  return next;
}

interface RepositoryPaths {
  readonly key: string;
  /** The repository's path numbers, in the order they were first seen. */
  readonly paths: number[];
  /** Where the hashes of this repository's paths start (FNV-1a of the key). */
  readonly hashSeed: number;
  readonly folderTombstones: Map<string, EventStamp>;
  /** folderTombstones by prefixHash of the prefix, built when rows are read out; dropped when a tombstone changes. */
  tombstonesByHash: Map<number, { readonly prefix: string; readonly stamp: EventStamp }[]> | undefined;
  /** The longest prefix in tombstonesByHash: no longer prefix of a path is looked up. */
  tombstonePrefixLengthMax: number;
}

/** FNV-1a over UTF-16 code units, one step: the hash of a prefix grows one code unit at a time. */
function hashStep(hash: number, code: number): number {
  return Math.imul(hash ^ code, 16777619);
}
const HASH_START = 2166136261 | 0;

/** Whether the bytes at `bytes[start]` begin with `prefix` (ASCII bytes, code unit by code unit). */
function startsWithBytes(bytes: Uint8Array, start: number, prefix: string): boolean {
  for (let index = 0; index < prefix.length; index++) if (bytes[start + index] !== prefix.charCodeAt(index)) return false;
  return true;
}

/** Whether `bytes` holds the same `length` bytes at `a` and at `b`. */
function sameBytes(bytes: Uint8Array, a: number, b: number, length: number): boolean {
  for (let index = 0; index < length; index++) if (bytes[a + index] !== bytes[b + index]) return false;
  return true;
}

function prefixHash(prefix: string): number {
  let hash = HASH_START;
  for (let index = 0; index < prefix.length; index++) hash = hashStep(hash, prefix.charCodeAt(index));
  return hash;
}

/**
 * One file register of the fold as the columns of a row, for bulk writers (a cursor: every
 * field changes at each `next()`, nothing is allocated per row but the strings the fold
 * already holds). The values are those `fileView` derives from the register and its
 * effective tombstone (the path's own and every folder tombstone covering it).
 */
export interface ArtifactTreeFileRows {
  /** Moves to the next file register; false once past the last. */
  next(): boolean;
  readonly repo: string;
  readonly path: string;
  /**
   * The path as bytes (ASCII, as nearly every path): `pathBytes` from `pathStart` for
   * `pathLength` bytes; a negative length: read `path` (a path the fold keeps as a string).
   */
  readonly pathBytes: Uint8Array;
  readonly pathStart: number;
  readonly pathLength: number;
  /** Content newer than the effective tombstone. */
  readonly present: boolean;
  /** A deploy was ever merged: the content… and first… fields are set. */
  readonly hasContent: boolean;
  readonly contentWall: number;
  readonly contentLogical: number;
  readonly contentOrigin: string;
  readonly contentId: string;
  /**
   * The ids as bytes (ASCII, as every validated event id): `contentId` is `idBytes` from
   * `contentIdStart` for `contentIdLength` bytes, `firstId` likewise; a negative length: read
   * the string field (an id the fold keeps as a string).
   */
  readonly idBytes: Uint8Array;
  readonly contentIdStart: number;
  readonly contentIdLength: number;
  readonly firstIdStart: number;
  readonly firstIdLength: number;
  readonly contentActor: string | null;
  readonly size: number;
  readonly mimeType: string;
  readonly remoteUrl: string | null;
  /**
   * The checksums as bytes: `checksumBytes.sha256` from `checksumIndex * 32` (sha1: × 20,
   * md5: × 16), unless `oddChecksums` holds them as the event's strings (never for a
   * validated event: not lowercase hex).
   */
  readonly checksumBytes: { readonly sha256: Uint8Array; readonly sha1: Uint8Array; readonly md5: Uint8Array };
  readonly checksumIndex: number;
  readonly oddChecksums: { readonly sha256: string; readonly sha1: string; readonly md5: string } | undefined;
  readonly firstWall: number;
  readonly firstLogical: number;
  readonly firstOrigin: string;
  readonly firstId: string;
  readonly firstActor: string | null;
  /** When present: the deploy the file counts as created by (the first one after the tombstone). */
  readonly createdAt: number;
  readonly createdBy: string | null;
  /** The effective tombstone. */
  readonly hasTombstone: boolean;
  readonly tombstoneWall: number;
  readonly tombstoneLogical: number;
  readonly tombstoneOrigin: string;
}

/**
 * The property registers of the fold that survive normalisation (stamped after their path's
 * effective tombstone), as a cursor like ArtifactTreeFileRows.
 */
export interface ArtifactTreePropertyRows {
  next(): boolean;
  readonly repo: string;
  readonly path: string;
  /** The path as bytes, as ArtifactTreeFileRows' (a negative `pathLength`: read `path`). */
  readonly pathBytes: Uint8Array;
  readonly pathStart: number;
  readonly pathLength: number;
  readonly key: string;
  readonly removed: boolean;
  readonly wall: number;
  readonly logical: number;
  readonly origin: string;
  /** The winning set's event id; null for a removal. */
  readonly id: string | null;
  /** A set's id as bytes, as ArtifactTreeFileRows' ids (a negative `idLength`: read `id`). */
  readonly idBytes: Uint8Array;
  readonly idStart: number;
  readonly idLength: number;
  /** The winning set's values; empty for a removal. */
  readonly values: readonly string[];
}

/**
 * The order of the rows of `fileRows` and `propertyRows`: 'key' sorts repositories, then
 * paths (then keys) in code-unit order, as primary-key order in SQL with collation "C";
 * 'any' is the fold's own order (no sort: for tables whose indexes are built afterwards).
 */
export type ArtifactTreeRowOrder = 'key' | 'any';

const NO_STAMP_ORIGIN = '';

/**
 * The string views of the row cursors (fileRows, propertyRows), from the fields each row sets
 * and the two readers the fold gives it: getters on a prototype shared by every cursor.
 */
class RowViews {
  declare readonly viewPath: () => string;
  declare readonly viewId: (start: number, length: number) => string | null;
  declare readonly contentIdStart: number;
  declare readonly contentIdLength: number;
  declare readonly firstIdStart: number;
  declare readonly firstIdLength: number;
  declare readonly removed: boolean;
  declare readonly idStart: number;
  declare readonly idLength: number;

  get path(): string {
    return this.viewPath();
  }

  get contentId(): string {
    return this.viewId(this.contentIdStart, this.contentIdLength)!;
  }

  get firstId(): string {
    return this.viewId(this.firstIdStart, this.firstIdLength)!;
  }

  get id(): string | null {
    return this.removed ? null : this.viewId(this.idStart, this.idLength);
  }
}

/** (wall, logical, origin) of a after b's (tombstone wins a tie): isAfterTombstone over columns. */
function stampAfter(wall: number, logical: number, origin: string, tombstone: EventStamp | null): boolean {
  if (tombstone === null) return true;
  if (wall !== tombstone.hlc.wall) return wall > tombstone.hlc.wall;
  if (logical !== tombstone.hlc.logical) return logical > tombstone.hlc.logical;
  return origin > tombstone.origin;
}

export class ArtifactTreeFold implements ArtifactTreeEntries {
  // Interned strings: origins, actors, mime types, property keys.
  readonly #names: string[] = [];
  readonly #nameIds = new Map<string, number>();
  /** Name ids by a hash of their ASCII bytes (#nameOfBytes; on a collision, the first name keeps the entry). */
  readonly #nameIdsByBytes = new Map<number, number>();

  readonly #repos = new Map<string, RepositoryPaths>();
  /** stream → repository ('' for streams the tree ignores). */
  readonly #streamRepos = new Map<string, RepositoryPaths | null>();

  // Per path (index = path number).
  #pathCount = 0;
  /** Path numbers by hash (open addressing, linear probing; at most half full). */
  #pathSlots = new Int32Array(2048).fill(NONE);
  /** Each path's hash (its repository's seed, then its code units). */
  #pathHashes = new Int32Array(1024);
  /**
   * The paths as bytes, back to back, each at #pathStart for #pathLength: 780,000 path strings
   * kept for good were as many objects for every scavenge to copy and every major collection to
   * mark. A path with a code unit above ASCII is kept in #oddPaths instead (its length
   * ODD_PATH, its start the index there).
   */
  #pathBytes: Buffer = Buffer.alloc(256 * 1024);
  /**
   * The last covering tombstone computed for a path longer than its repository's longest
   * tombstone prefix: the tombstones it was computed from (tombstonesByHash, replaced
   * whenever one changes), where that path's bytes start, and the result.
   */
  #coveringMemo: { byHash: RepositoryPaths['tombstonesByHash']; start: number; covering: EventStamp | null } = { byHash: undefined, start: 0, covering: null };
  #pathBytesUsed = 0;
  #pathStart = new Int32Array(1024);
  #pathLength = new Int32Array(1024);
  readonly #oddPaths: string[] = [];
  readonly #pathRepos: RepositoryPaths[] = [];
  #fileState = new Uint8Array(1024);
  #contentWall = new Float64Array(1024);
  #contentLogical = new Int32Array(1024);
  #contentOrigin = new Int32Array(1024);
  /** Where the content's id is in #idBytes, and its length (see #storeId). */
  #contentIdStart = new Int32Array(1024);
  #contentIdLength = new Int32Array(1024);
  #sha256: Buffer = Buffer.alloc(32 * 1024);
  #sha1: Buffer = Buffer.alloc(20 * 1024);
  #md5: Buffer = Buffer.alloc(16 * 1024);
  /** Checksums that are not canonical lowercase hex (never from a validated event), by path. */
  readonly #oddChecksums = new Map<number, { readonly sha256: string; readonly sha1: string; readonly md5: string }>();
  #size = new Float64Array(1024);
  #mimeType = new Int32Array(1024);
  readonly #remoteUrl: (string | null)[] = [];
  #contentActor = new Int32Array(1024);
  #firstWall = new Float64Array(1024);
  #firstLogical = new Int32Array(1024);
  #firstOrigin = new Int32Array(1024);
  #firstIdStart = new Int32Array(1024);
  #firstIdLength = new Int32Array(1024);
  #firstActor = new Int32Array(1024);
  #tombstoneWall = new Float64Array(1024);
  #tombstoneLogical = new Int32Array(1024);
  #tombstoneOrigin = new Int32Array(1024);
  /** First property register of the path, or NONE. */
  #propertyHead = new Int32Array(1024).fill(NONE);

  // Per property register (a linked list per path).
  #propertyCount = 0;
  #propertyNext = new Int32Array(1024);
  #propertyKey = new Int32Array(1024);
  #propertyRemoved = new Uint8Array(1024);
  #propertyWall = new Float64Array(1024);
  #propertyLogical = new Int32Array(1024);
  #propertyOrigin = new Int32Array(1024);
  /** The winning set's id in #idBytes (length NULL_ID for a removal, see #storeId). */
  #propertyIdStart = new Int32Array(1024);
  #propertyIdLength = new Int32Array(1024);

  /**
   * Event ids, back to back as bytes: a million ids kept as strings were a million objects
   * that every scavenge copied and every major collection marked. An id with a code unit
   * above ASCII (never a validated one) is kept in #oddIds instead, its length ODD_ID and its
   * start the index there.
   */
  #idBytes: Buffer = Buffer.alloc(64 * 1024);
  #idBytesUsed = 0;
  readonly #oddIds: string[] = [];
  /** The id stored last (a deploy's properties store their event's id again), where, and its length. */
  #lastId: string | null = null;
  #lastIdStart = 0;
  #lastIdLength = 0;
  readonly #propertyValues: (readonly string[] | null)[] = [];

  /** Applies one event; returns false if the tree ignores it. Idempotent, order-independent. */
  apply(event: StreamEvent): boolean {
    switch (event.type) {
      case 'ArtifactDeployed':
      case 'RemoteArtifactCached': {
        const repo = this.#streamRepo(event.stream);
        if (repo === null) return false;
        const data = event.data;
        const path = this.#path(repo, data.path);
        this.#deploy(path, event, event.type === 'RemoteArtifactCached' ? event.data.remoteUrl : null);
        const properties = data.properties;
        if (properties !== undefined) {
          for (const key in properties) {
            if (!Object.hasOwn(properties, key)) continue;
            this.#mergeProperty(path, this.#name(key), false, event.hlc.wall, event.hlc.logical, event.origin, event.id, properties[key] ?? []);
          }
        }
        return true;
      }
      case 'ArtifactDeleted': {
        const repo = this.#streamRepo(event.stream);
        if (repo === null) return false;
        const path = this.#path(repo, event.data.path);
        this.#fileState[path]! |= HAS_REGISTER;
        this.#mergeTombstone(path, event.hlc.wall, event.hlc.logical, event.origin);
        return true;
      }
      case 'FolderDeleted':
      case 'RepositoryDeleted': {
        let repo: RepositoryPaths | null;
        let prefix: string;
        if (event.type === 'RepositoryDeleted') {
          repo = this.#repo(event.data.key);
          prefix = '';
        } else {
          repo = this.#streamRepo(event.stream);
          if (repo === null) return false;
          prefix = event.data.prefix;
        }
        const stamp: EventStamp = { hlc: { wall: event.hlc.wall, logical: event.hlc.logical }, origin: event.origin };
        repo.folderTombstones.set(prefix, maxStamp(repo.folderTombstones.get(prefix) ?? null, stamp)!);
        repo.tombstonesByHash = undefined;
        return true;
      }
      case 'PropertiesSet': {
        const repo = this.#streamRepo(event.stream);
        if (repo === null) return false;
        const path = this.#path(repo, event.data.path);
        const properties = event.data.properties;
        for (const key in properties) {
          if (!Object.hasOwn(properties, key)) continue;
          this.#mergeProperty(path, this.#name(key), false, event.hlc.wall, event.hlc.logical, event.origin, event.id, properties[key] ?? []);
        }
        return true;
      }
      case 'PropertiesRemoved': {
        const repo = this.#streamRepo(event.stream);
        if (repo === null) return false;
        const path = this.#path(repo, event.data.path);
        for (const key of event.data.keys) this.#mergeProperty(path, this.#name(key), true, event.hlc.wall, event.hlc.logical, event.origin, null, null);
        return true;
      }
      default:
        return false;
    }
  }

  applyAll(events: Iterable<StreamEvent>): this {
    for (const event of events) this.apply(event);
    return this;
  }

  // Folding --------------------------------------------------------------------------------

  #name(value: string): number {
    let id = this.#nameIds.get(value);
    if (id === undefined) {
      id = this.#names.length;
      this.#names.push(value);
      this.#nameIds.set(value, id);
    }
    return id;
  }

  #repo(key: string): RepositoryPaths {
    let repo = this.#repos.get(key);
    if (repo === undefined) {
      repo = { key, paths: [], hashSeed: prefixHash(key), folderTombstones: new Map(), tombstonesByHash: undefined, tombstonePrefixLengthMax: 0 };
      this.#repos.set(key, repo);
    }
    return repo;
  }

  #streamRepo(stream: string): RepositoryPaths | null {
    let repo = this.#streamRepos.get(stream);
    if (repo === undefined) {
      const key = repositoryKeyOfStream(stream);
      repo = key === undefined ? null : this.#repo(key);
      this.#streamRepos.set(stream, repo);
    }
    return repo;
  }

  #path(repo: RepositoryPaths, name: string): number {
    // Open addressing over the path numbers (a Map of 780,000 fresh strings spent ~2 s of a
    // 1,000,000-event rebuild growing and rehashing; this table grows by typed arrays alone).
    // The name's code units go to the free end of #pathBytes as it is hashed: kept there if the
    // path is new and ASCII, overwritten by the next path otherwise.
    const length = name.length;
    if (this.#pathBytesUsed + length > this.#pathBytes.length) this.#pathBytes = grownBuffer(this.#pathBytes, this.#pathBytesUsed + length);
    const bytes = this.#pathBytes;
    const free = this.#pathBytesUsed;
    let hash = repo.hashSeed;
    let ascii = true;
    for (let index = 0; index < length; index++) {
      const code = name.charCodeAt(index);
      hash = hashStep(hash, code);
      if (code >= 0x80) ascii = false;
      bytes[free + index] = code;
    }
    return this.#pathAtFree(repo, hash, length, ascii ? undefined : name);
  }

  /** #path of an ASCII path given as `length` bytes of `source` from `start`. */
  #pathOfBytes(repo: RepositoryPaths, source: Buffer, start: number, length: number): number {
    if (this.#pathBytesUsed + length > this.#pathBytes.length) this.#pathBytes = grownBuffer(this.#pathBytes, this.#pathBytesUsed + length);
    const bytes = this.#pathBytes;
    const free = this.#pathBytesUsed;
    let hash = repo.hashSeed;
    for (let index = 0; index < length; index++) {
      const code = source[start + index]!;
      hash = hashStep(hash, code);
      bytes[free + index] = code;
    }
    return this.#pathAtFree(repo, hash, length, undefined);
  }

  /**
   * The number of the path of `length` code units hashed to `hash`, numbered now if new: an
   * ASCII path's bytes are at the free end of #pathBytes (`odd` undefined), any other is `odd`.
   */
  #pathAtFree(repo: RepositoryPaths, hash: number, length: number, odd: string | undefined): number {
    const free = this.#pathBytesUsed;
    let slots = this.#pathSlots;
    let mask = slots.length - 1;
    let slot = hash & mask;
    for (;;) {
      const known = slots[slot]!;
      if (known === NONE) break;
      if (this.#pathHashes[known] === hash && this.#pathRepos[known] === repo && this.#isPath(known, length, odd, free)) return known;
      slot = (slot + 1) & mask;
    }
    const path = this.#pathCount++;
    repo.paths.push(path);
    if (path >= this.#fileState.length) this.#growPaths(path + 1);
    this.#pathHashes[path] = hash;
    if (2 * this.#pathCount > slots.length) {
      slots = this.#pathSlots = new Int32Array(2 * slots.length).fill(NONE);
      mask = slots.length - 1;
      for (let known = 0; known < path; known++) {
        let free = this.#pathHashes[known]! & mask;
        while (slots[free] !== NONE) free = (free + 1) & mask;
        slots[free] = known;
      }
      slot = hash & mask;
      while (slots[slot] !== NONE) slot = (slot + 1) & mask;
    }
    slots[slot] = path;
    if (odd === undefined) {
      this.#pathStart[path] = free;
      this.#pathLength[path] = length;
      this.#pathBytesUsed = free + length;
    } else {
      this.#pathStart[path] = this.#oddPaths.length;
      this.#pathLength[path] = ODD_PATH;
      this.#oddPaths.push(ownString(odd));
    }
    this.#pathRepos.push(repo);
    this.#remoteUrl.push(null);
    return path;
  }

  /** Whether path number `known` is the path of `length` code units at #pathBytes[free…] (ASCII), or `odd`. */
  #isPath(known: number, length: number, odd: string | undefined, free: number): boolean {
    const knownLength = this.#pathLength[known]!;
    if (knownLength === ODD_PATH) return odd !== undefined && this.#oddPaths[this.#pathStart[known]!] === odd;
    if (odd !== undefined || knownLength !== length) return false;
    const bytes = this.#pathBytes;
    const start = this.#pathStart[known]!;
    for (let index = 0; index < length; index++) if (bytes[start + index] !== bytes[free + index]) return false;
    return true;
  }

  /** Path number `path`'s name. */
  #pathName(path: number): string {
    const length = this.#pathLength[path]!;
    const start = this.#pathStart[path]!;
    return length === ODD_PATH ? this.#oddPaths[start]! : this.#pathBytes.toString('latin1', start, start + length);
  }

  #growPaths(size: number): void {
    this.#pathStart = grown(this.#pathStart, size);
    this.#pathLength = grown(this.#pathLength, size);
    this.#fileState = grown(this.#fileState, size);
    this.#pathHashes = grown(this.#pathHashes, size);
    this.#contentWall = grown(this.#contentWall, size);
    this.#contentLogical = grown(this.#contentLogical, size);
    this.#contentOrigin = grown(this.#contentOrigin, size);
    this.#contentIdStart = grown(this.#contentIdStart, size);
    this.#contentIdLength = grown(this.#contentIdLength, size);
    this.#firstIdStart = grown(this.#firstIdStart, size);
    this.#firstIdLength = grown(this.#firstIdLength, size);
    this.#sha256 = grownBuffer(this.#sha256, 32 * size);
    this.#sha1 = grownBuffer(this.#sha1, 20 * size);
    this.#md5 = grownBuffer(this.#md5, 16 * size);
    this.#size = grown(this.#size, size);
    this.#mimeType = grown(this.#mimeType, size);
    this.#contentActor = grown(this.#contentActor, size);
    this.#firstWall = grown(this.#firstWall, size);
    this.#firstLogical = grown(this.#firstLogical, size);
    this.#firstOrigin = grown(this.#firstOrigin, size);
    this.#firstActor = grown(this.#firstActor, size);
    this.#tombstoneWall = grown(this.#tombstoneWall, size);
    this.#tombstoneLogical = grown(this.#tombstoneLogical, size);
    this.#tombstoneOrigin = grown(this.#tombstoneOrigin, size);
    const heads = this.#propertyHead.length;
    this.#propertyHead = grown(this.#propertyHead, size);
    this.#propertyHead.fill(NONE, heads);
  }

  #deploy(path: number, event: StreamEvent & { readonly type: 'ArtifactDeployed' | 'RemoteArtifactCached' }, remoteUrl: string | null): void {
    const actorName = event.meta.actor;
    const actor = actorName === undefined || actorName === null ? NONE : this.#name(actorName);
    if (!this.#mergeDeploy(path, event.hlc.wall, event.hlc.logical, event.origin, event.id, actor)) return;
    const data = event.data;
    const state = this.#fileState[path]!;
    if (this.#writeChecksum(this.#sha256, path, data.sha256, 32) && this.#writeChecksum(this.#sha1, path, data.sha1, 20) && this.#writeChecksum(this.#md5, path, data.md5, 16)) {
      if ((state & ODD_CHECKSUMS) !== 0) this.#oddChecksums.delete(path);
      this.#fileState[path] = state & ~ODD_CHECKSUMS;
    } else {
      this.#oddChecksums.set(path, { sha256: data.sha256, sha1: data.sha1, md5: data.md5 });
      this.#fileState[path] = state | ODD_CHECKSUMS;
    }
    this.#size[path] = data.size;
    this.#mimeType[path] = this.#name(data.mimeType);
    this.#remoteUrl[path] = remoteUrl;
  }

  /**
   * Merges a deploy's stamps (content and first) into path number `path`'s register; true
   * when it is the newest content, whose fields (checksums, size, mime type, remote URL) the
   * caller then writes.
   */
  #mergeDeploy(path: number, wall: number, logical: number, origin: string, id: string, actor: number): boolean {
    const state = this.#fileState[path]!;
    const names = this.#names;
    const newest =
      (state & HAS_CONTENT) === 0 ||
      this.#compareStored(wall, logical, origin, id, this.#contentWall[path]!, this.#contentLogical[path]!, names[this.#contentOrigin[path]!]!, this.#contentIdStart[path]!, this.#contentIdLength[path]!) > 0;
    if (newest) {
      this.#contentWall[path] = wall;
      this.#contentLogical[path] = logical;
      this.#contentOrigin[path] = this.#name(origin);
      this.#storeId(id);
      this.#contentIdStart[path] = this.#lastIdStart;
      this.#contentIdLength[path] = this.#lastIdLength;
      this.#contentActor[path] = actor;
    }
    if (
      (state & HAS_CONTENT) === 0 ||
      this.#compareStored(wall, logical, origin, id, this.#firstWall[path]!, this.#firstLogical[path]!, names[this.#firstOrigin[path]!]!, this.#firstIdStart[path]!, this.#firstIdLength[path]!) < 0
    ) {
      this.#firstWall[path] = wall;
      this.#firstLogical[path] = logical;
      this.#firstOrigin[path] = this.#name(origin);
      this.#storeId(id);
      this.#firstIdStart[path] = this.#lastIdStart;
      this.#firstIdLength[path] = this.#lastIdLength;
      this.#firstActor[path] = actor;
    }
    this.#fileState[path] = state | HAS_REGISTER | HAS_CONTENT;
    return newest;
  }

  /**
   * Applies an ArtifactDeployed event of `stream` with this envelope whose data `data` has
   * just read from its msgpack bytes (ArtifactDeployedDataReader.read returned true): what
   * `apply` does with the decoded event, without a string for its path, checksums or mime
   * type. Returns false if the tree ignores the stream.
   */
  applyDeployedData(stream: string, id: string, origin: string, wall: number, logical: number, actorName: string | null | undefined, data: ArtifactDeployedDataReader): boolean {
    const repo = this.#streamRepo(stream);
    if (repo === null) return false;
    const bytes = data.bytes;
    const path = this.#pathOfBytes(repo, bytes, data.pathStart, data.pathLength);
    const actor = actorName === undefined || actorName === null ? NONE : this.#name(actorName);
    if (this.#mergeDeploy(path, wall, logical, origin, id, actor)) {
      const checksums = data.checksums;
      copyBytes(checksums, DEPLOYED_SHA256_AT, this.#sha256, path * 32, 32);
      copyBytes(checksums, DEPLOYED_SHA1_AT, this.#sha1, path * 20, 20);
      copyBytes(checksums, DEPLOYED_MD5_AT, this.#md5, path * 16, 16);
      const state = this.#fileState[path]!;
      if ((state & ODD_CHECKSUMS) !== 0) {
        this.#oddChecksums.delete(path);
        this.#fileState[path] = state & ~ODD_CHECKSUMS;
      }
      this.#size[path] = data.size;
      this.#mimeType[path] = this.#nameOfBytes(bytes, data.mimeTypeStart, data.mimeTypeLength);
      this.#remoteUrl[path] = null;
    }
    for (let index = 0; index < data.propertyCount; index++) {
      this.#mergeProperty(path, this.#nameOfBytes(bytes, data.keyStarts[index]!, data.keyLengths[index]!), false, wall, logical, origin, id, data.values[index]!);
    }
    return true;
  }

  /**
   * Applies an ArtifactDeleted event of `stream` whose data `data` has just read
   * (ArtifactDeployedDataReader.readDeleted returned true): what `apply` does with the decoded
   * event. Returns false if the tree ignores the stream.
   */
  applyDeletedData(stream: string, origin: string, wall: number, logical: number, data: ArtifactDeployedDataReader): boolean {
    const repo = this.#streamRepo(stream);
    if (repo === null) return false;
    const path = this.#pathOfBytes(repo, data.bytes, data.pathStart, data.pathLength);
    this.#fileState[path]! |= HAS_REGISTER;
    this.#mergeTombstone(path, wall, logical, origin);
    return true;
  }

  /**
   * Applies a PropertiesSet event of `stream` whose data `data` has just read
   * (ArtifactDeployedDataReader.readPropertiesSet returned true): what `apply` does with the
   * decoded event. Returns false if the tree ignores the stream.
   */
  applyPropertiesSetData(stream: string, id: string, origin: string, wall: number, logical: number, data: ArtifactDeployedDataReader): boolean {
    const repo = this.#streamRepo(stream);
    if (repo === null) return false;
    const bytes = data.bytes;
    const path = this.#pathOfBytes(repo, bytes, data.pathStart, data.pathLength);
    for (let index = 0; index < data.propertyCount; index++) {
      this.#mergeProperty(path, this.#nameOfBytes(bytes, data.keyStarts[index]!, data.keyLengths[index]!), false, wall, logical, origin, id, data.values[index]!);
    }
    return true;
  }

  /** #name of the ASCII string of `length` bytes at `bytes[start]`, found by a hash of the bytes (no string made for a known one). */
  #nameOfBytes(bytes: Buffer, start: number, length: number): number {
    let hash = HASH_START;
    for (let index = start; index < start + length; index++) hash = hashStep(hash, bytes[index]!);
    hash = (hash ^ length) & 0x3fffffff;
    const known = this.#nameIdsByBytes.get(hash);
    if (known !== undefined) {
      const name = this.#names[known]!;
      if (name.length === length && startsWithBytes(bytes, start, name)) return known;
      return this.#name(bytes.toString('latin1', start, start + length));
    }
    const id = this.#name(bytes.toString('latin1', start, start + length));
    this.#nameIdsByBytes.set(hash, id);
    return id;
  }

  /** Writes a hex checksum as bytes; false if it is not `bytes` bytes of lowercase hex. */
  #writeChecksum(slab: Buffer, path: number, hex: string, bytes: number): boolean {
    if (hex.length !== 2 * bytes) return false;
    // By hand: a regular expression test and Buffer.write per checksum cost three times this.
    let at = path * bytes;
    for (let index = 0; index < hex.length; index += 2) {
      const high = HEX_VALUES[hex.charCodeAt(index)] ?? -1;
      const low = HEX_VALUES[hex.charCodeAt(index + 1)] ?? -1;
      if (high < 0 || low < 0) return false;
      slab[at++] = (high << 4) | low;
    }
    return true;
  }

  #mergeTombstone(path: number, wall: number, logical: number, origin: string): void {
    const state = this.#fileState[path]!;
    if (
      (state & HAS_TOMBSTONE) === 0 ||
      compareParts(wall, logical, origin, null, this.#tombstoneWall[path]!, this.#tombstoneLogical[path]!, this.#names[this.#tombstoneOrigin[path]!]!, null) > 0
    ) {
      this.#tombstoneWall[path] = wall;
      this.#tombstoneLogical[path] = logical;
      this.#tombstoneOrigin[path] = this.#name(origin);
      this.#fileState[path] = state | HAS_TOMBSTONE;
    }
  }

  /** The LWW maximum per (path, key): a removal wins a tie of stamps, two values break ties by id. */
  #mergeProperty(
    path: number,
    key: number,
    removed: boolean,
    wall: number,
    logical: number,
    origin: string,
    id: string | null,
    values: readonly string[] | null,
  ): void {
    let register = this.#propertyHead[path]!;
    while (register !== NONE && this.#propertyKey[register] !== key) register = this.#propertyNext[register]!;
    if (register === NONE) {
      register = this.#propertyCount++;
      if (register >= this.#propertyNext.length) this.#growProperties(register + 1);
      this.#propertyNext[register] = this.#propertyHead[path]!;
      this.#propertyHead[path] = register;
      this.#propertyKey[register] = key;
      this.#propertyValues.push(null);
    } else {
      const order = this.#compareStored(
        wall,
        logical,
        origin,
        removed ? null : id,
        this.#propertyWall[register]!,
        this.#propertyLogical[register]!,
        this.#names[this.#propertyOrigin[register]!]!,
        this.#propertyIdStart[register]!,
        this.#propertyRemoved[register] === 1 ? NULL_ID : this.#propertyIdLength[register]!,
      );
      const storedRemoved = this.#propertyRemoved[register] === 1;
      // A removal replaces a value at an equal stamp; a value never replaces a removal at one.
      const wins = order > 0 || (order === 0 && removed && !storedRemoved);
      if (!wins) return;
    }
    this.#propertyRemoved[register] = removed ? 1 : 0;
    this.#propertyWall[register] = wall;
    this.#propertyLogical[register] = logical;
    this.#propertyOrigin[register] = this.#name(origin);
    if (id === null) {
      this.#propertyIdStart[register] = 0;
      this.#propertyIdLength[register] = NULL_ID;
    } else {
      this.#storeId(id);
      this.#propertyIdStart[register] = this.#lastIdStart;
      this.#propertyIdLength[register] = this.#lastIdLength;
    }
    this.#propertyValues[register] = values === null ? null : values.map(ownString);
  }

  #growProperties(size: number): void {
    this.#propertyNext = grown(this.#propertyNext, size);
    this.#propertyKey = grown(this.#propertyKey, size);
    this.#propertyRemoved = grown(this.#propertyRemoved, size);
    this.#propertyWall = grown(this.#propertyWall, size);
    this.#propertyLogical = grown(this.#propertyLogical, size);
    this.#propertyOrigin = grown(this.#propertyOrigin, size);
    this.#propertyIdStart = grown(this.#propertyIdStart, size);
    this.#propertyIdLength = grown(this.#propertyIdLength, size);
  }

  /**
   * Stores `id` in #idBytes (or #oddIds) and sets #lastIdStart and #lastIdLength to where;
   * the same id as the last stored is not stored again.
   */
  #storeId(id: string): void {
    if (id === this.#lastId) return;
    const length = id.length;
    if (this.#idBytesUsed + length > this.#idBytes.length) this.#idBytes = grownBuffer(this.#idBytes, this.#idBytesUsed + length);
    const bytes = this.#idBytes;
    const start = this.#idBytesUsed;
    let stored = length;
    for (let index = 0; index < length; index++) {
      const code = id.charCodeAt(index);
      if (code >= 0x80) {
        stored = ODD_ID;
        break;
      }
      bytes[start + index] = code;
    }
    this.#lastId = id;
    if (stored === ODD_ID) {
      this.#lastIdStart = this.#oddIds.length;
      this.#lastIdLength = ODD_ID;
      this.#oddIds.push(id);
      return;
    }
    this.#idBytesUsed = start + length;
    this.#lastIdStart = start;
    this.#lastIdLength = length;
  }

  /** The id stored at `start` with `length` (see #storeId); null for NULL_ID. */
  #idText(start: number, length: number): string | null {
    if (length === NULL_ID) return null;
    if (length === ODD_ID) return this.#oddIds[start]!;
    return this.#idBytes.toString('latin1', start, start + length);
  }

  /** compareParts against a stored version whose id is read only when the stamps tie. */
  #compareStored(wall: number, logical: number, origin: string, id: string | null, storedWall: number, storedLogical: number, storedOrigin: string, storedIdStart: number, storedIdLength: number): number {
    const order = compareParts(wall, logical, origin, null, storedWall, storedLogical, storedOrigin, null);
    if (order !== 0 || id === null || storedIdLength === NULL_ID) return order;
    return compareParts(wall, logical, origin, id, storedWall, storedLogical, storedOrigin, this.#idText(storedIdStart, storedIdLength));
  }

  // Reading out ------------------------------------------------------------------------------

  /** Repositories that have any tree state, sorted. */
  repositories(): string[] {
    return [...this.#repos.keys()].sort();
  }

  #fileRegister(path: number): FileRegister {
    const state = this.#fileState[path]!;
    const names = this.#names;
    const actor = (id: number) => (id === NONE ? null : names[id]!);
    let content: FileRegister['content'] = null;
    let first: FileRegister['first'] = null;
    if ((state & HAS_CONTENT) !== 0) {
      const odd = (state & ODD_CHECKSUMS) === 0 ? undefined : this.#oddChecksums.get(path);
      content = {
        version: {
          hlc: { wall: this.#contentWall[path]!, logical: this.#contentLogical[path]! },
          origin: names[this.#contentOrigin[path]!]!,
          id: this.#idText(this.#contentIdStart[path]!, this.#contentIdLength[path]!)!,
        },
        sha256: odd?.sha256 ?? this.#sha256.toString('hex', path * 32, path * 32 + 32),
        sha1: odd?.sha1 ?? this.#sha1.toString('hex', path * 20, path * 20 + 20),
        md5: odd?.md5 ?? this.#md5.toString('hex', path * 16, path * 16 + 16),
        size: this.#size[path]!,
        mimeType: names[this.#mimeType[path]!]!,
        remoteUrl: this.#remoteUrl[path]!,
        actor: actor(this.#contentActor[path]!),
      };
      first = {
        version: {
          hlc: { wall: this.#firstWall[path]!, logical: this.#firstLogical[path]! },
          origin: names[this.#firstOrigin[path]!]!,
          id: this.#idText(this.#firstIdStart[path]!, this.#firstIdLength[path]!)!,
        },
        actor: actor(this.#firstActor[path]!),
      };
    }
    return { content, first, tombstone: this.#ownTombstone(path) };
  }

  #ownTombstone(path: number): EventStamp | null {
    if ((this.#fileState[path]! & HAS_TOMBSTONE) === 0) return null;
    return { hlc: { wall: this.#tombstoneWall[path]!, logical: this.#tombstoneLogical[path]! }, origin: this.#names[this.#tombstoneOrigin[path]!]! };
  }

  #propertyRegister(register: number): PropertyRegister {
    const stamp = { hlc: { wall: this.#propertyWall[register]!, logical: this.#propertyLogical[register]! }, origin: this.#names[this.#propertyOrigin[register]!]! };
    return this.#propertyRemoved[register] === 1
      ? { kind: 'removed', stamp }
      : { kind: 'value', version: { ...stamp, id: this.#idText(this.#propertyIdStart[register]!, this.#propertyIdLength[register]!)! }, values: this.#propertyValues[register]! };
  }

  /**
   * The registers of one repository for bulk writers, each kind sorted by path (then key) in
   * code-unit order, as ArtifactTreeModel.sortedEntries; register objects are created as the
   * iterables are walked (each may be walked once).
   */
  sortedEntries(repo: string): {
    files: Iterable<{ path: string; register: FileRegister; tombstone: EventStamp | null }>;
    folderTombstones: Iterable<{ prefix: string; stamp: EventStamp }>;
    properties: Iterable<{ path: string; key: string; register: PropertyRegister }>;
  } {
    const tree = this.#repos.get(repo);
    if (tree === undefined) return { files: [], folderTombstones: [], properties: [] };
    // Sorted once for both kinds, with each path's number looked up once.
    let sorted: { names: string[]; paths: Int32Array } | undefined;
    const sortedPaths = () => {
      if (sorted === undefined) {
        const paths = this.#sortedPaths(tree);
        const names = Array.from(paths, (path) => this.#pathName(path));
        sorted = { names, paths };
      }
      return sorted;
    };
    const coveringTombstone = this.#coveringTombstones(tree);
    const self = this;
    return {
      files: (function* () {
        const { names, paths } = sortedPaths();
        for (let index = 0; index < names.length; index++) {
          const path = paths[index]!;
          if ((self.#fileState[path]! & HAS_REGISTER) === 0) continue;
          const name = names[index]!;
          const register = self.#fileRegister(path);
          yield { path: name, register, tombstone: maxStamp(register.tombstone, coveringTombstone(name)) };
        }
      })(),
      folderTombstones: [...tree.folderTombstones.keys()].sort().map((prefix) => ({ prefix, stamp: tree.folderTombstones.get(prefix)! })),
      properties: (function* () {
        const { names, paths } = sortedPaths();
        for (let index = 0; index < names.length; index++) {
          const path = paths[index]!;
          const head = self.#propertyHead[path]!;
          if (head === NONE) continue;
          const name = names[index]!;
          const tombstone = maxStamp(self.#ownTombstone(path), coveringTombstone(name));
          if (self.#propertyNext[head] === NONE) {
            // One key (the common case): nothing to sort.
            const normalized = normalizePropertyRegister(self.#propertyRegister(head), tombstone);
            if (normalized !== undefined) yield { path: name, key: self.#names[self.#propertyKey[head]!]!, register: normalized };
            continue;
          }
          const registers: { key: string; register: number }[] = [];
          for (let register = head; register !== NONE; register = self.#propertyNext[register]!) registers.push({ key: self.#names[self.#propertyKey[register]!]!, register });
          registers.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
          for (const { key, register } of registers) {
            const normalized = normalizePropertyRegister(self.#propertyRegister(register), tombstone);
            if (normalized !== undefined) yield { path: name, key, register: normalized };
          }
        }
      })(),
    };
  }

  /**
   * The highest folder tombstone covering a path (its own prefix included), remembered per
   * parent folder: paths come sorted, so siblings ask one after another.
   */
  #coveringTombstones(tree: RepositoryPaths): (path: string) => EventStamp | null {
    const folders = tree.folderTombstones;
    if (folders.size === 0) return () => null;
    let lastParent: string | undefined;
    let lastParentTombstone: EventStamp | null = null;
    return (path) => {
      const parent = ArtifactTreePaths.parent(path);
      if (parent !== lastParent || path === '') {
        lastParent = parent;
        lastParentTombstone = null;
        if (path !== '') for (const prefix of ArtifactTreePaths.coveringPrefixes(parent)) lastParentTombstone = maxStamp(lastParentTombstone, folders.get(prefix) ?? null);
        else lastParentTombstone = folders.get('') ?? null;
      }
      return maxStamp(lastParentTombstone, folders.get(path) ?? null);
    };
  }

  /** A repository's path numbers sorted by path in code-unit order. */
  #sortedPaths(tree: RepositoryPaths): Int32Array {
    const named = tree.paths.map((path) => ({ path, name: this.#pathName(path) }));
    named.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return Int32Array.from(named, ({ path }) => path);
  }

  /** Path numbers in the order of `order` (with their repository's key order for 'key'). */
  #pathOrder(order: ArtifactTreeRowOrder): Int32Array {
    const paths = new Int32Array(this.#pathCount);
    if (order === 'any') {
      for (let index = 0; index < paths.length; index++) paths[index] = index;
      return paths;
    }
    let at = 0;
    for (const key of this.repositories()) {
      const tree = this.#repos.get(key)!;
      paths.set(this.#sortedPaths(tree), at);
      at += tree.paths.length;
    }
    return paths;
  }

  /**
   * The highest folder tombstone covering `name` (its own prefix included) in `tree`. Paths
   * come in any order and there are few tombstones: each prefix of `name` ending at a slash
   * (and `name` itself) is looked up by its hash, computed as the path is scanned once, so
   * no prefix string is cut unless a tombstone's hash matches.
   */
  #coveringTombstoneOf(tree: RepositoryPaths, path: number): EventStamp | null {
    const folders = tree.folderTombstones;
    if (folders.size === 0) return null;
    let byHash = tree.tombstonesByHash;
    if (byHash === undefined) {
      byHash = new Map();
      let lengthMax = 0;
      for (const [prefix, stamp] of folders) {
        lengthMax = Math.max(lengthMax, prefix.length);
        const hash = prefixHash(prefix);
        const entries = byHash.get(hash);
        if (entries === undefined) byHash.set(hash, [{ prefix, stamp }]);
        else entries.push({ prefix, stamp });
      }
      tree.tombstonesByHash = byHash;
      tree.tombstonePrefixLengthMax = lengthMax;
    }
    let covering = folders.get('') ?? null;
    // The path's code units: its bytes, or the string of a path kept as one.
    const start = this.#pathStart[path]!;
    const odd = this.#pathLength[path] === ODD_PATH ? this.#oddPaths[start]! : undefined;
    const length = odd === undefined ? this.#pathLength[path]! : odd.length;
    if (length === 0) return covering;
    const bytes = this.#pathBytes;
    const lengthMax = tree.tombstonePrefixLengthMax;
    // A path longer than the longest tombstone prefix has its covering tombstone decided by
    // its first lengthMax + 1 code units alone: a neighbour in the fold's order (a folder's
    // files are often first seen together) that shares them shares the result.
    const memo = this.#coveringMemo;
    const memoable = odd === undefined && length > lengthMax;
    if (memoable && memo.byHash === byHash && sameBytes(bytes, memo.start, start, lengthMax + 1)) return memo.covering;
    let hash = HASH_START;
    // Prefixes longer than the longest tombstone's are never looked up (a path is often
    // twice as long as the folders deleted above it).
    const end = Math.min(length, lengthMax);
    for (let index = 0; index <= end; index++) {
      const code = index >= length ? 47 : odd === undefined ? bytes[start + index]! : odd.charCodeAt(index);
      if (code === 47) {
        const entries = byHash.get(hash);
        if (entries !== undefined) {
          for (const entry of entries) {
            if (entry.prefix.length === index && (odd === undefined ? startsWithBytes(bytes, start, entry.prefix) : odd.startsWith(entry.prefix))) covering = maxStamp(covering, entry.stamp);
          }
        }
      }
      hash = hashStep(hash, code);
    }
    if (memoable) {
      memo.byHash = byHash;
      memo.start = start;
      memo.covering = covering;
    }
    return covering;
  }

  /** The effective tombstone of path number `path` (own and covering folder tombstones). */
  #effectiveTombstoneOf(path: number): EventStamp | null {
    const covering = this.#coveringTombstoneOf(this.#pathRepos[path]!, path);
    if ((this.#fileState[path]! & HAS_TOMBSTONE) === 0) return covering;
    const wall = this.#tombstoneWall[path]!;
    const logical = this.#tombstoneLogical[path]!;
    const origin = this.#names[this.#tombstoneOrigin[path]!]!;
    if (covering !== null && !stampAfter(wall, logical, origin, covering)) return covering;
    return { hlc: { wall, logical }, origin };
  }

  /**
   * Every file register as row columns (see ArtifactTreeFileRows), in `order`: the same
   * rows as `sortedEntries(repo).files` through `fileView`, without a register object each.
   */
  fileRows(order: ArtifactTreeRowOrder = 'key'): ArtifactTreeFileRows {
    const self = this;
    const paths = this.#pathOrder(order);
    const names = this.#names;
    const nameOrNull = (id: number) => (id === NONE ? null : names[id]!);
    let index = 0;
    /** The row's path number. */
    let current = 0;
    // Plain fields, the string views as getters of a shared prototype (RowViews): V8 keeps an
    // object literal with getters of its own in dictionary mode, where every field read of the
    // writer (~30 per row) is a lookup.
    const row = {
      viewPath: () => self.#pathName(current),
      viewId: (start: number, length: number) => self.#idText(start, length),
      pathBytes: self.#pathBytes as Uint8Array,
      idBytes: self.#idBytes as Uint8Array,
      repo: '',
      pathStart: 0,
      pathLength: 0,
      present: false,
      hasContent: false,
      contentWall: 0,
      contentLogical: 0,
      contentOrigin: NO_STAMP_ORIGIN,
      contentIdStart: 0,
      contentIdLength: 0,
      firstIdStart: 0,
      firstIdLength: 0,
      contentActor: null as string | null,
      size: 0,
      mimeType: '',
      remoteUrl: null as string | null,
      checksumBytes: { sha256: self.#sha256, sha1: self.#sha1, md5: self.#md5 },
      checksumIndex: 0,
      oddChecksums: undefined as ArtifactTreeFileRows['oddChecksums'],
      firstWall: 0,
      firstLogical: 0,
      firstOrigin: NO_STAMP_ORIGIN,
      firstActor: null as string | null,
      createdAt: 0,
      createdBy: null as string | null,
      hasTombstone: false,
      tombstoneWall: 0,
      tombstoneLogical: 0,
      tombstoneOrigin: NO_STAMP_ORIGIN,
      next(): boolean {
        for (;;) {
          if (index >= paths.length) return false;
          const path = paths[index++]!;
          const state = self.#fileState[path]!;
          if ((state & HAS_REGISTER) === 0) continue;
          row.repo = self.#pathRepos[path]!.key;
          current = path;
          row.pathStart = self.#pathStart[path]!;
          row.pathLength = self.#pathLength[path]!;
          const tombstone = self.#effectiveTombstoneOf(path);
          row.hasTombstone = tombstone !== null;
          if (tombstone !== null) {
            row.tombstoneWall = tombstone.hlc.wall;
            row.tombstoneLogical = tombstone.hlc.logical;
            row.tombstoneOrigin = tombstone.origin;
          }
          row.hasContent = (state & HAS_CONTENT) !== 0;
          row.present = false;
          if (!row.hasContent) return true;
          row.contentWall = self.#contentWall[path]!;
          row.contentLogical = self.#contentLogical[path]!;
          row.contentOrigin = names[self.#contentOrigin[path]!]!;
          row.contentIdStart = self.#contentIdStart[path]!;
          row.contentIdLength = self.#contentIdLength[path]!;
          row.contentActor = nameOrNull(self.#contentActor[path]!);
          row.size = self.#size[path]!;
          row.mimeType = names[self.#mimeType[path]!]!;
          row.remoteUrl = self.#remoteUrl[path]!;
          row.checksumIndex = path;
          row.oddChecksums = (state & ODD_CHECKSUMS) === 0 ? undefined : self.#oddChecksums.get(path);
          row.firstWall = self.#firstWall[path]!;
          row.firstLogical = self.#firstLogical[path]!;
          row.firstOrigin = names[self.#firstOrigin[path]!]!;
          row.firstIdStart = self.#firstIdStart[path]!;
          row.firstIdLength = self.#firstIdLength[path]!;
          row.firstActor = nameOrNull(self.#firstActor[path]!);
          // fileView: present iff the content is after the tombstone; created by the first
          // deploy if that is after it too, else by the content's.
          row.present = stampAfter(row.contentWall, row.contentLogical, row.contentOrigin, tombstone);
          if (row.present) {
            const firstCounts = stampAfter(row.firstWall, row.firstLogical, row.firstOrigin, tombstone);
            row.createdAt = firstCounts ? row.firstWall : row.contentWall;
            row.createdBy = firstCounts ? row.firstActor : row.contentActor;
          }
          return true;
        }
      },
    };
    Object.setPrototypeOf(row, RowViews.prototype);
    return row as unknown as ArtifactTreeFileRows;
  }

  /**
   * Every property register that survives normalisation, as row columns (see
   * ArtifactTreePropertyRows), in `order`: the rows of `sortedEntries(repo).properties`.
   */
  propertyRows(order: ArtifactTreeRowOrder = 'key'): ArtifactTreePropertyRows {
    const self = this;
    const paths = this.#pathOrder(order);
    const names = this.#names;
    let index = 0;
    /** The row's path number. */
    let current = 0;
    /** The current path's registers still to visit (sorted by key for 'key'), and where. */
    let registers: number[] = [];
    let registerAt = 0;
    let tombstone: EventStamp | null = null;
    const noValues: readonly string[] = [];
    // Plain fields, the string views as getters of a shared prototype (RowViews): V8 keeps an
    // object literal with getters of its own in dictionary mode, where every field read of the
    // writer (~30 per row) is a lookup.
    const row = {
      viewPath: () => self.#pathName(current),
      viewId: (start: number, length: number) => self.#idText(start, length),
      pathBytes: self.#pathBytes as Uint8Array,
      idBytes: self.#idBytes as Uint8Array,
      repo: '',
      pathStart: 0,
      pathLength: 0,
      key: '',
      removed: false,
      wall: 0,
      logical: 0,
      origin: '',
      idStart: 0,
      idLength: NULL_ID,
      values: noValues,
      next(): boolean {
        for (;;) {
          while (registerAt < registers.length) {
            const register = registers[registerAt++]!;
            const wall = self.#propertyWall[register]!;
            const logical = self.#propertyLogical[register]!;
            const origin = names[self.#propertyOrigin[register]!]!;
            if (!stampAfter(wall, logical, origin, tombstone)) continue;
            row.key = names[self.#propertyKey[register]!]!;
            row.removed = self.#propertyRemoved[register] === 1;
            row.wall = wall;
            row.logical = logical;
            row.origin = origin;
            row.idStart = self.#propertyIdStart[register]!;
            row.idLength = row.removed ? NULL_ID : self.#propertyIdLength[register]!;
            row.values = row.removed ? noValues : self.#propertyValues[register]!;
            return true;
          }
          if (index >= paths.length) return false;
          const path = paths[index++]!;
          const head = self.#propertyHead[path]!;
          if (head === NONE) continue;
          row.repo = self.#pathRepos[path]!.key;
          current = path;
          row.pathStart = self.#pathStart[path]!;
          row.pathLength = self.#pathLength[path]!;
          tombstone = self.#effectiveTombstoneOf(path);
          registers = [];
          registerAt = 0;
          for (let register = head; register !== NONE; register = self.#propertyNext[register]!) registers.push(register);
          if (order === 'key' && registers.length > 1) {
            registers.sort((a, b) => {
              const keyA = names[self.#propertyKey[a]!]!;
              const keyB = names[self.#propertyKey[b]!]!;
              return keyA < keyB ? -1 : keyA > keyB ? 1 : 0;
            });
          }
        }
      },
    };
    Object.setPrototypeOf(row, RowViews.prototype);
    return row as unknown as ArtifactTreePropertyRows;
  }

  /** The canonical snapshot; equal to ArtifactTreeModel's for the same set of events. */
  snapshot(): ArtifactTreeSnapshot {
    const files: FileSnapshot[] = [];
    const folderTombstones: FolderTombstoneSnapshot[] = [];
    const properties: PropertySnapshot[] = [];
    for (const repo of this.repositories()) {
      const entries = this.sortedEntries(repo);
      for (const { path, register, tombstone } of entries.files) files.push(fileSnapshotOf(repo, path, register, tombstone));
      for (const { prefix, stamp } of entries.folderTombstones) folderTombstones.push({ repo, prefix, stamp: stampJson(stamp) });
      for (const { path, key, register } of entries.properties) properties.push(propertySnapshotOf(repo, path, key, register));
    }
    return canonicalArtifactTreeSnapshot({ files, folderTombstones, properties });
  }

  digest(): string {
    return digestOf(this.snapshot());
  }
}
