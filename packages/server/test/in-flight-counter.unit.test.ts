import { describe, expect, it } from 'vitest';
import { InFlightCounter } from '../src/in-flight-counter.ts';

describe('in-flight counter', () => {
  it('is drained at once when nothing is in flight', async () => {
    const counter = new InFlightCounter();
    await counter.drained();
    expect(counter.count).toBe(0);
  });

  it('is drained only when every tracked operation settled, a rejected one included', async () => {
    const counter = new InFlightCounter();
    let resolveFirst!: () => void;
    let rejectSecond!: (error: Error) => void;
    const second = new Promise<void>((_resolve, reject) => (rejectSecond = reject));
    second.catch(() => undefined);
    counter.track(new Promise<void>((resolve) => (resolveFirst = resolve)));
    counter.track(second);
    expect(counter.count).toBe(2);
    let drained = false;
    const waiting = counter.drained().then(() => (drained = true));
    resolveFirst();
    await Promise.resolve();
    await Promise.resolve();
    expect(drained).toBe(false);
    expect(counter.count).toBe(1);
    rejectSecond(new Error('failed on purpose'));
    await waiting;
    expect(counter.count).toBe(0);
  });

  it('wakes every waiter, and counts operations tracked after a drain', async () => {
    const counter = new InFlightCounter();
    let resolve!: () => void;
    counter.track(new Promise<void>((r) => (resolve = r)));
    const waiters = [counter.drained(), counter.drained()];
    resolve();
    await Promise.all(waiters);
    let resolveLater!: () => void;
    counter.track(new Promise<void>((r) => (resolveLater = r)));
    expect(counter.count).toBe(1);
    let drained = false;
    const waiting = counter.drained().then(() => (drained = true));
    await Promise.resolve();
    expect(drained).toBe(false);
    resolveLater();
    await waiting;
  });
});
