/**
 * The value of a lowercase hex digit by byte value or code unit, -1 for any other up to 255
 * (a code unit above 255 reads undefined: callers treat it as -1, or call lowercaseHexDigit). Internal to core: the
 * artifact-tree fold and the deploy-bytes reader decode checksums with it, the origin chain its links.
 */
export const LOWERCASE_HEX_VALUES = Int8Array.from({ length: 256 }, (_, code) => (code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : -1));

/** The value of a lowercase hex digit's code unit, -1 for any other code unit. */
export function lowercaseHexDigit(code: number): number {
  return code < 256 ? LOWERCASE_HEX_VALUES[code]! : -1;
}

/**
 * Whether `value` is exactly `length` lowercase hex digits: /^[0-9a-f]{length}$/ by a loop
 * (validation checks three checksums per deploy; the regular expressions were a third of it).
 */
export function isLowercaseHex(value: string, length: number): boolean {
  if (value.length !== length) return false;
  for (let index = 0; index < length; index++) {
    if (lowercaseHexDigit(value.charCodeAt(index)) < 0) return false;
  }
  return true;
}
