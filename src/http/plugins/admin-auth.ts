import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';

// Bearer-token guard for the admin surface. Without ADMIN_TOKEN the surface answers 503 instead of
// running open: an unconfigured deployment must not let anyone rewrite where owners get paid.

const digest = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/** Constant-time: both sides are hashed to 32 bytes first, so neither length nor content leaks through timing. */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

export function bearerToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return null;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return match ? match[1]! : null;
}

/** An onRequest hook: runs before body validation, so an unauthenticated caller learns nothing about the schema. */
export function adminAuth(adminToken: string | undefined): onRequestHookHandler {
  return async function checkAdminToken(request: FastifyRequest, reply: FastifyReply) {
    if (!adminToken) {
      // Sent here rather than thrown: the error handler hides the message of every 5xx, and this one is the fix.
      return reply.status(503).send({
        error: 'Service Unavailable',
        message: 'The admin API is disabled: set ADMIN_TOKEN (at least 24 characters) in the environment and restart the service.',
      });
    }
    const token = bearerToken(request);
    if (token === null || !tokenMatches(token, adminToken)) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer realm="admin"')
        .send({ error: 'Unauthorized', message: token === null ? 'Send the admin token as "Authorization: Bearer <ADMIN_TOKEN>".' : 'The admin token is not valid.' });
    }
  };
}
