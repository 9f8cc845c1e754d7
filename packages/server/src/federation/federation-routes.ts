/**
 * Federation endpoints under /artifactory/api/federation:
 * - peer endpoints, authenticated by the federation secret (HMAC), never by users:
 *   `POST /push` (a batch of events and the sender's vector), `GET /identity` (which site
 *   answers here), `GET /blob/{sha256}` (a binary, for members pulling it), `POST /blobs`
 *   (several small binaries at once);
 * - operator endpoints (admin): `GET /status/{repo}`, `POST /fullSync/{repo}`,
 *   `POST /configSync/{repo}`, and with STRATA_FEDERATION_TEST_HOOKS=1 only,
 *   `POST /test/block` (cut links, for the end-to-end tests).
 * A peer request is authenticated on its raw bytes before anything in it is decoded; a
 * refused one is answered in Artifactory's error shape and nothing in it is applied.
 */
import { StrataError } from '@strata/core';
import type { BlobStore } from '@strata/store';
import {
  decodeBlobBatchRequest,
  encodeBlobBatchReply,
  FEDERATION_CONTENT_TYPE,
  FEDERATION_HEADERS,
  encodeFederationReply,
  isVerifiedPeer,
  replySignature,
  type PeerRequestRefusal,
  type VerifiedPeer,
} from '@strata/federation';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody, errorResponses } from '../http-errors.ts';
import type { FederationReply } from '@strata/federation';
import type { FederationService } from './federation-service.ts';

export interface FederationRoutesOptions {
  readonly service: FederationService;
  readonly blobs: BlobStore;
}

/** Bytes of one push at most (a batch of federationBatchEventsMax events, each bounded by the codec). */
export const federationPushBytesMax = 64 * 1024 * 1024;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** HTTP status of a refusal reply. */
export function refusalStatus(reply: FederationReply): number {
  if (reply.kind === 'ack') return 200;
  switch (reply.reason) {
    case 'malformed':
      return 400;
    case 'not-federated':
      return 404;
    case 'not-member':
      return 403;
    case 'unavailable':
      return 503;
    default:
      return 409;
  }
}

const repoParams = { type: 'object', properties: { repo: { type: 'string', minLength: 1 } }, required: ['repo'] } as const;

export const federationRoutes: FastifyPluginAsync<FederationRoutesOptions> = async (app, { service, blobs }) => {
  app.addContentTypeParser(FEDERATION_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: federationPushBytesMax }, (_request, body, done) => done(null, body));

  /** Sends a JSON reply signed for the request's nonce (when it had one). */
  function signedSend(request: FastifyRequest, reply: FastifyReply, status: number, value: unknown) {
    const bytes = Buffer.from(JSON.stringify(value));
    const nonce = request.headers[FEDERATION_HEADERS.nonce];
    if (typeof nonce === 'string' && /^[0-9a-f]{32}$/.test(nonce)) {
      reply.header(FEDERATION_HEADERS.signature, replySignature(service.settings.secret, nonce, status, bytes));
    }
    return reply.code(status).type('application/json; charset=utf-8').send(bytes);
  }

  async function refuse(request: FastifyRequest, reply: FastifyReply, refusal: PeerRequestRefusal): Promise<void> {
    request.log.warn({ claimedSite: refusal.claimedSiteId, reason: refusal.message }, 'federation request refused');
    await signedSend(request, reply, 401, errorBody(401, `federation request refused: ${refusal.message}`));
  }

  async function authenticated(request: FastifyRequest, reply: FastifyReply, body: Uint8Array): Promise<VerifiedPeer | undefined> {
    const verified = await service.authenticate(request.method, request.url, request.headers, body);
    if (isVerifiedPeer(verified)) return verified;
    await refuse(request, reply, verified);
    return undefined;
  }

  app.post(
    '/api/federation/push',
    { schema: { response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } } },
    async (request, reply) => {
      const body = request.body;
      const arrivedAtMs = service.now();
      if (!(body instanceof Uint8Array)) throw new StrataError('STRATA_ERR_FEDERATION_MALFORMED', `a push has content type ${FEDERATION_CONTENT_TYPE}`);
      const peer = await authenticated(request, reply, body);
      if (peer === undefined) return reply;
      const result = await service.receivePush(peer, body, { arrivedAtMs, authenticatedAtMs: service.now() });
      if (!('kind' in result)) {
        // A replayed push, found out by its nonce in SQL (kept across restarts): nothing applied.
        await refuse(request, reply, result);
        return reply;
      }
      const status = refusalStatus(result);
      if (result.kind === 'ack') {
        const bytes = Buffer.from(encodeFederationReply(result));
        reply.header(FEDERATION_HEADERS.signature, replySignature(service.settings.secret, peer.nonce, 200, bytes));
        return reply.code(200).type('application/json; charset=utf-8').send(bytes);
      }
      request.log.warn({ from: peer.siteId, reason: result.reason, message: result.message }, 'federation batch refused');
      return signedSend(request, reply, status, { ...errorBody(status, `${result.reason}: ${result.message}`), federation: result });
    },
  );

  app.get('/api/federation/identity', { schema: { response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses } } }, async (request, reply) => {
    const peer = await authenticated(request, reply, new Uint8Array());
    if (peer === undefined) return reply;
    return signedSend(request, reply, 200, service.identity());
  });

  app.get<{ Params: { sha256: string } }>(
    '/api/federation/blob/:sha256',
    { schema: { params: { type: 'object', properties: { sha256: { type: 'string' } }, required: ['sha256'] } } },
    async (request, reply) => {
      const peer = await authenticated(request, reply, new Uint8Array());
      if (peer === undefined) return reply;
      const sha256 = request.params.sha256;
      if (!SHA256_PATTERN.test(sha256)) throw new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', 'a blob is named by its lower-case hex sha256');
      const stat = await blobs.stat(sha256);
      if (stat === undefined) throw new StrataError('STRATA_ERR_BLOB_NOT_FOUND', `no binary ${sha256} here`);
      reply.header('content-length', stat.size);
      if (stat.size === 0) return reply.type('application/octet-stream').send(Buffer.alloc(0));
      return reply.type('application/octet-stream').send(await blobs.createReadStream(sha256));
    },
  );

  // Several binaries per request (blob-batch.ts): signed request, signed reply; a malformed
  // request is refused (400, STRATA_ERR_FEDERATION_MALFORMED) before anything is read.
  app.post('/api/federation/blobs', { schema: { response: errorResponses } }, async (request, reply) => {
    const body = request.body;
    if (!(body instanceof Uint8Array)) throw new StrataError('STRATA_ERR_FEDERATION_MALFORMED', `a blob batch request has content type ${FEDERATION_CONTENT_TYPE}`);
    const peer = await authenticated(request, reply, body);
    if (peer === undefined) return reply;
    const sha256s = decodeBlobBatchRequest(body);
    const bytes = encodeBlobBatchReply(await service.readBlobBatch(sha256s));
    reply.header(FEDERATION_HEADERS.signature, replySignature(service.settings.secret, peer.nonce, 200, bytes));
    return reply.code(200).type('application/octet-stream').send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  });

  function federatedRepo(request: FastifyRequest<{ Params: { repo: string } }>): string {
    app.accessControl.requireAdmin(request.principal);
    const key = request.params.repo;
    if (!service.isFederated(key)) throw new StrataError('STRATA_ERR_FEDERATION_NOT_FEDERATED', `repository '${key}' is not a federated repository of this site`);
    return key;
  }

  const memberSchema = {
    type: 'object',
    properties: {
      url: { type: 'string' },
      siteId: { type: ['string', 'null'] },
      state: { type: 'string' },
      lagEvents: { type: 'integer' },
      lagMs: { type: 'integer' },
      lastError: { type: ['string', 'null'] },
      lastInboundError: { type: ['string', 'null'] },
      clockOffsetMs: { type: ['integer', 'null'] },
      pendingBinaries: { type: 'integer' },
    },
  } as const;
  /** `receiveLag` (from the origin's stamp) and `receiveLagFromCommit` (from its commit). */
  const receiveLagSchema = {
    type: 'object',
    properties: {
      events: { type: 'integer' },
      p50Ms: { type: ['integer', 'null'] },
      p99Ms: { type: ['integer', 'null'] },
      maxMs: { type: ['integer', 'null'] },
    },
  } as const;

  app.get<{ Params: { repo: string } }>(
    '/api/federation/status/:repo',
    {
      schema: {
        params: repoParams,
        response: {
          200: {
            type: 'object',
            properties: {
              repoKey: { type: 'string' },
              siteId: { type: 'string' },
              removed: { type: 'boolean' },
              vector: { type: 'object', additionalProperties: { type: 'integer' } },
              pendingBinaries: { type: 'integer' },
              receiveLag: receiveLagSchema,
              receiveLagFromCommit: receiveLagSchema,
              receiveStages: {
                type: 'object',
                properties: {
                  events: { type: 'integer' },
                  ...Object.fromEntries(
                    ['arrival', 'authentication', 'queue', 'append', 'dispatch', 'transit'].map((stage) => [
                      stage,
                      { type: 'object', properties: { p50Ms: { type: ['integer', 'null'] }, p99Ms: { type: ['integer', 'null'] } } },
                    ]),
                  ),
                },
              },
              members: { type: 'array', items: memberSchema },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => service.status(federatedRepo(request)),
  );

  const textResponse = { 200: { type: 'string' }, ...errorResponses } as const;
  app.post<{ Params: { repo: string } }>('/api/federation/fullSync/:repo', { schema: { params: repoParams, response: textResponse } }, async (request, reply) => {
    const key = federatedRepo(request);
    service.fullSync(key);
    return reply.type('text/plain').send(`Full sync of '${key}' started with every enabled member`);
  });

  app.post<{ Params: { repo: string } }>('/api/federation/configSync/:repo', { schema: { params: repoParams, response: textResponse } }, async (request, reply) => {
    const key = federatedRepo(request);
    service.configSync(key);
    return reply.type('text/plain').send(`Configuration sync of '${key}' started with every enabled member`);
  });

  if (service.testHooks) {
    // Test-only (STRATA_FEDERATION_TEST_HOOKS=1): cut this site's links to and from the
    // given base URLs, to prove that a cut link heals through a third member.
    app.post<{ Body: { baseUrls: string[] } }>(
      '/api/federation/test/block',
      {
        schema: {
          body: { type: 'object', properties: { baseUrls: { type: 'array', items: { type: 'string' }, maxItems: 100 } }, required: ['baseUrls'] },
          response: { 204: { type: 'null' }, ...errorResponses },
        },
      },
      async (request, reply) => {
        app.accessControl.requireAdmin(request.principal);
        service.setBlocked(request.body.baseUrls);
        return reply.code(204).send();
      },
    );
  }
};
