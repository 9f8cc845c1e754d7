import { expect } from 'vitest';
import { isStrataError, type ErrorCode, type StrataError } from '../src/index.ts';

/** Runs `action`, which must throw a StrataError (with `code`, if given); returns it. */
export function catchStrataError(action: () => unknown, code?: ErrorCode): StrataError {
  try {
    action();
  } catch (error) {
    if (!isStrataError(error)) throw new Error(`expected a StrataError, got ${String(error)}`, { cause: error });
    if (code !== undefined) expect(error.code).toBe(code);
    return error;
  }
  throw new Error(`expected a StrataError${code === undefined ? '' : ` ${code}`}, nothing was thrown`);
}
