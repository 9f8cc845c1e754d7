/**
 * The bounded CI set of simulations (the CLI runs the long soaks): a few hundred small seeds
 * over several shapes of the fault model, each run checked against every invariant.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIMULATION_CONFIG, type SimulationConfig } from './scenario.ts';
import { runSeed } from './run-seeds.ts';

async function expectSeedsHold(config: SimulationConfig, seeds: number, seedBase = 1): Promise<void> {
  for (let seed = seedBase; seed < seedBase + seeds; seed++) {
    const outcome = await runSeed(config, seed, { shrink: true, shrinkTimeLimitMs: 20_000 });
    if (!outcome.ok) {
      const failure = outcome.failure!;
      throw new Error(
        `seed ${seed} failed (replay: --replay ${seed}:${failure.path}):\n` +
          failure.result.violations
            .slice(0, 8)
            .map((violation) => `  ${violation.invariant}: ${violation.message}`)
            .join('\n'),
      );
    }
  }
}

const base: SimulationConfig = { ...DEFAULT_SIMULATION_CONFIG };

describe('federation simulations', () => {
  it('three sites with partitions, crashes, clock skew and jumps, loss and duplication hold every invariant (100 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 3, ops: 80, partitions: true }, 100);
  });

  it('five sites with partitions hold every invariant (50 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 5, ops: 150, partitions: true }, 50, 1_000);
  });

  it('two sites on a very lossy, duplicating link, through the wire codec, hold every invariant (40 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 2, ops: 60, loss: 0.3, duplication: 0.3, wireCodec: true, federationBatchEventsMax: 8 }, 40, 2_000);
  });

  it('two sites, small batches and 8 pushes in flight on a lossy, duplicating, reordering link hold every invariant (40 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 2, ops: 80, loss: 0.2, duplication: 0.2, federationBatchEventsMax: 4, pushWindow: 8 }, 40, 4_000);
  });

  it('three sites with crashes, partitions and catch-up pages (batches of 4, pages of 16) through the wire codec hold every invariant (40 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 3, ops: 120, partitions: true, wireCodec: true, federationBatchEventsMax: 4, federationCatchUpBatchEventsMax: 16 }, 40, 6_000);
  });

  it('three sites with the unpipelined protocol (one push in flight) hold every invariant (30 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 3, ops: 80, pushWindow: 1 }, 30, 5_000);
  });

  it('ten sites hold every invariant (8 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 10, ops: 100, partitions: true }, 8, 3_000);
  });

  it('three sites whose link 0–2 stays cut for the whole run, heal included, converge through site 1 (forwarding deferred and checked; 30 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 3, ops: 80, partitions: false, cutLinks: [[0, 2]] }, 30, 6_000);
  });

  it('five sites with two links cut for the whole run and partitions on top hold every invariant (15 seeds)', async () => {
    await expectSeedsHold({ ...base, sites: 5, ops: 120, partitions: true, cutLinks: [[0, 4], [1, 3]] }, 15, 7_000);
  });

  it('on a healthy network, deferred forwarding delivers far fewer events twice than forwarding at once (the same 10 seeds)', async () => {
    const healthy: SimulationConfig = { ...base, sites: 3, ops: 80, loss: 0, duplication: 0, partitions: false, crashes: false };
    const duplicates = async (forwardDelayMs: number | undefined) => {
      let sum = 0;
      for (let seed = 8_000; seed < 8_010; seed++) {
        const outcome = await runSeed({ ...healthy, forwardDelayMs }, seed);
        expect(outcome.ok).toBe(true);
        sum += outcome.result.stats.duplicateEvents;
      }
      return sum;
    };
    const atOnce = await duplicates(0);
    const deferred = await duplicates(undefined);
    expect(atOnce).toBeGreaterThan(0);
    expect(deferred).toBeLessThan(atOnce * 0.75);
  });

  it('the same seed always gives the same digest, another seed another one', async () => {
    const config: SimulationConfig = { ...base, sites: 4, ops: 120, partitions: true };
    const [first, again, other] = [await runSeed(config, 42), await runSeed(config, 42), await runSeed(config, 43)];
    expect(first.result.digest).toMatch(/^[0-9a-f]{64}$/);
    expect(again.result.digest).toBe(first.result.digest);
    expect(other.result.digest).not.toBe(first.result.digest);
  });

  it('a failure shrinks and replays exactly from its seed and path', async () => {
    const config: SimulationConfig = { ...base, sites: 3, ops: 40, partitions: true, fault: 'no-dedup' };
    const found = await runSeed(config, 5, { shrink: true, shrinkTimeLimitMs: 20_000 });
    expect(found.ok).toBe(false);
    const failure = found.failure!;
    expect(failure.scenario.ops.length).toBeLessThanOrEqual(40);
    const replayed = await runSeed(config, 5, { path: failure.path });
    expect(replayed.ok).toBe(false);
    expect(replayed.result.digest).toBe(failure.result.digest);
    expect(replayed.result.violations).toEqual(failure.result.violations);
  });
});
