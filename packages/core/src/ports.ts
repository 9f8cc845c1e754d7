/** Physical time, injected so that simulations control it. Milliseconds since the epoch. */
export interface Clock {
  now(): number;
}

/** Randomness, injected so that simulations replay exactly. */
export interface Random {
  /** A float in [0, 1). */
  next(): number;
  /** `length` random bytes. */
  bytes(length: number): Uint8Array;
}
