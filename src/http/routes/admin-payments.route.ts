import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Config } from '../../config.js';
import { durationSchema } from '../../domain/duration.js';
import { toMermaid } from '../../machines/payment.diagram.js';
import { paymentMachine } from '../../machines/payment.machine.js';
import type { Engine } from '../../persistence/apply-event.js';
import { countByState, listPayments, paymentDetail } from '../../operator/payments.repo.js';
import type pg from 'pg';
import { adminAuth } from '../plugins/admin-auth.js';
import { HttpError } from '../plugins/error-handler.js';

// The operator surface: see any payment, why it waits and for what, and unstick it. Unsticking is an
// operator event through applyEvent like everything else, so it is journalled and can only do what
// the statechart allows in the payment's current state.

const listQuery = z.object({
  state: z.string().min(1).max(40).optional(),
  // The one duration parser (30s, 15m, 2h, 1d; at most ten years).
  stuck_for: durationSchema().optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const operatorEvent = z.object({
  type: z.enum(['operator.retry', 'operator.accept_underpaid', 'operator.cancel']),
  by: z.string().trim().min(1).max(64).describe('who acts, kept in the journal'),
  note: z.string().max(500).optional(),
});

const dashboardHtml = new URL('../pages/dashboard.html', import.meta.url);

export async function adminPaymentsRoutes(app: FastifyInstance, deps: { config: Config; pool: pg.Pool; engine: Engine }): Promise<void> {
  // The page is a static shell: it holds no data and asks for the admin token, which it then sends as a bearer header.
  const page = await readFile(dashboardHtml, 'utf8');
  app.get('/admin/dashboard', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .header('content-security-policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
      .type('text/html; charset=utf-8')
      .send(page),
  );

  await app.register(async (scope) => {
    scope.addHook('onRequest', adminAuth(deps.config.ADMIN_TOKEN));
    const typed = scope.withTypeProvider<ZodTypeProvider>();
    const security = [{ admin: [] }];

    typed.get('/admin/payments', { schema: { tags: ['operator'], security, querystring: listQuery, summary: 'List payments, e.g. everything in needs_review or stuck for 1h' } }, async (request) => ({
      counts: await countByState(deps.pool),
      payments: await listPayments(deps.pool, { state: request.query.state, stuckForMs: request.query.stuck_for, limit: request.query.limit }),
    }));

    typed.get(
      '/admin/payments/:payment_id',
      { schema: { tags: ['operator'], security, params: z.object({ payment_id: z.string().min(1).max(100) }), summary: 'A payment with its journal, jobs and recorded effect results' } },
      async (request) => {
        const detail = await paymentDetail(deps.pool, request.params.payment_id);
        if (!detail) throw new HttpError(404, `No payment ${request.params.payment_id}.`);
        return detail;
      },
    );

    typed.post(
      '/admin/payments/:payment_id/events',
      { schema: { tags: ['operator'], security, params: z.object({ payment_id: z.string().min(1).max(100) }), body: operatorEvent, summary: 'Retry the parked step, accept an underpayment, or cancel' } },
      async (request) => {
        const { payment_id } = request.params;
        const { type, by, note } = request.body;
        const existing = await paymentDetail(deps.pool, payment_id);
        if (!existing) throw new HttpError(404, `No payment ${payment_id}.`);
        const result = await deps.engine.applyEvent(payment_id, { type, by, note }, { source: `operator:${by}` });
        if (result.outcome === 'duplicate') {
          throw new HttpError(409, `${type} does not apply to payment ${payment_id} in state ${existing.payment.state}; nothing changed.`);
        }
        request.log.info({ paymentId: payment_id, type, by }, 'operator event applied');
        return result;
      },
    );

    scope.get('/admin/machine.mmd', { schema: { hide: true } }, async (_request, reply) => reply.type('text/plain; charset=utf-8').send(toMermaid(paymentMachine)));
  });
}
