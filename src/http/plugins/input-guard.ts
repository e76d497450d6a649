import type { FastifyInstance, FastifyRequest } from 'fastify';
import { InvalidInputError } from '../../domain/errors.js';
import { findJsonProblem, MAX_JSON_DEPTH } from '../../domain/text.js';

// The one input layer every route shares: before any route's own validation runs, the decoded path
// parameters, the query string and a parsed JSON body are checked for what no column of ours can hold
// (U+0000, unpaired surrogates; see src/domain/text.ts) and for nesting deeper than MAX_JSON_DEPTH. The
// caller gets a 400 naming the field (`querystring.order_id: must not contain a NUL character (U+0000)`),
// the same shape as a schema error, instead of a 500 from Postgres.
//
// preValidation runs after onRequest, so an admin route still answers 401 to a caller without the token
// before saying anything about its input. A raw (Buffer) body is the route's own business: the IPN
// webhook parses and checks its bytes itself.

function problemOf(request: FastifyRequest): InvalidInputError | null {
  const parts: Array<[string, unknown]> = [
    ['params', request.params],
    ['querystring', request.query],
  ];
  if (request.body !== undefined && request.body !== null && !Buffer.isBuffer(request.body)) parts.push(['body', request.body]);
  for (const [where, value] of parts) {
    const problem = findJsonProblem(value, where, MAX_JSON_DEPTH);
    if (problem) return new InvalidInputError([problem]);
  }
  return null;
}

export function registerInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (request) => {
    const problem = problemOf(request);
    if (problem) throw problem;
  });
}
