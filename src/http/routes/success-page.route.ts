import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { readPaymentStatus } from '../../intake/payment-status.js';
import { dictionaryFor, pickLanguage } from '../pages/i18n/index.js';
import { contentSecurityPolicy, renderCancelPage, renderSuccessPage, type BuyerPageContext } from '../pages/success.page.js';
import { quietLevel } from '../quiet-route.js';

export interface BuyerPageDeps {
  /** For the cancel page's order (without them it shows no order). */
  pool?: pg.Pool;
  statusTokenSecret?: string;
  /** SUPPORT_CONTACT, named on every buyer page. */
  supportContact?: string | null | undefined;
}

/** Headers every buyer page is sent with: its own nonce, no Referer (the URL carries the status token), never cached. */
export function sendBuyerPage(reply: FastifyReply, nonce: string, html: string): FastifyReply {
  return reply
    .header('content-security-policy', contentSecurityPolicy(nonce))
    .header('referrer-policy', 'no-referrer')
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .type('text/html; charset=utf-8')
    .send(html);
}

/** The language (?lang=, then `otherwise`, then Accept-Language), a fresh nonce and the query of a buyer page's request. */
export function buyerPageContext(request: FastifyRequest, supportContact: string | null | undefined, otherwise?: string | null): BuyerPageContext {
  const query = new URLSearchParams(request.url.split('?')[1] ?? '');
  return {
    nonce: randomBytes(16).toString('base64'),
    dict: pickLanguage(dictionaryFor(query.get('lang')) ? query.get('lang') : otherwise, request.headers['accept-language']),
    query,
    supportContact,
  };
}

// success_url and cancel_url of the NowPayments invoice. The success page is the same for every order:
// it reads its order_id and token from its own URL and polls /api/payment-status. The cancel page
// names the order (channel, plan, price: nothing an order id does not already reveal to its holder).
export async function successPageRoutes(app: FastifyInstance, deps: BuyerPageDeps = {}): Promise<void> {
  app.get('/pay/success', { logLevel: quietLevel(app), schema: { hide: true } }, async (request, reply) => {
    const c = buyerPageContext(request, deps.supportContact);
    return sendBuyerPage(reply, c.nonce, renderSuccessPage(c));
  });
  app.get('/pay/cancel', { logLevel: quietLevel(app), schema: { hide: true } }, async (request, reply) => {
    const c = buyerPageContext(request, deps.supportContact);
    const orderId = c.query.get('order_id')?.trim().slice(0, 200);
    const status = orderId && deps.pool ? await readPaymentStatus(deps.pool, deps.statusTokenSecret ?? '', { orderId }) : null;
    const order = status?.order ? { orderId: status.order_id, channelTitle: status.order.channel_title, planTitle: status.order.plan_title, priceUsd: status.order.price_usd } : null;
    return sendBuyerPage(reply, c.nonce, renderCancelPage(c, order));
  });
}
