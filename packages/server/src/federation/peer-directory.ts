/**
 * Which site answers at which public base URL. Members are configured by url
 * (`http://host:port/artifactory/{key}`); the engine speaks of site ids (the `origin` of
 * events). The directory maps one to the other: it learns from signed requests (a verified
 * sender names its id and base URL) and from signed identity lookups, and keeps what it
 * learned in SQL so a restarted site knows its peers at once.
 */
import { StrataError } from '@strata/core';

/** `http(s)://host[:port][/path]` lower-cased scheme and host, default port dropped, no trailing slash. */
export function normalizeBaseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `'${text}' is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `'${text}' is not an http(s) URL`);
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `'${text}' must not carry credentials, a query or a fragment`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  return `${url.protocol}//${url.host}${path}`;
}

/**
 * The site base URL and repository key of a member url `…/artifactory/{key}`; throws a 400
 * for anything else (members of one federation share the repository key).
 */
export function parseMemberUrl(text: string): { baseUrl: string; repoKey: string } {
  const normalized = normalizeBaseUrl(text);
  const marker = normalized.lastIndexOf('/artifactory/');
  const repoKey = marker < 0 ? '' : normalized.slice(marker + '/artifactory/'.length);
  if (marker < 0 || repoKey === '' || repoKey.includes('/')) {
    throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', `member url '${text}' must name a repository: http(s)://host:port/artifactory/{key}`);
  }
  return { baseUrl: normalized.slice(0, marker), repoKey };
}

export function memberUrlOf(baseUrl: string, repoKey: string): string {
  return `${baseUrl}/artifactory/${repoKey}`;
}

export interface PeerDirectoryOptions {
  readonly siteId: string;
  readonly baseUrl: string;
  /** Persists a mapping learned (awaited before it is used). */
  readonly save: (baseUrl: string, siteId: string) => Promise<void>;
}

export class PeerDirectory {
  readonly #siteId: string;
  readonly #baseUrl: string;
  readonly #save: (baseUrl: string, siteId: string) => Promise<void>;
  readonly #siteByBase = new Map<string, string>();
  readonly #baseBySite = new Map<string, string>();

  constructor(options: PeerDirectoryOptions) {
    this.#siteId = options.siteId;
    this.#save = options.save;
    this.#baseUrl = normalizeBaseUrl(options.baseUrl);
    this.#siteByBase.set(this.#baseUrl, this.#siteId);
    this.#baseBySite.set(this.#siteId, this.#baseUrl);
  }

  get ownBaseUrl(): string {
    return this.#baseUrl;
  }

  /** Mappings loaded from SQL at start. */
  load(entries: readonly { baseUrl: string; siteId: string }[]): void {
    for (const { baseUrl, siteId } of entries) this.#set(baseUrl, siteId);
  }

  #set(baseUrl: string, siteId: string): void {
    const previous = this.#siteByBase.get(baseUrl);
    if (previous !== undefined && previous !== siteId && this.#baseBySite.get(previous) === baseUrl) this.#baseBySite.delete(previous);
    this.#siteByBase.set(baseUrl, siteId);
    this.#baseBySite.set(siteId, baseUrl);
  }

  /** Records that `siteId` answers at `baseUrl`; true when that is news. */
  async learn(baseUrlText: string, siteId: string): Promise<boolean> {
    const baseUrl = normalizeBaseUrl(baseUrlText);
    if (baseUrl === this.#baseUrl || siteId === this.#siteId) return false;
    if (this.#siteByBase.get(baseUrl) === siteId && this.#baseBySite.get(siteId) === baseUrl) return false;
    await this.#save(baseUrl, siteId);
    this.#set(baseUrl, siteId);
    return true;
  }

  /** The site id behind a member url (this site's own id for its own url), or undefined. */
  peerIdOf(memberUrl: string): string | undefined {
    try {
      return this.#siteByBase.get(parseMemberUrl(memberUrl).baseUrl);
    } catch {
      return undefined;
    }
  }

  baseUrlOf(siteId: string): string | undefined {
    return this.#baseBySite.get(siteId);
  }

  isKnownBase(baseUrl: string): boolean {
    return this.#siteByBase.has(baseUrl);
  }
}
