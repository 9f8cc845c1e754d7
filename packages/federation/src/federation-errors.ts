/**
 * The error catalogue of packages/federation (STRATA_ERR_FEDERATION_<WHAT>), with the HTTP
 * status the federation routes will render each one with.
 */
export const FEDERATION_ERROR_CATALOGUE = {
  STRATA_ERR_FEDERATION_MALFORMED: { status: 400, message: 'malformed federation message' },
  STRATA_ERR_FEDERATION_NOT_FEDERATED: { status: 404, message: 'repository is not federated here' },
  STRATA_ERR_FEDERATION_NOT_MEMBER: { status: 403, message: 'sender is not a member of this federation' },
  STRATA_ERR_FEDERATION_GAP: { status: 409, message: 'originSeq gap: events missing before this batch' },
  STRATA_ERR_FEDERATION_CONFLICT: { status: 409, message: 'an origin sequence number names two different events' },
  STRATA_ERR_FEDERATION_CLOCK_AHEAD: { status: 409, message: 'peer clock runs too far ahead' },
  STRATA_ERR_FEDERATION_CLOSED: { status: 503, message: 'federation engine is closed' },
} as const satisfies Record<string, { status: number; message: string }>;

export type FederationErrorCode = keyof typeof FEDERATION_ERROR_CATALOGUE;

export class FederationError extends Error {
  readonly code: FederationErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: FederationErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? FEDERATION_ERROR_CATALOGUE[code].message);
    this.name = 'FederationError';
    this.code = code;
    this.status = FEDERATION_ERROR_CATALOGUE[code].status;
    this.details = details;
  }
}

export function isFederationError(error: unknown, code?: FederationErrorCode): error is FederationError {
  return error instanceof FederationError && (code === undefined || error.code === code);
}
