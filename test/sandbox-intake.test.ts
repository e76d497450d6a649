import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPN_PATH } from '../src/http/routes/ipn.route.js';
import { journalOf } from './support/engine.js';
import { inlineNotRun, startIntake, uniqueId } from './support/intake.js';
import { startTestService, type TestService } from './support/service.js';

// Sandbox: no NowPayments credentials, so the service runs against the in-process fake and offers a
// way to play the buyer. A newcomer's first run.

let t: TestService;
beforeAll(async () => {
  // The intake alone: no worker, and routing as a job nobody works (orders here have no channel).
  t = await startTestService({}, { effects: [], actors: inlineNotRun });
});
afterAll(async () => {
  await t.close();
});

/** What the orders module does on POST /api/orders: an order row and an invoice at (here: simulated) NowPayments. */
async function orderWithInvoice(price = '12.50') {
  const orderId = uniqueId('ord');
  const channelId = -1_000_000_000_000 - Math.floor(Math.random() * 1e9);
  await t.db.pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy)
     VALUES ($1, $2, 'Sandbox channel', '0x0000000000000000000000000000000000000001', 'eth', 'eth', 'instant')`,
    [channelId, channelId - 1],
  );
  const invoice = await t.service.nowPayments!.createInvoice({
    priceAmount: price, priceCurrency: 'usd', orderId, orderDescription: 'sandbox',
    ipnCallbackUrl: `${t.url}${IPN_PATH}`, successUrl: `${t.url}/pay/success`, cancelUrl: `${t.url}/pay/cancel`,
  });
  await t.db.pool.query(
    `INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, price_usd, source, invoice_id) VALUES ($1, 4242, $2, $3, 'api', $4)`,
    [orderId, channelId, price, invoice.invoiceId],
  );
  return orderId;
}

const pay = (orderId: string, body?: unknown) =>
  fetch(`${t.url}/sandbox/orders/${orderId}/pay`, { method: 'POST', ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}) });

describe('sandbox', () => {
  it('runs without NowPayments credentials against the simulated NowPayments', () => {
    expect(t.service.runtime.sandbox).toBe(true);
    expect(t.service.nowPayments).toBeDefined();
    expect(t.service.ipnSecret).toMatch(/.{32,}/);
  });

  it('POST /sandbox/orders/:order_id/pay sends signed IPNs to the real webhook and the payment is confirmed', async () => {
    const orderId = await orderWithInvoice();
    const res = await pay(orderId);
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { payment_id: string; sent: Array<{ payment_status: string; http_status: number; answer: { status: string } }>; status_page: string };
    expect(answer.sent.map((s) => [s.payment_status, s.http_status, s.answer.status])).toEqual([
      ['waiting', 200, 'applied'],
      ['confirming', 200, 'applied'],
      ['finished', 200, 'applied'],
    ]);
    expect((await journalOf(t.db, answer.payment_id)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming', 'np.finished']);

    // The link it hands back is the buyer's success page, with a token the status API accepts.
    const page = new URL(answer.status_page);
    expect(page.pathname).toBe('/pay/success');
    const status = await fetch(`${t.url}/api/payment-status${page.search}`);
    expect(await status.json()).toMatchObject({ order_id: orderId, state: 'confirmed', step: 'confirmed' });
  });

  it('can simulate an underpayment', async () => {
    const orderId = await orderWithInvoice();
    const answer = (await (await pay(orderId, { actually_paid: '5' })).json()) as { sent: Array<{ payment_status: string }>; status_page: string };
    expect(answer.sent.at(-1)?.payment_status).toBe('partially_paid');
    const status = await fetch(`${t.url}/api/payment-status${new URL(answer.status_page).search}`);
    expect(await status.json()).toMatchObject({ step: 'underpaid' });
  });

  it('says what to do for an order the simulated NowPayments has no invoice for', async () => {
    const res = await pay('ord_nothing_here');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ message: expect.stringMatching(/Create the order first \(POST \/api\/orders\)/) });
  });

  it('is not there outside the sandbox', async () => {
    const real = await startIntake();
    try {
      expect(real.t.service.runtime.sandbox).toBe(false);
      expect((await fetch(`${real.t.url}/sandbox/orders/x/pay`, { method: 'POST' })).status).toBe(404);
    } finally {
      await real.close();
    }
  });
});
