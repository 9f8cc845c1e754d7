import type { EventStamp, HlcStamp } from './events.ts';

/** Total order of HLC stamps alone: wall, then logical. */
export function compareHlc(a: HlcStamp, b: HlcStamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1;
  return 0;
}

/**
 * The total order of events (DESIGN §4): wall, logical, then origin by code-unit string
 * order. "Last writer wins" means last in this order, never last to arrive.
 */
export function compareStamps(a: EventStamp, b: EventStamp): number {
  const byHlc = compareHlc(a.hlc, b.hlc);
  if (byHlc !== 0) return byHlc;
  if (a.origin === b.origin) return 0;
  return a.origin < b.origin ? -1 : 1;
}
