import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { channelIdSchema, planIdSchema, userIdSchema } from '../channels/channel.schema.js';
import { findChannelWithPlan, findChannelWithPlanOrdering, type PlanRow } from '../channels/plans.repo.js';
import { InvalidInputError, NotConfiguredError, NotFoundError, ProviderUnavailableError } from '../domain/errors.js';
import type { NowPaymentsClient } from '../nowpayments/client.js';
import { inTransaction, type Queryable } from '../persistence/transaction.js';
import { findOpenOrder, insertOrder, setOrderInvoice } from './orders.repo.js';
import { signStatusToken } from './status-token.js';

export interface CreatedOrder {
  orderId: string;
  invoiceUrl: string;
  /** The success page with its signed status token. */
  statusUrl: string;
  priceUsd: string;
  /** true when the buyer's open order for this plan was answered instead of a new one (the bot's second tap). */
  reused: boolean;
}

export interface CreateOrderInput {
  buyerTelegramId: string;
  openChannelId: string;
  planId: string;
  source: 'api' | 'bot';
  /** The buyer's language (Telegram's language_code), carried to the buyer's pages as ?lang=. */
  lang?: string | undefined;
}

export interface OrderService {
  createOrder(input: CreateOrderInput): Promise<CreatedOrder>;
}

export interface OrderServiceDeps {
  pool: pg.Pool;
  /** Null when no NowPayments key is configured: orders then answer "not configured". */
  nowPayments: NowPaymentsClient | null;
  statusTokenSecret: string;
  publicBaseUrl(): string;
  log: Logger;
  /**
   * How long a bot order's invoice is offered again to the same buyer for the same plan (ms; default
   * one hour). Within it a second tap answers the open order instead of creating another invoice.
   */
  reuseOpenOrderForMs?: number;
}

/** Advisory-lock class for "one open order per buyer and plan" (the second key is a hash of the triple). */
const OPEN_ORDER_LOCK = 72_410_010;
const DEFAULT_REUSE_MS = 60 * 60_000;

/** A language tag safe to carry in a URL ("ru", "pt-br"), or null. */
function langParam(lang: string | undefined): string {
  const tag = lang?.trim().toLowerCase();
  return tag && /^[a-z]{2,3}(-[a-z0-9]{2,8})?$/.test(tag) ? `&lang=${tag}` : '';
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
 *
 * The bot (source "bot") keeps one open order per buyer and plan: a second tap while the first order's
 * invoice is still payable answers that order. The rule is atomic: the buyer-and-plan pair is locked
 * (a transaction-scoped advisory lock) while the open order is looked up and, when there is none, while
 * the new one is written and its invoice created, so two concurrent taps make one order. The API keeps
 * making an order per call (a shop may sell several at once).
 */
export function createOrderService(deps: OrderServiceDeps): OrderService {
  const reuseMs = deps.reuseOpenOrderForMs ?? DEFAULT_REUSE_MS;
  const urlsOf = (orderId: string, lang: string | undefined) => {
    const base = deps.publicBaseUrl();
    const order = encodeURIComponent(orderId);
    const token = encodeURIComponent(signStatusToken(deps.statusTokenSecret, orderId));
    return {
      base,
      statusUrl: `${base}/pay/success?order_id=${order}&token=${token}${langParam(lang)}`,
      cancelUrl: `${base}/pay/cancel?order_id=${order}${langParam(lang)}`,
    };
  };

  /** Writes the order, asks NowPayments for its invoice and stores it; a refusal is returned, not thrown, so a caller's transaction still commits the row. */
  async function placeOrder(
    db: Queryable,
    nowPayments: NowPaymentsClient,
    input: CreateOrderInput,
    channel: { openChannelId: string; title: string },
    plan: PlanRow,
  ): Promise<CreatedOrder | ProviderUnavailableError> {
    const orderId = newOrderId();
    await insertOrder(db, {
      orderId,
      buyerTelegramId: input.buyerTelegramId,
      openChannelId: channel.openChannelId,
      planId: plan.planId,
      priceUsd: plan.priceUsd,
      source: input.source,
    });
    return invoiceOrder(db, nowPayments, input, orderId, channel, plan);
  }

  /** Asks NowPayments for the written order's invoice and stores it; a refusal is returned, not thrown. */
  async function invoiceOrder(
    db: Queryable,
    nowPayments: NowPaymentsClient,
    input: CreateOrderInput,
    orderId: string,
    channel: { openChannelId: string; title: string },
    plan: PlanRow,
  ): Promise<CreatedOrder | ProviderUnavailableError> {
    const { base, statusUrl, cancelUrl } = urlsOf(orderId, input.lang);
    let invoice: { invoiceId: string; invoiceUrl: string };
    try {
      invoice = await nowPayments.createInvoice({
        priceAmount: plan.priceUsd,
        priceCurrency: 'usd',
        orderId,
        orderDescription: `${plan.title}: ${channel.title}`.slice(0, 250),
        ipnCallbackUrl: `${base}/webhooks/nowpayments`,
        successUrl: statusUrl,
        cancelUrl,
      });
    } catch (error) {
      deps.log.warn({ orderId, err: { message: (error as Error).message } }, 'NowPayments did not create an invoice');
      return new ProviderUnavailableError('nowpayments', `NowPayments did not create the invoice for order ${orderId}; nothing was charged, please try again`);
    }
    await setOrderInvoice(db, orderId, invoice);
    return { orderId, invoiceUrl: invoice.invoiceUrl, statusUrl, priceUsd: plan.priceUsd, reused: false };
  }

  return {
    async createOrder(input): Promise<CreatedOrder> {
      checked('telegram_user_id', userIdSchema, input.buyerTelegramId);
      checked('open_channel_id', channelIdSchema, input.openChannelId);
      checked('plan_id', planIdSchema, input.planId);

      const nowPayments = deps.nowPayments;
      // An API order, NowPayments configured: the channel, its plan and, when the plan is sold, the order
      // itself in one statement, before the invoice is asked for.
      const orderId = newOrderId();
      const ordering = input.source !== 'bot' && nowPayments;
      const { channel, plan, ordered } = ordering
        ? await findChannelWithPlanOrdering(deps.pool, { orderId, buyerTelegramId: input.buyerTelegramId, openChannelId: input.openChannelId, planId: input.planId, source: input.source })
        : { ...(await findChannelWithPlan(deps.pool, input.openChannelId, input.planId)), ordered: false };
      if (!channel) throw new NotFoundError(`open_channel_id: no channel ${input.openChannelId} is sold here`);
      if (!plan) throw InvalidInputError.field('plan_id', `"${input.planId}" is not a plan of channel ${channel.openChannelId}`);
      if (!plan.active) throw InvalidInputError.field('plan_id', `"${input.planId}" is no longer sold; choose an active plan of channel ${channel.openChannelId}`);

      // Refused rather than an order that can never be paid.
      if (!nowPayments) throw new NotConfiguredError('payments provider not configured: set NOWPAYMENTS_API_KEY (or run in the sandbox) and restart');

      let placed: CreatedOrder | ProviderUnavailableError;
      if (input.source !== 'bot') {
        // Written above: its plan is sold (checked), and that statement wrote it if so.
        if (!ordered) throw new Error(`order ${orderId} was not written although plan ${plan.planId} is sold`);
        placed = await invoiceOrder(deps.pool, nowPayments, input, orderId, channel, plan);
      } else {
        placed = await inTransaction(deps.pool, async (client) => {
          await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [OPEN_ORDER_LOCK, `${input.buyerTelegramId}:${channel.openChannelId}:${plan.planId}`]);
          const open = await findOpenOrder(client, {
            buyerTelegramId: input.buyerTelegramId,
            openChannelId: channel.openChannelId,
            planId: plan.planId,
            priceUsd: plan.priceUsd,
            newerThanMs: reuseMs,
          });
          if (open) return { orderId: open.orderId, invoiceUrl: open.invoiceUrl!, statusUrl: urlsOf(open.orderId, input.lang).statusUrl, priceUsd: open.priceUsd, reused: true };
          return placeOrder(client, nowPayments, input, channel, plan);
        });
      }
      if (placed instanceof ProviderUnavailableError) throw placed;
      return placed;
    },
  };
}
