/**
 * Three (or more) `strata serve` processes federated on loopback: each with its own data dir
 * (and PostgreSQL database, when asked), a fixed port (members address each other by URL,
 * so a restarted site keeps it), the shared federation secret and short federation timers.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adminFetch, freePort, spawnServer, type SpawnedServer } from './spawned-server.ts';

export const FEDERATION_TOKEN = 'e2e-federation-secret-0123456789';

export interface Site {
  readonly name: string;
  readonly port: number;
  readonly baseUrl: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  server: SpawnedServer | undefined;
}

export interface SiteOptions {
  readonly token?: string;
  readonly env?: Record<string, string>;
}

export async function prepareSites(names: readonly string[], databaseUrls: readonly (string | undefined)[] = []): Promise<Site[]> {
  const sites: Site[] = [];
  for (const [index, name] of names.entries()) {
    const port = await freePort();
    sites.push({
      name,
      port,
      baseUrl: `http://127.0.0.1:${port}`,
      dataDir: await mkdtemp(join(tmpdir(), `strata-fed-${name}-`)),
      databaseUrl: databaseUrls[index],
      server: undefined,
    });
  }
  return sites;
}

export async function startSite(site: Site, options: SiteOptions = {}): Promise<SpawnedServer> {
  site.server = await spawnServer({
    dataDir: site.dataDir,
    port: site.port,
    ...(site.databaseUrl === undefined ? {} : { databaseUrl: site.databaseUrl }),
    env: {
      STRATA_SITE_ID: `site-${site.name}`,
      STRATA_BASE_URL: site.baseUrl,
      STRATA_FEDERATION_TOKEN: options.token ?? FEDERATION_TOKEN,
      STRATA_FEDERATION_ANTI_ENTROPY_MS: '1500',
      STRATA_FEDERATION_RETRY_MAX_MS: '1000',
      STRATA_FEDERATION_TEST_HOOKS: '1',
      ...options.env,
    },
  });
  return site.server;
}

export async function stopSites(sites: readonly Site[]): Promise<void> {
  await Promise.all(sites.map((site) => site.server?.kill()));
  await Promise.all(sites.map((site) => rm(site.dataDir, { recursive: true, force: true })));
}

export function memberUrl(site: Site, repoKey: string): string {
  return `${site.baseUrl}/artifactory/${repoKey}`;
}

export function live(site: Site): SpawnedServer {
  if (site.server === undefined) throw new Error(`site ${site.name} is not running`);
  return site.server;
}

export async function createFederatedRepo(site: Site, key: string, members: readonly Site[]): Promise<void> {
  const response = await adminFetch(live(site), `/artifactory/api/repositories/${key}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ rclass: 'federated', packageType: 'generic', members: members.map((member) => ({ url: memberUrl(member, key), enabled: true })) }),
  });
  if (response.status !== 200) throw new Error(`create ${key} on ${site.name}: ${response.status} ${await response.text()}`);
}

export async function deploy(site: Site, key: string, path: string, content: string): Promise<void> {
  const response = await adminFetch(live(site), `/artifactory/${key}/${path}`, { method: 'PUT', body: content });
  if (response.status !== 201) throw new Error(`deploy ${path} on ${site.name}: ${response.status} ${await response.text()}`);
}

/** The files of a repository as path → sha256 (deep listing), or undefined if the repository is absent. */
export async function snapshot(site: Site, key: string): Promise<Record<string, string> | undefined> {
  const response = await adminFetch(live(site), `/artifactory/api/storage/${key}?list&deep=1`);
  if (response.status === 404) return undefined;
  if (response.status !== 200) throw new Error(`list ${key} on ${site.name}: ${response.status} ${await response.text()}`);
  const body = (await response.json()) as { files: { uri: string; sha2?: string; folder: boolean }[] };
  const files: Record<string, string> = {};
  for (const file of body.files) if (!file.folder) files[file.uri] = file.sha2 ?? '';
  return files;
}

export async function properties(site: Site, key: string, path: string): Promise<Record<string, string[]>> {
  const response = await adminFetch(live(site), `/artifactory/api/storage/${key}/${path}?properties`);
  if (response.status === 404) return {};
  return ((await response.json()) as { properties: Record<string, string[]> }).properties;
}

export interface MemberStatus {
  url: string;
  siteId: string | null;
  state: string;
  lagEvents: number;
  lagMs: number;
  lastError: string | null;
  lastInboundError: string | null;
  clockOffsetMs: number | null;
  pendingBinaries: number;
}

export interface FederationStatus {
  repoKey: string;
  vector: Record<string, number>;
  /** True when a members edit removed this site. */
  removed: boolean;
  pendingBinaries: number;
  receiveLag: { events: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null };
  receiveLagFromCommit: { events: number; p50Ms: number | null; p99Ms: number | null; maxMs: number | null };
  receiveStages: { events: number } & Record<'arrival' | 'authentication' | 'queue' | 'append' | 'dispatch' | 'transit', { p50Ms: number | null; p99Ms: number | null }>;
  members: MemberStatus[];
}

export async function status(site: Site, key: string): Promise<FederationStatus> {
  const response = await adminFetch(live(site), `/artifactory/api/federation/status/${key}`);
  if (response.status !== 200) throw new Error(`status ${key} on ${site.name}: ${response.status} ${await response.text()}`);
  return (await response.json()) as FederationStatus;
}

/** Polls `probe` until it returns a value for which `done` holds (bounded by `timeoutMs`); returns the last value. */
export async function eventually<T>(probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T;
  for (;;) {
    try {
      last = await probe();
      if (done(last)) return last;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
      continue;
    }
    if (Date.now() > deadline) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Like `eventually`, but throws (with the last value) when `done` never held. */
export async function until<T>(what: string, probe: () => Promise<T>, done: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const value = await eventually(probe, done, timeoutMs);
  if (!done(value)) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value).slice(0, 2_000)}`);
  return value;
}

/** Waits until every site shows the same files (and returns them), or returns the last differing views. */
export async function converged(sites: readonly Site[], key: string, timeoutMs = 20_000): Promise<(Record<string, string> | undefined)[]> {
  return eventually(
    () => Promise.all(sites.map((site) => snapshot(site, key))),
    (views) => views.every((view) => view !== undefined && JSON.stringify(view) === JSON.stringify(views[0])),
    timeoutMs,
  );
}

export async function setBlocked(site: Site, baseUrls: readonly string[]): Promise<void> {
  const response = await adminFetch(live(site), '/artifactory/api/federation/test/block', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ baseUrls }),
  });
  if (response.status !== 204) throw new Error(`block on ${site.name}: ${response.status} ${await response.text()}`);
}
