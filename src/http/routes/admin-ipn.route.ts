import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import { z } from 'zod';
import { getDelivery, listDeliveries } from '../../intake/ipn-deliveries.repo.js';
import type { IpnService } from '../../intake/ipn.service.js';
import { adminAuth } from '../plugins/admin-auth.js';
import { HttpError } from '../plugins/error-handler.js';

export interface AdminIpnRouteDeps {
  pool: pg.Pool;
  ipn: IpnService;
  adminToken: string | undefined;
}

// How an operator resumes a parked IPN: look at it, fix the cause (a parser update, or an explanation
// from NowPayments), then replay it. Replay re-parses the stored raw body and applies it through the same
// path as the webhook (journal source "operator:replay"); the signature was verified when it was stored.
export async function adminIpnRoutes(app: FastifyInstance, deps: AdminIpnRouteDeps): Promise<void> {
  app.addHook('onRequest', adminAuth(deps.adminToken));
  const typed = app.withTypeProvider<ZodTypeProvider>();
  const security = [{ admin: [] }];
  const params = z.object({ id: z.string().regex(/^\d{1,18}$/, 'a delivery id (digits)') });

  typed.get(
    '/admin/ipn-deliveries',
    {
      schema: {
        tags: ['operator'],
        security,
        summary: 'Stored IPN deliveries, newest first (e.g. status=parked: verified but not understood)',
        querystring: z.object({
          status: z.enum(['received', 'applied', 'duplicate', 'parked', 'failed']).optional(),
          payment_id: z.string().max(40).optional(),
          limit: z.coerce.number().int().min(1).max(500).default(50),
        }),
      },
    },
    async (request) => ({ deliveries: await listDeliveries(deps.pool, { status: request.query.status, paymentId: request.query.payment_id, limit: request.query.limit }) }),
  );

  typed.get('/admin/ipn-deliveries/:id', { schema: { tags: ['operator'], security, params, summary: 'One stored IPN delivery with its raw body' } }, async (request) => {
    const row = await getDelivery(deps.pool, request.params.id);
    if (!row) throw new HttpError(404, `No IPN delivery ${request.params.id}.`);
    return row;
  });

  typed.post(
    '/admin/ipn-deliveries/:id/replay',
    { schema: { tags: ['operator'], security, params, summary: 'Re-parse a stored IPN and apply it (resumes a parked or failed delivery; idempotent)' } },
    async (request) => {
      if (!(await getDelivery(deps.pool, request.params.id))) throw new HttpError(404, `No IPN delivery ${request.params.id}.`);
      return deps.ipn.replayDelivery(request.params.id, 'operator:replay');
    },
  );
}
