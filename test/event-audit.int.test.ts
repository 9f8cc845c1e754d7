/**
 * Audit history and tamper evidence of the event stores (issue 8), on memory, PGlite and
 * PostgreSQL (when DATABASE_URL is set): the history of a path, the site and origin hash
 * chains, and an event edited or deleted directly in the database found by verify.
 */
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { CHAIN_GENESIS_HEX, repositoryStream, type NewEvent, type RecordedEvent } from '@strata/core';
import { MemoryEventStore, historyPageJson, migrations, type EventStore, type StoreDatabase } from '@strata/store';
import { auditBackends } from './support/audit-backends.ts';

const SITE = 'site-a';
const STREAM = repositoryStream('libs');

// As `strata verify` runs on PostgreSQL: its scans side by side in one exported snapshot
// (PGlite runs them one after the other).
const { backends, drop } = await auditBackends({ name: 'audit', siteId: SITE, postgresAudit: { verifyConnectionsMax: 3 } });
afterAll(drop);

let ids = 0;
const originSeqs = new Map<string, number>();
function event(type: NewEvent['type'], data: Record<string, unknown>, origin = SITE, actor = 'alice'): NewEvent {
  const seq = (originSeqs.get(origin) ?? 0) + 1;
  originSeqs.set(origin, seq);
  ids++;
  return { id: `ev-${ids}`, origin, originSeq: seq, hlc: { wall: 1_700_000_000_000 + ids, logical: 0 }, type, data, meta: { actor } } as NewEvent;
}
function deploy(path: string, sha = 'a'): Record<string, unknown> {
  return { path, sha256: sha.repeat(64), sha1: sha.repeat(40), md5: sha.repeat(32), size: 3, mimeType: 'application/java-archive', properties: {} };
}

/** A repository with a history: the returned events in append order. */
async function seed(store: EventStore): Promise<RecordedEvent[]> {
  originSeqs.clear();
  const events = [
    event('RepositoryCreated', { key: 'libs', config: { rclass: 'local', packageType: 'generic' } }),
    event('ArtifactDeployed', deploy('org/app/1.0/app.jar', 'a')),
    event('ArtifactDeployed', deploy('org/other/x.txt', 'b'), SITE, 'bob'),
    event('PropertiesSet', { path: 'org/app', properties: { team: ['core'] } }),
    event('ArtifactDeployed', deploy('org/app/1.0/app.jar', 'c'), SITE, 'carol'),
    event('PropertiesSet', { path: 'org/app/1.0/app.jar', properties: { qa: ['passed'] } }),
    event('RepositoryConfigChanged', { key: 'libs', patch: { description: 'x' } }),
    event('FolderDeleted', { prefix: 'org/app' }),
    event('ArtifactDeployed', deploy('org/app/1.0/app.jar', 'd')),
    event('ArtifactDeleted', { path: 'org/other/x.txt' }),
  ];
  const recorded: RecordedEvent[] = [];
  // Several appends, so chains cross append and group-commit boundaries.
  for (const slice of [events.slice(0, 3), events.slice(3, 4), events.slice(4, 8), events.slice(8)]) {
    recorded.push(...(await store.append(STREAM, slice)).events);
  }
  return recorded;
}

for (const backend of backends) {
  describe(`event audit on ${backend.name}`, () => {
    it('the history of a path holds its own events and those of the folders above it, oldest first, page by page', async () => {
      const harness = await backend.open();
      try {
        const all = await seed(harness.store);
        const expected = all.filter((recorded) => [0, 1, 3, 4, 5, 6, 7, 8].includes(recorded.revision)).map((recorded) => recorded.id);
        const whole = await harness.audit.pathHistory(STREAM, 'org/app/1.0/app.jar', { limit: 100 });
        expect(whole.entries.map((entry) => entry.event.id)).toEqual(expected);
        expect(whole.nextAfterRevision).toBeUndefined();
        expect(whole.entries[1]!.event.data).toMatchObject({ path: 'org/app/1.0/app.jar', sha256: 'a'.repeat(64) });
        expect(whole.entries[0]!.prevHash).toBe(CHAIN_GENESIS_HEX);
        // Every entry as the stream reads it back with its links (a query, not the history's COPY).
        const chained = await harness.audit.readChained(STREAM, { fromRevision: 0, maxCount: 100 });
        expect(whole.entries).toEqual(chained.filter((entry) => expected.includes(entry.event.id)));

        const paged: string[] = [];
        let after: number | undefined;
        do {
          const page = await harness.audit.pathHistory(STREAM, 'org/app/1.0/app.jar', { limit: 2, ...(after === undefined ? {} : { afterRevision: after }) });
          expect(page.entries.length).toBeLessThanOrEqual(2);
          paged.push(...page.entries.map((entry) => entry.event.id));
          after = page.nextAfterRevision;
        } while (after !== undefined);
        expect(paged).toEqual(expected);

        const other = await harness.audit.pathHistory(STREAM, 'org/other/x.txt', { limit: 100 });
        // A configuration change is about the repository's root: in every path's history.
        expect(other.entries.map((entry) => entry.event.revision)).toEqual([0, 2, 6, 9]);
        const deep = await harness.audit.pathHistory(STREAM, 'org', { limit: 100, deep: true });
        expect(deep.entries.map((entry) => entry.event.revision)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        expect((await harness.audit.pathHistory(STREAM, 'nothing/here', { limit: 10 })).entries.map((entry) => entry.event.revision)).toEqual([0, 6]);
        // Quotes, backslashes and $n in a path are values, not SQL (the COPY inlines them as literals).
        expect((await harness.audit.pathHistory(STREAM, "o'brien\\x/$1/a''b", { limit: 10 })).entries.map((entry) => entry.event.revision)).toEqual([0, 6]);
        expect((await harness.audit.pathHistory(STREAM, "o'brien\\x", { limit: 10, deep: true })).entries.map((entry) => entry.event.revision)).toEqual([0, 6]);
      } finally {
        await harness.close();
      }
    });

    it('the history as the API\'s JSON is byte for byte historyEventJson and JSON.stringify over the same page, page by page, received events, awkward data and all', async () => {
      const harness = await backend.open();
      const asJson = async (path: string, options: { limit: number; afterRevision?: number; deep?: boolean }) => {
        const rendered = await harness.audit.pathHistoryJson(STREAM, path, { ...options, siteId: SITE });
        const decoded = historyPageJson(await harness.audit.pathHistory(STREAM, path, options), SITE);
        expect(Buffer.concat(rendered.eventsJson).toString('hex')).toBe(Buffer.concat(decoded.eventsJson).toString('hex'));
        expect([rendered.events, rendered.nextAfterRevision]).toEqual([decoded.events, decoded.nextAfterRevision]);
        return rendered;
      };
      try {
        await seed(harness.store);
        // A received event (another origin), strings to escape and outside ASCII, numbers of every width.
        originSeqs.delete('site-b');
        await harness.store.append(STREAM, [
          event('PropertiesSet', { path: 'org/app/1.0/app.jar', properties: { 'q"\\': ['zoë 😀', 'tab\there', ''], big: ['1'] } }, 'site-b', 'zoë "z"'),
          event('ArtifactDeployed', { ...deploy('org/app/1.0/app.jar', 'f'), size: 2 ** 40 + 1, mimeType: 'text/plain; charset="utf-8"' }),
        ]);
        expect(JSON.parse(Buffer.concat((await asJson('org/app/1.0/app.jar', { limit: 100 })).eventsJson).toString()).map((entry: { revision: number }) => entry.revision)).toEqual([0, 1, 3, 4, 5, 6, 7, 8, 10, 11]);
        let after: number | undefined;
        let pages = 0;
        do {
          after = (await asJson('org/app/1.0/app.jar', { limit: 3, ...(after === undefined ? {} : { afterRevision: after }) })).nextAfterRevision;
          pages++;
        } while (after !== undefined);
        expect(pages).toBe(4);
        await asJson('org', { limit: 100, deep: true });
        expect((await asJson('nothing/here', { limit: 10 })).events).toBe(2);
        expect(Buffer.concat((await asJson('x', { limit: 10, afterRevision: 11 })).eventsJson).toString()).toBe('[]');
        if (harness.db !== undefined) {
          // Stored data the renderer leaves to the decoder (a float32; a key an object reorders): the same page.
          await sql`update events set data = ${Buffer.from([0x82, 0xa4, ...Buffer.from('path'), 0xa1, 0x78, 0xa1, 0x66, 0xca, 0x3f, 0xc0, 0, 0])} where stream = ${STREAM} and revision = 5`.execute(harness.db);
          await sql`update events set meta = ${Buffer.from([0x82, 0xa1, 0x62, 0x02, 0xa1, 0x31, 0x01])} where stream = ${STREAM} and revision = 4`.execute(harness.db);
          const whole = JSON.parse(Buffer.concat((await asJson('org/app/1.0/app.jar', { limit: 100 })).eventsJson).toString()) as { revision: number; path: string; meta: unknown; data: unknown }[];
          expect(whole.find((entry) => entry.revision === 5)).toMatchObject({ path: '/x', data: { path: 'x', f: 1.5 } });
          expect(Object.keys(whole.find((entry) => entry.revision === 4)!.meta as object)).toEqual(['1', 'b']);
        }
      } finally {
        await harness.close();
      }
    });

    if (backend.name !== 'memory') {
      it('migration 009 puts configuration changes stored before it into the history', async () => {
        const harness = await backend.open();
        try {
          await seed(harness.store);
          await sql`update events set target = null where type = 'RepositoryConfigChanged'`.execute(harness.db!);
          const before = await harness.audit.pathHistory(STREAM, 'nothing/here', { limit: 10 });
          expect(before.entries.map((entry) => entry.event.revision)).toEqual([0]);
          await migrations['009-audit-config-history']!.up(harness.db!);
          const after = await harness.audit.pathHistory(STREAM, 'nothing/here', { limit: 10 });
          expect(after.entries.map((entry) => entry.event.revision)).toEqual([0, 6]);
          expect((await harness.audit.verify()).breaks).toEqual([]);
        } finally {
          await harness.close();
        }
      });

      it('migration 011 gives the key columns byte order; taken down and up again, the events stay, verify and keep their keys unique', async () => {
        const harness = await backend.open();
        const collations = async (): Promise<string[]> => {
          const { rows } = await sql<{ column: string; collation: string | null }>`
            select table_name || '.' || column_name as column, collation_name as collation
            from information_schema.columns
            where table_schema = current_schema()
              and (table_name, column_name) in (('events', 'id'), ('events', 'stream'), ('events', 'origin'), ('events', 'type'),
                ('streams', 'stream'), ('projection_checkpoints', 'name'), ('artifacts', 'sha256'))
            order by 1`.execute(harness.db!);
          return rows.map((row) => `${row.column} ${row.collation ?? 'default'}`);
        };
        const columns = ['artifacts.sha256', 'events.id', 'events.origin', 'events.stream', 'events.type', 'projection_checkpoints.name', 'streams.stream'];
        try {
          const seeded = await seed(harness.store);
          expect(await collations()).toEqual(columns.map((column) => `${column} C`));
          const migration = migrations['011-byte-order-keys']!;
          await migration.down!(harness.db!);
          expect(await collations()).toEqual(columns.map((column) => `${column} default`));
          await migration.up(harness.db!);
          expect(await collations()).toEqual(columns.map((column) => `${column} C`));
          const read = await harness.store.readStream(STREAM);
          expect(read.map((recorded) => recorded.id)).toEqual(seeded.map((recorded) => recorded.id));
          expect((await harness.audit.verify()).breaks).toEqual([]);
          await expect(sql`insert into events (id, stream, revision, origin, origin_seq, hlc_wall, hlc_logical, type, data, meta)
            values (${seeded[0]!.id}, 'x', 0, 'o', 1, 1, 0, 't', '\\x00'::bytea, '\\x00'::bytea)`.execute(harness.db!)).rejects.toThrow(/unique|duplicate/);
        } finally {
          await harness.close();
        }
      });
    }

    it('events this site produces carry the origin chain, received events keep theirs, and an intact store verifies clean', async () => {
      const harness = await backend.open();
      const peer = new MemoryEventStore({ siteId: 'site-b' });
      try {
        const local = await seed(harness.store);
        expect(local[0]!.meta.originPrev).toBe(CHAIN_GENESIS_HEX);
        expect(local[1]!.meta.originPrev).toMatch(/^[0-9a-f]{64}$/);
        expect(local[1]!.meta.originPrev).not.toBe(CHAIN_GENESIS_HEX);
        // The peer produces two events; this site receives them as they are.
        originSeqs.delete('site-b');
        const produced = (await peer.append(STREAM, [event('ArtifactDeployed', deploy('org/b/1.jar', 'e'), 'site-b'), event('ArtifactDeleted', { path: 'org/b/1.jar' }, 'site-b')])).events;
        const received = produced.map(({ stream: _stream, revision: _revision, position: _position, ...rest }) => rest as NewEvent);
        const stored = (await harness.store.append(STREAM, received)).events;
        expect(stored.map((recorded) => recorded.meta)).toEqual(produced.map((recorded) => recorded.meta));

        const result = await harness.audit.verify();
        expect(result.breaks).toEqual([]);
        expect(result).toMatchObject({ streams: 1, events: 12, originChained: 12 });
        expect((await harness.audit.verify({ stream: STREAM })).breaks).toEqual([]);

        // A received event whose origin link names the wrong predecessor is found.
        const forged = event('PropertiesSet', { path: 'org/b', properties: { k: ['v'] } }, 'site-b');
        await harness.store.append(STREAM, [{ ...forged, meta: { ...forged.meta, originPrev: 'f'.repeat(64) } }]);
        const broken = await harness.audit.verify();
        expect(broken.breaks).toEqual([expect.objectContaining({ stream: STREAM, reason: 'origin-altered', origin: 'site-b', originSeq: 3, eventId: forged.id })]);
      } finally {
        await peer.close();
        await harness.close();
      }
    });

    if (backend.name !== 'memory') {
      const tampering: { name: string; edit: (db: Kysely<StoreDatabase>, events: RecordedEvent[]) => Promise<void>; expected: Record<string, unknown> }[] = [
        {
          name: 'an event whose data was edited',
          edit: async (db, events) => {
            const victim = events[4]!;
            const edited = (await import('@strata/core')).encodeEventData('ArtifactDeployed', deploy('org/app/1.0/app.jar', 'f') as never);
            await sql`update events set data = ${Buffer.from(edited)} where id = ${victim.id}`.execute(db);
          },
          expected: { reason: 'altered', revision: 4 },
        },
        {
          name: 'an event whose actor was edited',
          edit: async (db, events) => {
            const edited = (await import('@strata/core')).encodeMeta({ actor: 'mallory', originPrev: events[2]!.meta.originPrev! });
            await sql`update events set meta = ${Buffer.from(edited)} where id = ${events[2]!.id}`.execute(db);
          },
          expected: { reason: 'altered', revision: 2 },
        },
        {
          name: 'an event deleted from the middle of the stream',
          edit: async (db, events) => {
            await sql`delete from events where id = ${events[6]!.id}`.execute(db);
          },
          expected: { reason: 'missing', revision: 6 },
        },
        {
          name: 'the last event edited',
          edit: async (db, events) => {
            await sql`update events set hlc_wall = hlc_wall + 1 where id = ${events[9]!.id}`.execute(db);
          },
          expected: { reason: 'altered', revision: 9 },
        },
        {
          name: 'the last event deleted',
          edit: async (db, events) => {
            await sql`delete from events where id = ${events[9]!.id}`.execute(db);
          },
          expected: { reason: 'missing', revision: 9 },
        },
        {
          name: 'an edited event whose stored digest was recomputed by the editor',
          edit: async (db, events) => {
            await sql`update events set hlc_logical = hlc_logical + 1 where id = ${events[5]!.id}`.execute(db);
            await sql`update events set digest = sha256(convert_to(stream || E'\n' || id || E'\n' || origin || E'\n' || origin_seq || E'\n' || hlc_wall || E'\n' || hlc_logical || E'\n' || type || E'\n' || octet_length(data) || E'\n', 'UTF8') || data || meta) where id = ${events[5]!.id}`.execute(db);
          },
          expected: { reason: 'altered', revision: 6 },
        },
        {
          name: 'an edited event whose own link was recomputed by the editor',
          edit: async (db, events) => {
            // Renumbering the rest is what a careful forger would need; changing one link is not enough.
            await sql`update events set prev_hash = sha256(prev_hash) where id = ${events[3]!.id}`.execute(db);
          },
          expected: { reason: 'altered', revision: 3 },
        },
      ];
      for (const tamper of tampering) {
        it(`verify reports ${tamper.name} as the first broken link`, async () => {
          const harness = await backend.open();
          try {
            const events = await seed(harness.store);
            expect((await harness.audit.verify()).breaks).toEqual([]);
            await tamper.edit(harness.db!, events);
            const result = await harness.audit.verify();
            expect(result.breaks.length).toBeGreaterThanOrEqual(1);
            expect(result.breaks[0]).toMatchObject({ stream: STREAM, ...tamper.expected });
            expect(result.breaks.filter((found) => found.reason !== 'origin-altered' && found.reason !== 'origin-missing')).toHaveLength(1);
          } finally {
            await harness.close();
          }
        });
      }
    }
  });
}
