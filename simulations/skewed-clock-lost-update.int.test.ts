/**
 * The classic skewed-clock lost update, as a named regression test (issue 5, invariant d).
 * Site-0's clock runs 450 ms ahead (within the 500 ms a peer may run ahead). Site-0 deploys
 * a/x.jar; site-1 receives it, then overwrites a/x.jar 100 ms later by the wall clock —
 * but still 350 ms *before* site-0's stamp by its own physical clock. The overwrite happened
 * after site-1 saw the first deploy, so it must win everywhere. Ordering by physical time
 * (the `wall-clock` fault, what Artifactory does) loses it.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIMULATION_CONFIG, REPO_KEY, type Scenario, type SimulationConfig } from './scenario.ts';
import { Simulation } from './simulation.ts';

const config: SimulationConfig = {
  ...DEFAULT_SIMULATION_CONFIG,
  sites: 2,
  ops: 2,
  skewMs: 450,
  loss: 0,
  duplication: 0,
  partitions: false,
  crashes: false,
  clockJumps: false,
};
const scenario: Scenario = {
  networkSeed: 11,
  clocks: [
    [450, 0],
    [0, 0],
  ],
  links: [
    [5, 0],
    [5, 0],
    [5, 0],
    [5, 0],
  ],
  // [gapMs, site, kind (0 = deploy), path index (0 = a/x.jar), content]
  ops: [
    [0, 0, 0, 0, 1],
    [100, 1, 0, 0, 2],
  ],
  disruptions: [],
};
const sha256Of = (content: number): string => createHash('sha256').update(`content-${content}`).digest('hex');

describe('the skewed-clock lost update', () => {
  it('an overwrite made after observing a deploy wins everywhere although its site clock is behind the deploy stamp', async () => {
    const simulation = new Simulation(config, scenario);
    const result = await simulation.run();
    expect(result.violations).toEqual([]);
    const [first, overwrite] = simulation.acknowledged.filter((event) => event.type === 'ArtifactDeployed');
    // the overwrite's physical time was behind the first stamp, its HLC stamp is not
    expect(overwrite!.hlc.wall).toBe(first!.hlc.wall);
    expect(overwrite!.hlc.logical).toBeGreaterThan(first!.hlc.logical);
    for (const site of simulation.sites) expect(site.projection!.tree.file(REPO_KEY, 'a/x.jar')?.sha256).toBe(sha256Of(2));
  });

  it('ordering by physical time instead (the wall-clock fault) loses the overwrite, and the causality invariant says so', async () => {
    const simulation = new Simulation({ ...config, fault: 'wall-clock' }, scenario);
    const result = await simulation.run();
    expect(result.violations.map((violation) => violation.invariant)).toContain('causality');
    for (const site of simulation.sites) expect(site.projection!.tree.file(REPO_KEY, 'a/x.jar')?.sha256).toBe(sha256Of(1));
  });
});
