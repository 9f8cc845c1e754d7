import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Hashes and verifies passwords. Injectable so that tests can count hashes (authentication
 * must not cost one per request) and use cheap parameters.
 */
export interface PasswordHasher {
  /** An encoded hash holding algorithm, parameters, salt and digest. */
  hash(password: string): Promise<string>;
  /** Constant-time comparison against an encoded hash; false for a malformed encoding. */
  verify(password: string, encoded: string): Promise<boolean>;
}

export interface ScryptParameters {
  /** CPU/memory cost, a power of two. */
  readonly cost: number;
  readonly blockSize: number;
  readonly parallelization: number;
  readonly keyBytes: number;
  readonly saltBytes: number;
}

/**
 * One of OWASP's equivalent scrypt settings (Password Storage Cheat Sheet: N=2^17 r=8 p=1,
 * N=2^16 r=8 p=2, N=2^15 r=8 p=3, N=2^14 r=8 p=5, …), chosen for the server's resident
 * memory (docs/benchmarks.md, "Server HTTP"): OpenSSL allocates a hash's 128·r·(N+2) bytes
 * with one malloc on a libuv threadpool thread. Below glibc's largest mmap threshold (32 MiB)
 * — N=2^14 r=8: 16 MiB — the first free raises the threshold, and from then on every
 * threadpool thread that hashes keeps 16 MiB in its own malloc arena for the process's life
 * (measured: +16 MiB per thread, 316 MiB idle with a few hashes). N=2^15 r=8 is 32 MiB plus
 * 8 KiB, always mapped and unmapped again: 32 MiB while a hash runs, nothing after. The
 * three lanes run one after another. Stored hashes keep their own parameters, so hashes
 * made with earlier defaults (N=2^15 r=8 p=1, N=2^14 r=8 p=5) still verify.
 */
export const DEFAULT_SCRYPT_PARAMETERS: ScryptParameters = Object.freeze({
  cost: 2 ** 15,
  blockSize: 8,
  parallelization: 3,
  keyBytes: 32,
  saltBytes: 16,
});

/** Refuse stored parameters beyond these: a corrupt or hostile hash must not exhaust memory. */
const scryptCostMax = 2 ** 20;
const scryptBlockSizeMax = 32;
const scryptParallelizationMax = 16;

function scryptAsync(password: string, salt: Buffer, keyBytes: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyBytes, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/**
 * node:crypto scrypt with a random salt per password. Encoding:
 * `scrypt$<N>$<r>$<p>$<salt base64url>$<key base64url>`.
 */
export class ScryptPasswordHasher implements PasswordHasher {
  readonly #parameters: ScryptParameters;

  constructor(parameters: Partial<ScryptParameters> = {}) {
    this.#parameters = { ...DEFAULT_SCRYPT_PARAMETERS, ...parameters };
  }

  async hash(password: string): Promise<string> {
    const { cost, blockSize, parallelization, keyBytes, saltBytes } = this.#parameters;
    const salt = randomBytes(saltBytes);
    const key = await scryptAsync(password, salt, keyBytes, this.#options(cost, blockSize, parallelization));
    return `scrypt$${cost}$${blockSize}$${parallelization}$${salt.toString('base64url')}$${key.toString('base64url')}`;
  }

  async verify(password: string, encoded: string): Promise<boolean> {
    const parts = encoded.split('$');
    if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
    const cost = Number(parts[1]);
    const blockSize = Number(parts[2]);
    const parallelization = Number(parts[3]);
    if (!Number.isInteger(cost) || cost < 2 || cost > scryptCostMax || (cost & (cost - 1)) !== 0) return false;
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > scryptBlockSizeMax) return false;
    if (!Number.isInteger(parallelization) || parallelization < 1 || parallelization > scryptParallelizationMax) return false;
    const salt = Buffer.from(parts[4] ?? '', 'base64url');
    const expected = Buffer.from(parts[5] ?? '', 'base64url');
    if (salt.length === 0 || expected.length === 0) return false;
    const actual = await scryptAsync(password, salt, expected.length, this.#options(cost, blockSize, parallelization));
    return timingSafeEqual(actual, expected);
  }

  #options(cost: number, blockSize: number, parallelization: number): ScryptOptions {
    // Node refuses N*r*128*2 above maxmem (32 MiB by default); allow what the parameters need.
    return { N: cost, r: blockSize, p: parallelization, maxmem: 256 * cost * blockSize + 1024 * 1024 };
  }
}
