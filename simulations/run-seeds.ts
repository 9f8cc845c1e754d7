/**
 * Seeds → runs. One seed is one fast-check run of the scenario property (numRuns 1), so a
 * failing seed shrinks, and `seed:path` replays the exact (possibly shrunk) counterexample.
 */
import fc from 'fast-check';
import { type Scenario, type SimulationConfig, scenarioArbitrary } from './scenario.ts';
import { type RunResult, Simulation } from './simulation.ts';

export interface SeedOptions {
  /** Replay this fast-check path (from a failure report) instead of generating afresh. */
  readonly path?: string | undefined;
  /** Shrink a failure to a minimal scenario (default true). */
  readonly shrink?: boolean;
  /** Wall-clock budget for shrinking (ms); the smallest failure found by then is reported. */
  readonly shrinkTimeLimitMs?: number;
}

export interface SeedOutcome {
  readonly seed: number;
  readonly ok: boolean;
  /** The run the seed generated (or the replayed one). */
  readonly result: RunResult;
  /** On failure: the (shrunk) counterexample, its result and the path that replays it. */
  readonly failure?: { readonly scenario: Scenario; readonly result: RunResult; readonly path: string; readonly shrinkRuns: number };
}

export async function runSeed(config: SimulationConfig, seed: number, options: SeedOptions = {}): Promise<SeedOutcome> {
  let first: RunResult | undefined;
  let lastFailure: { scenario: Scenario; result: RunResult } | undefined;
  const property = fc.asyncProperty(scenarioArbitrary(config), async (scenario) => {
    const result = await new Simulation(config, scenario).run();
    first ??= result;
    if (!result.ok) lastFailure = { scenario, result };
    return result.ok;
  });
  const shrink = options.shrink ?? true;
  const details = await fc.check(property, {
    seed,
    numRuns: 1,
    ...(options.path === undefined ? {} : { path: options.path }),
    endOnFailure: !shrink || options.path !== undefined,
    ...(options.shrinkTimeLimitMs === undefined ? {} : { interruptAfterTimeLimit: options.shrinkTimeLimitMs }),
  });
  if (first === undefined) throw new Error(`seed ${seed}: no run happened (${details.errorInstance ?? 'unknown reason'})`);
  if (!details.failed || lastFailure === undefined) return { seed, ok: true, result: first };
  // The property failed; the last failing run is the counterexample fast-check reports.
  const counterexample = details.counterexample?.[0] ?? lastFailure.scenario;
  const result = counterexample === lastFailure.scenario ? lastFailure.result : await new Simulation(config, counterexample).run();
  return {
    seed,
    ok: false,
    result: first,
    failure: { scenario: counterexample, result, path: details.counterexamplePath ?? '0', shrinkRuns: details.numShrinks },
  };
}
