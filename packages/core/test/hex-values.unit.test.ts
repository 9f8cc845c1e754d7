import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isLowercaseHex } from '../src/hex-values.ts';

describe('isLowercaseHex', () => {
  it('says exactly what /^[0-9a-f]{n}$/ says, for any string and length', () => {
    const unit = fc.constantFrom('0', '9', 'a', 'f', 'A', 'F', 'g', '/', ':', '`', '\u0130', '\u0661', '\n', '\ud800');
    const candidates = fc.oneof(
      fc.string({ unit, maxLength: 70 }),
      fc.string({ maxLength: 70 }),
      fc.stringMatching(/^[0-9a-f]{30,66}$/),
      fc.stringMatching(/^[0-9a-f]{64}\n?$/),
    );
    fc.assert(
      fc.property(candidates, fc.constantFrom(0, 1, 32, 40, 64), (value, length) => {
        expect(isLowercaseHex(value, length)).toBe(new RegExp(`^[0-9a-f]{${length}}$`).test(value));
      }),
      { numRuns: 3000 },
    );
    expect(isLowercaseHex('a'.repeat(64), 64)).toBe(true);
    expect(isLowercaseHex(`${'a'.repeat(63)}A`, 64)).toBe(false);
  });
});
