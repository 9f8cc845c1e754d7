import { isStrataError, StrataError } from '@strata/core';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/** Artifactory's error body: `{"errors":[{"status":N,"message":"…"}]}` (REFERENCE.md). */
export interface ErrorBody {
  errors: { status: number; message: string }[];
}

export function errorBody(status: number, message: string): ErrorBody {
  return { errors: [{ status, message }] };
}

/** JSON schema of the error body, referenced by every route's 4xx/5xx responses. */
export const errorBodySchema = {
  $id: 'strataError',
  type: 'object',
  properties: {
    errors: {
      type: 'array',
      items: {
        type: 'object',
        properties: { status: { type: 'integer' }, message: { type: 'string' } },
        required: ['status', 'message'],
      },
    },
  },
  required: ['errors'],
} as const;

/** Response schemas for the error statuses every route can answer. */
export const errorResponses = {
  '4xx': { $ref: 'strataError#' },
  '5xx': { $ref: 'strataError#' },
} as const;

/**
 * Renders every error in Artifactory's shape. StrataErrors carry their status; fastify's own
 * errors (validation, bad JSON, body too large) keep theirs; anything else is a 500 that is
 * logged with its stack and shown without internals.
 */
export function installErrorRendering(app: FastifyInstance): void {
  app.addSchema(errorBodySchema);
  app.setErrorHandler((error: FastifyError | StrataError | Error, request: FastifyRequest, reply: FastifyReply) => {
    let status: number;
    let message: string;
    if (isStrataError(error)) {
      status = error.status;
      message = error.message;
      if (status >= 500) request.log.error({ err: error }, 'request failed');
    } else if ('validation' in error && error.validation) {
      status = 400;
      message = error.message;
    } else if ('statusCode' in error && typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      message = error.message;
    } else {
      status = 500;
      message = 'internal server error';
      request.log.error({ err: error }, 'request failed');
    }
    if (status === 401 && !reply.hasHeader('www-authenticate')) reply.header('WWW-Authenticate', 'Basic realm="Artifactory Realm"');
    if (reply.sent || reply.raw.headersSent) return;
    reply.code(status).type('application/json; charset=utf-8').send(errorBody(status, message));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).type('application/json; charset=utf-8').send(errorBody(404, `no route for ${request.method} ${request.url.split('?')[0]}`));
  });
}

export function badRequest(message: string): StrataError {
  return new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', message);
}
