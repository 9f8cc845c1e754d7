import { startServer } from '@strata/server';
import { parseServeSettings, SERVE_USAGE, UsageError } from './settings.ts';
import { AUDIT_USAGE, auditCommand, exportCommand, importCommand, replayCommand, verifyCommand } from './audit-commands.ts';

const USAGE = `Usage: strata <command>

Commands:
  serve     run the Artifactory-compatible server
  verify    check the hash chains of the event log
  audit     the history of a path
  export    a repository's events as NDJSON
  import    append exported events
  replay    rebuild the projections from the event log

${SERVE_USAGE}
${AUDIT_USAGE}`;

async function serve(argv: readonly string[]): Promise<void> {
  const settings = parseServeSettings(argv, process.env);
  const server = await startServer(settings);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // A second signal while draining: give up on in-flight requests.
      process.stderr.write(`strata: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    const forced = setTimeout(() => {
      process.stderr.write('strata: shutdown took too long, exiting\n');
      process.exit(1);
    }, 15_000);
    forced.unref();
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`strata: shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'verify':
    case 'audit':
    case 'export':
    case 'import':
    case 'replay': {
      const context = { env: process.env, stdout: process.stdout, stderr: process.stderr };
      const run = { verify: verifyCommand, audit: auditCommand, export: exportCommand, import: importCommand, replay: replayCommand }[command];
      process.exitCode = await run(rest, context);
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return;
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    process.stderr.write(`strata: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  process.stderr.write(`strata: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
