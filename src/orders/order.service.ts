import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { channelIdSchema, planIdSchema, userIdSchema } from '../channels/channel.schema.js';
import { findChannel } from '../channels/channels.repo.js';
import { findPlan } from '../channels/plans.repo.js';
import { InvalidInputError, NotConfiguredError, NotFoundError, ProviderUnavailableError } from '../domain/errors.js';
import type { NowPaymentsClient } from '../nowpayments/client.js';
import { insertOrder, setOrderInvoice } from './orders.repo.js';
import { signStatusToken } from './status-token.js';

export interface CreatedOrder {
  orderId: string;
  invoiceUrl: string;
  /** The success page with its signed status token. */
  statusUrl: string;
  priceUsd: string;
}

export interface OrderService {
  createOrder(input: { buyerTelegramId: string; openChannelId: string; planId: string; source: 'api' | 'bot' }): Promise<CreatedOrder>;
}

export interface OrderServiceDeps {
  pool: pg.Pool;
  /** Null when no NowPayments key is configured: orders then answer "not configured". */
  nowPayments: NowPaymentsClient | null;
  statusTokenSecret: string;
  publicBaseUrl(): string;
  log: Logger;
}

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** "ord_" + 26 base32 characters (130 random bits): unguessable, and plain enough for NowPayments' order_id. */
export function newOrderId(): string {
  const bytes = randomBytes(17);
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5 && out.length < 26) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return `ord_${out}`;
}

/** The HTTP route validates these already; callers inside the service (the bot) get the same 400s. */
function checked(field: string, schema: z.ZodType, value: string): void {
  const result = schema.safeParse(value);
  if (!result.success) throw InvalidInputError.field(field, result.error.issues[0]?.message ?? 'is invalid');
}

/**
 * Failure semantics: the order row is written before NowPayments is asked for the invoice. If the call
 * fails the row stays without an invoice and the caller gets 502 (nothing was charged; ordering again
 * makes a new order). Writing first matters when NowPayments created the invoice but its answer was lost:
 * IPNs for that order id still find their order instead of parking as unknown.
 */
export function createOrderService(deps: OrderServiceDeps): OrderService {
  return {
    async createOrder(input): Promise<CreatedOrder> {
      checked('telegram_user_id', userIdSchema, input.buyerTelegramId);
      checked('open_channel_id', channelIdSchema, input.openChannelId);
      checked('plan_id', planIdSchema, input.planId);

      const channel = await findChannel(deps.pool, input.openChannelId);
      if (!channel) throw new NotFoundError(`open_channel_id: no channel ${input.openChannelId} is sold here`);
      const plan = await findPlan(deps.pool, input.planId);
      if (!plan || plan.openChannelId !== channel.openChannelId) {
        throw InvalidInputError.field('plan_id', `"${input.planId}" is not a plan of channel ${channel.openChannelId}`);
      }
      if (!plan.active) throw InvalidInputError.field('plan_id', `"${input.planId}" is no longer sold; choose an active plan of channel ${channel.openChannelId}`);

      const nowPayments = deps.nowPayments;
      // Refused rather than an order that can never be paid.
      if (!nowPayments) throw new NotConfiguredError('payments provider not configured: set NOWPAYMENTS_API_KEY (or run in the sandbox) and restart');

      const orderId = newOrderId();
      await insertOrder(deps.pool, {
        orderId,
        buyerTelegramId: input.buyerTelegramId,
        openChannelId: channel.openChannelId,
        planId: plan.planId,
        priceUsd: plan.priceUsd,
        source: input.source,
      });

      const base = deps.publicBaseUrl();
      const order = encodeURIComponent(orderId);
      const token = encodeURIComponent(signStatusToken(deps.statusTokenSecret, orderId));
      const statusUrl = `${base}/pay/success?order_id=${order}&token=${token}`;
      let invoice: { invoiceId: string; invoiceUrl: string };
      try {
        invoice = await nowPayments.createInvoice({
          priceAmount: plan.priceUsd,
          priceCurrency: 'usd',
          orderId,
          orderDescription: `${plan.title}: ${channel.title}`.slice(0, 250),
          ipnCallbackUrl: `${base}/webhooks/nowpayments`,
          successUrl: statusUrl,
          cancelUrl: `${base}/pay/cancel?order_id=${order}`,
        });
      } catch (error) {
        deps.log.warn({ orderId, err: { message: (error as Error).message } }, 'NowPayments did not create an invoice');
        throw new ProviderUnavailableError('nowpayments', `NowPayments did not create the invoice for order ${orderId}; nothing was charged, please try again`);
      }
      await setOrderInvoice(deps.pool, orderId, invoice);
      return { orderId, invoiceUrl: invoice.invoiceUrl, statusUrl, priceUsd: plan.priceUsd };
    },
  };
}
