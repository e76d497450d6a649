import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ipnRejected, ipnDuration, type IpnRejectReason } from '../../intake/ipn.metrics.js';
import type { IpnService } from '../../intake/ipn.service.js';
import { verifyIpnSignature } from '../../nowpayments/signature.js';
import { quietLevel } from '../quiet-route.js';

export interface IpnRouteDeps {
  ipn: IpnService;
  ipnSecret: string;
  /** Largest accepted body; NowPayments IPNs are ~1-2 KiB. */
  bodyLimit?: number;
}

export const IPN_PATH = '/webhooks/nowpayments';
const DEFAULT_BODY_LIMIT = 64 * 1024;

// Registered as an encapsulated plugin so its raw-body parser applies to this route only: we need the
// exact bytes (their hash dedupes re-sends and they are what we store) as well as the parsed JSON (the
// signature is over a canonical re-serialisation, never the raw bytes; see src/nowpayments/signature.ts).
export async function ipnRoutes(app: FastifyInstance, deps: IpnRouteDeps): Promise<void> {
  const bodyLimit = deps.bodyLimit ?? DEFAULT_BODY_LIMIT;
  app.removeAllContentTypeParsers();
  // Any content type: what we verify is the body, and a provider changing its header must not cost us IPNs.
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit }, (_request, body, done) => done(null, body));

  app.addHook('onError', async (_request, _reply, error) => {
    if ((error as { statusCode?: number }).statusCode === 413) ipnRejected.inc({ reason: 'too_large' });
  });

  const reject = (request: FastifyRequest, reply: FastifyReply, status: 400 | 401, reason: IpnRejectReason, message: string) => {
    ipnRejected.inc({ reason });
    request.log.warn({ reason }, 'IPN rejected');
    return reply.status(status).send({ error: status === 401 ? 'Unauthorized' : 'Bad Request', message });
  };

  app.post(IPN_PATH, { bodyLimit, logLevel: quietLevel(app), schema: { hide: true } }, async (request, reply) => {
    const header = request.headers['x-nowpayments-sig'];
    if (typeof header !== 'string' || header.trim() === '') {
      return reject(request, reply, 401, 'missing_signature', 'x-nowpayments-sig header is required');
    }
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return reject(request, reply, 400, 'malformed_json', 'body is not valid JSON');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return reject(request, reply, 400, 'not_an_object', 'body must be a JSON object');
    }
    if (!verifyIpnSignature(body, header, deps.ipnSecret)) {
      return reject(request, reply, 401, 'bad_signature', 'x-nowpayments-sig does not match the body');
    }
    const stop = ipnDuration.startTimer();
    let outcome;
    try {
      // Throws only if the body could not even be stored: then a 5xx is right, NowPayments retries.
      outcome = await deps.ipn.receive(raw, body);
    } finally {
      stop();
    }
    return reply.status(200).send({
      status: outcome.status,
      delivery_id: outcome.deliveryId,
      ...(outcome.status === 'parked' ? { message: `kept for review: ${outcome.problem}` } : {}),
      ...(outcome.status === 'stored' ? { message: 'kept; it will be applied by reconciliation' } : {}),
    });
  });
}
