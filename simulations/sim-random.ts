/**
 * Seeded randomness for simulations (sfc32): the Random port of packages/core, replayable
 * from a 32-bit seed. Never Math.random() inside a run.
 */
import type { Random } from '@strata/core';

export class SimRandom implements Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.#nextUint32();
  }

  #nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  next(): number {
    return this.#nextUint32() / 4294967296;
  }

  bytes(length: number): Uint8Array {
    const bytes = new Uint8Array(length);
    for (let i = 0; i < length; i++) bytes[i] = this.#nextUint32() & 0xff;
    return bytes;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return probability > 0 && this.next() < probability;
  }

  /** A new independent stream derived from this seed and a label. */
  static derive(seed: number, label: number): SimRandom {
    return new SimRandom((Math.imul(seed >>> 0, 0x85ebca6b) ^ Math.imul(label + 1, 0xc2b2ae35)) >>> 0);
  }
}
