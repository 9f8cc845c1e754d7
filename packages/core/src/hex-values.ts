/**
 * The value of a lowercase hex digit by byte value or code unit, -1 for any other up to 255
 * (a code unit above 255 reads undefined: callers treat it as -1). Internal to core: the
 * artifact-tree fold and the deploy-bytes reader decode checksums with it.
 */
export const LOWERCASE_HEX_VALUES = Int8Array.from({ length: 256 }, (_, code) => (code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : -1));
