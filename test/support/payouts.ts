import { randomUUID } from 'node:crypto';
import { Wallet } from 'ethers';
import { expect, vi } from 'vitest';
import type { PaymentEvent, PayoutStrategy } from '../../src/machines/payment.events.js';
import type { TestService } from './service.js';

// Payments that reach the payout region the way the engine gets them there: a finished IPN with
// NowPayments' outcome, then the route decision, both through applyEvent. Channels, plans and orders
// are rows as the admin API and the order service write them.

let counter = 0;

export interface PayoutChannel {
  openChannelId: string;
  planId: string;
  owner: string;
  currency: string;
  network: string;
  strategy: PayoutStrategy;
}

export async function seedPayoutChannel(
  t: TestService,
  o: { strategy: PayoutStrategy; currency?: string; network?: string; thresholdUsd?: string; feePercent?: string },
): Promise<PayoutChannel> {
  counter += 1;
  const n = (Date.now() % 1_000_000_000) * 100 + counter;
  const openChannelId = String(-1_000_000_000_000 - n);
  const owner = Wallet.createRandom().address;
  const currency = o.currency ?? 'usdt';
  const network = o.network ?? 'eth';
  await t.db.pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd, platform_fee_percent)
     VALUES ($1, $2, 'Payout channel', $3, $4, $5, $6, $7, $8)`,
    [openChannelId, String(-2_000_000_000_000 - n), owner, currency, network, o.strategy, o.thresholdUsd ?? null, o.feePercent ?? '10'],
  );
  const planId = `plan-${randomUUID().slice(0, 8)}`;
  await t.db.pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', '10.00', 30)`, [planId, openChannelId]);
  return { openChannelId, planId, owner, currency, network, strategy: o.strategy };
}

export interface PaidFacts {
  outcomeAmount?: string;
  actuallyPaid?: string;
}

/** A new order of the channel, paid (finished, with NowPayments' outcome in ETH) and routed. */
export async function payAndRoute(t: TestService, channel: PayoutChannel, facts: PaidFacts = {}): Promise<string> {
  counter += 1;
  const orderId = `ord_payout_${counter}_${randomUUID().slice(0, 8)}`;
  const paymentId = `${Date.now()}${counter}${Math.floor(Math.random() * 1000)}`;
  const buyer = String(50_000_000 + counter);
  await t.db.pool.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ($1, $2, $3, $4, '10.00', 'api')`, [
    orderId,
    buyer,
    channel.openChannelId,
    channel.planId,
  ]);
  const finished: PaymentEvent = {
    type: 'np.finished',
    facts: {
      orderId,
      payAmount: '0.0034',
      actuallyPaid: facts.actuallyPaid ?? '0.0034',
      payCurrency: 'eth',
      priceAmount: '10',
      priceCurrency: 'usd',
      outcomeAmount: facts.outcomeAmount ?? '0.0033',
      outcomeCurrency: 'eth',
    },
  };
  const { engine } = t.service;
  await engine.applyEvent(paymentId, finished, { source: 'ipn' });
  // Less than asked arrived: the payment waits in underpaid until an operator accepts it.
  if (facts.actuallyPaid && facts.actuallyPaid !== '0.0034') await engine.applyEvent(paymentId, { type: 'operator.accept_underpaid', by: 'test' }, { source: 'operator:test' });
  await engine.applyEvent(
    paymentId,
    {
      type: 'route.done',
      route: { orderId, channelId: channel.openChannelId, planId: channel.planId, buyerTelegramId: buyer, strategy: channel.strategy, ownerShareUsd: '9', feeUsd: '1' },
    },
    { source: 'actor:route' },
  );
  return paymentId;
}

export async function paymentState(t: TestService, paymentId: string) {
  const { rows } = await t.db.pool.query<{ state: string; payout: string | null; review: string | null }>(
    // A paid payment has left the routed state: its payout region was done.
    `SELECT state, CASE WHEN state = 'paid' THEN 'done' ELSE state_value->'routed'->>'payout' END AS payout, review_reason AS review
       FROM payments WHERE payment_id = $1`,
    [paymentId],
  );
  return rows[0]!;
}

export async function waitForPayout(t: TestService, paymentId: string, payout: string[], timeout = 30_000) {
  await vi.waitFor(async () => expect(payout).toContain((await paymentState(t, paymentId)).payout), { timeout, interval: 100 });
  return paymentState(t, paymentId);
}

/** Transactions the host wallet has had mined on the local chain. */
export async function hostTransactions(t: TestService): Promise<number> {
  const chain = t.service.sandbox.payouts!.chain;
  return Number(BigInt(await chain.request<string>('eth_getTransactionCount', [t.service.wallet.address, 'latest'])));
}
