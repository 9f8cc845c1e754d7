import type { EventMeta } from '@strata/core';
import type { FastifyRequest } from 'fastify';

/** The meta every event carries: who, which request, from where. */
export function requestMeta(request: FastifyRequest): EventMeta {
  return { actor: request.principal.name, requestId: request.id, clientAddress: request.ip };
}

/** The absolute base URL clients used to reach us (for downloadUri/uri fields). */
export function baseUrl(request: FastifyRequest): string {
  const forwardedProto = request.headers['x-forwarded-proto'];
  const protocol = typeof forwardedProto === 'string' && forwardedProto !== '' ? forwardedProto.split(',')[0]!.trim() : request.protocol;
  const host = request.headers.host ?? 'localhost';
  return `${protocol}://${host}/artifactory`;
}
