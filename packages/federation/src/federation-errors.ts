import { StrataError, isStrataError, type ErrorCode } from '@strata/core';

/**
 * Federation's errors are StrataErrors with STRATA_ERR_FEDERATION_<WHAT> codes from the one
 * catalogue in packages/core (errors.ts), so the HTTP layer renders them like every other.
 */
export type FederationErrorCode = Extract<ErrorCode, `STRATA_ERR_FEDERATION_${string}`>;

export function federationError(code: FederationErrorCode, message?: string, details?: Record<string, unknown>): StrataError {
  return new StrataError(code, message, details);
}

export function isFederationError(error: unknown, code?: FederationErrorCode): error is StrataError {
  return isStrataError(error, code) && error.code.startsWith('STRATA_ERR_FEDERATION_');
}
