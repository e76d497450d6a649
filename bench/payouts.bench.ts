import { randomUUID } from 'node:crypto';
import { Wallet } from 'ethers';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import type { PayoutStrategy } from '../src/machines/payment.events.js';
import { startService } from '../src/service.js';
import { fmt } from './support.js';

// Payouts through the whole path on the local EVM chain: paid payments are routed to an instant channel
// and the service's own actors credit the ledger, create the exchange at the (fake) ChangeNow, sign,
// store and broadcast the host wallet's transaction, wait for its receipt and the exchange, and book the
// payout. Closed loop: all payments are released at once and the clock stops when the last one is done.
// Reported as payouts/s and per-payout costs (Postgres transactions from pg_stat_database, host
// transactions on chain), beside the raw Postgres limit measured in the same run by the engine bench.

export interface PayoutBenchResult {
  payouts: number;
  seconds: number;
  perSecond: number;
  hostTransactions: number;
  xactsPerPayout: number;
}

export async function benchPayouts(databaseUrl: string, options: { count: number; currency: 'usdt' | 'eth' }): Promise<PayoutBenchResult> {
  const config = loadConfig({ NODE_ENV: 'test', PORT: '0', LOG_LEVEL: 'silent', DATABASE_URL: databaseUrl, RECONCILE_EVERY: '0 0 1 1 *', JOB_RETRY_DELAY: '1s', JOB_RETRY_DELAY_MAX: '2s' });
  const service = await startService(config, createLogger('silent'), { effects: ['split', 'settle'] });
  try {
    const { pool } = service.db;
    const channel = String(-1_009_000_000_000 - Math.floor(Math.random() * 1e6));
    const strategy: PayoutStrategy = 'instant';
    await pool.query(
      `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, platform_fee_percent)
       VALUES ($1, $2, 'Bench payouts', $3, $4, 'eth', $5, 10)`,
      [channel, String(Number(channel) - 1), Wallet.createRandom().address, options.currency, strategy],
    );
    await pool.query(`INSERT INTO plans (plan_id, open_channel_id, title, price_usd, duration_days) VALUES ($1, $2, '30 days', '10.00', 30)`, [`bench-${channel}`, channel]);
    const ids = Array.from({ length: options.count }, (_, i) => ({ paymentId: `bench-payout-${channel}-${i}`, orderId: `ord_bench_${randomUUID()}` }));
    // Paid and routed before the clock starts; only the payout effects are measured.
    for (const { paymentId, orderId } of ids) {
      await pool.query(`INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source) VALUES ($1, 42, $2, $3, '10.00', 'api')`, [orderId, channel, `bench-${channel}`]);
      await service.engine.applyEvent(paymentId, { type: 'np.finished', facts: { orderId, payAmount: '0.0034', actuallyPaid: '0.0034', payCurrency: 'eth', priceAmount: '10', priceCurrency: 'usd', outcomeAmount: '0.0033', outcomeCurrency: 'eth' } }, { source: 'bench' });
    }
    const chain = service.sandbox.payouts!.chain;
    const hostCount = async () => Number(BigInt(await chain.request<string>('eth_getTransactionCount', [service.wallet.address, 'latest'])));
    const hostBefore = await hostCount();
    const xactsBefore = Number((await pool.query(`SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()`)).rows[0].n);
    const started = performance.now();
    await Promise.all(
      ids.map(({ paymentId, orderId }) =>
        service.engine.applyEvent(paymentId, { type: 'route.done', route: { orderId, channelId: channel, planId: `bench-${channel}`, buyerTelegramId: '42', strategy, ownerShareUsd: '9', feeUsd: '1' } }, { source: 'bench' }),
      ),
    );
    // Bounded: a payout that never settles ends the bench with what was done.
    const deadline = started + 120_000;
    let done = 0;
    while (performance.now() < deadline) {
      done = Number((await pool.query(`SELECT count(*) AS n FROM payouts WHERE open_channel_id = $1 AND status = 'settled'`, [channel])).rows[0].n);
      if (done >= options.count) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const seconds = (performance.now() - started) / 1000;
    const xacts = Number((await pool.query(`SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()`)).rows[0].n) - xactsBefore;
    const hostTransactions = (await hostCount()) - hostBefore;
    return { payouts: done, seconds, perSecond: done / seconds, hostTransactions, xactsPerPayout: xacts / Math.max(done, 1) };
  } finally {
    await service.close();
  }
}

export function describePayouts(label: string, r: PayoutBenchResult, rawTps: number): string {
  return `  ${label.padEnd(34)} ${fmt(r.perSecond, 1).padStart(6)} payouts/s (${r.payouts} in ${fmt(r.seconds, 1)} s)   ${fmt(r.perSecond / rawTps, 3)}x raw   ${r.hostTransactions} host transactions   ~${fmt(r.xactsPerPayout, 0)} Postgres transactions per payout`;
}
