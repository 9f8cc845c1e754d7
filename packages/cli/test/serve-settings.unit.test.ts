import { describe, expect, it } from 'vitest';
import { parseServeSettings, UsageError } from '../src/settings.ts';

describe('strata serve settings', () => {
  it('uses the defaults when nothing is set', () => {
    const settings = parseServeSettings([], {});
    expect(settings).toMatchObject({ port: 8081, host: '0.0.0.0', databaseUrl: undefined, siteId: undefined, adminPassword: undefined, logLevel: 'info' });
    expect(settings.dataDir).toMatch(/\/data$/);
  });

  it('reads the environment and lets flags win over it', () => {
    const env = { PORT: '9000', STRATA_DATA: '/srv/strata', DATABASE_URL: 'postgres://x/y', STRATA_SITE_ID: 'site-a', STRATA_ADMIN_PASSWORD: 'pw' };
    expect(parseServeSettings([], env)).toMatchObject({ port: 9000, dataDir: '/srv/strata', databaseUrl: 'postgres://x/y', siteId: 'site-a', adminPassword: 'pw' });
    expect(parseServeSettings(['--port', '9100', '--data=/tmp/d', '--site-id', 'site-b'], env)).toMatchObject({ port: 9100, dataDir: '/tmp/d', siteId: 'site-b' });
  });

  it('reads where PGlite runs its SQL (STRATA_PGLITE_THREAD), and refuses anything but main or worker', () => {
    expect(parseServeSettings([], {}).pgliteThread).toBeUndefined();
    expect(parseServeSettings([], { STRATA_PGLITE_THREAD: 'worker' }).pgliteThread).toBe('worker');
    expect(parseServeSettings([], { STRATA_PGLITE_THREAD: 'main' }).pgliteThread).toBe('main');
    expect(() => parseServeSettings([], { STRATA_PGLITE_THREAD: 'threads' })).toThrow(UsageError);
  });

  it('refuses unknown options and bad ports', () => {
    expect(() => parseServeSettings(['--nope'], {})).toThrow(UsageError);
    expect(() => parseServeSettings(['--port', 'x'], {})).toThrow(UsageError);
    expect(() => parseServeSettings(['--port'], {})).toThrow(UsageError);
  });

  it('reads the federation settings (flag over environment) and refuses bad intervals', () => {
    const env = { STRATA_FEDERATION_TOKEN: 'secret-from-env-0123', STRATA_BASE_URL: 'http://a.example:8081', STRATA_FEDERATION_ANTI_ENTROPY_MS: '5000', STRATA_FEDERATION_TEST_HOOKS: '1' };
    expect(parseServeSettings([], env)).toMatchObject({
      federationToken: 'secret-from-env-0123',
      baseUrl: 'http://a.example:8081',
      federationAntiEntropyIntervalMs: 5000,
      federationRetryDelayMaxMs: undefined,
      federationTestHooks: true,
    });
    expect(parseServeSettings(['--base-url', 'http://b.example', '--federation-retry-max-ms=2000'], env)).toMatchObject({ baseUrl: 'http://b.example', federationRetryDelayMaxMs: 2000 });
    expect(parseServeSettings([], {})).toMatchObject({ federationToken: undefined, baseUrl: undefined, federationTestHooks: false });
    expect(() => parseServeSettings(['--federation-anti-entropy-ms', '5'], {})).toThrow(UsageError);
  });

  it('turns edge mode on by --edge or STRATA_EDGE=true, and reads the smart remote report interval', () => {
    expect(parseServeSettings([], {}).edge).toBe(false);
    expect(parseServeSettings(['--edge', '--port', '9000'], {})).toMatchObject({ edge: true, port: 9000 });
    expect(parseServeSettings([], { STRATA_EDGE: 'true' }).edge).toBe(true);
    expect(parseServeSettings([], { STRATA_EDGE: 'no' }).edge).toBe(false);
    expect(parseServeSettings([], { STRATA_SMART_REMOTE_STATS_INTERVAL_MS: '1000' }).smartRemoteStatsFlushIntervalMs).toBe(1000);
    expect(() => parseServeSettings([], { STRATA_SMART_REMOTE_STATS_INTERVAL_MS: '5' })).toThrow(UsageError);
  });

  it('reads the inline blob threshold (STRATA_INLINE_BLOB_MAX_BYTES) and refuses bad values', () => {
    expect(parseServeSettings([], {}).inlineBlobBytesMax).toBeUndefined();
    expect(parseServeSettings([], { STRATA_INLINE_BLOB_MAX_BYTES: '0' }).inlineBlobBytesMax).toBe(0);
    expect(parseServeSettings([], { STRATA_INLINE_BLOB_MAX_BYTES: '16384' }).inlineBlobBytesMax).toBe(16384);
    for (const bad of ['-1', '1.5', 'lots', String(2 * 1024 * 1024)]) {
      expect(() => parseServeSettings([], { STRATA_INLINE_BLOB_MAX_BYTES: bad })).toThrow(UsageError);
    }
  });
});
