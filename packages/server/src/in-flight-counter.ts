/**
 * Counts operations in flight (request handlers) so that a graceful close can wait for the
 * last of them: `track` a promise, `drained()` resolves once none is in flight. One counter
 * and one settlement callback per operation — no set of promises on the request path.
 */
export class InFlightCounter {
  #count = 0;
  #waiting: (() => void)[] = [];
  readonly #settle = () => {
    this.#count--;
    if (this.#count === 0 && this.#waiting.length > 0) {
      const waiting = this.#waiting;
      this.#waiting = [];
      for (const resolve of waiting) resolve();
    }
  };

  /** How many tracked operations have not settled. */
  get count(): number {
    return this.#count;
  }

  /** Counts `operation` until it settles (fulfilled or rejected; its outcome is the caller's). */
  track(operation: PromiseLike<unknown>): void {
    this.#count++;
    operation.then(this.#settle, this.#settle);
  }

  /** Resolves when no tracked operation is in flight (at once when none is). */
  drained(): Promise<void> {
    if (this.#count === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}
