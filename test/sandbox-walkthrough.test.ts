import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from './support/service.js';

// The README's sandbox walkthrough, call for call, against the whole service with no provider
// credentials: a channel per payout strategy, an order, the simulated buyer paying it, and the payment
// ending `paid` with the owner's payout as a real transaction on the local chain.

const ADMIN = 'change-me-change-me-change-me';
let t: TestService;
beforeAll(async () => {
  t = await startTestService({ ADMIN_TOKEN: ADMIN });
});
afterAll(async () => {
  await t?.close();
});

async function call(method: string, path: string, body?: unknown, admin = false) {
  const res = await fetch(`${t.url}${path}`, {
    method,
    headers: { ...(body !== undefined && { 'content-type': 'application/json' }), ...(admin && { authorization: `Bearer ${ADMIN}` }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const channel = (id: string, strategy: 'instant' | 'threshold') => ({
  open_channel_id: id,
  closed_channel_id: `-2${id.slice(2)}`,
  title: 'Signals',
  wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
  currency: 'usdt',
  network: 'eth',
  strategy,
  ...(strategy === 'threshold' && { threshold_usd: '5' }),
  platform_fee_percent: '10',
  // The README's plan, in both channels: plan ids are unique per channel.
  plans: [{ plan_id: 'month', title: '1 month', price_usd: '9.99', duration_days: 30 }],
});

describe('the README sandbox walkthrough', () => {
  for (const [id, strategy] of [['-1001', 'instant'], ['-1002', 'threshold']] as const) {
    it(`${strategy}: channel, order, the buyer pays, and the payment ends paid with a transaction on the local chain`, async () => {
      expect((await call('POST', '/admin/channels', channel(id, strategy), true)).status).toBe(201);
      const order = await call('POST', '/api/orders', { telegram_user_id: '42', open_channel_id: id, plan_id: 'month' });
      expect(order.status).toBe(201);
      const paid = await call('POST', `/sandbox/orders/${order.json.order_id as string}/pay`, {});
      expect(paid.status).toBe(200);
      const paymentId = paid.json.payment_id as string;
      await vi.waitFor(
        async () => expect(((await call('GET', `/admin/payments/${paymentId}`, undefined, true)).json.payment as { state: string }).state).toBe('paid'),
        { timeout: 30_000, interval: 200 },
      );
      // The ledger names the payout that settled this payment's share (its own, or the batch's).
      const entries = (await call('GET', `/admin/ledger?channel=${id}`, undefined, true)).json.entries as Array<{ kind: string; paymentId: string; payoutId: string }>;
      const payoutId = entries.find((e) => e.kind === 'payment_credit' && e.paymentId === paymentId)!.payoutId;
      expect(payoutId).toEqual(strategy === 'instant' ? `payment:${paymentId}` : expect.stringMatching(/^batch:/));
      const detail = (await call('GET', `/admin/payouts/${encodeURIComponent(payoutId)}`, undefined, true)).json;
      expect(detail.payout).toMatchObject({ status: 'settled' });
      const tx = detail.transaction as { tx_hash: string; nonce: string; live: { state: string; confirmations: number } };
      expect(tx.live.state).toBe('confirmed');
      const receipt = await t.service.sandbox.payouts!.chain.request<{ status: string } | null>('eth_getTransactionReceipt', [tx.tx_hash]);
      expect(receipt?.status).toBe('0x1');
      const books = (await call('GET', '/admin/ledger/check', undefined, true)).json;
      expect(books.balanced).toBe(true);
    });
  }
});
