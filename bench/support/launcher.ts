import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The command that starts `strata <args>` from `checkout` as users start it: the shipped
 * launcher (packages/cli/bin/strata, a shell script that sets the process-start memory
 * settings and execs node, see docs/api.md) with STRATA_NODE set to this node in `env`. An older
 * checkout without the launcher (a `--compare` baseline) gets node on strata.js directly.
 */
export function strataCommand(checkout: string, args: readonly string[], env: NodeJS.ProcessEnv): [string, string[]] {
  const launcher = join(checkout, 'packages/cli/bin/strata');
  if (existsSync(launcher)) {
    env.STRATA_NODE = process.execPath;
    return [launcher, [...args]];
  }
  return [process.execPath, [join(checkout, 'packages/cli/bin/strata.js'), ...args]];
}
