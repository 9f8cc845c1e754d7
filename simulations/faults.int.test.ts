/**
 * The harness catches bugs (issue 5, item 4): each planted fault makes some invariant fail
 * within 200 seeds. The runs are small and unshrunk; the first failing seed ends the search.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_SIMULATION_CONFIG, FAULT_NAMES, type FaultName, type SimulationConfig } from './scenario.ts';
import { runSeed } from './run-seeds.ts';
import type { InvariantName } from './invariants.ts';

const seedsMax = 200;
/** Which invariants are expected to notice each fault (at least one of them must). */
const noticedBy: Record<FaultName, readonly InvariantName[]> = {
  'lww-by-arrival': ['convergence', 'lww-winner', 'no-resurrection'],
  'wall-clock': ['causality'],
  'no-dedup': ['idempotent-redelivery', 'replay', 'convergence'],
  'drop-tombstones': ['no-resurrection', 'convergence', 'replay', 'lww-winner'],
};

describe('planted faults are caught', () => {
  for (const fault of FAULT_NAMES) {
    it(`--fault ${fault} is caught within ${seedsMax} seeds`, async () => {
      const config: SimulationConfig = { ...DEFAULT_SIMULATION_CONFIG, sites: 3, ops: 40, partitions: true, fault };
      let caughtAt: number | undefined;
      let invariants: InvariantName[] = [];
      for (let seed = 1; seed <= seedsMax && caughtAt === undefined; seed++) {
        const outcome = await runSeed(config, seed, { shrink: false });
        if (!outcome.ok) {
          caughtAt = seed;
          invariants = outcome.failure!.result.violations.map((violation) => violation.invariant);
        }
      }
      expect(caughtAt, `${fault} was not caught in ${seedsMax} seeds`).toBeDefined();
      expect(invariants.some((invariant) => noticedBy[fault].includes(invariant))).toBe(true);
    });
  }
});
