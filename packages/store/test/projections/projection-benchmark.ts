/**
 * Measures the projections (not a test; run by hand):
 *   node --import tsx packages/store/test/projections/projection-benchmark.ts [events] [pglite|postgres]
 * - rebuild: N generated events appended to the SQL event store, then rebuilt from its
 *   readAll (read + decode + fold + bulk write);
 * - hot path: single-event appends from 16 concurrent writers through the store with the
 *   inline projections (PostgreSQL only).
 * DATABASE_URL selects PostgreSQL (a fresh schema, dropped afterwards).
 */
import { performance } from 'node:perf_hooks';
import type { NewEvent, RecordedEvent } from '@strata/core';
import { ArtifactTreeProjection, RepositoryConfigProjection, countRows, rebuildProjections } from '@strata/store';
import { pgliteBackend, postgresBackend } from './projection-databases.ts';

const eventCount = Number(process.argv[2] ?? 1_000_000);
const backend = process.argv[3] ?? (process.env.DATABASE_URL ? 'postgres' : 'pglite');

/** Deterministic, Maven-like traffic: mostly deploys, some property edits, deletes and folder deletes. */
function generate(count: number): RecordedEvent[] {
  const events: RecordedEvent[] = [];
  let seed = 42;
  // mulberry32
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const repos = Array.from({ length: 10 }, (_, index) => `libs-${index}`);
  for (const key of repos) {
    events.push({
      id: `create-${key}`, stream: `repo-${key}`, revision: 0, position: 0n, origin: 'site-a', originSeq: 1,
      hlc: { wall: 1_700_000_000_000, logical: 0 }, meta: { actor: 'admin' },
      type: 'RepositoryCreated', data: { key, config: { rclass: 'local', packageType: 'maven', description: key } },
    } as RecordedEvent);
  }
  for (let index = events.length; index < count; index++) {
    const repo = repos[Math.floor(random() * repos.length)]!;
    const group = `org/group${Math.floor(random() * 200)}`;
    const artifact = `artifact${Math.floor(random() * 50)}`;
    const version = `${Math.floor(random() * 20)}.0`;
    const path = `${group}/${artifact}/${version}/${artifact}-${version}.${random() < 0.5 ? 'jar' : 'pom'}`;
    const roll = random();
    const base = {
      id: `ev-${index}`, stream: `repo-${repo}`, revision: index, position: BigInt(index), origin: random() < 0.5 ? 'site-a' : 'site-b',
      originSeq: index, hlc: { wall: 1_700_000_000_000 + index, logical: 0 }, meta: { actor: random() < 0.5 ? 'alice' : 'bob' },
    };
    if (roll < 0.8) {
      events.push({ ...base, type: 'ArtifactDeployed', data: { path, sha256: index.toString(16).padStart(64, '0'), sha1: index.toString(16).padStart(40, '0'), md5: index.toString(16).padStart(32, '0'), size: 1000 + index % 5000, mimeType: 'application/java-archive', properties: random() < 0.3 ? { 'build.number': [String(index)] } : {} } } as RecordedEvent);
    } else if (roll < 0.9) {
      events.push({ ...base, type: 'PropertiesSet', data: { path, properties: { qa: [random() < 0.5 ? 'passed' : 'failed'] } } } as RecordedEvent);
    } else if (roll < 0.97) {
      events.push({ ...base, type: 'ArtifactDeleted', data: { path } } as RecordedEvent);
    } else if (roll < 0.995) {
      events.push({ ...base, type: 'PropertiesRemoved', data: { path, keys: ['qa'] } } as RecordedEvent);
    } else {
      events.push({ ...base, type: 'FolderDeleted', data: { prefix: `${group}/${artifact}/${version}` } } as RecordedEvent);
    }
  }
  return events;
}

const url = process.env.DATABASE_URL ?? 'postgres://strata:strata@127.0.0.1:5432/strata_proj';
const backend2 = backend === 'postgres' ? postgresBackend(url, 'projbench') : pgliteBackend;
const projections = [new ArtifactTreeProjection(), new RepositoryConfigProjection()];
// Load the events through a store without inline projections, then rebuild from its readAll.
const loader = await backend2.open([]);
try {
  const events = generate(eventCount);
  const loadStarted = performance.now();
  for (let start = 0; start < events.length; start += 20_000) {
    const byStream = new Map<string, RecordedEvent[]>();
    for (const event of events.slice(start, start + 20_000)) {
      const list = byStream.get(event.stream) ?? [];
      list.push(event);
      byStream.set(event.stream, list);
    }
    await Promise.all(
      [...byStream].map(async ([stream, list]) => {
        for (let offset = 0; offset < list.length; offset += 1_000) {
          await loader.store.append(stream, list.slice(offset, offset + 1_000).map(({ stream: _s, revision: _r, position: _p, ...rest }) => rest as NewEvent));
        }
      }),
    );
  }
  console.log(`${backend}: appended ${events.length} events in ${(performance.now() - loadStarted).toFixed(0)} ms`);
  let lastPhase = '';
  const result = await rebuildProjections({ store: loader.store, db: loader.db }, projections, {
    onProgress: (progress) => {
      if (progress.phase !== lastPhase) console.log(`  ${progress.phase} at ${progress.elapsedMs.toFixed(0)} ms (${progress.events} events, ${progress.rows} rows)`);
      lastPhase = progress.phase;
    },
  });
  console.log(
    `${backend}: rebuilt ${result.events} events into ${result.rows} rows in ${result.elapsedMs.toFixed(0)} ms = ${Math.round(result.eventsPerSecond)} events/s;`,
    `artifacts ${await countRows(loader.db, 'artifacts')}, properties ${await countRows(loader.db, 'artifact_properties')}`,
  );
} finally {
  await loader.close();
}

// Hot path: single-event appends from 16 concurrent writers through a store with the inline projections.
if (backend === 'postgres') {
  const opened = await postgresBackend(url, 'projbench_hot').open(projections);
  try {
    const writers = 16;
    const hot = generate(writers * 300 + 20).slice(20);
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: writers }, async () => {
        for (;;) {
          const event = hot[next++];
          if (event === undefined) return;
          const { stream, revision: _r, position: _p, ...rest } = event;
          await opened.store.append(stream, [rest as NewEvent]);
        }
      }),
    );
    const elapsed = performance.now() - started;
    console.log(`${backend}: hot path ${hot.length} single-event appends, ${writers} writers: ${Math.round((hot.length * 1000) / elapsed)} appends/s`);
  } finally {
    await opened.close();
  }
}
