import { StrataError } from '@strata/core';

/**
 * The number of events one read returns: the caller's `maxCount`, capped at the store's
 * `readBatchEventsMax` (the default when absent). Shared by every EventStore backend so
 * they refuse the same bad input the same way.
 */
export function boundedReadCount(maxCount: number | undefined, readBatchEventsMax: number): number {
  if (maxCount === undefined) return readBatchEventsMax;
  if (!Number.isSafeInteger(maxCount) || maxCount < 0) {
    throw new StrataError('STRATA_ERR_EVENT_INVALID', 'maxCount must be a non-negative integer', { field: 'maxCount' });
  }
  return Math.min(maxCount, readBatchEventsMax);
}
