/**
 * A child process for test/event-store.kill.e2e.test.ts: appends groups of events to three
 * streams with appendMany, one group after another, and prints `committed <n>` once group n's
 * append resolved — until it is killed. Arguments: <dataDir> (PGlite) or DATABASE_URL + SCHEMA
 * in the environment (PostgreSQL); <eventsPerPart>.
 */
import { openEventStore } from '@strata/store';
import type { NewEvent } from '@strata/core';

const [dataDir, perPartText] = process.argv.slice(2);
const perPart = Number(perPartText);
const databaseUrl = process.env['DATABASE_URL'];
const schema = process.env['SCHEMA'];
const opened = await openEventStore(
  databaseUrl !== undefined && schema !== undefined ? { databaseUrl, schema, poolConnectionsMax: 2 } : { dataDir: dataDir! },
);

function event(group: number, part: number, index: number): NewEvent {
  return {
    id: `g${group}-p${part}-e${index}`,
    origin: 'site-kill',
    originSeq: group * 10_000 + part * 1000 + index + 1,
    hlc: { wall: 1_700_000_000_000 + group, logical: part * 1000 + index },
    type: 'ArtifactDeleted',
    data: { path: `group-${group}/part-${part}/file-${index}.bin` },
    meta: { actor: 'kill-test' },
  } as NewEvent;
}

// Continue after whatever an earlier (killed) run committed.
let group = 0;
for (const stream of ['repo-kill-a', 'repo-kill-b', 'repo-kill-c']) {
  const revision = await opened.store.streamRevision(stream);
  group = Math.max(group, revision === undefined ? 0 : Math.ceil((revision + 1) / perPart));
}
process.stdout.write(`ready ${group}\n`);
for (;;) {
  await opened.store.appendMany(
    ['repo-kill-a', 'repo-kill-b', 'repo-kill-c'].map((stream, part) => ({
      stream,
      events: Array.from({ length: perPart }, (_, index) => event(group, part, index)),
    })),
  );
  process.stdout.write(`committed ${group}\n`);
  group++;
}
