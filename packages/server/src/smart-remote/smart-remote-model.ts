import { isValidRepositoryKey, StrataError } from '@strata/core';

/**
 * A smart remote (seeds/smart-remote-repositories.txt): a remote repository whose URL points
 * at a repository on another Strata/Artifactory server. Its options live in the remote's
 * configuration as Artifactory spells them.
 */
export interface ContentSynchronisation {
  readonly enabled: boolean;
  readonly statistics: { readonly enabled: boolean };
  readonly properties: { readonly enabled: boolean };
  readonly source: { readonly originAbsenceDetection: boolean };
}

export const CONTENT_SYNCHRONISATION_DEFAULT: ContentSynchronisation = Object.freeze({
  enabled: false,
  statistics: Object.freeze({ enabled: false }),
  properties: Object.freeze({ enabled: false }),
  source: Object.freeze({ originAbsenceDetection: false }),
});

function invalid(message: string): never {
  throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', message);
}

function flag(value: unknown, field: string, fallback: boolean): boolean {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean') invalid(`contentSynchronisation.${field} must be a boolean`);
  return value;
}

function section(value: unknown, field: string): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) invalid(`contentSynchronisation.${field} must be an object`);
  return value as Record<string, unknown>;
}

/** The options with every field present; `base` fills what `value` leaves out. Refuses wrong types (400). */
export function normaliseContentSynchronisation(value: unknown, base: ContentSynchronisation = CONTENT_SYNCHRONISATION_DEFAULT): ContentSynchronisation {
  if (value !== undefined && value !== null && (typeof value !== 'object' || Array.isArray(value))) invalid('contentSynchronisation must be an object');
  const given = (value ?? {}) as Record<string, unknown>;
  return {
    enabled: flag(given.enabled, 'enabled', base.enabled),
    statistics: { enabled: flag(section(given.statistics, 'statistics').enabled, 'statistics.enabled', base.statistics.enabled) },
    properties: { enabled: flag(section(given.properties, 'properties').enabled, 'properties.enabled', base.properties.enabled) },
    source: { originAbsenceDetection: flag(section(given.source, 'source').originAbsenceDetection, 'source.originAbsenceDetection', base.source.originAbsenceDetection) },
  };
}

/** The options of a stored remote configuration (defaults for anything missing or malformed). */
export function contentSynchronisationOf(config: Readonly<Record<string, unknown>>): ContentSynchronisation {
  try {
    return normaliseContentSynchronisation(config.contentSynchronisation);
  } catch {
    return CONTENT_SYNCHRONISATION_DEFAULT;
  }
}

/** Where a smart remote's origin repository lives: `<baseUrl>/api/storage/<repo>/…` answers for it. */
export interface SmartRemoteOrigin {
  /** `http://host:port/artifactory` */
  readonly baseUrl: string;
  /** The repository key at the origin (a local, remote, federated or virtual repository). */
  readonly repo: string;
}

/**
 * The origin of a remote URL such as `http://h/artifactory/libs`, `…/artifactory/libs/sub/` or
 * `…/artifactory/api/npm/npm-local`; undefined when the URL names no repository there.
 */
export function smartRemoteOriginOf(url: string): SmartRemoteOrigin | undefined {
  const match = /^(https?:\/\/[^/?#]+(?:\/[^?#]*?)?\/artifactory)\/(?:api\/[A-Za-z0-9_-]+\/)?([^/?#]+)/.exec(url);
  if (match === null) return undefined;
  let repo: string;
  try {
    repo = decodeURIComponent(match[2]!);
  } catch {
    return undefined;
  }
  if (repo === 'api' || !isValidRepositoryKey(repo)) return undefined;
  return { baseUrl: match[1]!, repo };
}
