/**
 * The hybrid logical clock of a site (Kulkarni et al., "Logical Physical Clocks", 2014).
 * Stamps track physical time closely, never go backwards even when the physical clock does,
 * and order every event after everything its site had seen when it was stamped.
 */
import { StrataError, invariant } from './errors.ts';
import type { HlcStamp } from './events.ts';
import type { Clock } from './ports.ts';
import { compareHlc } from './stamp.ts';
import { hlcLogicalMax, validateHlcStamp } from './event-validation.ts';

export const defaultMaxClockOffsetMs = 500;

export interface HybridLogicalClockOptions {
  /** Physical time in milliseconds since the epoch. */
  readonly clock: Clock;
  /** How far ahead of our physical time a remote stamp may run before it is refused. */
  readonly maxClockOffsetMs?: number;
  /** The last stamp this site issued (e.g. from its event store), so a restart never goes back. */
  readonly initial?: HlcStamp;
}

export class HybridLogicalClock {
  readonly #clock: Clock;
  readonly #maxClockOffsetMs: number;
  #last: HlcStamp;

  constructor({ clock, maxClockOffsetMs = defaultMaxClockOffsetMs, initial }: HybridLogicalClockOptions) {
    invariant(Number.isSafeInteger(maxClockOffsetMs) && maxClockOffsetMs >= 0, 'maxClockOffsetMs must be a non-negative integer');
    this.#clock = clock;
    this.#maxClockOffsetMs = maxClockOffsetMs;
    this.#last = initial === undefined ? { wall: 0, logical: 0 } : validateHlcStamp(initial, 'initial');
  }

  get maxClockOffsetMs(): number {
    return this.#maxClockOffsetMs;
  }

  /** The last stamp issued, without issuing one. */
  peek(): HlcStamp {
    return this.#last;
  }

  /** A stamp for a local or send event: later than every stamp issued or received before. */
  now(): HlcStamp {
    return this.#advance(this.#last);
  }

  /**
   * Merges a stamp received from a peer and returns the stamp of the receive event, which is
   * later than both the remote stamp and everything issued before. A remote stamp more than
   * maxClockOffsetMs ahead of our physical time is refused with STRATA_ERR_HLC_CLOCK_AHEAD
   * (details.offsetMs) and leaves the clock as it was: one peer's bad clock must not drag
   * every site's stamps into the future.
   */
  receive(remote: HlcStamp): HlcStamp {
    const stamp = validateHlcStamp(remote, 'remote');
    const physical = this.#physical();
    const offsetMs = stamp.wall - physical;
    if (offsetMs > this.#maxClockOffsetMs) {
      throw new StrataError('STRATA_ERR_HLC_CLOCK_AHEAD', `remote clock runs ${offsetMs} ms ahead (at most ${this.#maxClockOffsetMs} ms allowed)`, {
        offsetMs,
        maxClockOffsetMs: this.#maxClockOffsetMs,
      });
    }
    const latest = compareHlc(stamp, this.#last) > 0 ? stamp : this.#last;
    return this.#advance(latest, physical);
  }

  /** The smallest stamp after `latest` that is no earlier than physical time. */
  #advance(latest: HlcStamp, physical = this.#physical()): HlcStamp {
    let next: HlcStamp;
    if (physical > latest.wall) next = { wall: physical, logical: 0 };
    else if (latest.logical < hlcLogicalMax) next = { wall: latest.wall, logical: latest.logical + 1 };
    // 2^31 stamps within one millisecond of a stalled clock: borrow the next millisecond
    // rather than overflow, which keeps stamps increasing and still valid.
    else next = { wall: latest.wall + 1, logical: 0 };
    invariant(Number.isSafeInteger(next.wall), 'HLC wall time overflowed');
    this.#last = next;
    return next;
  }

  #physical(): number {
    const now = Math.floor(this.#clock.now());
    invariant(Number.isSafeInteger(now) && now >= 0, `physical clock returned ${now}, not a non-negative integer of milliseconds`);
    return now;
  }
}
