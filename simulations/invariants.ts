/**
 * The invariants of issue 5, checked after heal and quiescence (causality is checked during
 * the run, as each write happens — see Simulation). The oracle here is written
 * independently of the core models: plain maxima over the acknowledged writes.
 *
 * (a) convergence — every site's projection digest and version vector are equal;
 * (b) lww-winner — each path shows the deploy with the highest (hlc, origin, id) unless a
 *     delete or covering folder delete is stamped at or after it; properties per key and
 *     config per field likewise; no-lost-write — every acknowledged event is in every store;
 * (c) no-resurrection — a path whose newest tombstone is not older than its newest deploy is
 *     absent everywhere;
 * (d) causality — see Simulation#commit;
 * (e) idempotent-redelivery — every event was applied exactly once (audit counts equal the
 *     stream), and a probe redelivering a whole stream to another site changes nothing;
 * (f) replay — rebuilding each site's projection from its stream reproduces its state;
 * (g) liveness — see Simulation#run (bounded simulated time after heal).
 */
import {
  type EventStamp,
  type EventVersion,
  type NewEvent,
  canonicalJson,
  compareStamps,
  compareVersions,
  repositoryStream,
} from '@strata/core';
import { vectorsEqual } from '@strata/federation';
import { CONFIG_FIELDS, PATHS, PROPERTY_KEYS, REPO_KEY } from './scenario.ts';
import type { Simulation, SimulatedSite } from './simulation.ts';
import { SiteProjection } from './site-projection.ts';

export const INVARIANTS = [
  'convergence',
  'lww-winner',
  'no-lost-write',
  'no-resurrection',
  'causality',
  'idempotent-redelivery',
  'replay',
  'liveness',
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

export interface Violation {
  readonly invariant: InvariantName;
  readonly message: string;
}

const stream = repositoryStream(REPO_KEY);

function version(event: NewEvent): EventVersion {
  return { hlc: event.hlc, origin: event.origin, id: event.id };
}
function covers(prefix: string, path: string): boolean {
  return prefix === '' || path === prefix || path.startsWith(`${prefix}/`);
}
function maxVersion(a: EventVersion | null, b: EventVersion): EventVersion {
  return a === null || compareVersions(b, a) > 0 ? b : a;
}
function maxStampOf(a: EventStamp | null, b: EventStamp): EventStamp {
  return a === null || compareStamps(b, a) > 0 ? b : a;
}

interface ExpectedPath {
  readonly present: boolean;
  readonly deploy: NewEvent | null;
  readonly tombstone: EventStamp | null;
  readonly properties: Record<string, readonly string[]>;
}

/** The oracle: what every site must show, from the acknowledged writes alone. */
export function expectedState(acknowledged: readonly NewEvent[]): { paths: Map<string, ExpectedPath>; config: Record<string, unknown> } {
  const paths = new Map<string, ExpectedPath>();
  for (const path of PATHS) {
    let deploy: NewEvent | null = null;
    let deployVersion: EventVersion | null = null;
    let tombstone: EventStamp | null = null;
    const sets = new Map<string, { version: EventVersion; values: readonly string[] }>();
    const removals = new Map<string, EventStamp>();
    for (const event of acknowledged) {
      switch (event.type) {
        case 'ArtifactDeployed':
          if (event.data.path === path && (deployVersion === null || compareVersions(version(event), deployVersion) > 0)) {
            deploy = event;
            deployVersion = version(event);
          }
          break;
        case 'ArtifactDeleted':
          if (event.data.path === path) tombstone = maxStampOf(tombstone, event);
          break;
        case 'FolderDeleted':
          if (covers(event.data.prefix, path)) tombstone = maxStampOf(tombstone, event);
          break;
        case 'PropertiesSet':
          if (event.data.path === path) {
            for (const [key, values] of Object.entries(event.data.properties)) {
              const current = sets.get(key);
              if (current === undefined || compareVersions(version(event), current.version) > 0) sets.set(key, { version: version(event), values });
            }
          }
          break;
        case 'PropertiesRemoved':
          if (event.data.path === path) for (const key of event.data.keys) removals.set(key, maxStampOf(removals.get(key) ?? null, event));
          break;
        default:
          break;
      }
    }
    const present = deployVersion !== null && (tombstone === null || compareStamps(deployVersion, tombstone) > 0);
    const properties: Record<string, readonly string[]> = {};
    for (const key of PROPERTY_KEYS) {
      const set = sets.get(key);
      if (set === undefined) continue;
      const removal = removals.get(key);
      if (removal !== undefined && compareStamps(removal, set.version) >= 0) continue; // a removal wins a tie
      if (tombstone !== null && compareStamps(set.version, tombstone) <= 0) continue;
      properties[key] = set.values;
    }
    paths.set(path, { present, deploy, tombstone, properties });
  }
  const fields = new Map<string, { version: EventVersion; value: unknown }>();
  for (const event of acknowledged) {
    let values: Readonly<Record<string, unknown>> | undefined;
    if (event.type === 'RepositoryCreated' && event.data.key === REPO_KEY) values = event.data.config;
    if (event.type === 'RepositoryConfigChanged' && event.data.key === REPO_KEY) values = event.data.patch;
    if (values === undefined) continue;
    for (const [field, value] of Object.entries(values)) {
      const current = fields.get(field);
      if (current === undefined || compareVersions(version(event), current.version) > 0) fields.set(field, { version: version(event), value });
    }
  }
  const config: Record<string, unknown> = {};
  for (const field of [...fields.keys()].sort()) config[field] = fields.get(field)!.value;
  return { paths, config };
}

function stampText(stamp: EventStamp | null): string {
  return stamp === null ? 'none' : `${stamp.hlc.wall}.${stamp.hlc.logical}@${stamp.origin}`;
}

export async function checkFinalInvariants(simulation: Simulation): Promise<void> {
  const { sites, violations, stats } = simulation;
  const check = (invariant: Violation['invariant'], ok: boolean, message: () => string): void => {
    stats.invariantChecks++;
    if (!ok) violations.push({ invariant, message: message() });
  };
  const up = sites.filter(
    (site): site is SimulatedSite & { projection: SiteProjection } => site.up && site.projection !== undefined && site.engine?.isFederated(REPO_KEY) === true,
  );
  check('liveness', up.length === sites.length, () => `${sites.length - up.length} sites are down or never joined the federation`);
  if (up.length === 0) return;

  // (a) convergence
  const first = up[0]!;
  const firstDigest = first.projection.digest();
  const firstVector = first.engine!.versionVector(REPO_KEY);
  for (const site of up.slice(1)) {
    check('convergence', site.projection.digest() === firstDigest, () => `${site.id} state differs from ${first.id}`);
    check('convergence', vectorsEqual(site.engine!.versionVector(REPO_KEY), firstVector), () => `${site.id} holds other events than ${first.id}`);
  }

  // (b), (c): every site against the oracle
  const expected = expectedState(simulation.acknowledged);
  for (const site of up) {
    for (const [path, want] of expected.paths) {
      const file = site.projection.tree.file(REPO_KEY, path);
      if (!want.present) {
        check('no-resurrection', file === undefined, () =>
          `${site.id} shows ${path} (${file?.version.id}) although its newest tombstone ${stampText(want.tombstone)} is not older than its newest deploy ${stampText(want.deploy)}`,
        );
        continue;
      }
      check('lww-winner', file !== undefined && file.version.id === want.deploy!.id && file.sha256 === (want.deploy!.data as { sha256: string }).sha256, () =>
        `${site.id} shows ${path} as ${file === undefined ? 'absent' : `${file.version.id} ${stampText(file.version)}`}, expected ${want.deploy!.id} ${stampText(want.deploy)}`,
      );
      const properties = site.projection.tree.properties(REPO_KEY, path);
      check('lww-winner', canonicalJson(properties) === canonicalJson(want.properties), () =>
        `${site.id} ${path} properties ${canonicalJson(properties)}, expected ${canonicalJson(want.properties)}`,
      );
    }
    const config = site.projection.config.get(REPO_KEY)?.config ?? {};
    const shown: Record<string, unknown> = {};
    for (const field of [...CONFIG_FIELDS, 'members', 'rclass', 'packageType']) if (field in config) shown[field] = config[field];
    const wanted: Record<string, unknown> = {};
    for (const field of Object.keys(shown).concat(Object.keys(expected.config))) if (field in expected.config) wanted[field] = expected.config[field];
    check('lww-winner', canonicalJson(shown) === canonicalJson(wanted), () => `${site.id} config ${canonicalJson(shown)}, expected ${canonicalJson(wanted)}`);
  }

  // no lost write, (e) exactly-once application, (f) replay
  for (const site of up) {
    const events = await site.store.readStream(stream, { maxCount: Number.MAX_SAFE_INTEGER });
    stats.storedEvents += events.length;
    const ids = new Set(events.map((event) => event.id));
    const missing = simulation.acknowledged.filter((event) => !ids.has(event.id));
    check('no-lost-write', missing.length === 0, () => `${site.id} lacks ${missing.length} acknowledged events, e.g. ${missing[0]?.id}`);
    check('idempotent-redelivery', ids.size === events.length, () => `${site.id} stores ${events.length - ids.size} events twice`);
    check('idempotent-redelivery', site.projection.appliedTotal() === events.length, () =>
      `${site.id} applied ${site.projection.appliedTotal()} events for ${events.length} stored`,
    );
    const replayed = new SiteProjection({ dropTombstones: simulation.config.fault === 'drop-tombstones' }).applyAll(events);
    check('replay', replayed.digest() === site.projection.digest(), () => `${site.id}: replaying its stream from zero gives another state`);
  }

  // (e) probe: redeliver one site's whole stream to the next one, as duplicated batches would.
  if (up.length >= 2) {
    const [from, to] = [up[0]!, up[1]!];
    const before = to.projection.digest();
    const events = await from.store.readStream(stream, { maxCount: Number.MAX_SAFE_INTEGER });
    const batchMax = simulation.config.federationBatchEventsMax;
    for (let start = 0; start < events.length; start += batchMax) {
      const reply = await to.engine!.receive({
        kind: 'push',
        repoKey: REPO_KEY,
        from: from.id,
        sentAtMs: simulation.physicalNow(from),
        vector: from.engine!.versionVector(REPO_KEY),
        events: events.slice(start, start + batchMax),
        fullSync: false,
      });
      check('idempotent-redelivery', reply.kind === 'ack' && reply.appended === 0, () => `redelivery to ${to.id} was ${canonicalJson(reply)}`);
    }
    check('idempotent-redelivery', to.projection.digest() === before, () => `redelivering ${from.id}'s stream changed ${to.id}'s state`);
  }
}
