/**
 * npm run sim -- --sites 5 --seeds 500 --ops 2000 --skew-ms 2000 --loss 0.1 --partitions
 *
 * Runs deterministic multi-site simulations of the real federation engine and checks the
 * invariants of every run. Prints one `digest=<hex>` line per run (same seed, same digest),
 * progress on stderr, a summary, and for a failure the seed and path that replay it
 * exactly (`--replay <seed>:<path>`). Exit code 0 iff every run held every invariant.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SIMULATION_CONFIG, FAULT_NAMES, type SimulationConfig, isFaultName } from './scenario.ts';
import { type SeedOutcome, runSeed } from './run-seeds.ts';

const usage = `usage: npm run sim -- [options]
  --sites N          sites per run, 2–10 (default 5)
  --seeds N          runs, seeds seed-base … seed-base+N-1 (default 100)
  --seed N           run this one seed
  --seed-base N      first seed (default 1)
  --ops N            operations per run (default 200)
  --skew-ms N        clock skew per site within ±N ms (default 2000)
  --loss P           probability a message is lost (default 0.1)
  --dup P            probability a request is delivered twice (default 0.05)
  --partitions       symmetric and asymmetric partitions during the workload
  --no-crashes       no site crashes
  --no-clock-jumps   no clock jumps
  --wire-codec       every request through the wire codec (encode + decode)
  --batch N          federationBatchEventsMax (default 64)
  --catch-up N       federationCatchUpBatchEventsMax (default: --batch, no catch-up pages)
  --window N         pushes in flight per peer (default 4; 1 = unpipelined)
  --fault NAME       plant a bug: ${FAULT_NAMES.join(' | ')}
  --replay S:PATH    replay the failing run seed S, fast-check path PATH
  --no-shrink        report failures unshrunk
  --shrink-ms N      wall-clock budget for shrinking a failure (default 120000)
  --quiet            no per-run lines (digest lines included)`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      sites: { type: 'string' },
      seeds: { type: 'string' },
      seed: { type: 'string' },
      'seed-base': { type: 'string' },
      ops: { type: 'string' },
      'skew-ms': { type: 'string' },
      loss: { type: 'string' },
      dup: { type: 'string' },
      partitions: { type: 'boolean' },
      'no-crashes': { type: 'boolean' },
      'no-clock-jumps': { type: 'boolean' },
      'wire-codec': { type: 'boolean' },
      batch: { type: 'string' },
      'catch-up': { type: 'string' },
      window: { type: 'string' },
      fault: { type: 'string' },
      replay: { type: 'string' },
      'no-shrink': { type: 'boolean' },
      'shrink-ms': { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  const integer = (name: string, text: string | undefined, fallback: number, min: number, max: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isSafeInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer in ${min}..${max}`);
    return value;
  };
  const probability = (name: string, text: string | undefined, fallback: number): number => {
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!(value >= 0 && value < 1)) throw new Error(`--${name} must be a probability in [0, 1)`);
    return value;
  };
  if (values.fault !== undefined && !isFaultName(values.fault)) throw new Error(`--fault must be one of ${FAULT_NAMES.join(', ')}`);
  const config: SimulationConfig = {
    sites: integer('sites', values.sites, DEFAULT_SIMULATION_CONFIG.sites, 2, 10),
    ops: integer('ops', values.ops, DEFAULT_SIMULATION_CONFIG.ops, 1, 1_000_000),
    skewMs: integer('skew-ms', values['skew-ms'], DEFAULT_SIMULATION_CONFIG.skewMs, 0, 60_000),
    loss: probability('loss', values.loss, DEFAULT_SIMULATION_CONFIG.loss),
    duplication: probability('dup', values.dup, DEFAULT_SIMULATION_CONFIG.duplication),
    partitions: values.partitions ?? false,
    crashes: !(values['no-crashes'] ?? false),
    clockJumps: !(values['no-clock-jumps'] ?? false),
    wireCodec: values['wire-codec'] ?? false,
    federationBatchEventsMax: integer('batch', values.batch, DEFAULT_SIMULATION_CONFIG.federationBatchEventsMax, 1, 10_000),
    pushWindow: integer('window', values.window, DEFAULT_SIMULATION_CONFIG.pushWindow, 1, 64),
    ...(values['catch-up'] === undefined ? {} : { federationCatchUpBatchEventsMax: integer('catch-up', values['catch-up'], 1, 1, 10_000) }),
    fault: values.fault as SimulationConfig['fault'],
  };
  let seeds: number[];
  let path: string | undefined;
  if (values.replay !== undefined) {
    const match = /^(-?\d+):([\d:]+)$/.exec(values.replay);
    if (match === null) throw new Error('--replay takes <seed>:<path>, e.g. 17:0:3:1');
    seeds = [Number(match[1])];
    path = match[2];
  } else if (values.seed !== undefined) {
    seeds = [integer('seed', values.seed, 1, -0x80000000, 0x7fffffff)];
  } else {
    const base = integer('seed-base', values['seed-base'], 1, -0x80000000, 0x7fffffff);
    seeds = Array.from({ length: integer('seeds', values.seeds, 100, 1, 10_000_000) }, (_, index) => base + index);
  }
  return runAll(config, seeds, {
    path,
    shrink: !(values['no-shrink'] ?? false),
    shrinkTimeLimitMs: integer('shrink-ms', values['shrink-ms'], 120_000, 1, 86_400_000),
    quiet: values.quiet ?? false,
  });
}

function configFlags(config: SimulationConfig): string {
  return [
    `--sites ${config.sites}`,
    `--ops ${config.ops}`,
    `--skew-ms ${config.skewMs}`,
    `--loss ${config.loss}`,
    `--dup ${config.duplication}`,
    config.partitions ? '--partitions' : '',
    config.crashes ? '' : '--no-crashes',
    config.clockJumps ? '' : '--no-clock-jumps',
    config.wireCodec ? '--wire-codec' : '',
    `--batch ${config.federationBatchEventsMax}`,
    config.federationCatchUpBatchEventsMax === undefined ? '' : `--catch-up ${config.federationCatchUpBatchEventsMax}`,
    `--window ${config.pushWindow}`,
    config.fault === undefined ? '' : `--fault ${config.fault}`,
  ]
    .filter((flag) => flag !== '')
    .join(' ');
}

async function runAll(
  config: SimulationConfig,
  seeds: readonly number[],
  options: { path: string | undefined; shrink: boolean; shrinkTimeLimitMs: number; quiet: boolean },
): Promise<number> {
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const failures: SeedOutcome[] = [];
  let events = 0;
  let simulatedMs = 0;
  let checks = 0;
  let lastProgress = started;
  for (const [index, seed] of seeds.entries()) {
    const outcome = await runSeed(config, seed, { path: options.path, shrink: options.shrink, shrinkTimeLimitMs: options.shrinkTimeLimitMs });
    const stats = outcome.result.stats;
    events += stats.acknowledgedWrites;
    simulatedMs += stats.simulatedMs;
    checks += stats.invariantChecks;
    if (!outcome.ok) failures.push(outcome);
    if (!options.quiet || !outcome.ok) {
      const run = outcome.failure?.result ?? outcome.result;
      console.log(
        `seed=${seed} ${outcome.ok ? 'ok' : `FAIL ${[...new Set(run.violations.map((violation) => violation.invariant))].join(',')}`} writes=${stats.acknowledgedWrites} requests=${stats.deliveredRequests} crashes=${stats.crashes} partitions=${stats.partitions} simulated=${(stats.simulatedMs / 1000).toFixed(1)}s converged=${stats.convergenceMs === null ? 'never' : `${(stats.convergenceMs / 1000).toFixed(1)}s after heal`}`,
      );
      console.log(`digest=${outcome.result.digest}`);
    }
    if (outcome.failure !== undefined) {
      for (const violation of outcome.failure.result.violations.slice(0, 8)) console.log(`  ${violation.invariant}: ${violation.message}`);
      console.log(
        `  shrunk in ${outcome.failure.shrinkRuns} steps to ${outcome.failure.scenario.ops.length} ops, ${outcome.failure.scenario.disruptions.length} disruptions`,
      );
      console.log(`  replay: npm run sim -- ${configFlags(config)} --replay ${seed}:${outcome.failure.path}`);
    }
    const now = performance.now();
    if (now - lastProgress > 2_000 || index === seeds.length - 1) {
      lastProgress = now;
      process.stderr.write(`progress ${index + 1}/${seeds.length} runs, ${failures.length} failed, ${((now - started) / 1000).toFixed(1)}s\n`);
    }
  }
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(cpuStarted);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  console.log(
    `summary: runs=${seeds.length} failed=${failures.length} writes=${events} simulated=${(simulatedMs / 3_600_000).toFixed(2)}h invariant-checks=${checks} wall=${(wallMs / 1000).toFixed(1)}s runs/s=${(seeds.length / (wallMs / 1000)).toFixed(2)} cpu=${(cpuMs / 1000).toFixed(1)}s runs/cpu-min=${((seeds.length * 60_000) / cpuMs).toFixed(0)} (${configFlags(config)})`,
  );
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(usage);
    process.exit(2);
  },
);
