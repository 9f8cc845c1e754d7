import { appendFileSync } from 'node:fs';
import type { AppendSendHook } from '@strata/store';

/**
 * Where a deploy's time goes, for diagnosis only (bench/deploy-trace-probe.ts reads it):
 * with `STRATA_DEPLOY_TRACE=<file>` set when the server starts, every deploy records
 * `performance.now()` at each phase, every append round of the stream writer its steps,
 * and (on PostgreSQL, through the store's `onAppendSend`, which `strata serve` passes
 * `deployTrace.appendSend` to) every append batch its round trips; the records are appended to the file as JSON lines once
 * a second. Off (the default), each phase costs one check of an undefined constant.
 */
export const deployPhases = ['arrival', 'body', 'queued', 'checked', 'decided', 'appended', 'replied'] as const;
export type DeployPhase = (typeof deployPhases)[number];

/** One deploy's timestamps (ms, performance.now()), by phase. */
export type DeployTimes = Partial<Record<DeployPhase, number>>;

/** One round of the stream writer: when it was woken, took its batch, called append and got the answer. */
export interface RoundTimes {
  readonly drained: number;
  readonly taken: number;
  readonly appendStarted: number;
  readonly appendEnded: number;
  readonly commands: number;
  readonly queuedAfter: number;
  /** The event loop's idle time so far (ms, performance.eventLoopUtilization()) at drained, taken, appendStarted and appendEnded. */
  readonly idle?: readonly [number, number, number, number];
}

interface TraceRecord {
  readonly kind: 'deploy' | 'round' | 'send';
  readonly [field: string]: unknown;
}

class DeployTraceRecorder {
  readonly #file: string;
  #records: TraceRecord[] = [];

  constructor(file: string) {
    this.#file = file;
    setInterval(() => this.flush(), 1000).unref();
    process.once('exit', () => this.flush());
  }

  /** The store's report of each `send` of an append transaction (statements, commit, start, end): the store's onAppendSend. */
  readonly appendSend: AppendSendHook = (send) => {
    this.#records.push({ kind: 'send', ...send });
  };

  deploy(): DeployTimes {
    const times: DeployTimes = { arrival: performance.now() };
    this.#records.push({ kind: 'deploy', times });
    return times;
  }

  round(times: RoundTimes): void {
    this.#records.push({ kind: 'round', ...times });
  }

  flush(): void {
    if (this.#records.length === 0) return;
    // Deploys still in flight are written when done (next flush).
    const done: TraceRecord[] = [];
    const pending: TraceRecord[] = [];
    for (const record of this.#records) (record.kind === 'deploy' && (record['times'] as DeployTimes).replied === undefined ? pending : done).push(record);
    this.#records = pending;
    appendFileSync(this.#file, done.map((record) => JSON.stringify(record)).join('\n') + '\n');
  }
}

const traceFile = process.env['STRATA_DEPLOY_TRACE'];
/** Undefined unless STRATA_DEPLOY_TRACE names a file. */
export const deployTrace: DeployTraceRecorder | undefined = traceFile === undefined || traceFile === '' ? undefined : new DeployTraceRecorder(traceFile);
