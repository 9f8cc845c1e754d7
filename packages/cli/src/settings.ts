import { resolve } from 'node:path';
import type { ServerSettings } from '@strata/server';
import { PGLITE_THREADS, type PgliteThread } from '@strata/store';

/** `strata serve` settings: a flag wins over the environment, which wins over the default. */
export type ServeSettings = Pick<
  ServerSettings,
  | 'port'
  | 'host'
  | 'dataDir'
  | 'databaseUrl'
  | 'siteId'
  | 'adminPassword'
  | 'logLevel'
  | 'baseUrl'
  | 'federationToken'
  | 'federationAntiEntropyIntervalMs'
  | 'federationRetryDelayMaxMs'
  | 'federationTestHooks'
  | 'federationInlineBinaryBytesMax'
  | 'inlineBlobBytesMax'
  | 'edge'
  | 'blobTrashPeriodMs'
  | 'blobGcIntervalMs'
  | 'smartRemoteStatsFlushIntervalMs'
  | 'pgliteThread'
>;

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
  --base-url <url>        this site's public base URL, how federation members address it
                          [STRATA_BASE_URL] (default http://<host>:<port>, 127.0.0.1 for 0.0.0.0)
  --federation-token <s>  shared secret of the federation (at least 16 bytes); federation is
                          off without it [STRATA_FEDERATION_TOKEN]
  --federation-anti-entropy-ms <n>  vector exchange interval [STRATA_FEDERATION_ANTI_ENTROPY_MS]
                          (default 30000)
  --federation-retry-max-ms <n>     retry backoff cap towards a member that is down
                          [STRATA_FEDERATION_RETRY_MAX_MS] (default 10000)
  --trash-period <d>       how long the binary of a deleted or overwritten artifact stays, e.g. 7d, 12h,
                          30m, 0 [STRATA_TRASH_PERIOD] (default 7d)
  --blob-gc-interval <d>  how often unreferenced binaries are collected, e.g. 6h; 0 = never
                          [STRATA_BLOB_GC_INTERVAL] (default 6h)
  (test only) STRATA_FEDERATION_TEST_HOOKS=1 enables POST /api/federation/test/block
  --edge                  run as an edge node: read-only repositories except
                          artifactory-edge-uploads, smart remotes only [STRATA_EDGE=true]
  (env only) STRATA_SMART_REMOTE_STATS_INTERVAL_MS  how often smart remotes report downloads
                          to their origins (default 5000)
`;

const FLAGS: Record<string, keyof ServeSettings> = {
  '--port': 'port',
  '--host': 'host',
  '--data': 'dataDir',
  '--database-url': 'databaseUrl',
  '--site-id': 'siteId',
  '--admin-password': 'adminPassword',
  '--log-level': 'logLevel',
  '--base-url': 'baseUrl',
  '--federation-token': 'federationToken',
  '--federation-anti-entropy-ms': 'federationAntiEntropyIntervalMs',
  '--federation-retry-max-ms': 'federationRetryDelayMaxMs',
  '--trash-period': 'blobTrashPeriodMs',
  '--blob-gc-interval': 'blobGcIntervalMs',
};

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `7d`, `12h`, `30m`, `10s`, `500ms` or plain milliseconds. */
function durationMs(what: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^([0-9]{1,12})(ms|s|m|h|d)?$/.exec(text.trim());
  const value = match === null ? Number.NaN : Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 'ms']!;
  if (!Number.isSafeInteger(value)) throw new UsageError(`invalid ${what} '${text}' (a duration such as 7d, 12h, 30m, 10s or milliseconds)`);
  return value;
}

export class UsageError extends Error {}

/** Binaries up to this size travel inside a federation push (0: none). */
function inlineBinaryBytes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > 1024 * 1024) throw new UsageError(`invalid STRATA_FEDERATION_INLINE_BINARY_MAX_BYTES '${text}' (bytes, 0 to 1048576)`);
  return value;
}

/** Deploys up to this size keep their blob in the database (0: always files). */
function inlineBlobBytes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > 1024 * 1024) throw new UsageError(`invalid STRATA_INLINE_BLOB_MAX_BYTES '${text}' (bytes, 0 to 1048576)`);
  return value;
}

/** Where the embedded PGlite runs its SQL: `worker` (default) or `main`. */
function pgliteThread(text: string | undefined): PgliteThread | undefined {
  if (text === undefined) return undefined;
  const thread = PGLITE_THREADS.find((known) => known === text);
  if (thread === undefined) throw new UsageError(`invalid STRATA_PGLITE_THREAD '${text}' (${PGLITE_THREADS.join(' or ')})`);
  return thread;
}

function positiveMs(what: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 200 || value > 24 * 3_600_000) throw new UsageError(`invalid ${what} '${text}' (milliseconds, 200 to 86400000)`);
  return value;
}

export function parseServeSettings(argv: readonly string[], env: NodeJS.ProcessEnv): ServeSettings {
  const flags: Partial<Record<keyof ServeSettings, string>> = {};
  let edgeFlag = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const equals = arg.indexOf('=');
    const name = equals > 0 ? arg.slice(0, equals) : arg;
    if (arg === '--edge') {
      edgeFlag = true;
      continue;
    }
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
    baseUrl: flags.baseUrl ?? nonEmpty(env.STRATA_BASE_URL),
    federationToken: flags.federationToken ?? nonEmpty(env.STRATA_FEDERATION_TOKEN),
    federationAntiEntropyIntervalMs: positiveMs('anti-entropy interval', flags.federationAntiEntropyIntervalMs ?? nonEmpty(env.STRATA_FEDERATION_ANTI_ENTROPY_MS)),
    federationRetryDelayMaxMs: positiveMs('retry cap', flags.federationRetryDelayMaxMs ?? nonEmpty(env.STRATA_FEDERATION_RETRY_MAX_MS)),
    federationTestHooks: env.STRATA_FEDERATION_TEST_HOOKS === '1',
    federationInlineBinaryBytesMax: inlineBinaryBytes(nonEmpty(env.STRATA_FEDERATION_INLINE_BINARY_MAX_BYTES)),
    inlineBlobBytesMax: inlineBlobBytes(nonEmpty(env.STRATA_INLINE_BLOB_MAX_BYTES)),
    pgliteThread: pgliteThread(nonEmpty(env.STRATA_PGLITE_THREAD)),
    edge: edgeFlag || env.STRATA_EDGE?.toLowerCase() === 'true',
    blobTrashPeriodMs: durationMs('trash period', flags.blobTrashPeriodMs ?? nonEmpty(env.STRATA_TRASH_PERIOD)),
    blobGcIntervalMs: durationMs('blob GC interval', flags.blobGcIntervalMs ?? nonEmpty(env.STRATA_BLOB_GC_INTERVAL)),
    ...(nonEmpty(env.STRATA_SMART_REMOTE_STATS_INTERVAL_MS) === undefined
      ? {}
      : { smartRemoteStatsFlushIntervalMs: positiveMs('smart remote statistics interval', env.STRATA_SMART_REMOTE_STATS_INTERVAL_MS) }),
  };
}
