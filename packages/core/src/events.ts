/**
 * The event envelope (DESIGN §3) and the first domain events. Shipped event types never
 * change shape: a new shape is a new type (`…V2`).
 */

/** A hybrid-logical-clock stamp: physical milliseconds and a logical counter. */
export interface HlcStamp {
  readonly wall: number;
  readonly logical: number;
}

/** What orders two events: the HLC stamp, then the origin site id (string order). */
export interface EventStamp {
  readonly hlc: HlcStamp;
  readonly origin: string;
}

export interface EventMeta {
  readonly actor?: string;
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly clientAddress?: string;
  readonly requestId?: string;
  /** The origin chain (issue 8): hex sha256 link of the previous event this origin produced in the stream. */
  readonly originPrev?: string;
}

export type Checksums = {
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
};

/** Properties: key → values (Artifactory properties are multi-valued). */
export type Properties = Readonly<Record<string, readonly string[]>>;

export interface RepositoryCreatedData {
  readonly key: string;
  /** The whole configuration as Artifactory JSON fields (rclass, packageType, …). */
  readonly config: Readonly<Record<string, unknown>>;
}
export interface RepositoryConfigChangedData {
  readonly key: string;
  /** Only the fields that changed; each field is its own LWW register. */
  readonly patch: Readonly<Record<string, unknown>>;
}
export interface RepositoryDeletedData {
  readonly key: string;
}
export interface ArtifactDeployedData {
  readonly path: string;
  readonly sha256: string;
  readonly sha1: string;
  readonly md5: string;
  readonly size: number;
  readonly mimeType: string;
  readonly properties: Properties;
}
export interface ArtifactDeletedData {
  readonly path: string;
}
export interface FolderDeletedData {
  /** The folder path; every entry at or below it is hidden if stamped lower. */
  readonly prefix: string;
}
export interface PropertiesSetData {
  readonly path: string;
  readonly properties: Properties;
}
export interface PropertiesRemovedData {
  readonly path: string;
  readonly keys: readonly string[];
}
export interface RemoteArtifactCachedData extends ArtifactDeployedData {
  readonly remoteUrl: string;
}
/**
 * A binary of a deleted (or overwritten) artifact left this site's blob store after its trash
 * period (issue 8: retention). The path's history says so; downloads as of an earlier time
 * stop working from here on. Changes nothing in the artifact tree.
 */
export interface ArtifactBinaryCollectedData {
  readonly path: string;
  readonly sha256: string;
}
/** Events of the `system` stream (users, tokens, settings) carry free-form data for now. */
export interface SystemEventData {
  readonly [key: string]: unknown;
}

/**
 * Events of the `distribution` stream (release bundles, trusted signing keys): free-form JSON
 * here; the distribution service validates their shape where it reads them.
 */
export interface DistributionEventData {
  readonly [key: string]: unknown;
}

export interface DomainEventMap {
  RepositoryCreated: RepositoryCreatedData;
  RepositoryConfigChanged: RepositoryConfigChangedData;
  RepositoryDeleted: RepositoryDeletedData;
  ArtifactDeployed: ArtifactDeployedData;
  ArtifactDeleted: ArtifactDeletedData;
  FolderDeleted: FolderDeletedData;
  PropertiesSet: PropertiesSetData;
  PropertiesRemoved: PropertiesRemovedData;
  RemoteArtifactCached: RemoteArtifactCachedData;
  ArtifactBinaryCollected: ArtifactBinaryCollectedData;
  UserSaved: SystemEventData;
  UserDeleted: SystemEventData;
  GroupSaved: SystemEventData;
  GroupDeleted: SystemEventData;
  TokenIssued: SystemEventData;
  TokenRevoked: SystemEventData;
  PermissionTargetSaved: SystemEventData;
  PermissionTargetDeleted: SystemEventData;
  SettingsChanged: SystemEventData;
  CurationPolicySaved: SystemEventData;
  CurationPolicyDeleted: SystemEventData;
  ReleaseBundleCreated: DistributionEventData;
  ReleaseBundleReceived: DistributionEventData;
  ReleaseBundlePublished: DistributionEventData;
  ReleaseBundleDeleted: DistributionEventData;
  TrustedKeySaved: DistributionEventData;
  TrustedKeyDeleted: DistributionEventData;
}

/** Events of a repository's stream (`repo-<key>`). */
export const REPOSITORY_EVENT_TYPES = [
  'RepositoryCreated',
  'RepositoryConfigChanged',
  'RepositoryDeleted',
  'ArtifactDeployed',
  'ArtifactDeleted',
  'FolderDeleted',
  'PropertiesSet',
  'PropertiesRemoved',
  'RemoteArtifactCached',
  'ArtifactBinaryCollected',
] as const satisfies readonly (keyof DomainEventMap)[];

/** Events of the `system` stream (users, groups, tokens, permission targets, settings). */
export const SYSTEM_EVENT_TYPES = [
  'UserSaved',
  'UserDeleted',
  'GroupSaved',
  'GroupDeleted',
  'TokenIssued',
  'TokenRevoked',
  'PermissionTargetSaved',
  'PermissionTargetDeleted',
  'SettingsChanged',
  'CurationPolicySaved',
  'CurationPolicyDeleted',
] as const satisfies readonly (keyof DomainEventMap)[];

/** Events of the `distribution` stream (release bundles, trusted keys of an edge). */
export const DISTRIBUTION_EVENT_TYPES = [
  'ReleaseBundleCreated',
  'ReleaseBundleReceived',
  'ReleaseBundlePublished',
  'ReleaseBundleDeleted',
  'TrustedKeySaved',
  'TrustedKeyDeleted',
] as const satisfies readonly (keyof DomainEventMap)[];

export const EVENT_TYPES = [...REPOSITORY_EVENT_TYPES, ...SYSTEM_EVENT_TYPES, ...DISTRIBUTION_EVENT_TYPES] as const;

export type EventType = (typeof EVENT_TYPES)[number];
export type SystemEventType = (typeof SYSTEM_EVENT_TYPES)[number];
export type DistributionEventType = (typeof DISTRIBUTION_EVENT_TYPES)[number];

const DISTRIBUTION_EVENT_TYPE_SET: ReadonlySet<string> = new Set(DISTRIBUTION_EVENT_TYPES);
export function isDistributionEventType(type: EventType): type is DistributionEventType {
  return DISTRIBUTION_EVENT_TYPE_SET.has(type);
}

const SYSTEM_EVENT_TYPE_SET: ReadonlySet<string> = new Set(SYSTEM_EVENT_TYPES);
export function isSystemEventType(type: EventType): type is SystemEventType {
  return SYSTEM_EVENT_TYPE_SET.has(type);
}

const EVENT_TYPE_SET: ReadonlySet<string> = new Set(EVENT_TYPES);
export function isEventType(value: unknown): value is EventType {
  return typeof value === 'string' && EVENT_TYPE_SET.has(value);
}

/** A domain event before the store stamps it with stream position. */
export type DomainEvent = {
  [T in EventType]: { readonly type: T; readonly data: DomainEventMap[T] };
}[EventType];

/**
 * What a producer hands to the store: a domain event with its identity, origin stamp and
 * meta. `revision` and `position` are assigned by the store of the site that appends it.
 */
export type NewEvent = DomainEvent & {
  readonly id: string;
  readonly origin: string;
  readonly originSeq: number;
  readonly hlc: HlcStamp;
  readonly meta: EventMeta;
};

/** An event as stored and read back. */
export type RecordedEvent = NewEvent & {
  readonly stream: string;
  /** 0-based, gapless position in this site's copy of the stream. */
  readonly revision: number;
  /** This site's global order. */
  readonly position: bigint;
};

export const SYSTEM_STREAM = 'system';
/** The stream of release bundles and trusted keys (DISTRIBUTION_EVENT_TYPES). */
export const DISTRIBUTION_STREAM = 'distribution';
export function repositoryStream(key: string): string {
  return `repo-${key}`;
}
