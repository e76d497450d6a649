import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';

// OpenAPI is generated from the same zod schemas that validate requests, so the docs cannot drift.
// A few routes cannot carry a zod schema without changing what they do (the webhooks read raw bytes and
// check their secret before anything else; pages and /metrics answer text): they stay `hide: true` for
// validation and are described here instead, so the document covers every route. The Telegram webhook
// is described even when this process does not serve it (TELEGRAM_UPDATES is not webhook).
//
// /docs is Swagger UI (@fastify/swagger-ui), served from its own package: it works offline and loads
// nothing from elsewhere (no validator badge).

type Doc = Record<string, unknown>;

const text = (description: string, type = 'text/plain') => ({ description, content: { [type]: { schema: { type: 'string' } } } });
const json = (description: string) => ({ description, type: 'object', additionalProperties: true });
const problem = (description: string) => ({
  description,
  type: 'object',
  properties: { error: { type: 'string' }, message: { type: 'string' } },
});

export const TELEGRAM_WEBHOOK_DOC: Doc = {
  tags: ['webhooks'],
  summary: 'Telegram bot updates (setWebhook), when TELEGRAM_UPDATES=webhook',
  description:
    'Telegram posts each update here. It proves itself with the secret_token given to setWebhook (TELEGRAM_WEBHOOK_SECRET), echoed in X-Telegram-Bot-Api-Secret-Token and compared in constant time. chat_member updates drive join tracking (a failure answers 500 so Telegram redelivers); messages and button taps drive the buying bot.',
  headers: {
    type: 'object',
    properties: {
      'x-telegram-bot-api-secret-token': { type: 'string', description: 'Must equal TELEGRAM_WEBHOOK_SECRET; missing or wrong is 401.' },
    },
    required: ['x-telegram-bot-api-secret-token'],
  },
  body: {
    type: 'object',
    description: 'A Telegram Update (https://core.telegram.org/bots/api#update).',
    properties: { update_id: { type: 'integer' } },
    required: ['update_id'],
    additionalProperties: true,
  },
  response: {
    200: { description: 'Handled (or the buyer was already told it failed)', type: 'object', properties: { ok: { type: 'boolean' } } },
    400: problem('Not a Telegram update (no update_id)'),
    401: problem('Missing or wrong X-Telegram-Bot-Api-Secret-Token'),
    500: problem('A join-tracking step failed: Telegram redelivers the update'),
  },
};

const DOCS: Record<string, Doc> = {
  'POST /webhooks/nowpayments': {
    tags: ['webhooks'],
    summary: 'NowPayments IPN (payment status callback)',
    description:
      'Signed with HMAC-SHA512 of the key-sorted JSON body under NOWPAYMENTS_IPN_SECRET, sent in x-nowpayments-sig (every documented form accepted, compared in constant time). A verified body is stored first (deduped by its hash), then applied; a verified body we cannot use is parked for an operator (GET /admin/ipn-deliveries?status=parked) and still answered 200. Any content type; at most 64 KiB.',
    headers: {
      type: 'object',
      properties: { 'x-nowpayments-sig': { type: 'string', description: 'Hex HMAC-SHA512 of the key-sorted JSON body' } },
      required: ['x-nowpayments-sig'],
    },
    body: {
      type: 'object',
      description: 'NowPayments IPN body',
      properties: {
        payment_id: { type: ['integer', 'string'] },
        payment_status: { type: 'string', enum: ['waiting', 'confirming', 'confirmed', 'sending', 'partially_paid', 'finished', 'failed', 'refunded', 'expired'] },
        order_id: { type: 'string' },
        pay_amount: { type: ['number', 'string'] },
        actually_paid: { type: ['number', 'string'] },
        pay_currency: { type: 'string' },
        price_amount: { type: ['number', 'string'] },
        price_currency: { type: 'string' },
        outcome_amount: { type: ['number', 'string'] },
        outcome_currency: { type: 'string' },
        invoice_id: { type: ['integer', 'string', 'null'] },
        parent_payment_id: { type: ['integer', 'string', 'null'] },
        updated_at: { type: ['integer', 'string'] },
      },
      additionalProperties: true,
    },
    response: {
      200: json('Stored, and applied, found a duplicate, or parked for an operator'),
      400: problem('Not JSON, not UTF-8, not an object, too deep, or a __proto__ key'),
      401: problem('x-nowpayments-sig missing or not matching the body (counted in telepay_ipn_rejected_total)'),
      413: problem('Body larger than 64 KiB'),
    },
  },
  'POST /webhooks/telegram': TELEGRAM_WEBHOOK_DOC,
  'GET /pay/success': {
    tags: ['buyers'],
    summary: 'Success page: follows the order to "Open the channel" (polls /api/payment-status)',
    querystring: { type: 'object', properties: { order_id: { type: 'string' }, token: { type: 'string', description: 'Signed status token; without it the invite link is not shown' } } },
    response: { 200: text('HTML page (nonce CSP)', 'text/html') },
  },
  'GET /pay/cancel': {
    tags: ['buyers'],
    summary: 'Cancel page: nothing was charged',
    querystring: { type: 'object', properties: { order_id: { type: 'string' } } },
    response: { 200: text('HTML page', 'text/html') },
  },
  'GET /metrics': {
    tags: ['monitoring'],
    summary: 'Prometheus metrics (bearer ADMIN_TOKEN when set); alert rules in docs/alerts.yml',
    security: [{ admin: [] }],
    response: { 200: text('Prometheus text exposition format') },
  },
  'GET /admin/dashboard': {
    tags: ['operator'],
    summary: 'Operator dashboard (static page; asks for the admin token and calls the admin API with it)',
    response: { 200: text('HTML page (strict CSP: own script and style only)', 'text/html') },
  },
  'GET /admin/machine.mmd': {
    tags: ['operator'],
    summary: 'The payment statechart as a Mermaid diagram, drawn from the machine',
    security: [{ admin: [] }],
    response: { 200: text('Mermaid stateDiagram-v2') },
  },
  'GET /admin/payments/:payment_id/inspect': {
    tags: ['operator'],
    summary: "One payment in the Stately inspector, replaying its journal (a page; needs the operator's browser online)",
    params: { type: 'object', properties: { payment_id: { type: 'string' } }, required: ['payment_id'] },
    response: { 200: text('HTML page', 'text/html') },
  },
  'GET /admin/payments/:payment_id/statechart': {
    tags: ['operator'],
    summary: 'One payment on the statechart, drawn offline on the server, following its journal (a page)',
    params: { type: 'object', properties: { payment_id: { type: 'string' } }, required: ['payment_id'] },
    response: { 200: text('HTML page', 'text/html') },
  },
  'GET /docs/openapi.json': {
    tags: ['docs'],
    summary: 'This document',
    response: { 200: json('OpenAPI 3 document') },
  },
};

const keyOf = (method: string | string[], url: string) => `${Array.isArray(method) ? method[0] : method} ${url}`;

export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: { title: 'TelePay Engine', version: '0.1.0', description: 'Crypto payments for Telegram paid channels. Operators: docs/operators.md.' },
      components: { securitySchemes: { admin: { type: 'http', scheme: 'bearer' } } },
    },
    transform: (input) => {
      const hidden = (input.schema as { hide?: boolean } | undefined)?.hide === true;
      if (!hidden) return jsonSchemaTransform(input);
      const doc = DOCS[keyOf(input.route.method, input.url)];
      if (doc) return { schema: doc as never, url: input.url };
      // Swagger UI's own files stay out; any other hidden route is still listed, from its own schema.
      if (input.url === '/docs' || input.url.startsWith('/docs/')) return jsonSchemaTransform(input);
      return jsonSchemaTransform({ ...input, schema: { ...input.schema, hide: false, tags: input.schema.tags ?? ['other'] } as never });
    },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject;
      const { openapiObject } = document;
      const paths = (openapiObject.paths ??= {}) as Record<string, Record<string, unknown>>;
      // Documented whether or not this process serves it (TELEGRAM_UPDATES=webhook).
      if (!paths['/webhooks/telegram']?.post) {
        paths['/webhooks/telegram'] = { ...paths['/webhooks/telegram'], post: telegramOperation() };
      }
      return openapiObject;
    },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    staticCSP: {
      'default-src': "'none'",
      'script-src': "'self'",
      // Swagger UI sets style attributes from its script.
      'style-src': ["'self'", "'unsafe-inline'"],
      'img-src': ["'self'", 'data:'],
      'connect-src': "'self'",
      'font-src': "'self'",
      'base-uri': "'none'",
      'frame-ancestors': "'none'",
      'form-action': "'none'",
    },
    uiConfig: { validatorUrl: null, deepLinking: true, persistAuthorization: false },
  });
  app.get('/docs/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

/** The Telegram webhook as an OpenAPI operation, for a document built while the route is not served. */
function telegramOperation() {
  const doc = TELEGRAM_WEBHOOK_DOC as {
    tags: string[];
    summary: string;
    description: string;
    headers: { properties: Record<string, { type: string; description: string }> };
    body: object;
    response: Record<string, { description: string }>;
  };
  return {
    tags: doc.tags,
    summary: doc.summary,
    description: `${doc.description} Served only when TELEGRAM_UPDATES=webhook.`,
    parameters: Object.entries(doc.headers.properties).map(([name, schema]) => ({ name, in: 'header', required: true, description: schema.description, schema: { type: schema.type } })),
    requestBody: { required: true, content: { 'application/json': { schema: doc.body } } },
    responses: Object.fromEntries(Object.entries(doc.response).map(([code, r]) => [code, { description: r.description }])),
  };
}
