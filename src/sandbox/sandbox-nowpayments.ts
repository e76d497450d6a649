import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Decimal } from 'decimal.js';
import { gte } from '../domain/money.js';
import { NotFoundError } from '../domain/errors.js';
import { createNowPaymentsClient, type NowPaymentsClient } from '../nowpayments/client.js';
import type { PaymentStatus } from '../nowpayments/ipn.schema.js';
import { signStatusToken } from '../orders/status-token.js';
import { startFakeNowPayments, type FakeNowPayments } from './nowpayments.fake.js';

// Sandbox mode (no NowPayments credentials, not production): the fake NowPayments runs in-process with
// random credentials, the engine talks to it over HTTP exactly as it would to api.nowpayments.io, and
// POST /sandbox/orders/:order_id/pay plays the buyer: the fake pays the order's invoice and sends the
// signed IPN sequence to our real webhook.

export interface SandboxNowPayments {
  fake: FakeNowPayments;
  client: NowPaymentsClient;
  ipnSecret: string;
  stop(): Promise<void>;
}

export async function startSandboxNowPayments(): Promise<SandboxNowPayments> {
  const apiKey = randomBytes(24).toString('base64url');
  const ipnSecret = randomBytes(32).toString('base64url');
  const fake = await startFakeNowPayments({ apiKey, ipnSecret });
  return { fake, client: createNowPaymentsClient({ baseUrl: fake.url, apiKey }), ipnSecret, stop: () => fake.close() };
}

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
}

export async function sandboxRoutes(app: FastifyInstance, deps: SandboxRouteDeps): Promise<void> {
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
      const inEth = (usd: string) => new Decimal(usd).div(SANDBOX_ETH_USD).toDecimalPlaces(8, Decimal.ROUND_UP).toFixed();
      const payAmount = inEth(invoice.price_amount);
      const actuallyPaid = paid === undefined ? payAmount : inEth(paid);
      const outcomeAmount = new Decimal(actuallyPaid).times(new Decimal(1).minus(NOWPAYMENTS_KEEPS)).toDecimalPlaces(18, Decimal.ROUND_DOWN).toFixed();
      for (const status of sequence) {
        const arrived = status !== 'waiting';
        const payment = fake.pay(invoice.id, {
          status,
          payCurrency: 'eth',
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
