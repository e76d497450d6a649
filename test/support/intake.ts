import { randomBytes } from 'node:crypto';
import type { EffectActor } from '../../src/actors/effect-actor.js';
import { IPN_PATH } from '../../src/http/routes/ipn.route.js';
import type { EffectName } from '../../src/machines/payment.events.js';
import { createNowPaymentsClient } from '../../src/nowpayments/client.js';
import { signStatusToken } from '../../src/orders/status-token.js';
import type { ServiceOptions } from '../../src/service.js';
import { startFakeNowPayments, type FakeNowPayments, type FakePayment } from '../../src/sandbox/nowpayments.fake.js';
import type { TestDatabase } from './database.js';
import { startTestService, type TestService } from './service.js';

export const API_KEY = 'intake-test-api-key';
export const IPN_SECRET = 'intake-test-ipn-secret';
export const STATUS_SECRET = 'intake-test-status-token-secret-0123456789';

export interface IntakeHarness {
  t: TestService;
  np: FakeNowPayments;
  webhook: string;
  close(): Promise<void>;
}

/**
 * An inline effect (route, accumulate) as a queued job that no worker takes: with it a payment stays
 * where a test puts it (confirmed after np.finished; routed with its payout waiting), where the service
 * would otherwise perform it inside the transition's transaction.
 */
export const notRun = (effect: EffectName): EffectActor => ({ effect, perform: () => Promise.reject(new Error(`${effect} is not run in this test`)) });
/** Every inline effect as such a job: for tests that move payments by hand (operators, intake alone). */
export const routeNotRun = notRun('route');
export const inlineNotRun = { route: routeNotRun, accumulate: notRun('accumulate') };

/** The service with no effect actors running (intake alone), pointed at a fake NowPayments with known credentials (not the sandbox). */
export async function startIntake(env: Record<string, string> = {}, options: ServiceOptions = { effects: [] }): Promise<IntakeHarness> {
  const np = await startFakeNowPayments({ apiKey: API_KEY, ipnSecret: IPN_SECRET });
  const t = await startTestService(
    { NOWPAYMENTS_API_URL: np.url, NOWPAYMENTS_API_KEY: API_KEY, NOWPAYMENTS_IPN_SECRET: IPN_SECRET, STATUS_TOKEN_SECRET: STATUS_SECRET, ...env },
    options,
  );
  return {
    t,
    np,
    webhook: `${t.url}${IPN_PATH}`,
    async close() {
      await t.close();
      await np.close();
    },
  };
}

let seq = 0;
export const uniqueId = (prefix: string): string => `${prefix}_${Date.now().toString(36)}${(++seq).toString(36)}${randomBytes(3).toString('hex')}`;

/**
 * An order as the orders module would have written it (channel, plan, order rows), with an invoice in the
 * fake NowPayments whose IPN callback is our webhook.
 */
export async function seedOrder(h: IntakeHarness, options: { withInvoice?: boolean; priceUsd?: string; createdAgoMs?: number } = {}) {
  const orderId = uniqueId('ord');
  const channelId = -1_000_000_000_000 - Math.floor(Math.random() * 1e9);
  const planId = uniqueId('plan');
  const price = options.priceUsd ?? '12.50';
  const pool = h.t.db.pool;
  await pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy)
     VALUES ($1, $2, 'Test channel', '0x0000000000000000000000000000000000000001', 'eth', 'eth', 'instant')`,
    [channelId, channelId - 1],
  );
  await pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', $3, 30)`, [planId, channelId, price]);
  let invoiceId: string | null = null;
  if (options.withInvoice ?? true) {
    const client = createNowPaymentsClient({ baseUrl: h.np.url, apiKey: API_KEY });
    const invoice = await client.createInvoice({
      priceAmount: price,
      priceCurrency: 'usd',
      orderId,
      orderDescription: '30 days',
      ipnCallbackUrl: h.webhook,
      successUrl: `${h.t.url}/pay/success?order_id=${orderId}`,
      cancelUrl: `${h.t.url}/pay/cancel`,
    });
    invoiceId = invoice.invoiceId;
  }
  await pool.query(
    `INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source, invoice_id, created_at)
     VALUES ($1, 4242, $2, $3, $4, 'api', $5, now() - make_interval(secs => $6::double precision / 1000))`,
    [orderId, channelId, planId, price, invoiceId, options.createdAgoMs ?? 0],
  );
  return { orderId, invoiceId, token: signStatusToken(STATUS_SECRET, orderId) };
}

/** Everything a read must not change: journal rows, payment versions, jobs, stored deliveries. */
export async function footprint(db: TestDatabase) {
  const { rows } = await db.pool.query<Record<string, string>>(`
    SELECT (SELECT count(*) FROM payment_journal) AS journal,
           (SELECT coalesce(sum(version), 0) FROM payments) AS versions,
           (SELECT count(*) FROM payments) AS payments,
           (SELECT count(*) FROM pgboss.job) AS jobs,
           (SELECT count(*) FROM ipn_deliveries) AS deliveries,
           (SELECT coalesce(max(updated_at)::text, '') FROM payments) AS last_update`);
  return rows[0]!;
}

export async function deliveriesOf(db: TestDatabase, paymentId: string) {
  const { rows } = await db.pool.query<{ id: string; status: string; problem: string | null; event_type: string | null; applied_version: number | null; attempts: number }>(
    'SELECT id, status, problem, event_type, applied_version, attempts FROM ipn_deliveries WHERE payment_id = $1 ORDER BY id',
    [paymentId],
  );
  return rows;
}

/** Reads a counter from the service's own /metrics endpoint. */
export async function metric(url: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

export const paymentIdOf = (p: FakePayment): string => String(p.payment_id);
