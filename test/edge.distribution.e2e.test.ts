import { createHash, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_AUTH, ADMIN_PASSWORD, adminFetch, spawnServer } from './support/spawned-server.ts';
import type { SpawnedServer } from './support/spawned-server.ts';

/**
 * A source site and an edge node as real `strata serve` processes on loopback. The edge
 * trusts the source's public key; bundles are distributed through the source's API. The
 * adversarial cases replay sessions captured by a recording target (a plain HTTP server that
 * answers the protocol like an edge and keeps what the source sent), altered on purpose.
 */

const json = { 'content-type': 'application/json' };

interface CapturedSession {
  start: Record<string, unknown>;
  blobs: Map<string, Buffer>;
}

/** A stand-in edge that accepts everything and records what the source sends. */
async function recordingTarget(): Promise<{ url: string; sessions: CapturedSession[]; close(): Promise<void> }> {
  const sessions: CapturedSession[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      const url = request.url ?? '';
      if (request.method === 'POST' && url.endsWith('/api/release/edge/transactions')) {
        const start = JSON.parse(body.toString()) as { bundle: { manifest: { artifacts: { sha256: string }[] } } };
        sessions.push({ start: start as unknown as Record<string, unknown>, blobs: new Map() });
        const missing = [...new Set(start.bundle.manifest.artifacts.map((artifact) => artifact.sha256))];
        response.writeHead(201, json).end(JSON.stringify({ transactionId: `recorded-${sessions.length}`, missing }));
        return;
      }
      const blob = /\/blobs\/([0-9a-f]{64})$/.exec(url);
      if (request.method === 'PUT' && blob !== null) {
        sessions.at(-1)!.blobs.set(blob[1]!, body);
        response.writeHead(201).end();
        return;
      }
      if (request.method === 'POST' && url.endsWith('/commit')) {
        response.writeHead(200, json).end('{}');
        return;
      }
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { url: `http://127.0.0.1:${port}/artifactory`, sessions, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  return `{${Object.keys(record)
    .sort()
    .filter((key) => record[key] !== undefined)
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`)
    .join(',')}}`;
}

describe('release bundles distributed from a source to an edge node', () => {
  let dir: string;
  let source: SpawnedServer;
  let edge: SpawnedServer;
  let recorder: Awaited<ReturnType<typeof recordingTarget>>;
  let plainHttp: Server;
  let plainHttpUrl: string;
  const files = new Map<string, Buffer>();

  const edgeTarget = () => ({ url: `${edge.url}/artifactory`, username: 'admin', password: ADMIN_PASSWORD });

  async function deploy(server: SpawnedServer, repoPath: string, bytes: Buffer): Promise<number> {
    return (await adminFetch(server, `/artifactory/${repoPath}`, { method: 'PUT', body: bytes })).status;
  }

  async function createBundle(name: string, version: string, paths: readonly string[]): Promise<Response> {
    return adminFetch(source, '/artifactory/api/release/bundles', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name, version, description: `${name} ${version}`, artifacts: paths.map((path) => ({ repo: 'libs', path })) }),
    });
  }

  async function distribute(name: string, version: string, targets: readonly object[]) {
    const response = await adminFetch(source, `/artifactory/api/release/distribute/${name}/${version}`, { method: 'POST', headers: json, body: JSON.stringify({ targets }) });
    expect(response.status).toBe(200);
    return ((await response.json()) as { results: { url: string; status: string; message?: string; filesTransferred: number }[] }).results;
  }

  /** Captures a distribution of a new bundle holding new files (the edge has none of them). */
  async function captureSession(name: string, fileCount = 2): Promise<CapturedSession> {
    const paths: string[] = [];
    for (let index = 0; index < fileCount; index++) {
      const path = `${name}/file-${index}.bin`;
      const bytes = Buffer.from(`${name} content ${index} ${'x'.repeat(100 * index)}`);
      expect(await deploy(source, `libs/${path}`, bytes)).toBe(201);
      files.set(path, bytes);
      paths.push(path);
    }
    expect((await createBundle(name, '1.0', paths)).status).toBe(201);
    const before = recorder.sessions.length;
    const [result] = await distribute(name, '1.0', [{ url: recorder.url, username: 'x', password: 'y' }]);
    expect(result!.status).toBe('COMPLETED');
    expect(recorder.sessions.length).toBe(before + 1);
    return recorder.sessions.at(-1)!;
  }

  /** Plays a captured (possibly altered) session against the edge; returns each step's status. */
  async function play(session: CapturedSession, options: { skip?: string; alter?: (sha256: string, bytes: Buffer) => Buffer } = {}) {
    const base = '/artifactory/api/release/edge/transactions';
    const started = await adminFetch(edge, base, { method: 'POST', headers: json, body: JSON.stringify(session.start) });
    const startBody = (await started.json()) as { transactionId?: string; missing?: string[]; errors?: { message: string }[] };
    if (started.status !== 201) return { start: started.status, message: startBody.errors?.[0]?.message ?? '' };
    const transfers: number[] = [];
    for (const sha256 of startBody.missing ?? []) {
      if (sha256 === options.skip) continue;
      const bytes = options.alter?.(sha256, session.blobs.get(sha256)!) ?? session.blobs.get(sha256)!;
      const response = await adminFetch(edge, `${base}/${startBody.transactionId}/blobs/${sha256}`, { method: 'PUT', body: bytes });
      await response.arrayBuffer();
      transfers.push(response.status);
    }
    const commit = await adminFetch(edge, `${base}/${startBody.transactionId}/commit`, { method: 'POST' });
    const commitBody = (await commit.json()) as { errors?: { message: string }[] };
    return { start: started.status, transfers, commit: commit.status, message: commitBody.errors?.[0]?.message ?? '' };
  }

  async function expectInvisible(session: CapturedSession) {
    const manifest = (session.start.bundle as { manifest: { name: string; version: string; artifacts: { repo: string; path: string }[] } }).manifest;
    expect((await adminFetch(edge, `/artifactory/api/release/bundles/${manifest.name}/${manifest.version}`)).status).toBe(404);
    const listed = (await (await adminFetch(edge, '/artifactory/api/release/bundles')).json()) as { bundles: { name: string }[] };
    expect(listed.bundles.map((bundle) => bundle.name)).not.toContain(manifest.name);
    for (const artifact of manifest.artifacts) expect((await adminFetch(edge, `/artifactory/${artifact.repo}/${artifact.path}`)).status).toBe(404);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'strata-edge-'));
    [source, edge] = await Promise.all([
      spawnServer({ dataDir: join(dir, 'source') }),
      spawnServer({ dataDir: join(dir, 'edge'), env: { STRATA_EDGE: 'true' } }),
    ]);
    recorder = await recordingTarget();
    plainHttp = createServer((_request, response) => response.writeHead(200, { 'content-type': 'text/html' }).end('<html>just files</html>'));
    await new Promise<void>((resolve) => plainHttp.listen(0, '127.0.0.1', resolve));
    const address = plainHttp.address();
    plainHttpUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    expect((await adminFetch(source, '/artifactory/api/repositories/libs', { method: 'PUT', headers: json, body: '{"rclass":"local","packageType":"generic"}' })).status).toBe(200);
    const key = (await (await fetch(`${source.url}/artifactory/api/security/keys/public`)).json()) as { alias: string; publicKey: string };
    const trusted = await adminFetch(edge, '/artifactory/api/security/keys/trusted', { method: 'PUT', headers: json, body: JSON.stringify(key) });
    expect(trusted.status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), edge?.stop(), recorder?.close(), new Promise((resolve) => plainHttp?.close(resolve))]);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('keeps the signing key in the data dir (mode 0600) and serves its public half', async () => {
    const info = await stat(join(dir, 'source', 'keys', 'release-signing-ed25519.pem'));
    expect(info.mode & 0o777).toBe(0o600);
    const key = (await (await fetch(`${source.url}/artifactory/api/security/keys/public`)).json()) as { alias: string; publicKey: string; fingerprint: string };
    expect(key.alias).toMatch(/^strata-/);
    expect(createPublicKey(key.publicKey).asymmetricKeyType).toBe('ed25519');
  });

  it('creates an immutable signed bundle and publishes it on the edge at the same keys and paths', async () => {
    const a = Buffer.from('alpha release binary');
    const b = Buffer.alloc(200_000, 7);
    expect(await deploy(source, 'libs/app/1.0/app.bin;release=1.0;team=core', a)).toBe(201);
    expect(await deploy(source, 'libs/app/1.0/data/big.bin', b)).toBe(201);
    const created = await createBundle('app', '1.0', ['app/1.0/app.bin', 'app/1.0/data/big.bin']);
    expect(created.status).toBe(201);
    const signed = (await created.json()) as { manifest: { artifacts: { path: string; sha256: string; size: number; properties: Record<string, string[]> }[] }; signature: string };
    expect(signed.manifest.artifacts.map((artifact) => [artifact.path, artifact.size])).toEqual([
      ['app/1.0/app.bin', a.length],
      ['app/1.0/data/big.bin', b.length],
    ]);
    expect(signed.manifest.artifacts[0]!.sha256).toBe(createHash('sha256').update(a).digest('hex'));
    expect(signed.manifest.artifacts[0]!.properties).toEqual({ release: ['1.0'], team: ['core'] });
    const key = (await (await fetch(`${source.url}/artifactory/api/security/keys/public`)).json()) as { publicKey: string };
    expect(verify(null, Buffer.from(canonicalJson(signed.manifest)), createPublicKey(key.publicKey), Buffer.from(signed.signature, 'base64'))).toBe(true);
    expect((await createBundle('app', '1.0', ['app/1.0/app.bin'])).status).toBe(409);

    const [result] = await distribute('app', '1.0', [edgeTarget()]);
    expect(result).toMatchObject({ status: 'COMPLETED', filesTransferred: 2 });
    const onEdge = await adminFetch(edge, '/artifactory/libs/app/1.0/data/big.bin');
    expect(onEdge.status).toBe(200);
    expect(Buffer.from(await onEdge.arrayBuffer()).equals(b)).toBe(true);
    const properties = (await (await adminFetch(edge, '/artifactory/api/storage/libs/app/1.0/app.bin?properties')).json()) as { properties: Record<string, string[]> };
    expect(properties.properties).toEqual({ release: ['1.0'], team: ['core'] });
    const listed = (await (await adminFetch(edge, '/artifactory/api/release/bundles')).json()) as { bundles: { name: string; version: string; status: string }[] };
    expect(listed.bundles).toContainEqual(expect.objectContaining({ name: 'app', version: '1.0', status: 'COMPLETED' }));
    const repo = (await (await adminFetch(edge, '/artifactory/api/repositories/libs')).json()) as { rclass: string };
    expect(repo.rclass).toBe('local');

    // A second version sharing a binary: only the new one travels.
    const c = Buffer.from('alpha 1.1 binary');
    expect(await deploy(source, 'libs/app/1.1/app.bin', c)).toBe(201);
    expect((await createBundle('app', '1.1', ['app/1.1/app.bin', 'app/1.0/data/big.bin'])).status).toBe(201);
    const [second] = await distribute('app', '1.1', [edgeTarget()]);
    expect(second).toMatchObject({ status: 'COMPLETED', filesTransferred: 1 });
    // Distributing a version the edge already holds is refused by the edge.
    const [again] = await distribute('app', '1.1', [edgeTarget()]);
    expect(again!.status).toBe('FAILED');
    expect(again!.message).toMatch(/already on this site/);

    // Deleting 1.1 on the edge removes its own file and keeps the one 1.0 still names.
    expect((await adminFetch(edge, '/artifactory/api/release/bundles/app/1.1', { method: 'DELETE' })).status).toBe(204);
    expect((await adminFetch(edge, '/artifactory/libs/app/1.1/app.bin')).status).toBe(404);
    expect((await adminFetch(edge, '/artifactory/libs/app/1.0/data/big.bin')).status).toBe(200);
    expect((await adminFetch(edge, '/artifactory/api/release/bundles/app/1.1')).status).toBe(404);
  });

  it('keeps every repository of the edge read-only except artifactory-edge-uploads', async () => {
    expect(await deploy(edge, 'libs/app/1.0/other.bin', Buffer.from('nope'))).toBe(403);
    expect((await adminFetch(edge, '/artifactory/libs/app/1.0/app.bin', { method: 'DELETE' })).status).toBe(403);
    expect((await adminFetch(edge, '/artifactory/api/storage/libs/app/1.0/app.bin?properties=x=1', { method: 'PUT' })).status).toBe(403);
    expect(await deploy(edge, 'artifactory-edge-uploads/notes/readme.txt', Buffer.from('hello edge'))).toBe(201);
    expect((await adminFetch(edge, '/artifactory/artifactory-edge-uploads/notes/readme.txt')).status).toBe(200);
    const removal = await adminFetch(edge, '/artifactory/api/repositories/artifactory-edge-uploads', { method: 'DELETE' });
    expect(removal.status).toBe(400);
    expect(((await removal.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/cannot be removed/);
    const local = await adminFetch(edge, '/artifactory/api/repositories/edge-local', { method: 'PUT', headers: json, body: '{"rclass":"local"}' });
    expect(local.status).toBe(200);
    expect(await deploy(edge, 'edge-local/a.txt', Buffer.from('a'))).toBe(403);
    // Package formats write through the same guard: an npm publish into a read-only repository is refused.
    expect((await adminFetch(edge, '/artifactory/api/repositories/edge-npm', { method: 'PUT', headers: json, body: '{"rclass":"local","packageType":"npm"}' })).status).toBe(200);
    const tarball = gzipSync(Buffer.from('package/package.json'));
    const publish = await adminFetch(edge, '/artifactory/api/npm/edge-npm/edge-pkg', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({
        _id: 'edge-pkg',
        name: 'edge-pkg',
        'dist-tags': { latest: '1.0.0' },
        versions: {
          '1.0.0': {
            name: 'edge-pkg',
            version: '1.0.0',
            dist: { integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`, shasum: createHash('sha1').update(tarball).digest('hex') },
          },
        },
        _attachments: { 'edge-pkg-1.0.0.tgz': { content_type: 'application/octet-stream', data: tarball.toString('base64'), length: tarball.length } },
      }),
    });
    expect(publish.status).toBe(403);
    expect((await adminFetch(edge, '/artifactory/api/npm/edge-npm/edge-pkg')).status).toBe(404);
    const federated = await adminFetch(edge, '/artifactory/api/repositories/edge-fed', { method: 'PUT', headers: json, body: '{"rclass":"federated"}' });
    expect(federated.status).toBe(400);
  });

  it('accepts a smart remote on the edge and refuses a plain remote with a clear error', async () => {
    const plain = await adminFetch(edge, '/artifactory/api/repositories/plain-remote', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ rclass: 'remote', packageType: 'generic', url: `${plainHttpUrl}/files/` }),
    });
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/not a smart remote/);
    const plainUnderArtifactory = await adminFetch(edge, '/artifactory/api/repositories/plain-remote', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ rclass: 'remote', packageType: 'generic', url: `${plainHttpUrl}/artifactory/libs` }),
    });
    expect(plainUnderArtifactory.status).toBe(400);
    expect((await adminFetch(edge, '/artifactory/api/repositories/plain-remote')).status).toBe(404);
    const smart = await adminFetch(edge, '/artifactory/api/repositories/smart-libs', {
      method: 'PUT',
      headers: json,
      body: JSON.stringify({ rclass: 'remote', packageType: 'generic', url: `${source.url}/artifactory/libs`, username: 'admin', password: ADMIN_PASSWORD }),
    });
    expect(smart.status).toBe(200);
    // Pulling through it works on the edge: the cache fills although the repositories are read-only.
    const pulled = await adminFetch(edge, '/artifactory/smart-libs/app/1.0/app.bin');
    expect(pulled.status).toBe(200);
    expect(await pulled.text()).toBe('alpha release binary');
    expect((await adminFetch(edge, '/artifactory/smart-libs/app/1.0/app.bin')).status).toBe(200);
  });

  it('refuses a bundle with one byte of one file changed, and shows nothing of it', async () => {
    const session = await captureSession('tampered-file');
    const target = [...session.blobs.keys()][0]!;
    const outcome = await play(session, {
      alter: (sha256, bytes) => {
        if (sha256 !== target) return bytes;
        const altered = Buffer.from(bytes);
        altered[0] = altered[0]! ^ 1;
        return altered;
      },
    });
    expect(outcome.start).toBe(201);
    expect(outcome.transfers).toContain(409);
    expect(outcome.commit).toBe(409);
    await expectInvisible(session);
  });

  it('refuses a manifest with one byte changed (the signature no longer verifies)', async () => {
    const session = await captureSession('tampered-manifest');
    const bundle = session.start.bundle as { manifest: { description: string } };
    const altered = { ...session, start: { ...session.start, bundle: { ...bundle, manifest: { ...bundle.manifest, description: `${bundle.manifest.description.slice(0, -1)}X` } } } };
    const outcome = await play(altered);
    expect(outcome.start).toBe(400);
    expect(outcome.message).toMatch(/signature/);
    await expectInvisible(session);
  });

  it('refuses a bundle signed by a key the edge does not trust', async () => {
    const session = await captureSession('wrong-key');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const fingerprint = `SHA256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('base64')}`;
    const bundle = session.start.bundle as { manifest: Record<string, unknown> };
    const manifest = { ...bundle.manifest, signingKey: { alias: 'intruder', fingerprint } };
    const envelope = { ...(session.start.envelope as Record<string, unknown>), fingerprint, manifestSha256: createHash('sha256').update(canonicalJson(manifest)).digest('hex') };
    const forged = {
      ...session,
      start: {
        bundle: { manifest, signature: sign(null, Buffer.from(canonicalJson(manifest)), privateKey).toString('base64') },
        envelope,
        envelopeSignature: sign(null, Buffer.from(canonicalJson(envelope)), privateKey).toString('base64'),
      },
    };
    const outcome = await play(forged);
    expect(outcome.start).toBe(403);
    expect(outcome.message).toMatch(/does not trust/);
    // The same forgery claiming the trusted key's fingerprint fails its signature check instead.
    const trustedFingerprint = (bundle.manifest.signingKey as { fingerprint: string }).fingerprint;
    const claimed = { ...manifest, signingKey: bundle.manifest.signingKey };
    const claimedEnvelope = { ...envelope, fingerprint: trustedFingerprint, manifestSha256: createHash('sha256').update(canonicalJson(claimed)).digest('hex') };
    const impostor = await play({
      ...session,
      start: {
        bundle: { manifest: claimed, signature: sign(null, Buffer.from(canonicalJson(claimed)), privateKey).toString('base64') },
        envelope: claimedEnvelope,
        envelopeSignature: sign(null, Buffer.from(canonicalJson(claimedEnvelope)), privateKey).toString('base64'),
      },
    });
    expect(impostor.start).toBe(400);
    await expectInvisible(session);
  });

  it('refuses a commit that lacks a file', async () => {
    const session = await captureSession('missing-file', 3);
    const outcome = await play(session, { skip: [...session.blobs.keys()][1]! });
    expect(outcome.start).toBe(201);
    expect(outcome.commit).toBe(409);
    expect(outcome.message).toMatch(/never transferred/);
    await expectInvisible(session);
  });

  it('refuses a replayed distribution, also after the bundle was deleted on the edge', async () => {
    const session = await captureSession('replayed');
    const first = await play(session);
    expect(first).toMatchObject({ start: 201, commit: 200 });
    const again = await play(session);
    expect(again.start).toBe(409);
    expect(again.message).toMatch(/replay/);
    expect((await adminFetch(edge, '/artifactory/api/release/bundles/replayed/1.0', { method: 'DELETE' })).status).toBe(204);
    const afterDelete = await play(session);
    expect(afterDelete.start).toBe(409);
    expect(afterDelete.message).toMatch(/replay/);
    await expectInvisible(session);
  });

  it('tells a source where an open transaction stands, and lets a newer distribution of the bundle supersede an abandoned one', async () => {
    const abandoned = await captureSession('abandoned');
    const [again] = await distribute('abandoned', '1.0', [{ url: recorder.url, username: 'x', password: 'y' }]);
    expect(again!.status).toBe('COMPLETED');
    const newer = recorder.sessions.at(-1)!;
    const base = '/artifactory/api/release/edge/transactions';
    const started = await adminFetch(edge, base, { method: 'POST', headers: json, body: JSON.stringify(abandoned.start) });
    expect(started.status).toBe(201);
    const { transactionId, missing } = (await started.json()) as { transactionId: string; missing: string[] };
    // The same start again (a source whose first answer was lost retries it): the same transaction, not a second one.
    const repeated = await adminFetch(edge, base, { method: 'POST', headers: json, body: JSON.stringify(abandoned.start) });
    expect(repeated.status).toBe(201);
    expect(await repeated.json()).toEqual({ transactionId, missing });
    // A start that differs in any byte from the open one is still a replay of its distribution id.
    const altered = { ...(abandoned.start as Record<string, unknown>), envelopeSignature: Buffer.alloc(64, 1).toString('base64') };
    expect((await adminFetch(edge, base, { method: 'POST', headers: json, body: JSON.stringify(altered) })).status).toBeGreaterThanOrEqual(400);
    const status = await adminFetch(edge, `${base}/${transactionId}`);
    expect(await status.json()).toEqual({ transactionId, status: 'OPEN', missing });
    // The source of the first never comes back; a fresh distribution of the same bundle is accepted and supersedes it.
    expect(await play(newer)).toMatchObject({ start: 201, commit: 200 });
    expect((await adminFetch(edge, `${base}/${transactionId}`)).status).toBe(404);
    expect((await adminFetch(edge, `${base}/${transactionId}/commit`, { method: 'POST' })).status).toBe(404);
    expect((await adminFetch(edge, '/artifactory/api/release/bundles/abandoned/1.0')).status).toBe(200);
  });

  it('stops accepting bundles from a source whose key was removed, and accepts them again after rotation back', async () => {
    const keys = (await (await adminFetch(edge, '/artifactory/api/security/keys/trusted')).json()) as { keys: { alias: string; key: string }[] };
    expect(keys.keys).toHaveLength(1);
    const [trusted] = keys.keys;
    expect((await adminFetch(edge, `/artifactory/api/security/keys/trusted/${trusted!.alias}`, { method: 'DELETE' })).status).toBe(204);
    const a = Buffer.from('after key removal');
    expect(await deploy(source, 'libs/untrusted/a.bin', a)).toBe(201);
    expect((await createBundle('untrusted', '1.0', ['untrusted/a.bin'])).status).toBe(201);
    const [refused] = await distribute('untrusted', '1.0', [edgeTarget()]);
    expect(refused!.status).toBe('FAILED');
    expect(refused!.message).toMatch(/does not trust/);
    expect((await adminFetch(edge, '/artifactory/libs/untrusted/a.bin')).status).toBe(404);
    // Trust again under a new alias: distribution works.
    const put = await adminFetch(edge, '/artifactory/api/security/keys/trusted', { method: 'PUT', headers: json, body: JSON.stringify({ alias: 'source-rotated', publicKey: trusted!.key }) });
    expect(put.status).toBe(201);
    const [accepted] = await distribute('untrusted', '1.0', [edgeTarget()]);
    expect(accepted!.status).toBe('COMPLETED');
    expect((await adminFetch(edge, '/artifactory/libs/untrusted/a.bin')).status).toBe(200);
    expect(ADMIN_AUTH).toMatch(/^Basic /);
  });
});
