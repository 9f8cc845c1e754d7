import { resolve } from 'node:path';
import type { ServerSettings } from '@strata/server';

/** `strata serve` settings: a flag wins over the environment, which wins over the default. */
export type ServeSettings = Pick<ServerSettings, 'port' | 'host' | 'dataDir' | 'databaseUrl' | 'siteId' | 'adminPassword' | 'logLevel'>;

export const SERVE_USAGE = `Usage: strata serve [options]

Options (each also read from the environment variable in brackets):
  --port <n>              HTTP port [PORT] (default 8081)
  --host <address>        listen address [HOST] (default 0.0.0.0)
  --data <dir>            data directory: embedded database and blobs [STRATA_DATA] (default ./data)
  --database-url <url>    PostgreSQL instead of the embedded PGlite [DATABASE_URL]
  --site-id <id>          this site's id [STRATA_SITE_ID] (default: generated once, kept in the data dir)
  --admin-password <pw>   password of the built-in admin user at first start [STRATA_ADMIN_PASSWORD]
                          (default: generated and printed once)
  --log-level <level>     pino level [STRATA_LOG_LEVEL] (default info)
`;

const FLAGS: Record<string, keyof ServeSettings> = {
  '--port': 'port',
  '--host': 'host',
  '--data': 'dataDir',
  '--database-url': 'databaseUrl',
  '--site-id': 'siteId',
  '--admin-password': 'adminPassword',
  '--log-level': 'logLevel',
};

export class UsageError extends Error {}

export function parseServeSettings(argv: readonly string[], env: NodeJS.ProcessEnv): ServeSettings {
  const flags: Partial<Record<keyof ServeSettings, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const equals = arg.indexOf('=');
    const name = equals > 0 ? arg.slice(0, equals) : arg;
    const field = FLAGS[name];
    if (field === undefined) throw new UsageError(`unknown option '${arg}'`);
    const value = equals > 0 ? arg.slice(equals + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`option ${name} needs a value`);
    flags[field] = value;
  }
  const nonEmpty = (value: string | undefined) => (value === undefined || value === '' ? undefined : value);
  const portText = flags.port ?? nonEmpty(env.PORT) ?? '8081';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`invalid port '${portText}'`);
  return {
    port,
    host: flags.host ?? nonEmpty(env.HOST) ?? '0.0.0.0',
    dataDir: resolve(flags.dataDir ?? nonEmpty(env.STRATA_DATA) ?? './data'),
    databaseUrl: flags.databaseUrl ?? nonEmpty(env.DATABASE_URL),
    siteId: flags.siteId ?? nonEmpty(env.STRATA_SITE_ID),
    adminPassword: flags.adminPassword ?? nonEmpty(env.STRATA_ADMIN_PASSWORD),
    logLevel: flags.logLevel ?? nonEmpty(env.STRATA_LOG_LEVEL) ?? 'info',
  };
}
