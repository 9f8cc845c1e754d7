import { invariant, isStrataError, StrataError } from '@strata/core';
import type { DomainEvent, EventMeta, NewEvent, RecordedEvent } from '@strata/core';
import type { AppendGuard, AppendResult, EventStore, SqlText, StreamAppend } from '@strata/store';
import { joinText, rawText, readBatchEventsMax, sqlText } from '@strata/store';
import { AsyncLocalStorage } from 'node:async_hooks';
import { deployTrace } from './deploy-trace.ts';
import type { IdGenerator, LocalHlc } from './ports.ts';

const trustedWrites = new AsyncLocalStorage<boolean>();

/**
 * Runs `task` with the writers' `guard` lifted for the commands it queues: site-internal
 * writes that a site-wide rule must not stop (an edge node publishing a release bundle into
 * its read-only repositories).
 */
export function runTrustedWrites<R>(task: () => Promise<R>): Promise<R> {
  return trustedWrites.run(true, task);
}

/**
 * A decider's pure halves (STYLE: Emmett's Decider). `decide` may be async because some
 * commands also consult projections (does this path exist?), but it never writes.
 */
export interface StreamFold<S> {
  initialState(): S;
  evolve(state: S, event: RecordedEvent): S;
}

export interface StreamSnapshot<S> {
  /** Revision of the last event folded, -1 when the stream is empty. */
  readonly revision: number;
  /** The highest originSeq this site produced in the stream (0 when none). */
  readonly originSeq: number;
  readonly state: S;
}

export type Decide<S, R> = (state: S) => Promise<Decision<R>> | Decision<R>;
export interface Decision<R> {
  readonly events: readonly DomainEvent[];
  readonly result: R;
}

export interface StreamWriterOptions<S> {
  readonly siteId: string;
  readonly hlc: LocalHlc;
  readonly newId: IdGenerator;
  readonly appendRetriesMax: number;
  /** Streams whose folded state stays in memory (least recently used ones are dropped). */
  readonly streamsCachedMax?: number;
  /** Commands of one stream decided together and appended in one transaction (group commit). */
  readonly batchCommandsMax?: number;
  /**
   * A cheap starting point for a stream this process has not folded yet (e.g. from the
   * projections and an indexed lookup), instead of reading the whole stream. The state must
   * be the fold of the stream up to `revision` — or of a later revision, when folding the
   * events after `revision` again changes nothing (configuration events are idempotent).
   */
  readonly seed?: (stream: string) => Promise<StreamSnapshot<S> | undefined>;
  /**
   * How long a round may wait for commands announced (`announce`) but not queued yet — e.g.
   * deploys still writing their blob — so that they share its append (default 0: no wait).
   */
  readonly roundLingerMs?: number;
  /**
   * Most a round waits for the commands of the clients the previous round answered (default
   * 0: no wait). Clients that send their next command as soon as they are answered (a build
   * publishing many files over a few connections) arrive a moment after the round that
   * answered them; without this wait the first arrival starts a round of its own and the
   * others queue behind it, so rounds alternate between one command and the rest (measured:
   * 8 clients made rounds of 1 and 7), and every second round pays a whole append for one
   * command. A round waits until as many commands are queued as the previous round took
   * plus those that queued meanwhile, or this long, or as long as the previous round took
   * (a wait that long at worst costs what the round it saves would), whichever comes first.
   * A client alone (rounds of one command) never waits.
   */
  readonly roundGatherMs?: number;
  /**
   * Whether a round may start its append while commands' checks still run (default false:
   * it waits for every check first). With it, those commands are decided with the others and
   * the append waits for their checks inside its transaction, after its first round trip
   * (AppendOptions.precondition); a failed check refuses the append, and the round decides
   * its other commands again. Only where a check can run while an append transaction is
   * open: on a connection pool, not on a single connection (PGlite).
   */
  readonly checksDuringAppend?: boolean;
  /** Called after each successful append with the stream and the events appended (federation pushes them). */
  readonly onAppended?: (stream: string, events: readonly RecordedEvent[]) => void;
  /**
   * A site-wide rule over the events a command decided (e.g. an edge node's read-only
   * repositories): throwing refuses that command alone. Lifted inside `runTrustedWrites`.
   */
  readonly guard?: (stream: string, events: readonly DomainEvent[]) => void;
}

/**
 * One stream's part of a write across streams (`appendAcrossStreams`): the events its
 * commands decided, stamped, with the revision they were decided at.
 */
export interface PreparedStreamWrite {
  readonly append: StreamAppend;
  /** After the multi-stream append stored it: fold the stored events into the writer's state. */
  stored(result: AppendResult): void;
  /** After a conflict or an unknown outcome: make the writer read the stream again. */
  discard(): void;
}

/**
 * Decides commands on several streams (`prepare`, each part from `StreamWriter.prepare`)
 * and appends all their events in one `appendMany`: readers see every stream's events at
 * once or none of them. A conflict on any stream decides everything again, at most
 * `attemptsMax` times.
 */
export async function appendAcrossStreams(
  store: EventStore,
  prepare: () => Promise<readonly PreparedStreamWrite[]>,
  attemptsMax: number,
): Promise<readonly AppendResult[]> {
  for (let attempt = 1; ; attempt++) {
    const parts = (await prepare()).filter((part) => part.append.events.length > 0);
    if (parts.length === 0) return [];
    try {
      const results = await store.appendMany(parts.map((part) => part.append));
      parts.forEach((part, index) => part.stored(results[index]!));
      return results;
    } catch (error) {
      for (const part of parts) part.discard();
      if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')) throw error;
      if (attempt >= attemptsMax) {
        throw new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', `streams ${parts.map((part) => part.append.stream).join(', ')} kept changing; gave up after ${attempt} attempts`);
      }
    }
  }
}

/**
 * Questions of one kind that a round's commands ask in one statement (CommandGuard): the
 * statement of all of them, whatever the number of commands, is one text (prepared once).
 */
export interface GuardQuery<Q> {
  /**
   * Read-only: one row per question that does not pass (none when all pass), naming its
   * 1-based place in `questions` in the column `ordinal`.
   */
  statement(questions: readonly Q[]): SqlText;
}

/**
 * A command's check as a statement of its round's append transaction (AppendOptions.guard,
 * SQL stores only): instead of a lookup of its own before the append, it runs after the
 * append's locks, in the round trip that takes them, with the questions of the round's other
 * commands of the same query. A command that decides no events is not checked.
 */
export interface CommandGuard<Q = never> {
  readonly query: GuardQuery<Q>;
  readonly questions: readonly Q[];
  /**
   * The error refusing the command, from the rows of its questions that did not pass (JSON
   * objects by column name; `ordinal` is the question's 1-based place in `questions`).
   */
  refusal(rows: readonly Readonly<Record<string, unknown>>[]): unknown;
}

interface PendingCommand<S> {
  readonly meta: EventMeta;
  readonly guarded: boolean;
  readonly guard: CommandGuard<unknown> | undefined;
  readonly decide: Decide<S, unknown>;
  /** The command's check, started when it was queued: undefined when it passed, else the error. */
  readonly checked: Promise<{ error: unknown } | undefined>;
  /** Whether `checked` has settled (a round decides commands whose checks still run, see #round). */
  checkSettled: boolean;
  resolve(value: { result: unknown; events: readonly RecordedEvent[] }): void;
  reject(error: unknown): void;
}

/** A stream's last round, for the next one's wait (roundGatherMs). */
interface PreviousRound {
  /** The commands it took plus those queued when it ended: the clients likely to send again. */
  readonly commands: number;
  readonly durationMs: number;
  /** performance.now() at its end. */
  readonly endedAt: number;
}

/** A round older than this sets no expectation (its clients have gone). */
const previousRoundExpiresMs = 1_000;

interface Accepted<S> {
  readonly command: PendingCommand<S>;
  readonly result: unknown;
  readonly count: number;
}

/**
 * Runs commands against one event stream: folds the stream's state (kept in memory and
 * caught up incrementally), calls `decide`, stamps the events (id, origin, gapless
 * originSeq, HLC, meta) and appends them with the expected revision.
 *
 * Commands on one stream are queued in this process; while an append is in flight the
 * queue grows, and the next round decides every queued command in order against the
 * evolving state and appends all their events in one transaction (group commit), so
 * concurrent deploys to one repository cost one append, not one each. A command whose
 * `decide` throws fails alone. A conflict with another process re-reads the stream and
 * decides the round again, at most `appendRetriesMax` times.
 */
export class StreamWriter<S> {
  readonly #store: EventStore;
  readonly #fold: StreamFold<S>;
  readonly #options: StreamWriterOptions<S>;
  readonly #snapshots = new Map<string, StreamSnapshot<S>>();
  readonly #queues = new Map<string, PendingCommand<S>[]>();
  readonly #streamsCachedMax: number;
  readonly #batchCommandsMax: number;
  readonly #roundLingerMs: number;
  /** Per stream: commands announced and not yet queued (or given up). */
  readonly #announced = new Map<string, number>();
  readonly #roundGatherMs: number;
  /** Per stream with a round that waits (roundGatherMs): the queue length it waits for, and its wake-up. */
  readonly #gathering = new Map<string, { readonly commands: number; readonly wake: () => void }>();
  /** Per stream whose last round had company (roundGatherMs): what the next round waits for. */
  readonly #previousRounds = new Map<string, PreviousRound>();

  constructor(store: EventStore, fold: StreamFold<S>, options: StreamWriterOptions<S>) {
    this.#store = store;
    this.#fold = fold;
    this.#options = options;
    this.#streamsCachedMax = options.streamsCachedMax ?? 10_000;
    this.#batchCommandsMax = options.batchCommandsMax ?? 256;
    this.#roundLingerMs = options.roundLingerMs ?? 0;
    this.#roundGatherMs = options.roundGatherMs ?? 0;
  }

  /**
   * Announces a command that will be queued on `stream` soon (its caller is still doing
   * I/O, e.g. writing a blob); call the returned function once, right before `execute` or
   * when giving up. A round waits up to `roundLingerMs` for announced commands.
   */
  announce(stream: string): () => void {
    if (this.#roundLingerMs <= 0) return () => undefined;
    this.#announced.set(stream, (this.#announced.get(stream) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const count = (this.#announced.get(stream) ?? 1) - 1;
      if (count <= 0) this.#announced.delete(stream);
      else this.#announced.set(stream, count);
    };
  }

  /**
   * Drops the folded state of a stream another writer appended to (e.g. events received from
   * federation members), so the next round reads it again instead of deciding on stale state.
   */
  forget(stream: string): void {
    this.#snapshots.delete(stream);
  }

  /**
   * Queues a command. `check` (optional) is an asynchronous precondition that does not depend
   * on the stream's state (e.g. a projection lookup). It starts at once, while the command
   * waits for its round, so lookups overlap the append in flight instead of lengthening rounds.
   * `guard` (optional, SQL stores only) is a check that runs inside the round's append instead.
   */
  execute<R>(
    stream: string,
    meta: EventMeta,
    decide: Decide<S, R>,
    check?: () => Promise<void>,
    guard?: CommandGuard<unknown>,
  ): Promise<{ result: R; events: readonly RecordedEvent[] }> {
    return new Promise((resolve, reject) => {
      const command: PendingCommand<S> = {
        meta,
        guarded: this.#options.guard !== undefined && trustedWrites.getStore() !== true,
        guard,
        decide: decide as Decide<S, unknown>,
        checked:
          check === undefined
            ? Promise.resolve(undefined)
            : check().then(
                () => {
                  command.checkSettled = true;
                  return undefined;
                },
                (error: unknown) => {
                  command.checkSettled = true;
                  return { error };
                },
              ),
        checkSettled: check === undefined,
        resolve: resolve as PendingCommand<S>['resolve'],
        reject,
      };
      const queue = this.#queues.get(stream);
      if (queue !== undefined) {
        queue.push(command);
        const gathering = this.#gathering.get(stream);
        if (gathering !== undefined && queue.length >= gathering.commands) gathering.wake();
        return;
      }
      this.#queues.set(stream, [command]);
      void this.#drain(stream);
    });
  }

  /**
   * Decides `decides` in order on `stream` (each against the state the previous one left)
   * for a write across streams that the caller runs (`appendAcrossStreams`). Not queued
   * behind this stream's rounds: the expected revision refuses the write if a round appended
   * meanwhile. The guard applies as in `execute`.
   */
  async prepare(stream: string, meta: EventMeta, decides: readonly Decide<S, unknown>[]): Promise<PreparedStreamWrite> {
    const guarded = this.#options.guard !== undefined && trustedWrites.getStore() !== true;
    const base = this.#snapshots.get(stream) ?? (await this.#catchUp(stream));
    let state = base.state;
    let originSeq = base.originSeq;
    let revision = base.revision;
    const stamped: NewEvent[] = [];
    for (const decide of decides) {
      const decision = await decide(state);
      if (guarded) this.#options.guard?.(stream, decision.events);
      for (const event of decision.events) {
        const newEvent = { ...event, id: this.#options.newId(), origin: this.#options.siteId, originSeq: ++originSeq, hlc: this.#options.hlc.now(), meta } as NewEvent;
        stamped.push(newEvent);
        state = this.#fold.evolve(state, { ...newEvent, stream, revision: ++revision, position: -1n } as RecordedEvent);
      }
    }
    return {
      append: { stream, events: stamped, expectedRevision: base.revision < 0 ? 'no_stream' : base.revision },
      stored: (result) => {
        invariant(result.appendedCount === stamped.length, 'freshly generated event ids were reported as duplicates');
        let folded = base.state;
        for (const recorded of result.events) folded = this.#fold.evolve(folded, recorded);
        // A round may have remembered a later revision meanwhile (it then read ours): keep the later one.
        if ((this.#snapshots.get(stream)?.revision ?? -1) < result.nextRevision) this.#remember(stream, { revision: result.nextRevision, originSeq, state: folded });
        this.#options.onAppended?.(stream, result.events);
      },
      discard: () => this.#snapshots.delete(stream),
    };
  }

  /** Runs rounds until the stream's queue is empty; one drain per stream at a time. */
  async #drain(stream: string): Promise<void> {
    for (;;) {
      const drained = performance.now();
      const idleAtDrained = deployTrace === undefined ? 0 : performance.eventLoopUtilization().idle;
      // Let pending I/O run before a round: an embedded database (PGlite) answers through
      // microtasks only, so without this yield a round would never see the requests that
      // arrived meanwhile and every command would get its own append.
      await new Promise((resolve) => setImmediate(resolve));
      // On PGlite, SQL blocks the event loop, so a blob write advances one step per round:
      // without this wait rounds stay at a deploy or two and every one pays the whole append.
      if (this.#roundLingerMs > 0) {
        const lingerUntil = performance.now() + this.#roundLingerMs;
        while (
          (this.#announced.get(stream) ?? 0) > 0 &&
          (this.#queues.get(stream)?.length ?? 0) < this.#batchCommandsMax &&
          performance.now() < lingerUntil
        ) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      }
      const queue = this.#queues.get(stream);
      if (queue === undefined || queue.length === 0) {
        this.#queues.delete(stream);
        return;
      }
      const previous = this.#previousRounds.get(stream);
      if (this.#roundGatherMs > 0 && previous !== undefined && performance.now() - previous.endedAt < previousRoundExpiresMs) {
        const commands = Math.min(previous.commands, this.#batchCommandsMax);
        const gatherMs = Math.min(this.#roundGatherMs, previous.durationMs);
        if (gatherMs > 0 && queue.length < commands) await this.#gather(stream, commands, gatherMs);
      }
      const batch = queue.splice(0, this.#batchCommandsMax);
      const started = performance.now();
      const appendTimes = deployTrace === undefined ? undefined : { started: 0, ended: 0, idleAtTaken: performance.eventLoopUtilization().idle, idleAtStarted: 0, idleAtEnded: 0 };
      try {
        await this.#round(stream, batch, appendTimes);
      } catch (error) {
        for (const command of batch) command.reject(error);
      }
      const ended = performance.now();
      if (appendTimes !== undefined) {
        deployTrace?.round({
          drained,
          taken: started,
          appendStarted: appendTimes.started,
          appendEnded: appendTimes.ended,
          commands: batch.length,
          queuedAfter: queue.length,
          idle: [idleAtDrained, appendTimes.idleAtTaken, appendTimes.idleAtStarted, appendTimes.idleAtEnded],
        });
      }
      // A client alone (a round of one, nothing queued) expects one command: no wait.
      if (this.#roundGatherMs > 0) this.#rememberRound(stream, { commands: batch.length + queue.length, durationMs: ended - started, endedAt: ended });
    }
  }

  #rememberRound(stream: string, round: PreviousRound): void {
    this.#previousRounds.delete(stream);
    if (round.commands <= 1) return;
    this.#previousRounds.set(stream, round);
    if (this.#previousRounds.size > this.#streamsCachedMax) {
      const oldest = this.#previousRounds.keys().next().value;
      if (oldest !== undefined) this.#previousRounds.delete(oldest);
    }
  }

  /** Waits until `commands` commands are queued on `stream` (execute wakes it) or `ms` have passed. */
  async #gather(stream: string, commands: number, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await new Promise<void>((resolve) => {
      this.#gathering.set(stream, { commands, wake: resolve });
      timer = setTimeout(resolve, ms);
    });
    clearTimeout(timer);
    this.#gathering.delete(stream);
  }

  async #round(
    stream: string,
    batch: readonly PendingCommand<S>[],
    trace?: { started: number; ended: number; idleAtStarted: number; idleAtEnded: number },
  ): Promise<void> {
    // A command whose check failed is refused now. With checksDuringAppend, checks still
    // running do not hold the round back: their commands are decided with the others and the
    // append waits for the checks only once its transaction holds the stream's lock
    // (AppendOptions.precondition), so a deploy's tree-shape lookup overlaps the append's
    // first round trip. Without it the round waits for every check first.
    let pending: PendingCommand<S>[] = [];
    for (const command of batch) {
      const failure = command.checkSettled || this.#options.checksDuringAppend !== true ? await command.checked : undefined;
      if (failure === undefined) pending.push(command);
      else command.reject(failure.error);
    }
    if (pending.length === 0) return;
    let snapshot = this.#snapshots.get(stream) ?? (await this.#catchUp(stream));
    for (let attempt = 0; ; attempt++) {
      let state = snapshot.state;
      let originSeq = snapshot.originSeq;
      let revision = snapshot.revision;
      const accepted: Accepted<S>[] = [];
      const stamped: NewEvent[] = [];
      const stillPending: PendingCommand<S>[] = [];
      for (const command of pending) {
        let decision: Decision<unknown>;
        try {
          decision = await command.decide(state);
          if (command.guarded) this.#options.guard?.(stream, decision.events);
        } catch (error) {
          command.reject(error);
          continue;
        }
        stillPending.push(command);
        for (const event of decision.events) {
          const newEvent = {
            ...event,
            id: this.#options.newId(),
            origin: this.#options.siteId,
            originSeq: ++originSeq,
            hlc: this.#options.hlc.now(),
            meta: command.meta,
          } as NewEvent;
          stamped.push(newEvent);
          // Later commands of the round decide against the state this one leaves.
          state = this.#fold.evolve(state, { ...newEvent, stream, revision: ++revision, position: -1n } as RecordedEvent);
        }
        accepted.push({ command, result: decision.result, count: decision.events.length });
      }
      pending = stillPending;
      if (stamped.length === 0) {
        for (const { command, result } of accepted) {
          const failure = await command.checked;
          if (failure === undefined) command.resolve({ result, events: [] });
          else command.reject(failure.error);
        }
        return;
      }
      const unchecked = accepted.filter(({ command }) => !command.checkSettled).map(({ command }) => command.checked);
      // Thrown by the precondition when a check failed; the append is refused with it, by
      // identity. Built only then: an error's stack costs ~25 µs, in every round otherwise.
      let checkFailed: StrataError | undefined;
      const precondition =
        unchecked.length === 0
          ? undefined
          : Promise.all(unchecked).then((failures) => {
              if (failures.some((failure) => failure !== undefined)) throw (checkFailed = roundCheckFailed(stream));
            });
      // Handled here as well: a store that fails before awaiting it must not leave its rejection unhandled.
      precondition?.catch(() => undefined);
      const guard = roundGuard(stream, accepted);
      try {
        if (trace !== undefined) {
          trace.started = performance.now();
          trace.idleAtStarted = performance.eventLoopUtilization().idle;
        }
        const appended = await this.#store.append(stream, stamped, {
          expectedRevision: snapshot.revision < 0 ? 'no_stream' : snapshot.revision,
          ...(precondition === undefined ? {} : { precondition }),
          ...(guard === undefined ? {} : { guard: guard.guard }),
        });
        if (trace !== undefined) {
          trace.ended = performance.now();
          trace.idleAtEnded = performance.eventLoopUtilization().idle;
        }
        invariant(appended.appendedCount === stamped.length, 'freshly generated event ids were reported as duplicates');
        let folded = snapshot.state;
        for (const recorded of appended.events) folded = this.#fold.evolve(folded, recorded);
        this.#remember(stream, { revision: appended.nextRevision, originSeq, state: folded });
        this.#options.onAppended?.(stream, appended.events);
        let offset = 0;
        for (const { command, result, count } of accepted) {
          command.resolve({ result, events: appended.events.slice(offset, offset + count) });
          offset += count;
        }
        return;
      } catch (error) {
        const refused = guard?.refused();
        if (guard !== undefined && refused !== undefined && error === refused) {
          // Nothing was written: refuse the commands whose guards returned rows and decide the
          // others again, on the same snapshot (their guards run again with the next append).
          pending = pending.filter((command) => {
            const refusal = guard.refusals.get(command);
            if (refusal !== undefined) command.reject(refusal.error);
            return refusal === undefined;
          });
          if (pending.length === 0) return;
          attempt--;
          continue;
        }
        if (checkFailed !== undefined && error === checkFailed) {
          // Nothing was written: refuse the commands whose checks failed (every check has
          // settled now) and decide the others again, on the same snapshot.
          const stillChecked: PendingCommand<S>[] = [];
          for (const command of pending) {
            const failure = await command.checked;
            if (failure === undefined) stillChecked.push(command);
            else command.reject(failure.error);
          }
          pending = stillChecked;
          if (pending.length === 0) return;
          attempt--;
          continue;
        }
        if (!isStrataError(error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')) {
          // Unknown outcome (e.g. the store went away): forget the snapshot so the next round re-reads.
          this.#snapshots.delete(stream);
          throw error;
        }
        if (attempt + 1 >= this.#options.appendRetriesMax) {
          this.#snapshots.delete(stream);
          throw new StrataError('STRATA_ERR_STORE_CONCURRENCY_CONFLICT', `stream ${stream} kept changing; gave up after ${attempt + 1} attempts`);
        }
        snapshot = await this.#catchUp(stream);
      }
    }
  }

  /** Reads events the snapshot lacks (all of them the first time) and folds them. */
  async #catchUp(stream: string): Promise<StreamSnapshot<S>> {
    const cached = this.#snapshots.get(stream) ?? (await this.#options.seed?.(stream));
    let revision = cached?.revision ?? -1;
    let originSeq = cached?.originSeq ?? 0;
    let state = cached?.state ?? this.#fold.initialState();
    // Bounded: a stream of N events takes N / readBatchEventsMax reads, and each read is non-empty.
    for (;;) {
      const events = await this.#store.readStream(stream, { fromRevision: revision + 1, maxCount: readBatchEventsMax });
      for (const event of events) {
        invariant(event.revision === revision + 1, `stream ${stream} skipped from ${revision} to ${event.revision}`);
        revision = event.revision;
        if (event.origin === this.#options.siteId && event.originSeq > originSeq) originSeq = event.originSeq;
        state = this.#fold.evolve(state, event);
      }
      if (events.length < readBatchEventsMax) break;
    }
    const snapshot = { revision, originSeq, state };
    this.#remember(stream, snapshot);
    return snapshot;
  }

  #remember(stream: string, snapshot: StreamSnapshot<S>): void {
    this.#snapshots.delete(stream);
    this.#snapshots.set(stream, snapshot);
    if (this.#snapshots.size > this.#streamsCachedMax) {
      const oldest = this.#snapshots.keys().next().value;
      if (oldest !== undefined) this.#snapshots.delete(oldest);
    }
  }
}

/**
 * The error a round's append is refused with when a command's check or guard failed: matched
 * by identity, so each round builds its own, and only when it is thrown.
 */
function roundCheckFailed(stream: string): StrataError {
  return new StrataError('STRATA_ERR_HTTP_CONFLICT', `a command of this round on ${stream} failed its check`);
}

/**
 * The guards of a round's commands that decided events, as the one guard of its append: one
 * statement per query, over the questions of all its commands. When any question does not
 * pass, the append is refused with the error `refused()` then returns (by identity), and
 * `refusals` holds each refused command's error.
 */
function roundGuard<S>(
  stream: string,
  accepted: readonly Accepted<S>[],
): { readonly guard: AppendGuard; readonly refused: () => StrataError | undefined; readonly refusals: Map<PendingCommand<S>, { error: unknown }> } | undefined {
  /** Per query: its commands, each with the place of its first question among the query's. */
  const byQuery = new Map<GuardQuery<unknown>, { command: PendingCommand<S>; first: number }[]>();
  const questionsOf = new Map<GuardQuery<unknown>, unknown[]>();
  for (const { command, count } of accepted) {
    const guard = command.guard;
    if (guard === undefined || count === 0) continue;
    let commands = byQuery.get(guard.query);
    let questions = questionsOf.get(guard.query);
    if (commands === undefined || questions === undefined) {
      byQuery.set(guard.query, (commands = []));
      questionsOf.set(guard.query, (questions = []));
    }
    commands.push({ command, first: questions.length });
    questions.push(...guard.questions);
  }
  if (byQuery.size === 0) return undefined;
  const queries = [...byQuery.keys()];
  // Built when a guard refuses (by then the round pays a second append anyway), not in every round.
  let refused: StrataError | undefined;
  const refusals = new Map<PendingCommand<S>, { error: unknown }>();
  // Text (sqlText), not Kysely's nodes: built in every round of guarded commands.
  const statement = joinText(
    queries.map((query, index) => sqlText`select ${rawText(String(index))}::int as query, to_jsonb(g) as reason from (${query.statement(questionsOf.get(query)!)}) as g`),
    ' union all ',
  );
  return {
    guard: {
      statement,
      refusal: (rows) => {
        const rowsOf = new Map<PendingCommand<S>, Readonly<Record<string, unknown>>[]>();
        for (const row of rows) {
          const query = queries[Number(row['query'])];
          const reason = row['reason'] as Readonly<Record<string, unknown>>;
          const ordinal = Number(reason['ordinal']);
          const commands = query === undefined ? undefined : byQuery.get(query);
          // The command whose questions hold that place: the last one starting at or before it.
          const owner = commands?.findLast(({ first }) => first < ordinal);
          invariant(owner !== undefined && ordinal <= questionsOf.get(query!)!.length, `an append guard's row names question ${ordinal} of query ${String(row['query'])}`);
          let list = rowsOf.get(owner.command);
          if (list === undefined) rowsOf.set(owner.command, (list = []));
          list.push({ ...reason, ordinal: ordinal - owner.first });
        }
        refusals.clear();
        for (const [command, commandRows] of rowsOf) {
          let error: unknown;
          try {
            error = command.guard!.refusal(commandRows);
          } catch (thrown) {
            error = thrown;
          }
          refusals.set(command, { error });
        }
        return (refused ??= roundCheckFailed(stream));
      },
    },
    refused: () => refused,
    refusals,
  };
}
