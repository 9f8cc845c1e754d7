import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function sim(...args: string[]): { status: number | null; stdout: string } {
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'simulations/cli.ts', ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, stdout: run.stdout };
}

describe('npm run sim', () => {
  it('prints a digest line per run and a summary, and exits 0 when every run holds', () => {
    const { status, stdout } = sim('--sites', '3', '--seeds', '3', '--ops', '30', '--partitions');
    expect(status).toBe(0);
    expect(stdout.match(/^digest=[0-9a-f]{64}$/gm)).toHaveLength(3);
    expect(stdout).toMatch(/^summary: runs=3 failed=0 /m);
    expect(sim('--sites', '3', '--seed', '2', '--ops', '30', '--partitions').stdout.match(/^digest=.*$/m)?.[0]).toBe(stdout.match(/^digest=.*$/gm)?.[1]);
  });

  it('exits non-zero on a planted fault and prints the command that replays it', () => {
    const { status, stdout } = sim('--sites', '3', '--seeds', '10', '--ops', '40', '--partitions', '--fault', 'wall-clock', '--no-shrink', '--quiet');
    expect(status).toBe(1);
    expect(stdout).toMatch(/FAIL .*causality/);
    const replay = /replay: npm run sim -- (.*)$/m.exec(stdout)?.[1];
    expect(replay).toMatch(/--replay \d+:0$/);
    const again = sim(...replay!.split(' '));
    expect(again.status).toBe(1);
    expect(again.stdout).toMatch(/FAIL .*causality/);
  });

  it('refuses bad flags with exit code 2', () => {
    expect(sim('--sites', '11').status).toBe(2);
    expect(sim('--fault', 'nonsense').status).toBe(2);
  });
});
