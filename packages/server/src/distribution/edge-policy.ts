import { repositoryKeyIdentity, StrataError } from '@strata/core';
import type { DomainEvent } from '@strata/core';
import { CONTENT_SYNCHRONISATION_DEFAULT, contentSynchronisationOf, normaliseContentSynchronisation } from '../smart-remote/smart-remote-model.ts';
import type { ContentSynchronisation } from '../smart-remote/smart-remote-model.ts';

/** Events that change a repository's content (configuration and remote caching are not). */
const CONTENT_WRITES: ReadonlySet<string> = new Set(['ArtifactDeployed', 'ArtifactDeleted', 'FolderDeleted', 'PropertiesSet', 'PropertiesRemoved']);

/** The one repository an edge node accepts uploads into (seeds/edge-nodes.txt). */
export const EDGE_UPLOADS_REPOSITORY = 'artifactory-edge-uploads';

export const smartRemoteProbeTimeoutMs = 5_000;
/** Off an edge, detection only decides the default of contentSynchronisation.enabled: a short wait. */
export const smartRemoteDetectTimeoutMs = 2_000;

/** What a probe of another Strata/Artifactory server found. */
export interface SmartRemoteProbe {
  /** The `/artifactory` base URL of the remote server. */
  readonly baseUrl: string;
  readonly version: string;
}

/** The `…/artifactory` base of a repository URL such as `http://host/artifactory/api/npm/repo`, or undefined. */
export function artifactoryBaseOf(url: string): string | undefined {
  const match = /^(https?:\/\/[^/?#]+(?:\/[^?#]*?)?\/artifactory)(?:[/?#]|$)/.exec(url);
  return match?.[1];
}

/**
 * Probes `<base>/api/system/version` of a remote repository URL: a smart remote points at
 * another Artifactory-compatible server. Throws STRATA_ERR_EDGE_NOT_SMART_REMOTE, with what
 * was found, otherwise.
 */
export async function probeSmartRemote(
  url: string,
  credentials: { username?: unknown; password?: unknown },
  fetchImpl: typeof fetch = fetch,
  timeoutMs = smartRemoteProbeTimeoutMs,
): Promise<SmartRemoteProbe> {
  const baseUrl = artifactoryBaseOf(url);
  const refuse = (why: string): never => {
    throw new StrataError('STRATA_ERR_EDGE_NOT_SMART_REMOTE', `remote URL '${url}' is not a smart remote (another Strata or Artifactory server): ${why}`);
  };
  if (baseUrl === undefined) return refuse("it does not point into an '/artifactory/' path");
  const headers: Record<string, string> = {};
  if (typeof credentials.username === 'string' && credentials.username !== '') {
    headers.authorization = `Basic ${Buffer.from(`${credentials.username}:${typeof credentials.password === 'string' ? credentials.password : ''}`).toString('base64')}`;
  }
  let response: Response;
  try {
    response = await fetchImpl(`${baseUrl}/api/system/version`, { headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (error) {
    return refuse(`${baseUrl}/api/system/version could not be reached (${error instanceof Error ? error.message : String(error)})`);
  }
  const text = await response.text().catch(() => '');
  if (response.status !== 200) return refuse(`${baseUrl}/api/system/version answered ${response.status}`);
  let version: unknown;
  try {
    version = (JSON.parse(text) as { version?: unknown }).version;
  } catch {
    return refuse(`${baseUrl}/api/system/version did not answer JSON`);
  }
  if (typeof version !== 'string' || version === '') return refuse(`${baseUrl}/api/system/version names no version`);
  return { baseUrl, version };
}

/**
 * The rules of an edge node (`strata serve --edge`): every repository is read-only except
 * `artifactory-edge-uploads`, which cannot be removed; remote repositories must be smart
 * remotes; federated repositories (replication) are refused. Off, it allows everything.
 */
export class EdgePolicy {
  readonly enabled: boolean;
  readonly #fetch: typeof fetch;

  constructor(enabled: boolean, fetchImpl: typeof fetch = fetch) {
    this.enabled = enabled;
    this.#fetch = fetchImpl;
  }

  /** Throws STRATA_ERR_EDGE_READ_ONLY for a content write (deploy, delete, properties, copy/move target). */
  checkContentWrite(repo: string): void {
    if (!this.enabled || repositoryKeyIdentity(repo) === repositoryKeyIdentity(EDGE_UPLOADS_REPOSITORY)) return;
    throw new StrataError('STRATA_ERR_EDGE_READ_ONLY', `repository '${repo}' is read-only on this edge node: upload to '${EDGE_UPLOADS_REPOSITORY}', or distribute a release bundle`);
  }

  /**
   * The repository writers' guard: refuses content events in any repository but the uploads
   * one, whichever route or format decided them (npm publish, PyPI upload, Maven deploy…).
   */
  checkEvents(stream: string, events: readonly DomainEvent[]): void {
    if (!this.enabled || !stream.startsWith('repo-')) return;
    if (events.some((event) => CONTENT_WRITES.has(event.type))) this.checkContentWrite(stream.slice('repo-'.length));
  }

  async beforeCreate(key: string, config: Readonly<Record<string, unknown>>): Promise<Readonly<Record<string, unknown>> | undefined> {
    if (this.enabled && config.rclass === 'federated') {
      throw new StrataError('STRATA_ERR_REPO_CONFIG_INVALID', 'an edge node does not take part in federation or replication: create a local or smart remote repository');
    }
    if (config.rclass !== 'remote') return undefined;
    void key;
    return { contentSynchronisation: await this.#detect(config, config.contentSynchronisation) };
  }

  async beforeUpdate(current: Readonly<Record<string, unknown>>, body: unknown): Promise<Readonly<Record<string, unknown>> | undefined> {
    if (current.rclass !== 'remote' || typeof body !== 'object' || body === null) return undefined;
    const fields = body as Record<string, unknown>;
    const merged = { ...current, ...fields };
    const given = fields.contentSynchronisation;
    if (fields.url === undefined && fields.username === undefined && fields.password === undefined) {
      // Options changed without re-pointing: keep what is stored, overlay what was given.
      if (given === undefined) return undefined;
      return { contentSynchronisation: normaliseContentSynchronisation(given, contentSynchronisationOf(current)) };
    }
    return { contentSynchronisation: await this.#detect(merged, given, contentSynchronisationOf(current)) };
  }

  /**
   * A remote's contentSynchronisation with `enabled` from a probe of its URL (unless the
   * request set it). On an edge a remote that is not smart is refused; elsewhere it is a plain remote.
   */
  async #detect(config: Readonly<Record<string, unknown>>, given: unknown, base = CONTENT_SYNCHRONISATION_DEFAULT): Promise<ContentSynchronisation> {
    const options = normaliseContentSynchronisation(given, base);
    let smart: boolean;
    try {
      await probeSmartRemote(String(config.url), config, this.#fetch, this.enabled ? smartRemoteProbeTimeoutMs : smartRemoteDetectTimeoutMs);
      smart = true;
    } catch (error) {
      if (this.enabled) throw error;
      smart = false;
    }
    const explicit = typeof given === 'object' && given !== null && typeof (given as { enabled?: unknown }).enabled === 'boolean';
    return { ...options, enabled: this.enabled ? true : explicit ? options.enabled : smart };
  }

  beforeDelete(key: string): void {
    if (this.enabled && repositoryKeyIdentity(key) === repositoryKeyIdentity(EDGE_UPLOADS_REPOSITORY)) {
      throw new StrataError('STRATA_ERR_EDGE_PROTECTED_REPOSITORY', `'${EDGE_UPLOADS_REPOSITORY}' always exists on an edge node and cannot be removed`);
    }
  }
}
