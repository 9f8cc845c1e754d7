import { createHash, createPublicKey, generateKeyPairSync, sign, verify, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { StrataError } from '@strata/core';

/** The site's release-bundle signing key (the source side of the circle of trust). */
export interface SigningKey {
  readonly alias: string;
  /** SPKI PEM. */
  readonly publicKeyPem: string;
  /** `SHA256:<base64>` of the DER public key. */
  readonly fingerprint: string;
  /** Ed25519 signature of `data`, base64. */
  sign(data: string): string;
}

export const publicKeyPemCharsMax = 4_096;

/** Parses an Ed25519 public key in PEM; throws STRATA_ERR_KEY_INVALID for anything else. */
export function parsePublicKey(pem: unknown): { key: KeyObject; pem: string; fingerprint: string } {
  if (typeof pem !== 'string' || pem.length > publicKeyPemCharsMax || !pem.includes('-----BEGIN PUBLIC KEY-----')) {
    throw new StrataError('STRATA_ERR_KEY_INVALID', 'publicKey must be an Ed25519 public key in PEM (-----BEGIN PUBLIC KEY-----)');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw new StrataError('STRATA_ERR_KEY_INVALID', 'publicKey is not a readable PEM public key');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new StrataError('STRATA_ERR_KEY_INVALID', `publicKey is ${String(key.asymmetricKeyType)}, not Ed25519`);
  const normalised = key.export({ type: 'spki', format: 'pem' }).toString();
  return { key, pem: normalised, fingerprint: fingerprintOf(key) };
}

export function fingerprintOf(key: KeyObject): string {
  return `SHA256:${createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest('base64')}`;
}

/** True when `signature` (base64) is `key`'s Ed25519 signature of `data`. */
export function verifySignature(key: KeyObject, data: string, signature: string): boolean {
  try {
    return verify(null, Buffer.from(data, 'utf8'), key, Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

function signingKeyOf(alias: string, privateKey: KeyObject): SigningKey {
  const publicKey = createPublicKey(privateKey);
  return {
    alias,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    fingerprint: fingerprintOf(publicKey),
    sign: (data) => sign(null, Buffer.from(data, 'utf8'), privateKey).toString('base64'),
  };
}

/** A key pair held in memory only (tests, `buildApp` without a data dir). */
export function ephemeralSigningKey(alias: string): SigningKey {
  return signingKeyOf(alias, generateKeyPairSync('ed25519').privateKey);
}

const KEY_DIRECTORY = 'keys';
const PRIVATE_KEY_FILE = 'release-signing-ed25519.pem';

/**
 * The site's Ed25519 key pair, generated once and kept in `<dataDir>/keys/` (private key
 * file mode 0600, written to a temp file, fsynced and renamed, so a crash never leaves half
 * a key). Every server reading the same data dir signs with the same key.
 */
export async function loadOrCreateSigningKey(dataDir: string, alias: string): Promise<SigningKey> {
  const directory = join(dataDir, KEY_DIRECTORY);
  const file = join(directory, PRIVATE_KEY_FILE);
  try {
    const pem = await readFile(file, 'utf8');
    return signingKeyOf(alias, createPrivateKey({ key: pem, format: 'pem' }));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(pem);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await chmod(temporary, 0o600);
  try {
    // link-like semantics: if another process created the key meanwhile, keep theirs.
    await readFile(file, 'utf8');
    await rm(temporary, { force: true });
    return loadOrCreateSigningKey(dataDir, alias);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await rename(temporary, file);
  return signingKeyOf(alias, privateKey);
}
