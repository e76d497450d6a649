import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { contentSecurityPolicy, renderCancelPage, renderSuccessPage } from '../pages/success.page.js';
import { quietLevel } from '../quiet-route.js';

// success_url and cancel_url of the NowPayments invoice. The success page is static: it reads its
// order_id and token from its own URL and polls /api/payment-status.
export async function successPageRoutes(app: FastifyInstance): Promise<void> {
  const send = (reply: FastifyReply, render: (nonce: string) => string) => {
    const nonce = randomBytes(16).toString('base64');
    return reply
      .header('content-security-policy', contentSecurityPolicy(nonce))
      // The URL carries the status token: no Referer to the channel link or anywhere else.
      .header('referrer-policy', 'no-referrer')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'no-store')
      .type('text/html; charset=utf-8')
      .send(render(nonce));
  };
  app.get('/pay/success', { logLevel: quietLevel(app), schema: { hide: true } }, async (_request, reply) => send(reply, renderSuccessPage));
  app.get('/pay/cancel', { logLevel: quietLevel(app), schema: { hide: true } }, async (_request, reply) => send(reply, renderCancelPage));
}
