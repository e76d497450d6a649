import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { jsonDepth, MAX_JSON_DEPTH } from '../../domain/text.js';
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

  // Fastify's own JSON parser (secure-json-parse) refusing "__proto__" and "constructor.prototype" keys:
  // such a key is no part of any IPN, and a key the canonical string might not cover must never ride along
  // on a genuine signature.
  const secureParse = app.getDefaultJsonParser('error', 'error');
  const parseBody = (request: FastifyRequest, text: string): { ok: true; body: unknown } | { ok: false; reason: IpnRejectReason; message: string } => {
    let result: { ok: true; body: unknown } | null = null;
    secureParse(request, text, (error, value) => {
      if (!error) result = { ok: true, body: value };
    });
    if (result) return result;
    try {
      JSON.parse(text);
    } catch {
      return { ok: false, reason: 'malformed_json', message: 'body is not valid JSON' };
    }
    return { ok: false, reason: 'forbidden_key', message: 'body must not contain a "__proto__" or "constructor.prototype" key' };
  };
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

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
    // Strict UTF-8 (RFC 8259 requires it): a lenient decode would turn bad bytes into U+FFFD, so the text
    // we store would no longer be the bytes we received. The decoded text holds no raw NUL either: JSON
    // forbids unescaped control characters, so a parsed body has NUL only as the six characters \u0000.
    let text: string;
    try {
      text = utf8.decode(raw);
    } catch {
      return reject(request, reply, 400, 'malformed_json', 'body is not valid JSON (it is not UTF-8)');
    }
    const parsed = parseBody(request, text);
    if (!parsed.ok) return reject(request, reply, 400, parsed.reason, parsed.message);
    const body = parsed.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      return reject(request, reply, 400, 'not_an_object', 'body must be a JSON object');
    }
    // A real IPN is two levels deep; checked iteratively before anything recurses over the body.
    if (jsonDepth(body) > MAX_JSON_DEPTH) {
      return reject(request, reply, 400, 'too_deep', `body is nested deeper than ${MAX_JSON_DEPTH} levels`);
    }
    if (!verifyIpnSignature(body, header, deps.ipnSecret)) {
      return reject(request, reply, 401, 'bad_signature', 'x-nowpayments-sig does not match the body');
    }
    const stop = ipnDuration.startTimer();
    let outcome;
    try {
      // Verified: from here the answer is 200 (applied, duplicate, parked, or stored for reconciliation).
      // It throws only if the database could not take the body at all (unreachable: 503 from the error
      // handler); whatever the body contains, it is stored (see storeDelivery), so NowPayments' retry of a
      // 5xx is only ever for an outage.
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
