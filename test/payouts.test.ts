import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checkBooks } from '../src/payouts/books.js';
import { startTestService, type TestService } from './support/service.js';
import { hostTransactions, payAndRoute, paymentState, seedPayoutChannel, waitForPayout } from './support/payouts.js';

// The money path end to end on real Postgres, a real local EVM chain and the wire-level ChangeNow fake:
// the service's own actors (split, settle, accumulate, the batch chain) and the invite actor, so a
// payment reaches `paid`.

let t: TestService;
beforeAll(async () => {
  t = await startTestService({}, { effects: ['invite', 'split', 'settle', 'accumulate'] });
});
afterAll(async () => {
  await t?.close();
});

const ledgerOf = async (paymentId: string) =>
  (await t.db.pool.query<{ kind: string; amount_units: string; payout_id: string | null }>('SELECT kind, amount_units::text, payout_id FROM ledger_entries WHERE payment_id = $1 ORDER BY kind', [paymentId])).rows;

describe('instant payouts', () => {
  it('swaps the owner share through ChangeNow, sends it once from the host wallet, and the payment reaches paid', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'usdt', network: 'eth' });
    const before = await hostTransactions(t);
    const paymentId = await payAndRoute(t, channel);
    await vi.waitFor(async () => expect((await paymentState(t, paymentId)).state).toBe('paid'), { timeout: 30_000, interval: 100 });

    expect(await hostTransactions(t)).toBe(before + 1);
    // 0.0033 ETH at a 10 % fee: 0.00297 to the owner (rounded down to the wei), the rest to the platform.
    expect(await ledgerOf(paymentId)).toEqual([
      { kind: 'payment_credit', amount_units: '2970000000000000', payout_id: `payment:${paymentId}` },
      { kind: 'platform_fee', amount_units: '330000000000000', payout_id: null },
    ]);
    const payout = (await t.db.pool.query('SELECT * FROM payouts WHERE payment_id = $1', [paymentId])).rows[0];
    expect(payout).toMatchObject({ status: 'settled', direct: false, exchange_status: 'finished' });
    const exchange = t.service.sandbox.payouts!.changeNow.exchanges.get(payout.exchange_id)!;
    expect(exchange.funded).toBe(true);
    // The owner really received the swap's USDT on the local chain.
    expect(await t.service.wallet.tokenBalanceOf(t.service.sandbox.payouts!.chain.usdt.address, channel.owner)).toBeGreaterThan(0n);
    expect((await checkBooks(t.db.pool)).problems.filter((p) => p.paymentId === paymentId)).toEqual([]);
  });

  it('pays an owner who wants ETH directly from the host wallet, exactly the share', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'eth', network: 'eth', feePercent: '2.5' });
    const paymentId = await payAndRoute(t, channel, { outcomeAmount: '0.001' });
    await waitForPayout(t, paymentId, ['done']);
    // 0.001 ETH at 2.5 %: 0.000975 ETH, to the wei.
    expect(await t.service.wallet.balanceOf(channel.owner)).toBe(975_000_000_000_000n);
    const payout = (await t.db.pool.query('SELECT direct, exchange_id, owner_payout_hash, tx_hash FROM payouts WHERE payment_id = $1', [paymentId])).rows[0];
    expect(payout).toMatchObject({ direct: true, exchange_id: null });
    expect(payout.owner_payout_hash).toBe(payout.tx_hash);
  });

  it('an accepted underpayment pays the owner from what arrived, not from the price', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'eth', network: 'eth' });
    const paymentId = await payAndRoute(t, channel, { outcomeAmount: '0.0015', actuallyPaid: '0.0017' });
    await waitForPayout(t, paymentId, ['done']);
    const credit = (await ledgerOf(paymentId)).find((e) => e.kind === 'payment_credit')!;
    expect(credit.amount_units).toBe('1350000000000000');
    const usd = (await t.db.pool.query(`SELECT usd_value::text FROM ledger_entries WHERE payment_id = $1 AND kind = 'payment_credit'`, [paymentId])).rows[0].usd_value;
    // Half the invoice arrived: 5 USD worth, 4.5 to the owner.
    expect(Number(usd)).toBeCloseTo(4.5, 6);
  });
});

describe('threshold payouts', () => {
  it('20 concurrent payments crossing the threshold together: each credit in at most one batch, batches paid, books exact to the wei', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'threshold', currency: 'usdt', network: 'eth', thresholdUsd: '50' });
    await Promise.all(Array.from({ length: 20 }, () => payAndRoute(t, channel)));
    // 9 USD per payment for the owner: a batch claims the open credits once they are worth 50 USD. What
    // may never happen is a credit in two batches, a claimed credit outside a batch, or open credits left
    // worth the threshold.
    const credits = async () =>
      (
        await t.db.pool.query<{ payment_id: string; payout_id: string | null; amount_units: string; usd_value: string }>(
          `SELECT payment_id, payout_id, amount_units::text, usd_value::text FROM ledger_entries WHERE open_channel_id = $1 AND kind = 'payment_credit'`,
          [channel.openChannelId],
        )
      ).rows;
    const batchesOf = async () =>
      (await t.db.pool.query<{ batch_id: string; total_units: string; entry_count: number; status: string }>(
        'SELECT batch_id, total_units::text, entry_count, status FROM payout_batches WHERE open_channel_id = $1', [channel.openChannelId])).rows;
    await vi.waitFor(
      async () => {
        expect(await credits()).toHaveLength(20);
        const batches = await batchesOf();
        expect(batches.length).toBeGreaterThan(0);
        expect(batches.every((b) => b.status === 'settled')).toBe(true);
        const claimed = (await credits()).filter((c) => c.payout_id !== null).map((c) => c.payment_id);
        const { rows } = await t.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM payments WHERE payment_id = ANY($1) AND state = 'paid'`, [claimed]);
        expect(rows[0]!.n).toBe(claimed.length);
      },
      { timeout: 60_000, interval: 200 },
    );
    const all = await credits();
    const batches = await batchesOf();
    let batched = 0;
    for (const batch of batches) {
      const mine = all.filter((c) => c.payout_id === `batch:${batch.batch_id}`);
      expect(mine).toHaveLength(batch.entry_count);
      expect(mine.reduce((sum, c) => sum + BigInt(c.amount_units), 0n)).toBe(BigInt(batch.total_units));
      expect(mine.reduce((sum, c) => sum + Number(c.usd_value), 0)).toBeGreaterThanOrEqual(50);
      batched += mine.length;
    }
    const open = all.filter((c) => c.payout_id === null);
    // Every credit is open or in exactly one batch (payout_id is one value), and nothing claimable is left behind.
    expect(batched + open.length).toBe(20);
    expect(open.reduce((sum, c) => sum + Number(c.usd_value), 0)).toBeLessThan(50);
    // Each payment checks the threshold right after its commit and a claim takes every open credit, so a
    // batch holds at least the 6 credits worth 50 USD and at most those plus the ones that committed
    // while it was being claimed (20 payments committed together can make one batch of 180 USD).
    for (const batch of batches) expect(batch.entry_count).toBeGreaterThanOrEqual(6);
    const waiting = await t.db.pool.query<{ state: string }>('SELECT state FROM payments WHERE payment_id = ANY($1)', [open.map((c) => c.payment_id)]);
    expect(waiting.rows.every((r) => r.state === 'accumulated')).toBe(true);
    const books = await checkBooks(t.db.pool);
    expect(books.problems).toEqual([]);
    expect(books.balanced).toBe(true);
  }, 90_000);
});
