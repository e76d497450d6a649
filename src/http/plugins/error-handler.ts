import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { DomainError, InvalidInputError, type DomainErrorKind } from '../../domain/errors.js';
import { scrubSecrets } from '../../logger.js';
import { isDataError, isDatabaseUnavailable } from '../../persistence/database.js';
import { registerInputGuard } from './input-guard.js';

/** An HTTP-only refusal (authentication, transport); features throw DomainErrors instead. */
export class HttpError extends Error {
  constructor(public readonly statusCode: number, message: string, public readonly details?: unknown) {
    super(message);
    this.name = 'HttpError';
  }
}

// The one place errors become HTTP: a 4xx says what was wrong and how to fix it; a 5xx says nothing
// about internals (they go to the log with the request id the caller can quote).
//
// It also installs the shared input guard (src/http/plugins/input-guard.ts): both belong to the root
// instance before any route is registered, which is where buildApp calls this.
export function registerErrorHandler(app: FastifyInstance): void {
  registerInputGuard(app);
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(error)) {
      const problems = error.validation.map((v) => {
        const field = [error.validationContext, ...String(v.instancePath).split('/').filter(Boolean)].join('.');
        return { field, message: v.message ?? 'is invalid' };
      });
      return reply.status(400).send({
        error: 'Bad Request',
        message: problems.map((p) => `${p.field}: ${p.message}`).join('; '),
        problems,
      });
    }
    if (error instanceof DomainError) {
      // Our own words, written for the caller: shown even for 502/503 (they say what to do next).
      const status = STATUS_OF[error.kind];
      if (status >= 500) request.log.warn({ err: { name: error.name, message: error.message } }, 'request refused by a provider or missing configuration');
      return reply.status(status).send({
        error: reasonPhrase(status),
        // A provider's words can quote what we sent it; the logger's secrets never leave in an answer.
        message: scrubSecrets(request.log, error.message),
        ...(error instanceof InvalidInputError ? { problems: error.problems } : {}),
      });
    }
    if (isDatabaseUnavailable(error)) {
      // Nothing wrong with the request: the database is down or dropped the connection. 503 + Retry-After
      // tells clients (NowPayments included) to try again, which is safe: every write is idempotent.
      request.log.warn({ err: error }, 'database unavailable; answered 503');
      return reply
        .status(503)
        .header('retry-after', '5')
        .send({ error: 'Service Unavailable', message: `The database is unreachable at the moment; try again in a few seconds (request id ${request.id}).` });
    }
    if (isDataError(error)) {
      // A value Postgres refuses (a NUL, an out-of-range number, a too-long key) that no check above caught:
      // still the caller's input, and the same request fails the same way every time, so not a 5xx.
      request.log.warn({ err: error }, 'a value in the request was refused by the database');
      return reply.status(400).send({ error: 'Bad Request', message: 'A value in the request cannot be stored (out of range, too long, or not valid text).' });
    }
    const status = error instanceof HttpError ? error.statusCode : (error.statusCode ?? 500);
    if (status >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.status(status).send({ error: 'Internal Server Error', message: `Something went wrong on our side; quote request id ${request.id}.` });
    }
    return reply.status(status).send({
      error: reasonPhrase(status),
      message: scrubSecrets(request.log, error.message),
      ...(error instanceof HttpError && error.details !== undefined ? { details: error.details } : {}),
    });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.status(404).send({ error: 'Not Found', message: `No route for ${request.method} ${request.url.split('?')[0]}` });
  });
}

const STATUS_OF: Record<DomainErrorKind, number> = {
  invalid: 400,
  not_found: 404,
  conflict: 409,
  unavailable: 502,
  not_configured: 503,
  failed: 500,
};

export function reasonPhrase(status: number): string {
  const phrases: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return phrases[status] ?? 'Error';
}
