/**
 * The benchmarks (never timed tests): `npm run bench [-- <name>...] [--events=N] [--rounds=N]
 * [--backend=postgres|pglite]`. Names: append, rebuild, read-all, server-http, history, verify, replay, replay-repo, distribution, remote-virtual, federation, npm-registry, npm-publish-client, startup (default: all). Every
 * figure is set against a reference measured in the same run; see docs/benchmarks.md.
 * DATABASE_URL selects the PostgreSQL database (default strata_bench on localhost).
 */
import { appendBenchmark } from './append.bench.ts';
import { readAllBenchmark } from './read-all.bench.ts';
import { rebuildBenchmark } from './rebuild.bench.ts';
import { serverHttpBenchmark } from './server-http.bench.ts';
import { historyBenchmark } from './history.bench.ts';
import { replayBenchmark, replayRepositoryBenchmark, verifyBenchmark } from './audit.bench.ts';
import { distributionBenchmark } from './distribution.bench.ts';
import { remoteVirtualBenchmark } from './remote-virtual.bench.ts';
import { npmClientPublishBenchmark, npmRegistryBenchmark, publishClientsFlag } from './npm-registry.bench.ts';
import { federationBenchmark, printFederationResults, type FederationBenchResult } from './federation.bench.ts';
import { startupBenchmark } from './startup.bench.ts';
import { databaseUrl } from './support/databases.ts';
import { log, printTable, type BenchResult } from './support/report.ts';

const BENCHMARKS = ['append', 'rebuild', 'read-all', 'server-http', 'history', 'verify', 'replay', 'replay-repo', 'distribution', 'remote-virtual', 'federation', 'npm-registry', 'npm-publish-client', 'startup'] as const;
type BenchmarkName = (typeof BENCHMARKS)[number];
const BACKENDS = ['postgres', 'pglite'] as const;

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => args.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const names = args.filter((arg) => !arg.startsWith('--'));
for (const name of names) {
  if (!(BENCHMARKS as readonly string[]).includes(name)) throw new Error(`unknown benchmark '${name}'; known: ${BENCHMARKS.join(', ')}`);
}
const selected: BenchmarkName[] = names.length === 0 ? [...BENCHMARKS] : (names as BenchmarkName[]);
const events = Number(flag('events') ?? 1_000_000);
const rounds = Number(flag('rounds') ?? 3);
const backends = (flag('backend') ?? 'postgres,pglite').split(',') as (typeof BACKENDS)[number][];
const appendEvents = Number(flag('append-events') ?? 8000);

log(`${selected.join(', ')}; ${events.toLocaleString('en-US')} events; ${rounds} rounds; PostgreSQL at ${databaseUrl.replace(/:[^:@/]*@/, ':***@')}`);
const results: BenchResult[] = [];
const federationResults: FederationBenchResult[] = [];
for (const name of selected) {
  if (name === 'federation') {
    for (const backend of backends) {
      federationResults.push(await federationBenchmark({ backend, seconds: Number(flag('seconds') ?? 20), deploysPerSecond: 500, catchUpEvents: Number(flag('federation-events') ?? 100_000) }));
    }
  }
  if (name === 'startup') results.push(await startupBenchmark(rounds));
  if (name === 'append') results.push(...(await appendBenchmark(16, appendEvents, rounds)));
  if (name === 'server-http') {
    results.push(
      ...(await serverHttpBenchmark({
        rounds,
        seconds: Number(flag('seconds') ?? 10),
        backends,
        ...(flag('only') === undefined ? {} : { only: flag('only')!.split(',') as ('get' | 'put' | 'rss')[] }),
        ...(flag('compare') === undefined ? {} : { compareRoot: flag('compare')! }),
      })),
    );
  }
  if (name === 'history') results.push(...(await historyBenchmark(rounds)));
  if (name === 'distribution') results.push(...(await distributionBenchmark(rounds)));
  if (name === 'remote-virtual') results.push(...(await remoteVirtualBenchmark({ rounds, seconds: 10 })));
  if (name === 'npm-registry') for (const backend of backends) results.push(...(await npmRegistryBenchmark({ rounds, seconds: Number(flag('seconds') ?? 10), backend, ...(flag('publishes') === undefined ? {} : { publishes: Number(flag('publishes')) }), ...(flag('compare') === undefined ? {} : { compareRoot: flag('compare') }), ...(flag('only') === undefined ? {} : { only: flag('only') as 'publish' | 'get' }), ...(flag('client') === undefined ? {} : { clients: publishClientsFlag(flag('client')!) }) })));
  if (name === 'npm-publish-client') for (const backend of backends) results.push(...(await npmClientPublishBenchmark({ publishes: Number(flag('publishes') ?? 200), backend })));
  for (const backend of backends) {
    if (name === 'rebuild') results.push(...(await rebuildBenchmark(backend, events, rounds)));
    if (name === 'read-all') results.push(await readAllBenchmark(backend, events, rounds));
    if (name === 'verify') results.push(...(await verifyBenchmark(backend, events, rounds)));
    if (name === 'replay') results.push(...(await replayBenchmark(backend, events, rounds)));
    if (name === 'replay-repo') results.push(...(await replayRepositoryBenchmark(backend, events, rounds)));
  }
}
printTable(results);
printFederationResults(federationResults);
