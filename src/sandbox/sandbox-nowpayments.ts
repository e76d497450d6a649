import { createHash, randomBytes } from 'node:crypto';
import { getAddress } from 'ethers';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type pg from 'pg';
import QRCode from 'qrcode';
import { z } from 'zod';
import { Decimal } from 'decimal.js';
import { gte } from '../domain/money.js';
import { NotFoundError } from '../domain/errors.js';
import { renderCheckoutPage, type CheckoutView } from '../http/pages/checkout.page.js';
import { buyerPageContext, sendBuyerPage } from '../http/routes/success-page.route.js';
import { createNowPaymentsClient, type NowPaymentsClient } from '../nowpayments/client.js';
import type { PaymentStatus } from '../nowpayments/ipn.schema.js';
import { signStatusToken } from '../orders/status-token.js';
import { idsFromClock, startFakeNowPayments, type FakeInvoice, type FakeNowPayments } from './nowpayments.fake.js';

// Sandbox mode (no NowPayments credentials, not production): the fake NowPayments runs in-process with
// random credentials, the engine talks to it over HTTP exactly as it would to api.nowpayments.io, and
// POST /sandbox/orders/:order_id/pay plays the buyer: the fake pays the order's invoice and sends the
// signed IPN sequence to our real webhook. GET /sandbox/checkout/:invoice_id stands in for NowPayments'
// hosted invoice page, so the invoice_url a sandbox order gets opens in a browser.
//
// The fake keeps its invoices in memory, but the database outlives it: a restarted sandbox must never
// hand out an invoice or payment id a previous run left in the database (orders.invoice_id is unique,
// and a repeated payment id would be taken for a duplicate of the old payment). Ids start from the
// clock and are raised above the database's largest at start (avoidStoredIds).

export interface SandboxNowPayments {
  fake: FakeNowPayments;
  client: NowPaymentsClient;
  ipnSecret: string;
  stop(): Promise<void>;
  /** Where invoice_url points: set by sandboxRoutes to our public URL once it is known. */
  checkoutBaseUrl: (() => string) | null;
}

export async function startSandboxNowPayments(): Promise<SandboxNowPayments> {
  const apiKey = randomBytes(24).toString('base64url');
  const ipnSecret = randomBytes(32).toString('base64url');
  const sandbox: { checkoutBaseUrl: (() => string) | null } = { checkoutBaseUrl: null };
  const fake = await startFakeNowPayments({
    apiKey,
    ipnSecret,
    firstIds: idsFromClock(),
    invoiceUrl: (id) => (sandbox.checkoutBaseUrl ? `${sandbox.checkoutBaseUrl()}${CHECKOUT_PATH}/${encodeURIComponent(id)}` : `${fake.url}/payment/?iid=${id}`),
  });
  return Object.assign(sandbox, { fake, client: createNowPaymentsClient({ baseUrl: fake.url, apiKey }), ipnSecret, stop: () => fake.close() });
}

export const CHECKOUT_PATH = '/sandbox/checkout';

/** Raises the fake's next invoice and payment ids above every numeric id stored in the database. */
export async function avoidStoredIds(fake: FakeNowPayments, pool: Pick<pg.Pool, 'query'>): Promise<void> {
  const { rows } = await pool.query<{ invoice: string | null; payment: string | null }>(
    `SELECT (SELECT max(invoice_id::numeric) FROM orders WHERE invoice_id ~ '^[0-9]{1,15}$')::text AS invoice,
            (SELECT max(payment_id::numeric) FROM payments WHERE payment_id ~ '^[0-9]{1,15}$')::text AS payment`,
  );
  const row = rows[0];
  fake.raiseIdsAbove({ invoiceId: row?.invoice ? Number(row.invoice) : null, paymentId: row?.payment ? Number(row.payment) : null });
}

/** The deposit address the simulated buyer pays an invoice to: an Ethereum address derived from the invoice id. */
export const sandboxPayAddress = (invoiceId: string): string =>
  getAddress(`0x${createHash('sha256').update(`sandbox-pay-address:${invoiceId}`).digest('hex').slice(0, 40)}`);

/** The simulated buyer pays in ETH at this many USD per ETH; NowPayments keeps 0.5 % and forwards the rest (the outcome). */
const SANDBOX_ETH_USD = '3000';
const NOWPAYMENTS_KEEPS = '0.005';

const payBody = z
  .object({
    /** Pay less than asked to see the underpaid path: the USD worth the buyer sends (decimal string). */
    actually_paid: z.string().regex(/^\d+(\.\d+)?$/, 'a decimal amount like "4.5"').optional(),
  })
  .optional()
  .nullable();

export interface SandboxRouteDeps {
  sandbox: SandboxNowPayments;
  /** Where the IPNs go when the invoice has no ipn_callback_url. */
  webhookUrl(): string;
  statusTokenSecret: string;
  publicBaseUrl(): string;
  /** The database, so ids a previous run stored are never handed out again. */
  pool?: Pick<pg.Pool, 'query'>;
  /** How long the checkout page counts down (ms; default one hour, like ORDER_REUSE_WINDOW). */
  invoiceLifetimeMs?: number;
}

const inEth = (usd: string) => new Decimal(usd).div(SANDBOX_ETH_USD).toDecimalPlaces(8, Decimal.ROUND_UP).toFixed();

function paidState(deps: SandboxRouteDeps, invoice: FakeInvoice): CheckoutView['paid'] {
  const latest = [...deps.sandbox.fake.payments.values()].filter((p) => String(p.invoice_id) === invoice.id).at(-1);
  if (!latest) return { state: 'unpaid' };
  if (['confirming', 'confirmed', 'sending', 'finished'].includes(latest.payment_status)) return { state: 'paid' };
  if (latest.payment_status === 'partially_paid') return { state: 'partly', paid: String(latest.actually_paid), expected: String(latest.pay_amount) };
  return { state: 'unpaid' };
}

export async function sandboxRoutes(app: FastifyInstance, deps: SandboxRouteDeps): Promise<void> {
  deps.sandbox.checkoutBaseUrl = deps.publicBaseUrl;
  if (deps.pool) await avoidStoredIds(deps.sandbox.fake, deps.pool);
  const lifetimeMs = deps.invoiceLifetimeMs ?? 60 * 60_000;

  app.withTypeProvider<ZodTypeProvider>().get(
    `${CHECKOUT_PATH}/:invoice_id`,
    { schema: { hide: true, params: z.object({ invoice_id: z.string().min(1).max(40) }) } },
    async (request, reply) => {
      const invoice = deps.sandbox.fake.invoices.get(request.params.invoice_id);
      if (!invoice || !invoice.order_id) {
        throw new NotFoundError(`The simulated NowPayments has no invoice ${JSON.stringify(request.params.invoice_id)} (invoices live in memory: a restart forgets them; order again in the bot).`);
      }
      // The buyer's language: ?lang=, else the one the bot gave the order's success page, else Accept-Language.
      const c = buyerPageContext(request, null, invoice.success_url ? new URL(invoice.success_url).searchParams.get('lang') : null);
      const address = sandboxPayAddress(invoice.id);
      const payAmount = inEth(invoice.price_amount);
      const wei = new Decimal(payAmount).times('1e18').toFixed(0);
      const view: CheckoutView = {
        invoiceId: invoice.id,
        orderId: invoice.order_id,
        description: invoice.order_description,
        priceUsd: invoice.price_amount,
        payAmount,
        payCurrency: 'eth',
        address,
        qrSvg: await QRCode.toString(`ethereum:${address}?value=${wei}`, { type: 'svg', margin: 1, errorCorrectionLevel: 'M' }),
        expiresAt: new Date(Date.parse(invoice.created_at) + lifetimeMs),
        paid: paidState(deps, invoice),
        successUrl: invoice.success_url,
        cancelUrl: invoice.cancel_url,
        payPath: `/sandbox/orders/${encodeURIComponent(invoice.order_id)}/pay`,
        halfUsd: new Decimal(invoice.price_amount).div(2).toDecimalPlaces(2, Decimal.ROUND_DOWN).toFixed(),
      };
      return sendBuyerPage(reply, c.nonce, renderCheckoutPage(c, view));
    },
  );

  app.withTypeProvider<ZodTypeProvider>().post(
    '/sandbox/orders/:order_id/pay',
    {
      schema: {
        summary: 'Sandbox only: simulate the buyer paying this order (signed IPNs waiting -> confirming -> finished)',
        params: z.object({ order_id: z.string().min(1).max(200) }),
        body: payBody,
      },
    },
    async (request) => {
      const orderId = request.params.order_id;
      const { fake } = deps.sandbox;
      const invoice = [...fake.invoices.values()].find((i) => i.order_id === orderId);
      if (!invoice) {
        throw new NotFoundError(`The simulated NowPayments has no invoice for order ${JSON.stringify(orderId)}. Create the order first (POST /api/orders); its invoice is made here.`);
      }
      const paid = request.body?.actually_paid;
      const short = paid !== undefined && !gte(paid, invoice.price_amount);
      const sequence: PaymentStatus[] = ['waiting', 'confirming', short ? 'partially_paid' : 'finished'];
      const callbackUrl = invoice.ipn_callback_url ?? deps.webhookUrl();
      const sent: Array<{ payment_status: PaymentStatus; http_status: number; answer: unknown }> = [];
      let paymentId: number | null = null;
      // As the host's NowPayments account is set up: the buyer pays ETH, the outcome reaching the host wallet is ETH.
      const payAmount = inEth(invoice.price_amount);
      const actuallyPaid = paid === undefined ? payAmount : inEth(paid);
      const outcomeAmount = new Decimal(actuallyPaid).times(new Decimal(1).minus(NOWPAYMENTS_KEEPS)).toDecimalPlaces(18, Decimal.ROUND_DOWN).toFixed();
      for (const status of sequence) {
        const arrived = status !== 'waiting';
        const payment = fake.pay(invoice.id, {
          status,
          payCurrency: 'eth',
          payAddress: sandboxPayAddress(invoice.id),
          payAmount,
          outcomeCurrency: 'eth',
          actuallyPaid: arrived ? actuallyPaid : '0',
          outcomeAmount: arrived ? outcomeAmount : '0',
        });
        paymentId = payment.payment_id;
        const answer = await fake.sendIpn(payment, { callbackUrl });
        sent.push({ payment_status: status, http_status: answer.status, answer: safeJson(answer.body) });
      }
      return {
        order_id: orderId,
        payment_id: paymentId === null ? null : String(paymentId),
        sent,
        status_page: `${deps.publicBaseUrl()}/pay/success?order_id=${encodeURIComponent(orderId)}&token=${signStatusToken(deps.statusTokenSecret, orderId)}`,
      };
    },
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
