/**
 * Repository configuration merge rules (DESIGN §4) as pure code, and an in-memory model.
 *
 * - Each configuration field is an LWW register: `RepositoryCreated` sets every field of its
 *   `config` at its stamp, `RepositoryConfigChanged` sets the patched fields. Equal stamps
 *   are ordered by event id.
 * - `RepositoryDeleted` is a tombstone for the repository: fields stamped at or before the
 *   latest delete are dropped, and the repository exists iff its latest create is stamped
 *   strictly after its latest delete (a create stamped later re-creates it).
 * - Registers are kept normalised (whatever the delete tombstone dominates is dropped), which
 *   is what the SQL row stores, so the model and the projection compare equal.
 *
 * Every merge is a max, so redelivery changes nothing and the state is a function of the
 * set of events.
 */
import type { EventStamp } from './events.ts';
import {
  type EventVersion,
  type StampJson,
  type StreamEvent,
  type VersionJson,
  canonicalJson,
  compareVersions,
  digestOf,
  isAfterTombstone,
  maxStamp,
  stampJson,
  stampOf,
  versionJson,
  versionOf,
} from './artifact-tree-model.ts';
import { repositoryKeyIdentity } from './repository-key.ts';

export interface ConfigFieldRegister {
  readonly version: EventVersion;
  readonly value: unknown;
}

/** The merge state of one repository key. */
export interface RepositoryRegister {
  readonly key: string;
  /** The latest RepositoryCreated stamped after the latest delete (else null). */
  readonly created: EventVersion | null;
  readonly deleted: EventStamp | null;
  /** Field → register; only fields stamped after `deleted`. */
  readonly fields: ReadonlyMap<string, ConfigFieldRegister>;
}

export function emptyRepositoryRegister(key: string): RepositoryRegister {
  return { key, created: null, deleted: null, fields: new Map() };
}

function mergeFields(
  fields: ReadonlyMap<string, ConfigFieldRegister>,
  version: EventVersion,
  values: Readonly<Record<string, unknown>>,
): ReadonlyMap<string, ConfigFieldRegister> {
  let merged: Map<string, ConfigFieldRegister> | undefined;
  for (const field of Object.keys(values)) {
    const current = (merged ?? fields).get(field);
    if (current !== undefined && compareVersions(version, current.version) <= 0) continue;
    merged ??= new Map(fields);
    merged.set(field, { version, value: values[field] });
  }
  return merged ?? fields;
}

/** Drops every part the delete tombstone dominates. */
export function normalizeRepositoryRegister(register: RepositoryRegister): RepositoryRegister {
  const deleted = register.deleted;
  if (deleted === null) return register;
  const created = register.created !== null && isAfterTombstone(register.created, deleted) ? register.created : null;
  let fields: Map<string, ConfigFieldRegister> | undefined;
  for (const [field, fieldRegister] of register.fields) {
    if (isAfterTombstone(fieldRegister.version, deleted)) continue;
    fields ??= new Map(register.fields);
    fields.delete(field);
  }
  if (created === register.created && fields === undefined) return register;
  return { ...register, created, fields: fields ?? register.fields };
}

export const REPOSITORY_CONFIG_EVENT_TYPES = ['RepositoryCreated', 'RepositoryConfigChanged', 'RepositoryDeleted'] as const;
export type RepositoryConfigEventType = (typeof REPOSITORY_CONFIG_EVENT_TYPES)[number];
const CONFIG_EVENT_TYPE_SET: ReadonlySet<string> = new Set(REPOSITORY_CONFIG_EVENT_TYPES);
export function isRepositoryConfigEvent(event: { readonly type: string }): boolean {
  return CONFIG_EVENT_TYPE_SET.has(event.type);
}

/** The repository key an event configures, or undefined for other events. */
export function repositoryConfigTarget(event: StreamEvent): string | undefined {
  switch (event.type) {
    case 'RepositoryCreated':
    case 'RepositoryConfigChanged':
    case 'RepositoryDeleted':
      return event.data.key;
    default:
      return undefined;
  }
}

/** Applies one event to a register (undefined: not yet known). Returns it unchanged for other events. */
export function evolveRepositoryRegister(register: RepositoryRegister | undefined, event: StreamEvent): RepositoryRegister | undefined {
  const key = repositoryConfigTarget(event);
  if (key === undefined) return register;
  const current = register ?? emptyRepositoryRegister(key);
  let next: RepositoryRegister;
  switch (event.type) {
    case 'RepositoryCreated': {
      const version = versionOf(event);
      const created =
        current.created === null || compareVersions(version, current.created) > 0 ? version : current.created;
      next = { ...current, created, fields: mergeFields(current.fields, version, event.data.config ?? {}) };
      break;
    }
    case 'RepositoryConfigChanged':
      next = { ...current, fields: mergeFields(current.fields, versionOf(event), event.data.patch ?? {}) };
      break;
    case 'RepositoryDeleted':
      next = { ...current, deleted: maxStamp(current.deleted, stampOf(event)) };
      break;
    default:
      return register;
  }
  return normalizeRepositoryRegister(next);
}

/** What a reader sees of an existing repository. */
export interface RepositoryConfigView {
  readonly key: string;
  /** Lower-cased key: repository keys are unique regardless of case. */
  readonly keyIdentity: string;
  /** The visible fields, keys sorted. */
  readonly config: Readonly<Record<string, unknown>>;
  /** Wall-clock ms of the create that the repository's current life started with. */
  readonly createdAt: number;
  /** Wall-clock ms of the latest field change. */
  readonly lastModified: number;
}

export function repositoryExists(register: RepositoryRegister): boolean {
  return register.created !== null && isAfterTombstone(register.created, register.deleted);
}

export function repositoryViewOf(register: RepositoryRegister): RepositoryConfigView | undefined {
  if (!repositoryExists(register) || register.created === null) return undefined;
  const config: Record<string, unknown> = {};
  let lastModified = register.created.hlc.wall;
  for (const field of [...register.fields.keys()].sort()) {
    const fieldRegister = register.fields.get(field);
    if (fieldRegister === undefined) continue;
    config[field] = fieldRegister.value;
    lastModified = Math.max(lastModified, fieldRegister.version.hlc.wall);
  }
  return {
    key: register.key,
    keyIdentity: repositoryKeyIdentity(register.key),
    config,
    createdAt: register.created.hlc.wall,
    lastModified,
  };
}

/** The `rclass` field of a view, if it is a string. */
export function repositoryClassOf(view: RepositoryConfigView): string | undefined {
  const rclass = view.config['rclass'];
  return typeof rclass === 'string' ? rclass : undefined;
}

export interface RepositorySnapshot {
  readonly key: string;
  readonly exists: boolean;
  readonly created: VersionJson | null;
  readonly deleted: StampJson | null;
  /** Sorted by field; values as canonical JSON text, so jsonb key order cannot differ. */
  readonly fields: readonly { readonly field: string; readonly version: VersionJson; readonly value: string }[];
}

export function repositorySnapshotOf(register: RepositoryRegister): RepositorySnapshot {
  return {
    key: register.key,
    exists: repositoryExists(register),
    created: register.created === null ? null : versionJson(register.created),
    deleted: register.deleted === null ? null : stampJson(register.deleted),
    fields: [...register.fields.keys()].sort().map((field) => {
      const fieldRegister = register.fields.get(field)!;
      return { field, version: versionJson(fieldRegister.version), value: canonicalJson(fieldRegister.value) };
    }),
  };
}

export function canonicalRepositorySnapshots(snapshots: readonly RepositorySnapshot[]): RepositorySnapshot[] {
  return [...snapshots].sort((a, b) => (a.key === b.key ? 0 : a.key < b.key ? -1 : 1));
}

/** Every repository's configuration, in memory. Mutable and single-owner, like ArtifactTreeModel. */
export class RepositoryConfigModel {
  readonly #registers = new Map<string, RepositoryRegister>();

  /** Applies one event; returns false if it is not a repository configuration event. Idempotent. */
  apply(event: StreamEvent): boolean {
    const key = repositoryConfigTarget(event);
    if (key === undefined) return false;
    const next = evolveRepositoryRegister(this.#registers.get(key), event);
    if (next !== undefined) this.#registers.set(key, next);
    return true;
  }

  applyAll(events: Iterable<StreamEvent>): this {
    for (const event of events) this.apply(event);
    return this;
  }

  register(key: string): RepositoryRegister | undefined {
    return this.#registers.get(key);
  }

  registers(): RepositoryRegister[] {
    return [...this.#registers.values()].sort((a, b) => (a.key === b.key ? 0 : a.key < b.key ? -1 : 1));
  }

  get(key: string): RepositoryConfigView | undefined {
    const register = this.#registers.get(key);
    return register === undefined ? undefined : repositoryViewOf(register);
  }

  /** The existing repository whose lower-cased key is `identity` (the smallest key if several). */
  getByIdentity(identity: string): RepositoryConfigView | undefined {
    return this.list().find((view) => view.keyIdentity === identity);
  }

  /** Existing repositories sorted by key, optionally of one rclass. */
  list(options: { rclass?: string } = {}): RepositoryConfigView[] {
    const views: RepositoryConfigView[] = [];
    for (const register of this.registers()) {
      const view = repositoryViewOf(register);
      if (view === undefined) continue;
      if (options.rclass !== undefined && repositoryClassOf(view) !== options.rclass) continue;
      views.push(view);
    }
    return views;
  }

  snapshot(): RepositorySnapshot[] {
    return this.registers().map(repositorySnapshotOf);
  }

  digest(): string {
    return digestOf(this.snapshot());
  }
}
