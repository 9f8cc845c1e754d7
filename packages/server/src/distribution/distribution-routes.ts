import { StrataError } from '@strata/core';
import type { FastifyPluginAsync } from 'fastify';
import { errorResponses } from '../http-errors.ts';
import { requestMeta } from '../request-meta.ts';
import type { StoredBundle } from './distribution-ledger.ts';
import type { DistributionService } from './distribution-service.ts';
import { validateBundleName, validateCreateBundleRequest, validateDistributeRequest, validateDistributionStart } from './release-bundle-model.ts';

export interface DistributionRoutesOptions {
  readonly service: DistributionService;
}

const objectResponse = { 200: { type: 'object', additionalProperties: true }, 201: { type: 'object', additionalProperties: true }, ...errorResponses } as const;
const bundleParams = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1 }, version: { type: 'string', minLength: 1 } },
  required: ['name', 'version'],
} as const;
const transactionParams = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['id'],
} as const;

function bundleSummary(bundle: StoredBundle) {
  return {
    name: bundle.manifest.name,
    version: bundle.manifest.version,
    description: bundle.manifest.description,
    kind: bundle.kind,
    status: bundle.published ? 'COMPLETED' : 'PUBLISHING',
    created: new Date(bundle.manifest.created).toISOString(),
    createdBy: bundle.manifest.createdBy,
    sourceSite: bundle.manifest.sourceSite,
    storedAt: new Date(bundle.storedAt).toISOString(),
    files: bundle.manifest.artifacts.length,
    size: bundle.manifest.artifacts.reduce((total, artifact) => total + artifact.size, 0),
  };
}

function names(params: { name: string; version: string }): { name: string; version: string } {
  return { name: validateBundleName(params.name), version: validateBundleName(params.version, 'version') };
}

/**
 * Release bundles, the circle of trust and the distribution protocol (docs/edge.md):
 * `/api/security/keys/{public,trusted}`, `/api/release/bundles`, `/api/release/distribute`
 * and the edge's `/api/release/edge/transactions`.
 */
export const distributionRoutes: FastifyPluginAsync<DistributionRoutesOptions> = async (app, { service }) => {
  app.get('/api/security/keys/public', { schema: { response: objectResponse } }, async () => {
    const key = service.signingKey;
    return { alias: key.alias, publicKey: key.publicKeyPem, fingerprint: key.fingerprint };
  });

  app.get('/api/security/keys/trusted', { schema: { response: objectResponse } }, async (request) => {
    app.accessControl.requireAdmin(request.principal);
    return {
      keys: (await service.trustedKeys()).map((key) => ({
        kid: key.fingerprint,
        alias: key.alias,
        fingerprint: key.fingerprint,
        key: key.publicKey,
        issued_on: new Date(key.savedAt).toISOString(),
        issued_by: key.savedBy,
      })),
    };
  });

  const saveTrusted = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    app.accessControl.requireAdmin(request.principal);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const saved = await service.saveTrustedKey(body.alias, body.publicKey ?? body.public_key, requestMeta(request));
    return reply.code(201).send({ kid: saved.fingerprint, alias: saved.alias, fingerprint: saved.fingerprint });
  };
  const trustedBody = { type: 'object' } as const;
  app.put('/api/security/keys/trusted', { schema: { body: trustedBody, response: objectResponse } }, saveTrusted);
  app.post('/api/security/keys/trusted', { schema: { body: trustedBody, response: objectResponse } }, saveTrusted);

  app.delete<{ Params: { alias: string } }>(
    '/api/security/keys/trusted/:alias',
    { schema: { params: { type: 'object', properties: { alias: { type: 'string', minLength: 1 } }, required: ['alias'] } } },
    async (request, reply) => {
      app.accessControl.requireAdmin(request.principal);
      await service.deleteTrustedKey(request.params.alias, requestMeta(request));
      return reply.code(204).send();
    },
  );

  app.post('/api/release/bundles', { schema: { body: { type: 'object' }, response: objectResponse } }, async (request, reply) => {
    app.accessControl.requireAdmin(request.principal);
    const signed = await service.createBundle(validateCreateBundleRequest(request.body), requestMeta(request));
    return reply.code(201).send(signed);
  });

  app.get('/api/release/bundles', { schema: { response: objectResponse } }, async (request) => {
    if (request.principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
    return { bundles: (await service.bundles()).map(bundleSummary) };
  });

  app.get<{ Params: { name: string; version: string } }>(
    '/api/release/bundles/:name/:version',
    { schema: { params: bundleParams, response: objectResponse } },
    async (request) => {
      if (request.principal.anonymous) throw new StrataError('STRATA_ERR_AUTH_UNAUTHENTICATED');
      const { name, version } = names(request.params);
      const bundle = await service.bundle(name, version);
      return { ...bundleSummary(bundle), manifest: bundle.manifest, signature: bundle.signature };
    },
  );

  app.delete<{ Params: { name: string; version: string } }>(
    '/api/release/bundles/:name/:version',
    { schema: { params: bundleParams } },
    async (request, reply) => {
      app.accessControl.requireAdmin(request.principal);
      const { name, version } = names(request.params);
      await service.deleteBundle(name, version, requestMeta(request));
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { name: string; version: string } }>(
    '/api/release/distribute/:name/:version',
    { schema: { params: bundleParams, body: { type: 'object' }, response: objectResponse } },
    async (request) => {
      app.accessControl.requireAdmin(request.principal);
      const { name, version } = names(request.params);
      const targets = validateDistributeRequest(request.body);
      const results = await service.distribute(name, version, targets);
      return { name, version, results };
    },
  );

  // The edge's side of the protocol (called by a source's distribute).
  app.post('/api/release/edge/transactions', { schema: { body: { type: 'object' }, response: objectResponse } }, async (request, reply) => {
    app.accessControl.requireAdmin(request.principal);
    const started = await service.startTransaction(validateDistributionStart(request.body));
    return reply.code(201).send(started);
  });

  app.post<{ Params: { id: string } }>(
    '/api/release/edge/transactions/:id/commit',
    { schema: { params: transactionParams, response: objectResponse } },
    async (request) => {
      app.accessControl.requireAdmin(request.principal);
      const bundle = await service.commit(request.params.id, requestMeta(request));
      return bundleSummary(bundle);
    },
  );

  app.get<{ Params: { id: string } }>('/api/release/edge/transactions/:id', { schema: { params: transactionParams, response: objectResponse } }, async (request) => {
    app.accessControl.requireAdmin(request.principal);
    return service.transactionStatus(request.params.id);
  });

  app.delete<{ Params: { id: string } }>('/api/release/edge/transactions/:id', { schema: { params: transactionParams } }, async (request, reply) => {
    app.accessControl.requireAdmin(request.principal);
    await service.abort(request.params.id);
    return reply.code(204).send();
  });

  // Binaries are streamed to the blob store, never parsed nor buffered.
  await app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', (_request, _payload, done) => done(null));
    raw.put<{ Params: { id: string; sha256: string } }>(
      '/api/release/edge/transactions/:id/blobs/:sha256',
      {
        schema: {
          params: {
            type: 'object',
            properties: { id: transactionParams.properties.id, sha256: { type: 'string', minLength: 1 } },
            required: ['id', 'sha256'],
          },
        },
      },
      async (request, reply) => {
        app.accessControl.requireAdmin(request.principal);
        if (!/^[0-9a-f]{64}$/.test(request.params.sha256)) throw new StrataError('STRATA_ERR_BUNDLE_INVALID', 'a binary is named by its sha256 (64 lowercase hex characters)');
        const aborted = new AbortController();
        const onClose = () => {
          if (!request.raw.complete) aborted.abort(new StrataError('STRATA_ERR_BLOB_INCOMPLETE', 'the source went away mid-transfer'));
        };
        request.raw.once('close', onClose);
        try {
          await service.receiveBlob(request.params.id, request.params.sha256, request.raw, aborted.signal);
        } finally {
          request.raw.off('close', onClose);
        }
        return reply.code(201).send();
      },
    );
  });
};
