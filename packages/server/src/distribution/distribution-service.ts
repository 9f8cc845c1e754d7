import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { DISTRIBUTION_STREAM, isStrataError, repositoryStream, StrataError } from '@strata/core';
import type { Clock, DomainEvent, EventMeta } from '@strata/core';
import type { BlobLease, BlobStore, EventStore } from '@strata/store';
import { checkDeployable, decideDeploy } from '../artifacts/artifact-decider.ts';
import type { MetadataCache } from '../artifacts/hot-caches.ts';
import { normalisePath } from '../core-slice.ts';
import type { ArtifactReader, IdGenerator, RepositoryReader } from '../ports.ts';
import type { RepositoryService } from '../repositories/repository-service.ts';
import type { RepositoryStreamState } from '../repositories/repository-stream.ts';
import { appendAcrossStreams, runTrustedWrites } from '../stream-writer.ts';
import type { Decide, PreparedStreamWrite, StreamWriter } from '../stream-writer.ts';
import type { DistributionState, StoredBundle, TrustedKey } from './distribution-ledger.ts';
import { bundleId, canonicalJson, manifestFormatVersion } from './release-bundle-model.ts';
import type {
  BundleArtifact,
  BundleManifest,
  CreateBundleRequest,
  DistributionEnvelope,
  DistributionStart,
  DistributionTarget,
  SignedManifest,
} from './release-bundle-model.ts';
import { parsePublicKey, verifySignature } from './signing-keys.ts';
import type { DistributionTransactionStore, StoredTransaction } from './transaction-store.ts';
import type { SigningKey } from './signing-keys.ts';

export interface DistributionLimits {
  /** The canonical manifest must fit one event (1 MiB encoded) with room to spare. */
  readonly manifestBytesMax: number;
  /** An envelope older than this (by the source's clock vs ours) is refused as a replay. */
  readonly replayWindowMs: number;
  /** How far in the future an envelope may be stamped (clock skew between sites). */
  readonly clockSkewMs: number;
  /** An open transaction not committed within this time is dropped. */
  readonly transactionTtlMs: number;
  readonly transactionsOpenMax: number;
  /** Each protocol request to an edge. */
  readonly edgeRequestTimeoutMs: number;
  /** Edges one distribution talks to at once. */
  readonly targetsInParallelMax: number;
  /** Binaries sent to one edge at once. */
  readonly transfersInParallelMax: number;
  /** How long a source waits for an edge that went away mid-transaction (restarting) before it gives up. */
  readonly resumeWithinMs: number;
  /** How often one distribution resumes a transaction. */
  readonly resumeAttemptsMax: number;
}

export const DEFAULT_DISTRIBUTION_LIMITS: DistributionLimits = Object.freeze({
  manifestBytesMax: 768 * 1024,
  replayWindowMs: 15 * 60 * 1000,
  clockSkewMs: 5 * 60 * 1000,
  transactionTtlMs: 30 * 60 * 1000,
  transactionsOpenMax: 32,
  edgeRequestTimeoutMs: 10 * 60 * 1000,
  targetsInParallelMax: 4,
  transfersInParallelMax: 4,
  resumeWithinMs: 2 * 60 * 1000,
  resumeAttemptsMax: 5,
});

export interface DistributionResult {
  readonly url: string;
  readonly status: 'COMPLETED' | 'FAILED';
  readonly message?: string;
  readonly filesTotal: number;
  readonly filesTransferred: number;
  readonly bytesTransferred: number;
}

export interface DistributionServiceOptions {
  readonly streams: StreamWriter<DistributionState>;
  /** The edge's open distribution transactions (persisted: they outlive a restart). */
  readonly transactions: DistributionTransactionStore;
  /** The store the writers append to: a bundle is published in one multi-stream append. */
  readonly eventStore: EventStore;
  /** How often a publish is decided again after a conflict. */
  readonly appendAttemptsMax: number;
  readonly repositoryStreams: StreamWriter<RepositoryStreamState>;
  readonly repositoryService: RepositoryService;
  readonly repositories: RepositoryReader;
  readonly artifacts: ArtifactReader;
  readonly blobs: BlobStore;
  readonly cache: MetadataCache;
  readonly clock: Clock;
  readonly newId: IdGenerator;
  readonly siteId: string;
  readonly signingKey: SigningKey;
  readonly limits: DistributionLimits;
  readonly fetch?: typeof fetch;
  /** Revision of the distribution stream in the store (undefined: no events), to notice other servers' appends. */
  readonly streamRevision?: () => Promise<number | undefined>;
}

const SYSTEM_META: EventMeta = { actor: '_system' };

/** The edge answered, and refused (a non-2xx status): final, unlike a request that got no answer. */
class EdgeRefusal extends Error {}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Runs `task` over `items` with at most `parallel` at a time, in order of start; after a failure no new task starts. */
async function eachLimited<T, R>(items: readonly T[], parallel: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (next < items.length && !failed) {
      const index = next++;
      try {
        results[index] = await task(items[index]!);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, worker));
  return results;
}

function groupByRepository(artifacts: readonly BundleArtifact[]): Map<string, BundleArtifact[]> {
  const groups = new Map<string, BundleArtifact[]>();
  for (const artifact of artifacts) {
    const group = groups.get(artifact.repo);
    if (group === undefined) groups.set(artifact.repo, [artifact]);
    else group.push(artifact);
  }
  return groups;
}

/**
 * Release bundles and their distribution (seeds/edge-nodes.txt).
 *
 * Source: creates immutable signed bundles (one ReleaseBundleCreated event) and distributes
 * them to edges over the transaction protocol: start (signed manifest + a signed, single-use
 * envelope) → transfer (only the binaries the edge lacks) → commit.
 *
 * Edge: keeps the public keys it trusts; on start verifies both signatures against them and
 * refuses replays; on transfer stores each binary only if its sha256 and size are the ones the
 * manifest names; on commit re-checks every checksum of every file, then publishes: it records
 * the bundle (ReleaseBundleReceived + ReleaseBundlePublished), the repositories it lacks and
 * every file in one multi-stream append (`appendMany`): readers see the whole bundle at one
 * instant or nothing of it. Nothing of a refused transaction is ever appended.
 */
export class DistributionService {
  readonly #options: DistributionServiceOptions;
  /** Per open transaction: the binaries this process received for it, leased until commit or abort. */
  readonly #leases = new Map<string, Map<string, BlobLease>>();
  readonly #fetch: typeof fetch;

  constructor(options: DistributionServiceOptions) {
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
  }

  get signingKey(): SigningKey {
    return this.#options.signingKey;
  }

  /** The stream's folded state, including what other servers sharing the database appended. */
  async state(): Promise<DistributionState> {
    const read = async () => (await this.#options.streams.execute(DISTRIBUTION_STREAM, {}, (state) => ({ events: [], result: state }))).result;
    const folded = await read();
    const stored = (await this.#options.streamRevision?.()) ?? -1;
    if (stored <= folded.revision) return folded;
    this.#options.streams.forget(DISTRIBUTION_STREAM);
    return read();
  }

  async #append(meta: EventMeta, decide: (state: DistributionState) => readonly DomainEvent[]): Promise<void> {
    await this.#options.streams.execute(DISTRIBUTION_STREAM, meta, (state) => ({ events: decide(state), result: undefined }));
  }

  // ---------------------------------------------------------------------------------------
  // Trusted keys (the edge's side of the circle of trust)

  async trustedKeys(): Promise<readonly TrustedKey[]> {
    return [...(await this.state()).trustedKeys.values()].sort((a, b) => (a.alias < b.alias ? -1 : 1));
  }

  async saveTrustedKey(alias: unknown, publicKey: unknown, meta: EventMeta): Promise<TrustedKey> {
    if (typeof alias !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}$/.test(alias)) {
      throw new StrataError('STRATA_ERR_KEY_INVALID', 'alias must be 1 to 128 letters, digits, _ . @ : - (starting with a letter or digit)');
    }
    const parsed = parsePublicKey(publicKey);
    await this.#append(meta, (state) => {
      const existing = state.trustedKeys.get(alias);
      if (existing?.fingerprint === parsed.fingerprint) return [];
      return [{ type: 'TrustedKeySaved', data: { alias, publicKey: parsed.pem, fingerprint: parsed.fingerprint } }];
    });
    const saved = (await this.state()).trustedKeys.get(alias);
    if (saved === undefined) throw new StrataError('STRATA_ERR_INVARIANT', `trusted key '${alias}' vanished after saving`);
    return saved;
  }

  async deleteTrustedKey(alias: string, meta: EventMeta): Promise<void> {
    await this.#append(meta, (state) => {
      if (!state.trustedKeys.has(alias)) throw new StrataError('STRATA_ERR_SECURITY_NOT_FOUND', `no trusted key with alias '${alias}'`);
      return [{ type: 'TrustedKeyDeleted', data: { alias } }];
    });
  }

  // ---------------------------------------------------------------------------------------
  // Source: create, read, delete, distribute

  async createBundle(request: CreateBundleRequest, meta: EventMeta): Promise<SignedManifest> {
    const { repositories, artifacts, blobs } = this.#options;
    const repositoryTypes = new Map<string, string>();
    const resolved: BundleArtifact[] = [];
    const seen = new Set<string>();
    for (const { repo, path: rawPath } of request.artifacts) {
      const path = normalisePath(rawPath);
      if (!repositoryTypes.has(repo)) {
        const config = await repositories.get(repo);
        if (config === undefined) throw new StrataError('STRATA_ERR_REPO_NOT_FOUND', `Repository '${repo}' not found`);
        repositoryTypes.set(repo, config.packageType);
      }
      if (seen.has(`${repo}/${path}`)) throw new StrataError('STRATA_ERR_BUNDLE_INVALID', `'${repo}/${path}' is listed twice`);
      seen.add(`${repo}/${path}`);
      const item = await artifacts.getItem(repo, path);
      if (item?.kind !== 'file') throw new StrataError('STRATA_ERR_ARTIFACT_NOT_FOUND', `Could not find file '${repo}:${path}'`);
      if ((await blobs.stat(item.sha256)) === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `the binary of '${repo}:${path}' is not stored on this site`);
      resolved.push({
        repo,
        path,
        sha256: item.sha256,
        sha1: item.sha1,
        md5: item.md5,
        size: item.size,
        mimeType: item.mimeType,
        properties: await artifacts.properties(repo, path),
      });
    }
    const key = this.#options.signingKey;
    const manifest: BundleManifest = {
      formatVersion: manifestFormatVersion,
      name: request.name,
      version: request.version,
      description: request.description,
      created: this.#options.clock.now(),
      createdBy: meta.actor ?? 'anonymous',
      sourceSite: this.#options.siteId,
      signingKey: { alias: key.alias, fingerprint: key.fingerprint },
      repositories: [...repositoryTypes].map(([repoKey, packageType]) => ({ key: repoKey, packageType })),
      artifacts: resolved,
    };
    const canonical = canonicalJson(manifest);
    if (Buffer.byteLength(canonical) > this.#options.limits.manifestBytesMax) {
      throw new StrataError('STRATA_ERR_BUNDLE_INVALID', `the manifest would take ${Buffer.byteLength(canonical)} bytes, more than ${this.#options.limits.manifestBytesMax}: split the bundle`);
    }
    const signed: SignedManifest = { manifest, signature: key.sign(canonical) };
    await this.#append(meta, (state) => {
      if (state.bundles.has(bundleId(request.name, request.version))) {
        throw new StrataError('STRATA_ERR_BUNDLE_EXISTS', `release bundle '${request.name}' version '${request.version}' already exists: bundles are immutable`);
      }
      return [{ type: 'ReleaseBundleCreated', data: { manifest: { ...manifest }, signature: signed.signature } }];
    });
    return signed;
  }

  async bundle(name: string, version: string): Promise<StoredBundle> {
    const bundle = (await this.state()).bundles.get(bundleId(name, version));
    if (bundle === undefined) throw new StrataError('STRATA_ERR_BUNDLE_NOT_FOUND', `release bundle '${name}' version '${version}' not found`);
    return bundle;
  }

  async bundles(): Promise<readonly StoredBundle[]> {
    return [...(await this.state()).bundles.values()].sort((a, b) =>
      a.manifest.name === b.manifest.name ? (a.manifest.version < b.manifest.version ? -1 : 1) : a.manifest.name < b.manifest.name ? -1 : 1,
    );
  }

  /** Whether a bundle this site holds names the binary (blob GC keeps it). */
  async referencesBlob(sha256: string): Promise<boolean> {
    for (const bundle of (await this.state()).bundles.values()) {
      if (bundle.manifest.artifacts.some((artifact) => artifact.sha256 === sha256)) return true;
    }
    // Binaries received for a transaction not committed yet (its leases are gone after a restart).
    for (const transaction of await this.#options.transactions.list()) {
      if (transaction.status !== 'committed' && transaction.start.bundle.manifest.artifacts.some((artifact) => artifact.sha256 === sha256)) return true;
    }
    return false;
  }

  /**
   * Deletes a bundle. A received bundle's files are removed too (those still holding the
   * bundle's content and not named by another bundle here); a created bundle's artifacts
   * stay in their repositories.
   */
  async deleteBundle(name: string, version: string, meta: EventMeta): Promise<void> {
    const id = bundleId(name, version);
    const state = await this.state();
    const bundle = state.bundles.get(id);
    if (bundle === undefined) throw new StrataError('STRATA_ERR_BUNDLE_NOT_FOUND', `release bundle '${name}' version '${version}' not found`);
    const sharedElsewhere = new Set<string>();
    for (const [otherId, other] of state.bundles) {
      if (otherId === id || other.kind !== 'received') continue;
      for (const artifact of other.manifest.artifacts) sharedElsewhere.add(`${artifact.repo}/${artifact.path}`);
    }
    const groups = bundle.kind === 'received' ? groupByRepository(bundle.manifest.artifacts) : new Map<string, BundleArtifact[]>();
    // The record and every file it removes go in one multi-stream append: no half-deleted bundle is ever visible.
    await runTrustedWrites(() =>
      appendAcrossStreams(
        this.#options.eventStore,
        async () => {
          const parts: PreparedStreamWrite[] = [];
          for (const [repo, files] of groups) {
            parts.push(
              await this.#options.repositoryStreams.prepare(repositoryStream(repo), meta, [
                async (repositoryState) => {
                  if (repositoryState.config === undefined) return { events: [], result: undefined };
                  const events: DomainEvent[] = [];
                  for (const file of files) {
                    if (sharedElsewhere.has(`${repo}/${file.path}`)) continue;
                    const item = await this.#options.artifacts.getItem(repo, file.path);
                    if (item?.kind === 'file' && item.sha256 === file.sha256) events.push({ type: 'ArtifactDeleted', data: { path: file.path } });
                  }
                  return { events, result: undefined };
                },
              ]),
            );
          }
          parts.push(
            await this.#options.streams.prepare(DISTRIBUTION_STREAM, meta, [
              (current) => {
                if (!current.bundles.has(id)) throw new StrataError('STRATA_ERR_BUNDLE_NOT_FOUND', `release bundle '${name}' version '${version}' not found`);
                return { events: [{ type: 'ReleaseBundleDeleted', data: { name, version } }], result: undefined };
              },
            ]),
          );
          return parts;
        },
        this.#options.appendAttemptsMax,
      ),
    );
    for (const repo of groups.keys()) this.#options.cache.invalidateFolder(repo, '');
  }

  /** Distributes a bundle created here to each target; resolves once every edge committed or refused. */
  async distribute(name: string, version: string, targets: readonly DistributionTarget[]): Promise<DistributionResult[]> {
    const bundle = await this.bundle(name, version);
    if (bundle.kind !== 'created') throw new StrataError('STRATA_ERR_BUNDLE_INVALID', `release bundle '${name}/${version}' was received from another site: distribute it from its source`);
    return eachLimited(targets, this.#options.limits.targetsInParallelMax, (target) => this.#distributeTo(bundle, target));
  }

  async #distributeTo(bundle: StoredBundle, target: DistributionTarget): Promise<DistributionResult> {
    const { manifest, signature } = bundle;
    const key = this.#options.signingKey;
    const envelope: DistributionEnvelope = {
      distributionId: this.#options.newId(),
      name: manifest.name,
      version: manifest.version,
      manifestSha256: sha256Hex(canonicalJson(manifest)),
      issuedAt: this.#options.clock.now(),
      fingerprint: key.fingerprint,
    };
    const start: DistributionStart = { bundle: { manifest, signature }, envelope, envelopeSignature: key.sign(canonicalJson(envelope)) };
    const authorization = `Basic ${Buffer.from(`${target.username}:${target.password}`).toString('base64')}`;
    const timeout = () => AbortSignal.timeout(this.#options.limits.edgeRequestTimeoutMs);
    let filesTransferred = 0;
    let bytesTransferred = 0;
    const filesTotal = manifest.artifacts.length;
    const failed = (message: string): DistributionResult => ({ url: target.url, status: 'FAILED', message, filesTotal, filesTransferred, bytesTransferred });
    let transactionId: string | undefined;
    try {
      const started = await this.#start(`${target.url}/api/release/edge/transactions`, authorization, JSON.stringify(start));
      const body = started as { transactionId?: unknown; missing?: unknown };
      if (typeof body.transactionId !== 'string' || !Array.isArray(body.missing)) return failed('the edge answered the start without a transaction');
      transactionId = body.transactionId;
      const sizes = new Map(manifest.artifacts.map((artifact) => [artifact.sha256, artifact.size]));
      const txUrl = `${target.url}/api/release/edge/transactions/${encodeURIComponent(transactionId)}`;
      let missing: readonly unknown[] = body.missing;
      for (let resumed = 0; ; resumed++) {
        try {
          const toSend = missing.filter((sha256): sha256 is string => typeof sha256 === 'string' && sizes.has(sha256));
          await eachLimited(toSend, this.#options.limits.transfersInParallelMax, async (sha256) => {
            const size = sizes.get(sha256) ?? 0;
            const stream = await this.#options.blobs.createReadStream(sha256);
            await this.#call(`${txUrl}/blobs/${sha256}`, {
              method: 'PUT',
              headers: { authorization, 'content-type': 'application/octet-stream', 'content-length': String(size) },
              body: Readable.toWeb(stream) as ReadableStream<Uint8Array>,
              duplex: 'half',
              signal: timeout(),
            } as RequestInit);
            filesTransferred += manifest.artifacts.filter((artifact) => artifact.sha256 === sha256).length;
            bytesTransferred += size;
          });
          await this.#call(`${txUrl}/commit`, { method: 'POST', headers: { authorization }, signal: timeout() });
        } catch (error) {
          // The edge refused: that is final. The edge went away (restart) or the answer was lost: resume.
          if (error instanceof EdgeRefusal || resumed >= this.#options.limits.resumeAttemptsMax) throw error;
          const status = await this.#awaitTransaction(txUrl, authorization, error);
          if (status.status === 'COMMITTED') break;
          if (status.status === 'FAILED') throw new Error(`the edge refused the transaction: ${status.message ?? 'no reason given'}`);
          missing = status.missing;
          continue;
        }
        break;
      }
      transactionId = undefined;
      return { url: target.url, status: 'COMPLETED', filesTotal, filesTransferred, bytesTransferred };
    } catch (error) {
      return failed(error instanceof Error ? error.message : String(error));
    } finally {
      if (transactionId !== undefined) {
        // Best effort: the edge also drops transactions that were never committed.
        await this.#fetch(`${target.url}/api/release/edge/transactions/${encodeURIComponent(transactionId)}`, {
          method: 'DELETE',
          headers: { authorization },
          signal: AbortSignal.timeout(10_000),
        }).catch(() => undefined);
      }
    }
  }

  /**
   * The start, sent again with the same signed body while it fails without an answer (the edge
   * restarting, or the answer lost) until `resumeWithinMs` passed. The edge answers a repeated
   * start of a transaction it opened with that transaction, so a lost answer leaves no
   * transaction open behind the source's back: the source learns its id, and deletes it if the
   * distribution fails.
   */
  async #start(url: string, authorization: string, body: string): Promise<unknown> {
    const pause = this.#backoff();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#call(url, {
          method: 'POST',
          headers: { authorization, 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(this.#options.limits.edgeRequestTimeoutMs),
        });
      } catch (error) {
        if (error instanceof EdgeRefusal || attempt >= this.#options.limits.resumeAttemptsMax || !(await pause())) throw error;
      }
    }
  }

  /**
   * The wait between two tries of a request to an edge that did not answer: 100 ms, doubling
   * up to 2 s; resolves false (without waiting) once `resumeWithinMs` from now has passed.
   */
  #backoff(): () => Promise<boolean> {
    const deadline = this.#options.clock.now() + this.#options.limits.resumeWithinMs;
    let delayMs = 100;
    return async () => {
      if (this.#options.clock.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 2000);
      return true;
    };
  }

  /**
   * After a request failed without an answer: asks the edge where the transaction stands,
   * until it answers (it may be restarting) or `resumeWithinMs` passed. COMMITTING is asked
   * again. A transaction the edge does not know (404) is lost: that ends the distribution.
   */
  async #awaitTransaction(txUrl: string, authorization: string, cause: unknown): Promise<{ status: string; missing: unknown[]; message?: string }> {
    const pause = this.#backoff();
    let lastError = cause;
    while (await pause()) {
      try {
        const status = (await this.#call(txUrl, { headers: { authorization }, signal: AbortSignal.timeout(10_000) })) as { status?: unknown; missing?: unknown; message?: unknown } | undefined;
        if (status?.status === 'COMMITTING') continue;
        if (typeof status?.status !== 'string' || !Array.isArray(status.missing)) throw new EdgeRefusal('the edge answered the transaction status without a status');
        return { status: status.status, missing: status.missing, ...(typeof status.message === 'string' ? { message: status.message } : {}) };
      } catch (error) {
        if (error instanceof EdgeRefusal) throw error;
        lastError = error;
      }
    }
    throw new Error(`the edge did not come back within ${this.#options.limits.resumeWithinMs} ms to resume the transaction: ${lastError instanceof Error ? lastError.message : String(lastError)}`);
  }

  /** One protocol request; a non-2xx answer throws an EdgeRefusal with the edge's own message. */
  async #call(url: string, init: RequestInit): Promise<unknown> {
    const response = await this.#fetch(url, init);
    const text = await response.text();
    if (!response.ok) {
      let message = text.slice(0, 500);
      try {
        const parsed = JSON.parse(text) as { errors?: { message?: unknown }[] };
        if (typeof parsed.errors?.[0]?.message === 'string') message = parsed.errors[0].message;
      } catch {
        // not JSON: keep the text
      }
      throw new EdgeRefusal(`the edge answered ${response.status}: ${message}`);
    }
    if (text === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Edge: the receiving side of the transaction

  /** Verifies trust, both signatures, replay rules and placement; no state changes. */
  async #verifyStart(start: DistributionStart, state: DistributionState, { atCommit }: { atCommit: boolean }): Promise<void> {
    const { manifest, signature } = start.bundle;
    const { envelope } = start;
    const trusted = [...state.trustedKeys.values()];
    const manifestKey = trusted.find((key) => key.fingerprint === manifest.signingKey.fingerprint);
    if (manifestKey === undefined) {
      throw new StrataError('STRATA_ERR_BUNDLE_UNTRUSTED_KEY', `release bundle '${manifest.name}/${manifest.version}' is signed by key ${manifest.signingKey.fingerprint} ('${manifest.signingKey.alias}'), which this site does not trust`);
    }
    const envelopeKey = trusted.find((key) => key.fingerprint === envelope.fingerprint);
    if (envelopeKey === undefined) throw new StrataError('STRATA_ERR_BUNDLE_UNTRUSTED_KEY', `the distribution is signed by key ${envelope.fingerprint}, which this site does not trust`);
    const canonical = canonicalJson(manifest);
    if (!verifySignature(parsePublicKey(manifestKey.publicKey).key, canonical, signature)) {
      throw new StrataError('STRATA_ERR_BUNDLE_SIGNATURE_INVALID', `the signature of release bundle '${manifest.name}/${manifest.version}' does not match its manifest (altered in transit, or signed by another key)`);
    }
    if (!verifySignature(parsePublicKey(envelopeKey.publicKey).key, canonicalJson(envelope), start.envelopeSignature)) {
      throw new StrataError('STRATA_ERR_BUNDLE_SIGNATURE_INVALID', 'the signature of the distribution envelope does not verify');
    }
    if (envelope.manifestSha256 !== sha256Hex(canonical) || envelope.name !== manifest.name || envelope.version !== manifest.version) {
      throw new StrataError('STRATA_ERR_BUNDLE_SIGNATURE_INVALID', 'the distribution envelope names another manifest');
    }
    if (state.distributionIds.has(envelope.distributionId)) {
      throw new StrataError('STRATA_ERR_BUNDLE_REPLAYED', `distribution ${envelope.distributionId} was already received: a replay is refused`);
    }
    const now = this.#options.clock.now();
    const { replayWindowMs, clockSkewMs } = this.#options.limits;
    // The window is checked when the transaction starts; a long transfer may end after it.
    if (!atCommit && (envelope.issuedAt < now - replayWindowMs || envelope.issuedAt > now + clockSkewMs)) {
      throw new StrataError('STRATA_ERR_BUNDLE_REPLAYED', `the distribution was issued at ${new Date(envelope.issuedAt).toISOString()}, outside this site's window of ${replayWindowMs / 60_000} minutes: a replay is refused`);
    }
    if (state.bundles.has(bundleId(manifest.name, manifest.version))) {
      throw new StrataError('STRATA_ERR_BUNDLE_EXISTS', `release bundle '${manifest.name}' version '${manifest.version}' is already on this site`);
    }
    await this.#checkPlacement(manifest);
  }

  /** Every file can land at its repository key and path (no other class, no other content there). */
  async #checkPlacement(manifest: BundleManifest): Promise<void> {
    for (const [repo, files] of groupByRepository(manifest.artifacts)) {
      const config = await this.#options.repositories.get(repo);
      if (config === undefined) continue;
      for (const file of files) {
        try {
          checkDeployable(repo, config, file.path);
        } catch (error) {
          if (!isStrataError(error)) throw error;
          throw new StrataError('STRATA_ERR_BUNDLE_INVALID', `'${repo}/${file.path}' cannot be placed on this site: ${error.message}`);
        }
        const item = await this.#options.artifacts.getItem(repo, file.path);
        if (item?.kind === 'folder') throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `'${repo}/${file.path}' is a folder on this site`);
        if (item?.kind === 'file' && item.sha256 !== file.sha256) {
          throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `'${repo}/${file.path}' already holds other content on this site`);
        }
      }
    }
  }

  /** Drops transactions older than the TTL (committed ones too: their outcome was kept for a late source). */
  async #pruneTransactions(): Promise<void> {
    const oldest = this.#options.clock.now() - this.#options.limits.transactionTtlMs;
    for (const id of await this.#options.transactions.deleteOpenedBefore(oldest)) this.#releaseLeases(id);
  }

  #releaseLeases(id: string): void {
    const leases = this.#leases.get(id);
    this.#leases.delete(id);
    for (const lease of leases?.values() ?? []) lease.release();
  }

  async startTransaction(start: DistributionStart): Promise<{ transactionId: string; missing: string[] }> {
    await this.#pruneTransactions();
    await this.#verifyStart(start, await this.state(), { atCommit: false });
    // The same start again (its answer was lost, or the source retried it): the transaction it
    // opened, not a refusal and not a second one. Only a byte-identical signed envelope matches.
    const { envelope } = start;
    for (const other of await this.#options.transactions.list()) {
      if (other.status !== 'open' || other.failure !== undefined || other.start.envelope.distributionId !== envelope.distributionId) continue;
      if (other.start.envelopeSignature !== start.envelopeSignature || canonicalJson(other.start) !== canonicalJson(start)) continue;
      return { transactionId: other.id, missing: await this.#missingBlobs(start.bundle.manifest) };
    }
    const open = await this.#options.transactions.countUncommitted();
    if (open >= this.#options.limits.transactionsOpenMax) {
      throw new StrataError('STRATA_ERR_STORE_UNAVAILABLE', `${open} distribution transactions are open: try again later`);
    }
    // A newer distribution of the same bundle supersedes an open one (a source that gave up on it
    // — say, the edge was down longer than its resumeWithinMs — cannot always abort it).
    for (const other of await this.#options.transactions.list()) {
      const sameBundle = other.start.envelope.name === envelope.name && other.start.envelope.version === envelope.version;
      if (other.status !== 'open' || !sameBundle || other.start.envelope.distributionId === envelope.distributionId) continue;
      if (other.start.envelope.issuedAt <= envelope.issuedAt && (await this.#options.transactions.delete(other.id))) this.#releaseLeases(other.id);
    }
    const missing = await this.#missingBlobs(start.bundle.manifest);
    const id = this.#options.newId();
    // Persisted before it is answered: an edge restarted mid-transfer still knows it, and the source resumes it.
    await this.#options.transactions.insert({ id, start, openedAt: this.#options.clock.now(), status: 'open', failure: undefined });
    return { transactionId: id, missing };
  }

  async #missingBlobs(manifest: BundleManifest): Promise<string[]> {
    const missing: string[] = [];
    for (const sha256 of new Set(manifest.artifacts.map((artifact) => artifact.sha256))) {
      if ((await this.#options.blobs.stat(sha256)) === undefined) missing.push(sha256);
    }
    return missing;
  }

  async #transaction(id: string): Promise<StoredTransaction> {
    const transaction = await this.#options.transactions.get(id);
    if (transaction === undefined) throw new StrataError('STRATA_ERR_BUNDLE_TRANSACTION_NOT_FOUND', `no open distribution transaction '${id}'`);
    return transaction;
  }

  /**
   * Where a transaction stands, for a source resuming it (after the edge restarted, or the
   * answer to a transfer or commit was lost): OPEN with the binaries still missing, FAILED
   * (refused: abort it), COMMITTING, or COMMITTED.
   */
  async transactionStatus(id: string): Promise<{ transactionId: string; status: 'OPEN' | 'FAILED' | 'COMMITTING' | 'COMMITTED'; missing: string[]; message?: string }> {
    const transaction = await this.#transaction(id);
    const manifest = transaction.start.bundle.manifest;
    if (transaction.status === 'committed') return { transactionId: id, status: 'COMMITTED', missing: [] };
    if (transaction.status === 'committing') {
      const received = (await this.state()).distributionIds.has(transaction.start.envelope.distributionId);
      return { transactionId: id, status: received ? 'COMMITTED' : 'COMMITTING', missing: [] };
    }
    if (transaction.failure !== undefined) return { transactionId: id, status: 'FAILED', missing: [], message: transaction.failure };
    return { transactionId: id, status: 'OPEN', missing: await this.#missingBlobs(manifest) };
  }

  /** Stores one binary of the transaction; refuses (and poisons the transaction) unless sha256 and size match. */
  async receiveBlob(id: string, sha256: string, body: Readable, signal: AbortSignal): Promise<void> {
    const transaction = await this.#transaction(id);
    if (transaction.status !== 'open') throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `distribution transaction '${id}' is ${transaction.status}: it takes no more binaries`);
    if (transaction.failure !== undefined) throw new StrataError('STRATA_ERR_BUNDLE_INCOMPLETE', `the transaction was refused: ${transaction.failure}`);
    const artifact = transaction.start.bundle.manifest.artifacts.find((entry) => entry.sha256 === sha256);
    if (artifact === undefined) {
      const failure = `binary ${sha256} is not part of the bundle`;
      await this.#options.transactions.setFailure(id, failure);
      throw new StrataError('STRATA_ERR_BUNDLE_INVALID', failure);
    }
    try {
      const lease = await this.#options.blobs.put(body, { expected: { sha256 }, expectedSize: artifact.size, sizeBytesMax: artifact.size, signal });
      const current = await this.#options.transactions.get(id);
      if (current?.status !== 'open') {
        lease.release();
        throw new StrataError('STRATA_ERR_BUNDLE_TRANSACTION_NOT_FOUND', `distribution transaction '${id}' was closed meanwhile`);
      }
      const leases = this.#leases.get(id) ?? new Map<string, BlobLease>();
      this.#leases.set(id, leases);
      leases.get(sha256)?.release();
      leases.set(sha256, lease);
    } catch (error) {
      // A body cut short (the source or the network went away) is not a refusal: the source resends it.
      if (isStrataError(error) && error.code !== 'STRATA_ERR_BUNDLE_TRANSACTION_NOT_FOUND' && error.code !== 'STRATA_ERR_BLOB_INCOMPLETE') {
        await this.#options.transactions.setFailure(id, `binary ${sha256} was refused: ${error.message}`);
      }
      throw error;
    }
  }

  async abort(id: string): Promise<void> {
    if (!(await this.#options.transactions.delete(id))) throw new StrataError('STRATA_ERR_BUNDLE_TRANSACTION_NOT_FOUND', `no open distribution transaction '${id}'`);
    this.#releaseLeases(id);
  }

  /**
   * Ends a transaction: every file's binary must be here with the manifest's sha256, sha1,
   * md5 and size, the signatures must still verify against the keys trusted now, and the
   * bundle must still be absent. Then it is published; otherwise nothing is written and the
   * transaction is over. Committing a committed transaction again answers the bundle (a
   * source whose first answer was lost).
   */
  async commit(id: string, meta: EventMeta): Promise<StoredBundle> {
    const transaction = await this.#transaction(id);
    const { manifest } = transaction.start.bundle;
    if (transaction.status === 'committed') return this.bundle(manifest.name, manifest.version);
    if (!(await this.#options.transactions.transition(id, 'open', 'committing'))) {
      throw new StrataError('STRATA_ERR_HTTP_CONFLICT', `distribution transaction '${id}' is being committed`);
    }
    const leases = this.#leases.get(id) ?? new Map<string, BlobLease>();
    this.#leases.delete(id);
    try {
      if (transaction.failure !== undefined) throw new StrataError('STRATA_ERR_BUNDLE_INCOMPLETE', `the transaction was refused: ${transaction.failure}`);
      await this.#verifyStart(transaction.start, await this.state(), { atCommit: true });
      for (const artifact of manifest.artifacts) {
        let lease = leases.get(artifact.sha256);
        if (lease === undefined) {
          // Stored before this transaction (or before this process started): lease it (re-hashing the file) so its checksums are verified too.
          lease = await this.#options.blobs.lease(artifact.sha256);
          if (lease === undefined) throw new StrataError('STRATA_ERR_BUNDLE_INCOMPLETE', `the binary of '${artifact.repo}/${artifact.path}' (sha256 ${artifact.sha256}) was never transferred`);
          leases.set(artifact.sha256, lease);
        }
        if (lease.sha256 !== artifact.sha256 || lease.sha1 !== artifact.sha1 || lease.md5 !== artifact.md5 || lease.size !== artifact.size) {
          throw new StrataError('STRATA_ERR_BUNDLE_INCOMPLETE', `the checksums of '${artifact.repo}/${artifact.path}' do not match the manifest`);
        }
      }
      const { envelope, bundle } = transaction.start;
      // The commit point: the bundle record, every repository it creates and every file, in one transaction.
      await this.#publish(manifest, meta, (state) => {
        if (state.distributionIds.has(envelope.distributionId)) throw new StrataError('STRATA_ERR_BUNDLE_REPLAYED', `distribution ${envelope.distributionId} was already received`);
        if (state.bundles.has(bundleId(manifest.name, manifest.version))) {
          throw new StrataError('STRATA_ERR_BUNDLE_EXISTS', `release bundle '${manifest.name}' version '${manifest.version}' is already on this site`);
        }
        return [
          { type: 'ReleaseBundleReceived', data: { manifest: { ...manifest }, signature: bundle.signature, distributionId: envelope.distributionId } },
          { type: 'ReleaseBundlePublished', data: { name: manifest.name, version: manifest.version } },
        ];
      });
      await this.#options.transactions.transition(id, 'committing', 'committed');
      return await this.bundle(manifest.name, manifest.version);
    } catch (error) {
      // A commit is final: a refused one ends the transaction.
      await this.#options.transactions.delete(id).catch(() => false);
      throw error;
    } finally {
      for (const lease of leases.values()) lease.release();
    }
  }

  /**
   * Publishes a bundle in one multi-stream append: the `distribution` stream's events
   * (`distributionEvents`), and per repository its creation if this site lacks it and its
   * files (those not already in place) — so readers see the whole bundle, in every
   * repository, at one instant, or nothing of it.
   */
  async #publish(manifest: BundleManifest, meta: EventMeta, distributionEvents: (state: DistributionState) => readonly DomainEvent[]): Promise<void> {
    const { repositories, repositoryService, repositoryStreams, artifacts, cache, streams, eventStore } = this.#options;
    const groups = groupByRepository(manifest.artifacts);
    let created: (() => void)[] = [];
    // The edge's repositories are read-only for users, not for the bundles it accepts.
    await runTrustedWrites(() =>
      appendAcrossStreams(
        eventStore,
        async () => {
          created = [];
          const parts: PreparedStreamWrite[] = [];
          for (const [repo, files] of groups) {
            const decides: Decide<RepositoryStreamState, unknown>[] = [];
            if ((await repositories.get(repo)) === undefined) {
              const packageType = manifest.repositories.find((repository) => repository.key === repo)?.packageType ?? 'generic';
              const create = await repositoryService.prepareCreate(repo, { rclass: 'local', packageType, description: `Release bundle files (first: ${manifest.name}/${manifest.version})` });
              decides.push(create.decide);
              created.push(create.created);
            }
            decides.push(async (state) => {
              const events: DomainEvent[] = [];
              for (const file of files) {
                const item = await artifacts.getItem(repo, file.path);
                if (item?.kind === 'file' && item.sha256 === file.sha256) continue;
                events.push(
                  ...decideDeploy(
                    { repo, path: file.path, blob: { sha256: file.sha256, sha1: file.sha1, md5: file.md5, size: file.size }, mimeType: file.mimeType, properties: file.properties },
                    state,
                  ),
                );
              }
              return { events, result: undefined };
            });
            parts.push(await repositoryStreams.prepare(repositoryStream(repo), meta, decides));
          }
          parts.push(await streams.prepare(DISTRIBUTION_STREAM, meta, [(state) => ({ events: distributionEvents(state), result: undefined })]));
          return parts;
        },
        this.#options.appendAttemptsMax,
      ),
    );
    for (const onCreated of created) onCreated();
    for (const repo of groups.keys()) cache.invalidateFolder(repo, '');
  }

  /**
   * Rolls forward bundles recorded as received but not yet published: written by an earlier
   * version, which appended the bundle record and each repository's files separately.
   */
  async recover(): Promise<number> {
    // A commit this site was running when it stopped either stored the bundle (one append) or stored nothing.
    for (const transaction of await this.#options.transactions.list()) {
      if (transaction.status !== 'committing') continue;
      const received = (await this.state()).distributionIds.has(transaction.start.envelope.distributionId);
      await this.#options.transactions.transition(transaction.id, 'committing', received ? 'committed' : 'open');
    }
    if (this.#options.streamRevision !== undefined && (await this.#options.streamRevision()) === undefined) return 0;
    let recovered = 0;
    for (const bundle of (await this.state()).bundles.values()) {
      if (bundle.kind !== 'received' || bundle.published) continue;
      const { name, version } = bundle.manifest;
      await this.#publish(bundle.manifest, SYSTEM_META, (state) =>
        state.bundles.get(bundleId(name, version))?.published === false ? [{ type: 'ReleaseBundlePublished', data: { name, version } }] : [],
      );
      recovered++;
    }
    return recovered;
  }

  /** Releases this process's blob leases (shutdown); the transactions themselves stay stored for the next start. */
  close(): void {
    for (const id of [...this.#leases.keys()]) this.#releaseLeases(id);
  }
}
