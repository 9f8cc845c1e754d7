import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isStrataError, type NewEvent } from '@strata/core';
import { MemoryEventStore, type ExpectedRevision } from '../src/index.ts';

/**
 * appendMany against a model (stream → event count): a call whose every part's expectation
 * holds stores every part; any failing part stores nothing of any part and fails with a
 * concurrency conflict. Checked on the memory store, whose semantics the SQL stores share
 * (the conformance suite runs the same cases on PGlite and PostgreSQL).
 */
const STREAMS = ['repo-a', 'repo-b', 'repo-c', 'repo-d'] as const;
let sequence = 0;

function events(count: number): NewEvent[] {
  return Array.from({ length: count }, () => {
    const n = ++sequence;
    return {
      id: `pm-${n}`,
      origin: 'site-p',
      originSeq: n,
      hlc: { wall: 1_700_000_000_000 + n, logical: 0 },
      type: 'ArtifactDeleted',
      data: { path: `p/${n}.bin` },
      meta: { actor: 'property' },
    } as NewEvent;
  });
}

const expectation = fc.oneof(
  fc.constant<ExpectedRevision | undefined>(undefined),
  fc.constantFrom<ExpectedRevision>('any', 'no_stream', 'exists'),
  fc.integer({ min: -1, max: 5 }),
);
const call = fc.uniqueArray(fc.record({ stream: fc.constantFrom(...STREAMS), count: fc.integer({ min: 0, max: 3 }), expected: expectation }), {
  minLength: 1,
  maxLength: 4,
  selector: (part) => part.stream,
});

function holds(expected: ExpectedRevision | undefined, current: number): boolean {
  if (expected === undefined || expected === 'any') return true;
  if (expected === 'no_stream') return current === -1;
  if (expected === 'exists') return current >= 0;
  return current === expected;
}

describe('appendMany', () => {
  it('stores every part or none, as the model says', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(call, { minLength: 1, maxLength: 12 }), async (calls) => {
        const store = new MemoryEventStore();
        const model = new Map<string, number>(STREAMS.map((stream) => [stream, 0]));
        for (const parts of calls) {
          const allHold = parts.every((part) => holds(part.expected, model.get(part.stream)! - 1));
          const appends = parts.map((part) => ({ stream: part.stream, events: events(part.count), ...(part.expected === undefined ? {} : { expectedRevision: part.expected }) }));
          const outcome = await store.appendMany(appends).then(
            (results) => ({ results }),
            (error: unknown) => ({ error }),
          );
          if (allHold) {
            expect(outcome).toHaveProperty('results');
            for (const part of parts) model.set(part.stream, model.get(part.stream)! + part.count);
            const results = (outcome as { results: readonly { nextRevision: number }[] }).results;
            expect(results.map((result) => result.nextRevision)).toEqual(parts.map((part) => model.get(part.stream)! - 1));
          } else {
            expect(isStrataError((outcome as { error?: unknown }).error, 'STRATA_ERR_STORE_CONCURRENCY_CONFLICT')).toBe(true);
          }
          for (const stream of STREAMS) expect((await store.streamRevision(stream)) ?? -1).toBe(model.get(stream)! - 1);
        }
        const total = [...model.values()].reduce((sum, count) => sum + count, 0);
        expect((await store.readAll()).events).toHaveLength(total);
        await store.close();
      }),
      { numRuns: 150 },
    );
  });
});
