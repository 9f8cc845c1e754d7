/**
 * The error catalogue of packages/core. Every error Strata raises on purpose is a
 * StrataError with a stable `code` (STRATA_ERR_<AREA>_<WHAT>) and the HTTP status the
 * HTTP layer renders it with. Adapters translate foreign errors into these at the boundary.
 */
export const ERROR_CATALOGUE = {
  STRATA_ERR_CODEC_MALFORMED: { status: 400, message: 'malformed encoded event' },
  STRATA_ERR_CODEC_UNKNOWN_TYPE: { status: 400, message: 'unknown event type' },
  STRATA_ERR_CODEC_TOO_LARGE: { status: 413, message: 'encoded event exceeds the size limit' },
  STRATA_ERR_EVENT_INVALID: { status: 400, message: 'invalid event' },
  STRATA_ERR_EVENT_WRONG_STREAM: { status: 400, message: 'event does not belong to this stream' },
  STRATA_ERR_STORE_CONCURRENCY_CONFLICT: { status: 409, message: 'stream revision conflict' },
  STRATA_ERR_STORE_DUPLICATE_EVENT: { status: 409, message: 'event id already stored with other content' },
  STRATA_ERR_STORE_CLOSED: { status: 503, message: 'store is closed' },
  STRATA_ERR_STORE_UNAVAILABLE: { status: 503, message: 'store unavailable' },
  STRATA_ERR_BLOB_NOT_FOUND: { status: 404, message: 'blob not found' },
  STRATA_ERR_BLOB_CHECKSUM_MISMATCH: { status: 409, message: 'checksum mismatch' },
  STRATA_ERR_BLOB_INCOMPLETE: { status: 400, message: 'upload ended before its declared length' },
  STRATA_ERR_BLOB_TOO_LARGE: { status: 413, message: 'upload exceeds the size limit' },
  STRATA_ERR_HLC_CLOCK_AHEAD: { status: 409, message: 'remote clock runs too far ahead' },
  STRATA_ERR_PATH_INVALID: { status: 400, message: 'invalid path' },
  STRATA_ERR_PATTERN_INVALID: { status: 400, message: 'invalid include/exclude pattern' },
  STRATA_ERR_REPO_KEY_INVALID: { status: 400, message: 'invalid repository key' },
  STRATA_ERR_REPO_CONFIG_INVALID: { status: 400, message: 'invalid repository configuration' },
  STRATA_ERR_REPO_NOT_FOUND: { status: 404, message: 'repository not found' },
  STRATA_ERR_REPO_EXISTS: { status: 400, message: 'repository already exists' },
  STRATA_ERR_AUTH_UNAUTHENTICATED: { status: 401, message: 'authentication required' },
  STRATA_ERR_AUTH_FORBIDDEN: { status: 403, message: 'permission denied' },
  STRATA_ERR_AUTH_INVALID_CREDENTIALS: { status: 401, message: 'bad credentials' },
  STRATA_ERR_SECURITY_INVALID: { status: 400, message: 'invalid security entity' },
  STRATA_ERR_SECURITY_NOT_FOUND: { status: 404, message: 'security entity not found' },
  STRATA_ERR_HTTP_BAD_REQUEST: { status: 400, message: 'bad request' },
  STRATA_ERR_HTTP_NOT_FOUND: { status: 404, message: 'not found' },
  STRATA_ERR_HTTP_METHOD_NOT_ALLOWED: { status: 405, message: 'method not allowed' },
  STRATA_ERR_HTTP_CONFLICT: { status: 409, message: 'conflict' },
  STRATA_ERR_PATTERN_FORBIDDEN: { status: 403, message: 'path refused by the repository include/exclude patterns' },
  STRATA_ERR_ARTIFACT_NOT_FOUND: { status: 404, message: 'artifact not found' },
  STRATA_ERR_FEDERATION_MALFORMED: { status: 400, message: 'malformed federation message' },
  STRATA_ERR_FEDERATION_NOT_FEDERATED: { status: 404, message: 'repository is not federated here' },
  STRATA_ERR_FEDERATION_NOT_MEMBER: { status: 403, message: 'sender is not a member of this federation' },
  STRATA_ERR_FEDERATION_GAP: { status: 409, message: 'originSeq gap: events missing before this batch' },
  STRATA_ERR_FEDERATION_CONFLICT: { status: 409, message: 'an origin sequence number names two different events' },
  STRATA_ERR_FEDERATION_CLOCK_AHEAD: { status: 409, message: 'peer clock runs too far ahead' },
  STRATA_ERR_FEDERATION_CLOSED: { status: 503, message: 'federation engine is closed' },
  STRATA_ERR_PACKAGE_INVALID: { status: 400, message: 'invalid package' },
  STRATA_ERR_PACKAGE_DIGEST_MISMATCH: { status: 400, message: 'a declared digest does not match the content' },
  STRATA_ERR_PACKAGE_VERSION_EXISTS: { status: 409, message: 'this package version already exists' },
  STRATA_ERR_PACKAGE_REFUSED: { status: 409, message: 'the repository does not accept this package' },
  STRATA_ERR_PACKAGE_NOT_FOUND: { status: 404, message: 'package not found' },
  STRATA_ERR_FEDERATION_UNAUTHENTICATED: { status: 401, message: 'federation request not signed with the federation secret' },
  STRATA_ERR_FEDERATION_PEER_UNAVAILABLE: { status: 502, message: 'federation peer unavailable' },
  STRATA_ERR_FEDERATION_NOT_CONFIGURED: { status: 503, message: 'federation is not configured on this site' },
  STRATA_ERR_BUNDLE_INVALID: { status: 400, message: 'invalid release bundle' },
  STRATA_ERR_BUNDLE_EXISTS: { status: 409, message: 'release bundle version already exists' },
  STRATA_ERR_BUNDLE_NOT_FOUND: { status: 404, message: 'release bundle not found' },
  STRATA_ERR_BUNDLE_UNTRUSTED_KEY: { status: 403, message: 'release bundle signed by a key this site does not trust' },
  STRATA_ERR_BUNDLE_SIGNATURE_INVALID: { status: 400, message: 'release bundle signature does not verify' },
  STRATA_ERR_BUNDLE_REPLAYED: { status: 409, message: 'release bundle distribution replayed' },
  STRATA_ERR_BUNDLE_INCOMPLETE: { status: 409, message: 'release bundle transaction lacks files or checksums do not match' },
  STRATA_ERR_BUNDLE_TRANSACTION_NOT_FOUND: { status: 404, message: 'distribution transaction not found' },
  STRATA_ERR_KEY_INVALID: { status: 400, message: 'invalid public key' },
  STRATA_ERR_EDGE_READ_ONLY: { status: 403, message: 'repository is read-only on an edge node' },
  STRATA_ERR_EDGE_PROTECTED_REPOSITORY: { status: 400, message: 'repository cannot be removed on an edge node' },
  STRATA_ERR_EDGE_NOT_SMART_REMOTE: { status: 400, message: 'an edge node only accepts smart remote repositories' },
  STRATA_ERR_INVARIANT: { status: 500, message: 'internal invariant broken' },
  STRATA_ERR_REMOTE_UNAVAILABLE: { status: 502, message: 'the remote repository upstream failed' },
  STRATA_ERR_REMOTE_TIMEOUT: { status: 504, message: 'the remote repository upstream timed out' },
  STRATA_ERR_REMOTE_CHECKSUM_MISMATCH: { status: 502, message: 'the upstream content does not match its declared checksum' },
  STRATA_ERR_VIRTUAL_NO_DEPLOY_TARGET: { status: 405, message: 'the virtual repository has no default deployment repository' },
  STRATA_ERR_CURATION_BLOCKED: { status: 403, message: 'blocked by a curation policy' },
  STRATA_ERR_CURATION_POLICY_INVALID: { status: 400, message: 'invalid curation policy' },
  STRATA_ERR_CURATION_POLICY_NOT_FOUND: { status: 404, message: 'curation policy not found' },
  STRATA_ERR_PACKAGE_METADATA_MISMATCH: { status: 400, message: "the package's own metadata does not match its upload" },
  STRATA_ERR_FEDERATION_BROKEN_CHAIN: { status: 409, message: "a received event's origin chain link does not match the previous event of its origin" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    const entry = ERROR_CATALOGUE[code];
    super(message ?? entry.message, options);
    this.name = 'StrataError';
    this.code = code;
    this.status = entry.status;
    this.details = details;
  }
}

export function isStrataError(error: unknown, code?: ErrorCode): error is StrataError {
  return error instanceof StrataError && (code === undefined || error.code === code);
}

/** A broken invariant throws; it is never logged and ignored. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new StrataError('STRATA_ERR_INVARIANT', message);
}
