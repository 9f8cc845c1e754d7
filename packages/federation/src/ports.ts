/**
 * The ports the federation engine runs on. Production wires real timers, HTTP and SQL;
 * simulations/ wires a simulated scheduler, network and in-memory stores. Nothing inside the
 * engine touches Date.now(), Math.random(), timers or sockets (DESIGN §2).
 */
import type { VersionVector } from './version-vector.ts';
import type { NewEvent } from '@strata/core';
import type { FederationReply, FederationRequest } from './federation-messages.ts';

/** A pending timer; cancel() is idempotent. */
export interface ScheduledTask {
  cancel(): void;
}

/** Timers, injected: production uses setTimeout, simulations their discrete-event loop. */
export interface Scheduler {
  /** Runs `task` once after `delayMs` milliseconds (of the scheduler's time). */
  schedule(delayMs: number, task: () => void): ScheduledTask;
}

export interface PeerSendOptions {
  /** Aborted when the engine gives up on the request (timeout, close); send must then reject. */
  readonly signal: AbortSignal;
}

/**
 * Delivery of one request to one peer and its reply. HTTP later (msgpack body, HMAC over body
 * and timestamp); the simulation's network in tests. A send that never hears back must
 * reject once `signal` aborts; the engine treats any rejection as "peer unreachable".
 */
export interface PeerTransport {
  send(peerId: string, request: FederationRequest, options: PeerSendOptions): Promise<FederationReply>;
  /**
   * Optional hint: these events are likely the next ones sent (the catch-up page held back
   * while the pages ahead of it are in flight). A transport may encode them while it waits, so
   * that the send after the next reply does not start with that work; nothing is sent, and
   * whatever is sent later is encoded from the request as usual.
   */
  prepare?(events: readonly NewEvent[]): void;
}

/**
 * Durable per-peer outbox cursors: for each (federated repository, peer), the version vector
 * the peer has acknowledged. It survives restarts (a memory implementation for tests and
 * simulations, a SQL table in production), so a restarted site neither resends everything
 * nor skips anything. A cursor only ever moves forwards, except on a full sync, which
 * replaces it by the vector the peer reports.
 */
export interface FederationStateStore {
  loadCursor(repoKey: string, peerId: string, options?: { signal?: AbortSignal }): Promise<VersionVector | undefined>;
  saveCursor(repoKey: string, peerId: string, cursor: VersionVector, options?: { signal?: AbortSignal }): Promise<void>;
}
