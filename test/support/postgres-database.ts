import pg from 'pg';

/**
 * A fresh PostgreSQL database for one test file, created next to the one DATABASE_URL names
 * (so tests never share tables with other suites), dropped afterwards. Undefined when
 * DATABASE_URL is unset.
 */
export async function freshPostgresDatabase(prefix: string): Promise<{ url: string; drop(): Promise<void> } | undefined> {
  const base = process.env.DATABASE_URL;
  if (base === undefined || base === '') return undefined;
  const name = `${prefix}_${Date.now().toString(36)}_${Math.floor(Math.random() * 1e6).toString(36)}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      try {
        await client.query(`drop database if exists ${name} with (force)`);
      } finally {
        await client.end();
      }
    },
  };
}
