import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
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

const payBody = z
  .object({
    /** Pay less than asked to see the underpaid path (decimal string in the pay currency). */
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
      for (const status of sequence) {
        const payment = fake.pay(invoice.id, { status, ...(paid !== undefined && status !== 'waiting' ? { actuallyPaid: paid } : {}) });
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
