/**
 * Where a deploy's time goes: reads the JSON lines a server wrote with
 * `STRATA_DEPLOY_TRACE=<file>` (packages/server/src/deploy-trace.ts) and prints, for the last
 * burst of deploys in it (a wrk run: deploys more than 500 ms apart start a new burst), the
 * p50 / p99 of each phase, the rounds' sizes and steps, the append round trips, and the time
 * the database had no append transaction in flight.
 *
 *   STRATA_DEPLOY_TRACE=/tmp/trace.jsonl npm run bench -- server-http --only=put --backend=postgres --rounds=1
 *   node --import tsx bench/deploy-trace-probe.ts /tmp/trace.jsonl
 */
import { readFileSync } from 'node:fs';

type Times = Partial<Record<'arrival' | 'body' | 'queued' | 'checked' | 'decided' | 'appended' | 'replied', number>>;
interface Round {
  drained: number;
  taken: number;
  appendStarted: number;
  appendEnded: number;
  commands: number;
  queuedAfter: number;
}
interface Send {
  statements: number;
  commit: boolean;
  failed?: true;
  started: number;
  ended: number;
}

const file = process.argv[2];
if (file === undefined) throw new Error('usage: deploy-trace-probe.ts <trace file>');
const deploys: Times[] = [];
const rounds: Round[] = [];
const sends: Send[] = [];
for (const line of readFileSync(file, 'utf8').split('\n')) {
  if (line === '') continue;
  const record = JSON.parse(line) as { kind: string; times?: Times } & Round & Send;
  if (record.kind === 'deploy') deploys.push(record.times!);
  else if (record.kind === 'round') rounds.push(record);
  else if (record.kind === 'send') sends.push(record);
}
deploys.sort((a, b) => a.arrival! - b.arrival!);
// The last burst.
let start = 0;
for (let index = 1; index < deploys.length; index++) if (deploys[index]!.arrival! - deploys[index - 1]!.arrival! > 500) start = index;
const burst = deploys.slice(start).filter((times) => times.replied !== undefined && times.appended !== undefined);
// Leave out the first and last 10% (ramp-up, wrk stopping).
const from = burst[Math.floor(burst.length * 0.1)]!.arrival!;
const to = burst[Math.floor(burst.length * 0.9)]!.arrival!;
const window = burst.filter((times) => times.arrival! >= from && times.arrival! <= to);
const windowRounds = rounds.filter((round) => round.taken >= from && round.taken <= to);
const windowSends = sends.filter((send) => send.started >= from && send.started <= to);
const seconds = (to - from) / 1000;

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? NaN;
};
const row = (label: string, values: number[]) =>
  console.log(`${label.padEnd(46)} p50 ${quantile(values, 0.5).toFixed(2).padStart(7)}  p90 ${quantile(values, 0.9).toFixed(2).padStart(7)}  p99 ${quantile(values, 0.99).toFixed(2).padStart(7)}  mean ${(values.reduce((a, b) => a + b, 0) / values.length).toFixed(2).padStart(7)} ms`);
const span = (a: keyof Times, b: keyof Times) => window.filter((t) => t[a] !== undefined && t[b] !== undefined).map((t) => t[b]! - t[a]!);

console.log(`${window.length} deploys in ${seconds.toFixed(2)} s (${(window.length / seconds).toFixed(0)}/s), ${windowRounds.length} rounds, ${windowSends.length} round trips`);
console.log('per deploy:');
row('handler start → body staged (blob lease)', span('arrival', 'body'));
row('body staged → queued (execute)', span('body', 'queued'));
row('queued → tree-shape check answered', span('queued', 'checked'));
row('queued → decided (its round started)', span('queued', 'decided'));
row('decided → append answered', span('decided', 'appended'));
row('append answered → reply finished', span('appended', 'replied'));
row('handler start → reply finished', span('arrival', 'replied'));
// What a deploy waited for before its round: the round in flight when it was queued.
const waitsBehind = window.map((times) => {
  const inFlight = windowRounds.find((round) => round.taken <= times.queued! && round.appendEnded >= times.queued!);
  return inFlight === undefined ? 0 : inFlight.appendEnded - times.queued!;
});
row('queued → the round in flight ended', waitsBehind);
console.log('per round:');
row('commands per round (count)', windowRounds.map((round) => round.commands));
row('queued when the round ended (count)', windowRounds.map((round) => round.queuedAfter));
row('drain woke → batch taken (yield + gather)', windowRounds.map((round) => round.taken - round.drained));
row('batch taken → append called (checks, decide)', windowRounds.map((round) => round.appendStarted - round.taken));
row('append called → answered', windowRounds.map((round) => round.appendEnded - round.appendStarted));
const sorted = [...windowRounds].sort((a, b) => a.taken - b.taken);
row('previous append answered → next batch taken', sorted.slice(1).map((round, index) => round.taken - sorted[index]!.appendEnded));
console.log('append round trips:');
// With one-round-trip appends (PostgreSQL) a round is one committing send, or its writes then a send of the commit alone.
row('without commit (locks, ids, loads; or writes)', windowSends.filter((send) => !send.commit && send.failed !== true).map((send) => send.ended - send.started));
row('with commit (writes, commit; or commit alone)', windowSends.filter((send) => send.commit && send.failed !== true).map((send) => send.ended - send.started));
console.log(`failed round trips (a one-round-trip guess that did not hold): ${windowSends.filter((send) => send.failed === true).length}`);
const orderedSends = [...windowSends].sort((a, b) => a.started - b.started);
const between = orderedSends.slice(1).map((send, index) => send.started - orderedSends[index]!.ended);
row('between round trips (server JS or idle)', between);
let busy = 0;
for (const send of orderedSends) busy += send.ended - send.started;
console.log(`database busy with an append round trip ${((busy / (to - from)) * 100).toFixed(0)}% of the window`);
