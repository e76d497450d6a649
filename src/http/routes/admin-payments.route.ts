import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import type { Config } from '../../config.js';
import { durationSchema } from '../../domain/duration.js';
import { toMermaid } from '../../machines/payment.diagram.js';
import { OPERATOR_EVENTS } from '../../machines/payment.events.js';
import { paymentMachine } from '../../machines/payment.machine.js';
import type { Engine } from '../../persistence/apply-event.js';
import { listDeadLetters } from '../../operator/dead-letters.repo.js';
import { countByState, countStuckByState, countStuckByWait, listPayments, listStuck, paymentDetail, paymentState } from '../../operator/payments.repo.js';
import { search } from '../../operator/search.repo.js';
import { describeLimits, stuckLimits } from '../../domain/stuck-limits.js';
import { adminAuth } from '../plugins/admin-auth.js';
import { HttpError } from '../plugins/error-handler.js';

// The operator surface: see any payment, why it waits and for what, and unstick it. Unsticking is an
// operator event through applyEvent like everything else, so it is journalled (who and why) and can
// only do what the statechart allows in the payment's current state (409 otherwise, nothing changed).

const paymentId = z.object({ payment_id: z.string().min(1).max(100) });

const listQuery = z.object({
  state: z.string().min(1).max(40).optional(),
  // The one duration parser (30s, 15m, 2h, 1d; at most ten years).
  stuck_for: durationSchema().optional(),
  stuck: z.stringbool().optional().describe('true: only payments past their state limit (STUCK_AFTER, STUCK_AFTER_STATES), with why they wait, the last job error and the allowed actions'),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const operatorEvent = z.object({
  type: z.enum(OPERATOR_EVENTS),
  by: z.string().trim().min(1).max(64).describe('who acts, kept in the journal'),
  reason: z.string().trim().min(1).max(500).describe('why, kept in the journal'),
  note: z.string().max(500).optional(),
});

// The page is a static shell: it holds no data and asks for the admin token, which it then sends as a
// bearer header. Its script and style are inlined at start and allowed by their hashes: nothing else runs.
const pageFiles = { html: 'dashboard.html', js: 'dashboard.js', css: 'dashboard.css' } as const;
const pageUrl = (file: string) => new URL(`../pages/${file}`, import.meta.url);
const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

export async function dashboardPage(): Promise<{ html: string; csp: string }> {
  const [html, js, css] = await Promise.all([pageFiles.html, pageFiles.js, pageFiles.css].map((f) => readFile(pageUrl(f), 'utf8')));
  if (/<\/(script|style)/i.test(js! + css!)) throw new Error('dashboard.js and dashboard.css must not contain a closing </script> or </style>');
  const page = html!.replace('<style></style>', () => `<style>${css}</style>`).replace('<script></script>', () => `<script>${js}</script>`);
  const csp = [
    "default-src 'none'",
    `script-src ${sha256(js!)}`,
    `style-src ${sha256(css!)}`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html: page, csp };
}

export async function adminPaymentsRoutes(app: FastifyInstance, deps: { config: Config; pool: pg.Pool; engine: Engine }): Promise<void> {
  const page = await dashboardPage();
  const limits = stuckLimits(deps.config.STUCK_AFTER, deps.config.STUCK_AFTER_STATES);
  app.get('/admin/dashboard', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header('content-security-policy', page.csp)
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(page.html),
  );

  await app.register(async (scope) => {
    scope.addHook('onRequest', adminAuth(deps.config.ADMIN_TOKEN));
    const typed = scope.withTypeProvider<ZodTypeProvider>();
    const security = [{ admin: [] }];

    typed.get(
      '/admin/payments',
      { schema: { tags: ['operator'], security, querystring: listQuery, summary: 'List payments: by state, stuck for a while (stuck_for), or past their state limit (stuck=true)' } },
      async (request) => {
        const { state, stuck_for, stuck, limit } = request.query;
        if (!stuck) return { counts: await countByState(deps.pool), payments: await listPayments(deps.pool, { state, stuckForMs: stuck_for, limit }) };
        const [byState, byWait, payments] = await Promise.all([countStuckByState(deps.pool, limits), countStuckByWait(deps.pool, limits), listStuck(deps.pool, limits, limit)]);
        return {
          counts: Object.fromEntries(Object.entries(byState).map(([s, n]) => [s, n.total])),
          stuck_by_state: Object.fromEntries(Object.entries(byState).filter(([, n]) => n.stuck > 0).map(([s, n]) => [s, n.stuck])),
          stuck_by_wait: byWait,
          limits: describeLimits(limits),
          payments: state ? payments.filter((p) => p.state === state) : payments,
        };
      },
    );

    typed.get(
      '/admin/payments/:payment_id',
      {
        schema: {
          tags: ['operator'],
          security,
          params: paymentId,
          summary: 'A payment: read model, journal (with who and why), its jobs (found by their deterministic ids), last error, allowed actions',
        },
      },
      async (request) => {
        const detail = await paymentDetail(deps.pool, request.params.payment_id);
        if (!detail) throw new HttpError(404, `No payment ${request.params.payment_id}.`);
        return detail;
      },
    );

    typed.post(
      '/admin/payments/:payment_id/events',
      {
        schema: {
          tags: ['operator'],
          security,
          params: paymentId,
          body: operatorEvent,
          summary: 'Retry the parked step (or resume a parked payout), re-issue the invite, accept an underpayment, or cancel; 409 when the state does not allow it',
        },
      },
      async (request) => {
        const { payment_id } = request.params;
        const { type, by, reason, note } = request.body;
        const existing = await paymentState(deps.pool, payment_id);
        if (!existing) throw new HttpError(404, `No payment ${payment_id}.`);
        const result = await deps.engine.applyEvent(payment_id, { type, by, reason, ...(note !== undefined && { note }) }, { source: `operator:${by}` });
        if (result.outcome === 'duplicate') {
          throw new HttpError(409, `${type} does not apply to payment ${payment_id} in state ${result.state ?? existing.state}; nothing changed.`);
        }
        request.log.info({ paymentId: payment_id, type, by, reason }, 'operator event applied');
        return result;
      },
    );

    typed.get(
      '/admin/search',
      {
        schema: {
          tags: ['operator'],
          security,
          summary: 'Find payments by payment id, order id, buyer (Telegram user id), channel id, or transaction hash (payout, owner payout, host wallet)',
          querystring: z.object({ q: z.string().trim().min(1).max(200), limit: z.coerce.number().int().min(1).max(200).default(50) }),
        },
      },
      async (request) => ({ query: request.query.q, ...(await search(deps.pool, request.query.q, request.query.limit)) }),
    );

    typed.get(
      '/admin/dead-letters',
      {
        schema: {
          tags: ['operator'],
          security,
          summary: 'Dead-lettered jobs (effects-dead-letter, payout-batch-dead-letter), newest first, with the source job and its last error',
          querystring: z.object({ payment_id: z.string().min(1).max(100).optional(), limit: z.coerce.number().int().min(1).max(500).default(50) }),
        },
      },
      async (request) => ({ dead_letters: await listDeadLetters(deps.pool, { limit: request.query.limit, ...(request.query.payment_id && { paymentId: request.query.payment_id }) }) }),
    );

    scope.get('/admin/machine.mmd', { schema: { hide: true } }, async (_request, reply) => reply.type('text/plain; charset=utf-8').send(toMermaid(paymentMachine)));
  });
}
