import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareHlc, hlcLogicalMax, HybridLogicalClock, isStrataError, type Clock, type HlcStamp } from '../src/index.ts';
import { catchStrataError } from './strata-error-assertions.ts';

class ManualClock implements Clock {
  time: number;
  constructor(time: number) {
    this.time = time;
  }
  now(): number {
    return this.time;
  }
}

function given(time: number, initial?: HlcStamp): { clock: ManualClock; hlc: HybridLogicalClock } {
  const clock = new ManualClock(time);
  return { clock, hlc: new HybridLogicalClock({ clock, ...(initial === undefined ? {} : { initial }) }) };
}

describe('HybridLogicalClock', () => {
  it('stamps a local event with physical time and a zero counter when time has advanced', () => {
    const { clock, hlc } = given(1000);
    expect(hlc.now()).toEqual({ wall: 1000, logical: 0 });
    clock.time = 1005;
    expect(hlc.now()).toEqual({ wall: 1005, logical: 0 });
  });

  it('bumps the logical counter when physical time has not moved', () => {
    const { hlc } = given(1000);
    hlc.now();
    expect(hlc.now()).toEqual({ wall: 1000, logical: 1 });
    expect(hlc.now()).toEqual({ wall: 1000, logical: 2 });
    expect(hlc.peek()).toEqual({ wall: 1000, logical: 2 });
  });

  it('keeps its wall time when the physical clock jumps backwards', () => {
    const { clock, hlc } = given(1000);
    hlc.now();
    clock.time = 400;
    expect(hlc.now()).toEqual({ wall: 1000, logical: 1 });
  });

  it('resumes from the initial stamp after a restart, never going back', () => {
    const { hlc } = given(500, { wall: 900, logical: 7 });
    expect(hlc.peek()).toEqual({ wall: 900, logical: 7 });
    expect(hlc.now()).toEqual({ wall: 900, logical: 8 });
  });

  it('borrows the next millisecond rather than overflow the logical counter', () => {
    const { hlc } = given(0, { wall: 1000, logical: hlcLogicalMax });
    expect(hlc.now()).toEqual({ wall: 1001, logical: 0 });
  });

  it('merges a remote stamp by taking the latest of local, remote and physical time', () => {
    const ahead = given(1000);
    expect(ahead.hlc.receive({ wall: 1200, logical: 5 })).toEqual({ wall: 1200, logical: 6 });

    const tied = given(1000, { wall: 1100, logical: 3 });
    expect(tied.hlc.receive({ wall: 1100, logical: 9 })).toEqual({ wall: 1100, logical: 10 });

    const localAhead = given(1000, { wall: 1100, logical: 3 });
    expect(localAhead.hlc.receive({ wall: 1050, logical: 9 })).toEqual({ wall: 1100, logical: 4 });

    const physicalAhead = given(2000, { wall: 1100, logical: 3 });
    expect(physicalAhead.hlc.receive({ wall: 1500, logical: 9 })).toEqual({ wall: 2000, logical: 0 });
  });

  it('refuses a remote stamp more than maxClockOffsetMs ahead of physical time and stays as it was', () => {
    const { hlc } = given(10_000);
    hlc.now();
    const error = catchStrataError(() => hlc.receive({ wall: 10_501, logical: 0 }), 'STRATA_ERR_HLC_CLOCK_AHEAD');
    expect(error.details).toEqual({ offsetMs: 501, maxClockOffsetMs: 500 });
    expect(hlc.peek()).toEqual({ wall: 10_000, logical: 0 });
    expect(hlc.receive({ wall: 10_500, logical: 0 })).toEqual({ wall: 10_500, logical: 1 });
  });

  it('honours a configured clock offset', () => {
    const hlc = new HybridLogicalClock({ clock: new ManualClock(0), maxClockOffsetMs: 0 });
    catchStrataError(() => hlc.receive({ wall: 1, logical: 0 }), 'STRATA_ERR_HLC_CLOCK_AHEAD');
    expect(hlc.maxClockOffsetMs).toBe(0);
  });

  it('refuses malformed remote stamps, initial stamps and physical times', () => {
    const { hlc } = given(0);
    catchStrataError(() => hlc.receive({ wall: -1, logical: 0 }), 'STRATA_ERR_EVENT_INVALID');
    catchStrataError(() => hlc.receive({ wall: 0, logical: 0.5 }), 'STRATA_ERR_EVENT_INVALID');
    catchStrataError(() => given(0, { wall: Number.NaN, logical: 0 }), 'STRATA_ERR_EVENT_INVALID');
    catchStrataError(() => new HybridLogicalClock({ clock: new ManualClock(0), maxClockOffsetMs: -1 }), 'STRATA_ERR_INVARIANT');
    catchStrataError(() => given(Number.NaN).hlc.now(), 'STRATA_ERR_INVARIANT');
  });
});

type Step =
  | { readonly kind: 'tick'; readonly deltaMs: number }
  | { readonly kind: 'now' }
  | { readonly kind: 'receive'; readonly aheadMs: number; readonly logical: number };

const arbitraryStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('tick' as const), deltaMs: fc.integer({ min: -5_000, max: 5_000 }) }),
  fc.record({ kind: fc.constant('now' as const) }),
  fc.record({
    kind: fc.constant('receive' as const),
    aheadMs: fc.integer({ min: -5_000, max: 1_000 }),
    logical: fc.integer({ min: 0, max: hlcLogicalMax }),
  }),
);

describe('HybridLogicalClock properties', () => {
  it('issues strictly increasing stamps from now() whatever the physical clock does', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 45 }), { minLength: 1, maxLength: 50 }), (times) => {
        const clock = new ManualClock(times[0] ?? 0);
        const hlc = new HybridLogicalClock({ clock });
        let previous: HlcStamp | undefined;
        for (const time of times) {
          clock.time = time;
          const stamp = hlc.now();
          expect(stamp.wall).toBeGreaterThanOrEqual(time);
          if (previous !== undefined) expect(compareHlc(stamp, previous)).toBe(1);
          previous = stamp;
        }
      }),
    );
  });

  it('orders every stamp after a received one, refuses only stamps beyond the offset, and leaves state alone when it does', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10_000, max: 2 ** 40 }), fc.array(arbitraryStep, { maxLength: 60 }), (start, steps) => {
        const clock = new ManualClock(start);
        const hlc = new HybridLogicalClock({ clock });
        let latest = hlc.peek();
        let highestSeenWall = 0;
        for (const step of steps) {
          if (step.kind === 'tick') {
            clock.time = Math.max(0, clock.time + step.deltaMs);
            continue;
          }
          highestSeenWall = Math.max(highestSeenWall, clock.time);
          if (step.kind === 'now') {
            const stamp = hlc.now();
            expect(compareHlc(stamp, latest)).toBe(1);
            latest = stamp;
            continue;
          }
          const remote = { wall: Math.max(0, clock.time + step.aheadMs), logical: step.logical };
          const before = hlc.peek();
          try {
            const stamp = hlc.receive(remote);
            expect(remote.wall - clock.time).toBeLessThanOrEqual(500);
            expect(compareHlc(stamp, remote)).toBe(1);
            expect(compareHlc(stamp, latest)).toBe(1);
            expect(compareHlc(hlc.now(), remote)).toBe(1);
            highestSeenWall = Math.max(highestSeenWall, remote.wall);
            latest = hlc.peek();
          } catch (error) {
            expect(isStrataError(error, 'STRATA_ERR_HLC_CLOCK_AHEAD')).toBe(true);
            expect(remote.wall - clock.time).toBeGreaterThan(500);
            expect(hlc.peek()).toEqual(before);
          }
        }
        // Stamps never run ahead of everything seen, beyond the odd millisecond borrowed on
        // counter overflow.
        expect(hlc.peek().wall).toBeLessThanOrEqual(Math.max(highestSeenWall, start) + 1);
      }),
    );
  });
});
