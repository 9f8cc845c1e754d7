/**
 * The federation endpoint is a trust boundary (issue 4, "Bad input"): a real server refuses
 * unsigned, forged, altered, truncated and replayed batches, originSeq gaps, events for a
 * repository not federated with the sender and clocks running years ahead — before applying
 * anything, with the reason visible in its status — and a real peer holding the wrong secret
 * is refused. The test plays a member site ("site-b") by signing requests itself.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { chainLinkHex, encodeEventData, encodeMeta, eventDigest, type NewEvent } from '@strata/core';
import {
  blobBatchShasMax,
  decodeBlobBatchReply,
  decodeBlobBatchRequest,
  encodeBlobBatchReply,
  encodeBlobBatchRequest,
  encodeFederationRequest,
  FEDERATION_HEADERS,
  newNonce,
  replySignature,
  signPeerRequest,
  verifyReplySignature,
  type BlobBatchEntry,
  type FederationAttachment,
  type FederationRequest,
} from '@strata/federation';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminFetch, freePort } from './support/spawned-server.ts';
import { FEDERATION_TOKEN, createFederatedRepo, eventually, until, live, memberUrl, prepareSites, snapshot, startSite, status, stopSites, type Site } from './support/federation-sites.ts';

const KEY = 'fed-guard';
const PUSH = '/artifactory/api/federation/push';
const BLOBS = '/artifactory/api/federation/blobs';
const YEAR_MS = 365 * 24 * 3_600_000;

interface PushOptions {
  readonly secret?: string;
  readonly timestampMs?: number;
  readonly nonce?: string;
  /** Changes the body after it was signed. */
  readonly alter?: (body: Uint8Array) => Uint8Array;
  /** The body to send and sign instead of the encoded request. */
  readonly body?: Uint8Array;
  readonly unsigned?: boolean;
  /** Binaries sent inside the push. */
  readonly attachments?: readonly FederationAttachment[];
}

describe('federation bad input (PGlite)', () => {
  let sites: Site[] = [];
  let a: Site;
  let d: Site;
  /** The member the test impersonates: nothing listens there. */
  let fakeBaseUrl: string;
  /** site-b's third event as a holds it (sent by the replay test, linked to by the chain test). */
  let third: NewEvent;
  /** The digest of site-b's fifth event (the chain test), linked to by the attachment test. */
  let fifthDigest: Uint8Array;

  const event = (originSeq: number, wall: number, path: string): NewEvent => {
    const content = `b-${originSeq}`;
    return {
      id: `bad-input-b-${originSeq}-${wall}`,
      origin: 'site-b',
      originSeq,
      hlc: { wall, logical: 0 },
      meta: { actor: 'site-b-user' },
      type: 'ArtifactDeployed',
      data: {
        path,
        sha256: createHash('sha256').update(content).digest('hex'),
        sha1: createHash('sha1').update(content).digest('hex'),
        md5: createHash('md5').update(content).digest('hex'),
        size: content.length,
        mimeType: 'text/plain',
        properties: {},
      },
    } as NewEvent;
  };

  const request = (events: readonly NewEvent[], repoKey = KEY): FederationRequest => ({
    kind: 'push',
    repoKey,
    from: 'site-b',
    sentAtMs: Date.now(),
    vector: {},
    events,
    fullSync: false,
  });

  /** Sends a push as site-b; returns the status, the parsed body and the headers sent (to replay them). */
  async function push(target: Site, pushRequest: FederationRequest, options: PushOptions = {}) {
    const body = options.body ?? encodeFederationRequest(pushRequest, options.attachments);
    const headers: Record<string, string> = options.unsigned
      ? {}
      : {
          ...signPeerRequest(options.secret ?? FEDERATION_TOKEN, {
            method: 'POST',
            path: PUSH,
            body,
            siteId: 'site-b',
            baseUrl: fakeBaseUrl,
            timestampMs: options.timestampMs ?? Date.now(),
            nonce: options.nonce ?? newNonce(),
          }),
        };
    headers['content-type'] = 'application/x-strata-federation';
    return send(target, headers, options.alter === undefined ? body : options.alter(body));
  }

  async function send(target: Site, headers: Record<string, string>, body: Uint8Array) {
    const response = await fetch(`${live(target).url}${PUSH}`, { method: 'POST', headers, body });
    const text = await response.text();
    return { status: response.status, body: JSON.parse(text) as Record<string, unknown>, headers, sent: body };
  }

  const vectorOfB = async () => (await status(a, KEY)).vector['site-b'] ?? 0;
  const memberB = async () => (await status(a, KEY)).members.find((member) => member.url === `${fakeBaseUrl}/artifactory/${KEY}`);

  beforeAll(async () => {
    sites = await prepareSites(['a', 'd']);
    [a, d] = sites as [Site, Site];
    fakeBaseUrl = `http://127.0.0.1:${await freePort()}`;
    await Promise.all([startSite(a), startSite(d, { token: 'another-secret-not-the-federations' })]);
    await createFederatedRepo(a, KEY, [d, { baseUrl: fakeBaseUrl } as Site]);
    const local = await adminFetch(live(a), '/artifactory/api/repositories/plain-local', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rclass: 'local' }),
    });
    expect(local.status).toBe(200);
  }, 180_000); // three servers starting: slow on a loaded 2-core machine

  afterAll(async () => {
    await stopSites(sites);
  });

  it('refuses unsigned, forged and altered requests before applying anything, and says so in the status', async () => {
    const batch = request([event(1, Date.now(), 'in/one.txt')]);
    const unsigned = await push(a, batch, { unsigned: true });
    expect(unsigned.status).toBe(401);
    expect(unsigned.body).toMatchObject({ errors: [{ status: 401 }] });

    const forged = await push(a, batch, { secret: 'guessed-secret-of-sixteen-bytes' });
    expect(forged.status).toBe(401);
    expect(JSON.stringify(forged.body)).toMatch(/bad signature/);

    const altered = await push(a, batch, { alter: (body) => Uint8Array.from(body, (byte, index) => (index === body.length - 3 ? byte ^ 1 : byte)) });
    expect(altered.status).toBe(401);

    const truncatedAfterSigning = await push(a, batch, { alter: (body) => body.subarray(0, body.length - 10) });
    expect(truncatedAfterSigning.status).toBe(401);

    expect(await snapshot(a, KEY)).toEqual({});
    // the status of the member names the refused requests (the sender's id was claimed, not proven)
    const member = await eventually(memberB, (value) => value?.lastInboundError !== null && value?.lastInboundError !== undefined);
    expect(member?.lastInboundError).toMatch(/refused here: bad signature/);
  });

  it('refuses a truncated batch signed as it is (malformed) and applies none of it', async () => {
    const body = encodeFederationRequest(request([event(1, Date.now(), 'in/one.txt'), event(2, Date.now(), 'in/two.txt')]));
    const truncated = await push(a, request([]), { body: body.subarray(0, body.length - 7) });
    expect(truncated.status).toBe(400);
    expect(truncated.body).toMatchObject({ errors: [{ status: 400 }], federation: { kind: 'refused', reason: 'malformed' } });
    // the origin's commit times (diagnostics) are checked like the rest: one short, or not a time, refuses the batch
    for (const committedAtMs of [[Date.now()], [Date.now(), -1]]) {
      const forged = await push(a, { ...request([event(1, Date.now(), 'in/one.txt'), event(2, Date.now(), 'in/two.txt')]), committedAtMs });
      expect(forged.status).toBe(400);
      expect(forged.body).toMatchObject({ federation: { kind: 'refused', reason: 'malformed' } });
      expect(JSON.stringify(forged.body)).toMatch(/committedAtMs/);
    }
    expect(await snapshot(a, KEY)).toEqual({});
  });

  it('applies a valid batch once: a replayed request is refused, a re-signed copy is deduplicated', async () => {
    const batch = { ...request([event(1, Date.now(), 'in/one.txt'), event(2, Date.now(), 'in/two.txt')]), committedAtMs: [Date.now(), Date.now()] };
    const accepted = await push(a, batch);
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ kind: 'ack', appended: 2, duplicates: 0 });
    // the commit times travelled: a measured both events' lag from them
    expect((await status(a, KEY)).receiveLagFromCommit.events).toBe(2);
    expect(Object.keys((await snapshot(a, KEY)) ?? {}).sort()).toEqual(['/in/one.txt', '/in/two.txt']);

    const replayed = await send(a, accepted.headers, accepted.sent);
    expect(replayed.status).toBe(401);
    expect(JSON.stringify(replayed.body)).toMatch(/replayed/);

    const again = await push(a, batch);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ kind: 'ack', appended: 0, duplicates: 2 });
    expect(await vectorOfB()).toBe(2);
  });

  it('a deploy whose binary has not arrived says so, and a download that no member can serve fails cleanly', async () => {
    const info = (await (await adminFetch(live(a), `/artifactory/api/storage/${KEY}/in/one.txt`)).json()) as { binaryArrived?: boolean };
    expect(info.binaryArrived).toBe(false);
    const member = await memberB();
    expect(member?.pendingBinaries).toBe(2);
    const download = await adminFetch(live(a), `/artifactory/${KEY}/in/one.txt`);
    expect(download.status).toBe(502);
    expect(((await download.json()) as { errors: { message: string }[] }).errors[0]?.message).toMatch(/has not arrived/);
  });

  it('refuses a gap in originSeq and applies nothing of the batch', async () => {
    const gap = await push(a, request([event(3, Date.now(), 'in/three.txt'), event(5, Date.now(), 'in/five.txt')]));
    expect(gap.status).toBe(409);
    expect(gap.body).toMatchObject({ federation: { reason: 'gap', vector: { 'site-b': 2 } } });
    expect(await vectorOfB()).toBe(2);
    expect((await snapshot(a, KEY))?.['/in/three.txt']).toBeUndefined();
    expect((await memberB())?.lastInboundError).toMatch(/refused here, gap/);
  });

  it('refuses events for a repository that is not federated with the sender', async () => {
    const notFederated = await push(a, request([event(1, Date.now(), 'x.txt')], 'plain-local'));
    expect(notFederated.status).toBe(404);
    expect(notFederated.body).toMatchObject({ federation: { reason: 'not-federated' } });
    expect(await snapshot(a, 'plain-local')).toEqual({});

    // a federated repository whose members do not include site-b
    await createFederatedRepo(a, 'fed-without-b', [d]);
    const notMember = await push(a, request([event(1, Date.now(), 'x.txt')], 'fed-without-b'));
    expect(notMember.status).toBe(403);
    expect(notMember.body).toMatchObject({ federation: { reason: 'not-member' } });
    expect(await snapshot(a, 'fed-without-b')).toEqual({});
  });

  it('refuses a peer whose clock runs years ahead, both in its request timestamp and in its event stamps', async () => {
    const future = Date.now() + 3 * YEAR_MS;
    const staleHeader = await push(a, request([event(3, Date.now(), 'in/three.txt')]), { timestampMs: future });
    expect(staleHeader.status).toBe(401);
    expect(JSON.stringify(staleHeader.body)).toMatch(/timestamp/);
    expect((await memberB())?.lastInboundError).toMatch(/timestamp/);

    const aheadStamps = await push(a, request([event(3, future, 'in/three.txt')]));
    expect(aheadStamps.status).toBe(409);
    expect(aheadStamps.body).toMatchObject({ federation: { reason: 'clock-ahead' } });
    expect(await vectorOfB()).toBe(2);
    const member = await memberB();
    expect(member?.lastInboundError).toMatch(/clock-ahead: clock ahead/);
    // (a full sync towards site-b, which cannot be reached, is still pending since a learned where it lives)
    expect(member?.state).not.toBe('SYNCING');
    // a's own clock was not dragged into the future: its next local write is stamped now
    const deployed = await adminFetch(live(a), `/artifactory/${KEY}/local/now.txt`, { method: 'PUT', body: 'now' });
    expect(deployed.status).toBe(201);
    const created = Date.parse(((await deployed.json()) as { created: string }).created);
    expect(created).toBeLessThan(Date.now() + YEAR_MS);
  });

  it('a real peer holding the wrong secret is refused and never joins', async () => {
    const member = await eventually(
      async () => (await status(a, KEY)).members.find((entry) => entry.url === memberUrl(d, KEY)),
      (value) => value?.lastError !== null && value?.lastError !== undefined,
    );
    expect(member?.state).toBe('OUT_OF_SYNC');
    expect(member?.lastError).toMatch(/HTTP 401 without a valid reply signature/);
    expect((await adminFetch(live(d), `/artifactory/api/repositories/${KEY}`)).status).toBe(404);
  });

  it('a push replayed to a site that restarted meanwhile is refused (nonces are kept on disk), not only deduplicated', async () => {
    third = event(3, Date.now(), 'in/three.txt');
    // Its nonce commits with the append of its event (no commit of its own).
    const accepted = await push(a, request([third]));
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ kind: 'ack', appended: 1, duplicates: 0 });
    // These append nothing: their nonces are written on their own, before anything is acted on.
    const exchange = await push(a, request([]));
    expect(exchange.status).toBe(200);
    const redelivery = await push(a, request([third]));
    expect(redelivery.status).toBe(200);
    expect(redelivery.body).toMatchObject({ kind: 'ack', appended: 0, duplicates: 1 });
    await live(a).stop();
    await startSite(a);
    for (const earlier of [accepted, exchange, redelivery]) {
      const replayed = await send(a, earlier.headers, earlier.sent);
      expect(replayed.status).toBe(401);
      expect(JSON.stringify(replayed.body)).toMatch(/replayed request/);
      expect((await memberB())?.lastInboundError).toMatch(/replayed request/);
    }
    expect(await vectorOfB()).toBe(3);
  }, 60_000);

  it('refuses a correctly signed event whose origin chain link does not match the previous event of its origin (a malicious member), applying nothing', async () => {
    // the origin chain (core event-chain.ts): meta.originPrev of event n is the digest of event n - 1 of that origin
    const digest = (chained: NewEvent) =>
      eventDigest(
        { stream: `repo-${KEY}`, id: chained.id, origin: chained.origin, originSeq: chained.originSeq, hlc: chained.hlc, type: chained.type },
        encodeEventData(chained.type, chained.data as never),
        encodeMeta(chained.meta),
      );
    const linked = (originSeq: number, path: string, prev: Uint8Array): NewEvent => {
      const plain = event(originSeq, Date.now(), path);
      return { ...plain, meta: { ...plain.meta, originPrev: chainLinkHex(prev) } } as NewEvent;
    };
    const fourth = linked(4, 'in/four.txt', digest(third));
    const accepted = await push(a, request([fourth]));
    expect(accepted.status).toBe(200);
    expect(accepted.body).toMatchObject({ kind: 'ack', appended: 1 });

    // a fifth event linked to a rewritten fourth (other content under the same id): refused, nothing applied
    const rewrittenFourth = { ...fourth, data: { ...(fourth.data as Record<string, unknown>), size: 999 } } as NewEvent;
    const forged = await push(a, request([linked(5, 'in/five.txt', digest(rewrittenFourth)), linked(6, 'in/six.txt', new Uint8Array(32))]));
    expect(forged.status).toBe(409);
    expect(forged.body).toMatchObject({ federation: { kind: 'refused', reason: 'broken-chain' } });
    expect(JSON.stringify(forged.body)).toMatch(/STRATA_ERR_FEDERATION_BROKEN_CHAIN/);
    expect(await vectorOfB()).toBe(4);
    expect((await snapshot(a, KEY))?.['/in/five.txt']).toBeUndefined();
    expect((await memberB())?.lastInboundError).toMatch(/broken-chain/);

    // a fifth event without any link after a chained fourth: refused as well
    const unlinked = await push(a, request([event(5, Date.now(), 'in/five.txt')]));
    expect(unlinked.status).toBe(409);
    expect(unlinked.body).toMatchObject({ federation: { reason: 'broken-chain' } });
    expect(await vectorOfB()).toBe(4);

    // the true link is accepted
    const fifth = linked(5, 'in/five.txt', digest(fourth));
    fifthDigest = digest(fifth);
    const honest = await push(a, request([fifth]));
    expect(honest.status).toBe(200);
    expect(await vectorOfB()).toBe(5);
    expect((await memberB())?.lastInboundError).toBeNull();
  });

  it('a binary sent inside the push is stored without being pulled; one that does not match its sha256 is not stored', async () => {
    const content = 'b-6';
    const sixth = { ...event(6, Date.now(), 'in/six.txt'), meta: { actor: 'site-b-user', originPrev: chainLinkHex(fifthDigest) } } as NewEvent;
    const sha256 = (sixth.data as { sha256: string }).sha256;
    const fileInfo = async () => (await (await adminFetch(live(a), `/artifactory/api/storage/${KEY}/in/six.txt`)).json()) as { binaryArrived?: boolean };
    // wrong bytes under the deploy's sha256: the batch is applied, the bytes are not kept
    const wrong = await push(a, request([sixth]), { attachments: [{ sha256, bytes: new TextEncoder().encode('not b-6') }] });
    expect(wrong.status).toBe(200);
    expect(wrong.body).toMatchObject({ kind: 'ack', appended: 1 });
    expect(await vectorOfB()).toBe(6);
    await until('its binary to be pending (with those of events 1–5)', memberB, (member) => member?.pendingBinaries === 6);
    expect((await fileInfo()).binaryArrived).toBe(false);

    // the right bytes (the same event again, a duplicate): stored; site-b listens nowhere, so
    // the binary can only have come with the batch
    const right = await push(a, request([sixth]), { attachments: [{ sha256, bytes: new TextEncoder().encode(content) }] });
    expect(right.status).toBe(200);
    expect(right.body).toMatchObject({ kind: 'ack', appended: 0, duplicates: 1 });
    await until('the binary to arrive', fileInfo, (info) => info.binaryArrived === true);
    const download = await adminFetch(live(a), `/artifactory/${KEY}/in/six.txt`);
    expect(download.status).toBe(200);
    expect(await download.text()).toBe(content);
  });
  /** A signed batch pull as site-b (the headers are returned to replay them). */
  async function pullBatch(target: Site, body: Uint8Array, secret = FEDERATION_TOKEN) {
    const headers: Record<string, string> = {
      ...signPeerRequest(secret, { method: 'POST', path: BLOBS, body, siteId: 'site-b', baseUrl: fakeBaseUrl, timestampMs: Date.now(), nonce: newNonce() }),
      'content-type': 'application/x-strata-federation',
    };
    const response = await fetch(`${live(target).url}${BLOBS}`, { method: 'POST', headers, body });
    return { status: response.status, bytes: new Uint8Array(await response.arrayBuffer()), signature: response.headers.get(FEDERATION_HEADERS.signature), headers };
  }

  it('serves several binaries per signed request (signed reply, unknown ones missing) and refuses forged, replayed and malformed requests', async () => {
    const contents = ['first binary of a', 'second binary of a'];
    for (const [index, content] of contents.entries()) {
      expect((await adminFetch(live(a), `/artifactory/plain-local/batch/${index}.txt`, { method: 'PUT', body: content })).status).toBe(201);
    }
    const known = contents.map((content) => createHash('sha256').update(content).digest('hex'));
    const unknown = 'd'.repeat(64);
    const asked = [known[1]!, unknown, known[0]!];
    const served = await pullBatch(a, encodeBlobBatchRequest(asked));
    expect(served.status).toBe(200);
    const nonce = served.headers[FEDERATION_HEADERS.nonce]!;
    expect(verifyReplySignature(FEDERATION_TOKEN, nonce, 200, served.bytes, served.signature)).toBe(true);
    const entries = decodeBlobBatchReply(served.bytes, asked);
    expect(entries.map((entry) => (entry.status === 'found' ? [entry.status, new TextDecoder().decode(entry.bytes)] : [entry.status]))).toEqual([
      ['found', contents[1]],
      ['missing'],
      ['found', contents[0]],
    ]);

    // replayed as it was: refused (the in-memory nonce check)
    const replayed = await fetch(`${live(a).url}${BLOBS}`, { method: 'POST', headers: served.headers, body: encodeBlobBatchRequest(asked) });
    expect(replayed.status).toBe(401);
    expect(await replayed.text()).toMatch(/replayed/);
    // signed with another secret, or not at all: refused before anything is read
    const forged = await pullBatch(a, encodeBlobBatchRequest(asked), 'guessed-secret-of-sixteen-bytes');
    expect(forged.status).toBe(401);
    expect(new TextDecoder().decode(forged.bytes)).toMatch(/bad signature/);
    const unsigned = await fetch(`${live(a).url}${BLOBS}`, { method: 'POST', headers: { 'content-type': 'application/x-strata-federation' }, body: encodeBlobBatchRequest(asked) });
    expect(unsigned.status).toBe(401);
    // too many, malformed names, not JSON: 400 with the federation's typed error
    const tooMany = Array.from({ length: blobBatchShasMax + 1 }, (_, index) => index.toString(16).padStart(64, '0'));
    for (const body of [JSON.stringify({ sha256: tooMany }), JSON.stringify({ sha256: ['../../etc/passwd'] }), JSON.stringify({ sha256: [] }), 'not json']) {
      const refused = await pullBatch(a, new TextEncoder().encode(body));
      expect(refused.status, body.slice(0, 40)).toBe(400);
      expect(JSON.parse(new TextDecoder().decode(refused.bytes))).toMatchObject({ errors: [{ status: 400 }] });
    }
  });

  it('a batch reply whose bytes do not match is refused whole: nothing stored, the binaries stay pending until a reply with the right bytes', async () => {
    // site-b now listens: it answers batch pulls for its deploys b-1 … b-5 (b-6 came inside a push).
    const contents = new Map<string, string>();
    for (let originSeq = 1; originSeq <= 6; originSeq++) contents.set(createHash('sha256').update(`b-${originSeq}`).digest('hex'), `b-${originSeq}`);
    let forge = true;
    const asked: string[][] = [];
    const server: Server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        if (request.method !== 'POST' || request.url !== BLOBS) {
          response.writeHead(404).end();
          return;
        }
        const sha256s = decodeBlobBatchRequest(Buffer.concat(chunks));
        asked.push(sha256s);
        const entries = sha256s.map((sha256): BlobBatchEntry => {
          const content = contents.get(sha256);
          if (content === undefined) return { sha256, status: 'missing' };
          // forged: one binary of the reply carries other bytes, the others their own
          const bytes = forge && sha256 === sha256s[0] ? `${content} (forged)` : content;
          return { sha256, status: 'found', bytes: new TextEncoder().encode(bytes) };
        });
        const bytes = encodeBlobBatchReply(entries);
        const nonce = request.headers[FEDERATION_HEADERS.nonce] as string;
        response.writeHead(200, { 'content-type': 'application/octet-stream', [FEDERATION_HEADERS.signature]: replySignature(FEDERATION_TOKEN, nonce, 200, bytes) });
        response.end(bytes);
      });
    });
    await new Promise<void>((resolve) => server.listen(Number(new URL(fakeBaseUrl).port), '127.0.0.1', resolve));
    try {
      const oneInfo = async () => (await (await adminFetch(live(a), `/artifactory/api/storage/${KEY}/in/one.txt`)).json()) as { binaryArrived?: boolean };
      await until('two batch pulls with a forged binary answered', async () => asked.length, (count) => count >= 2);
      expect(asked.flat().every((sha256) => contents.has(sha256))).toBe(true);
      // every reply so far had one forged binary: none of any reply was stored
      expect((await memberB())?.pendingBinaries).toBe(5);
      expect((await oneInfo()).binaryArrived).toBe(false);

      forge = false;
      await until('every binary of site-b to arrive', memberB, (member) => member?.pendingBinaries === 0);
      expect((await oneInfo()).binaryArrived).toBe(true);
      const download = await adminFetch(live(a), `/artifactory/${KEY}/in/one.txt`);
      expect(download.status).toBe(200);
      expect(await download.text()).toBe('b-1');
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
