import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { queueOf } from '../src/persistence/queues.js';
import { startTestService, type TestService } from './support/service.js';
import { hostTransactions, payAndRoute, paymentState, seedPayoutChannel, waitForPayout } from './support/payouts.js';

// Provider faults on the money path, with the service's own actors: outages are retried and end in
// `paid` with one transaction; refusals and lost exchanges park the payout with the reason and wait for
// an operator, whose retry resumes it through applyEvent. Replays of every payout event change nothing.

let t: TestService;
beforeAll(async () => {
  t = await startTestService({ JOB_RETRY_LIMIT: '6' }, { effects: ['invite', 'split', 'settle', 'accumulate'] });
});
afterAll(async () => {
  await t?.close();
});

const fake = () => t.service.sandbox.payouts!.changeNow;
const chain = () => t.service.sandbox.payouts!.chain;
const retry = (paymentId: string) => t.service.engine.applyEvent(paymentId, { type: 'operator.retry', by: 'ops' }, { source: 'operator:ops' });
const payoutRow = async (paymentId: string) => (await t.db.pool.query('SELECT * FROM payouts WHERE payment_id = $1', [paymentId])).rows[0];

async function jobRetried(queue: string, paymentId: string) {
  await vi.waitFor(
    async () => {
      const { rows } = await t.db.pool.query<{ retry_count: number }>(`SELECT retry_count FROM pgboss.job WHERE name = $1 AND data->>'paymentId' = $2`, [queue, paymentId]);
      expect(rows[0]?.retry_count ?? 0).toBeGreaterThan(0);
    },
    { timeout: 20_000, interval: 50 },
  );
}

describe('payout provider faults', () => {
  it('ChangeNow 5xx and a lost POST /exchange answer: retried, paid once, one exchange funded', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant' });
    const before = await hostTransactions(t);
    const exchangesBefore = fake().exchangeCount();
    const fundedBefore = fake().fundedCount();
    fake().faults.failNext('estimated-amount', 2, '500');
    fake().faults.failNext('create-exchange', 1, 'after-create-timeout');
    const paymentId = await payAndRoute(t, channel);
    await waitForPayout(t, paymentId, ['done'], 40_000);
    expect(await hostTransactions(t)).toBe(before + 1);
    expect(fake().exchangeCount()).toBe(exchangesBefore + 2); // the orphan whose answer was lost, and the one used
    expect(fake().fundedCount()).toBe(fundedBefore + 1);
  }, 60_000);

  it('the Ethereum node is down, then back: the send is retried with the same transaction and the payment is paid', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'eth' });
    const before = await hostTransactions(t);
    await chain().faults.down(true);
    let paymentId: string;
    try {
      paymentId = await payAndRoute(t, channel);
      await jobRetried(queueOf('split'), paymentId);
    } finally {
      await chain().faults.down(false);
    }
    await waitForPayout(t, paymentId, ['done'], 40_000);
    expect(await hostTransactions(t)).toBe(before + 1);
  }, 60_000);

  it('an exchange that ends refunded parks the payout with the reason; nothing is sent again', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant' });
    const before = await hostTransactions(t);
    fake().setOutcome('next', 'refunded');
    const paymentId = await payAndRoute(t, channel);
    const parked = await waitForPayout(t, paymentId, ['review']);
    expect(parked.state).toBe('needs_review');
    expect(parked.review).toMatch(/payout: ChangeNow exchange \w+ ended refunded \(refund transaction 0x/);
    expect((await payoutRow(paymentId)).status).toBe('review');
    // An operator retry re-checks the same exchange: still refunded, parked again; the host sent once.
    await retry(paymentId);
    await vi.waitFor(async () => expect((await paymentState(t, paymentId)).payout).toBe('review'), { timeout: 20_000, interval: 100 });
    expect(await hostTransactions(t)).toBe(before + 1);
  }, 60_000);

  it('a failed exchange parks the payout too', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant' });
    fake().setOutcome('next', 'failed');
    const paymentId = await payAndRoute(t, channel);
    expect((await waitForPayout(t, paymentId, ['review'])).review).toMatch(/ended failed/);
  });

  it('ChangeNow answers something unreadable: parked with the reason (never funded on a guess); an operator retry pays it', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant' });
    fake().faults.failNext('estimated-amount', 1, 'garbage');
    const paymentId = await payAndRoute(t, channel);
    const parked = await waitForPayout(t, paymentId, ['review'], 20_000);
    expect(parked.review).toMatch(/payout: ChangeNow did not create the exchange/);
    await retry(paymentId);
    await waitForPayout(t, paymentId, ['done'], 30_000);
  }, 60_000);

  it('the host wallet cannot pay the gas: parked as insufficient funds, paid after funding and a retry', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'eth' });
    const host = t.service.wallet.address;
    const balance = await t.service.wallet.balanceOf(host);
    await chain().setBalance(host, 1000n);
    let paymentId: string;
    try {
      paymentId = await payAndRoute(t, channel);
      expect((await waitForPayout(t, paymentId, ['review'])).review).toMatch(/host wallet could not send/);
    } finally {
      await chain().setBalance(host, balance);
    }
    await retry(paymentId);
    await waitForPayout(t, paymentId, ['done'], 30_000);
  }, 60_000);

  it('50 concurrent replays of every payout event change nothing once paid, and never send again', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'instant' });
    const paymentId = await payAndRoute(t, channel);
    await waitForPayout(t, paymentId, ['done']);
    const before = await hostTransactions(t);
    const version = (await t.db.pool.query('SELECT version FROM payments WHERE payment_id = $1', [paymentId])).rows[0].version;
    const payout = await payoutRow(paymentId);
    const events: PaymentEvent[] = [
      { type: 'split.done', exchangeId: payout.exchange_id, txHash: payout.tx_hash },
      { type: 'payout.settled', txHash: payout.owner_payout_hash, payoutId: payout.payout_id },
      { type: 'payout.failed', reason: 'late' },
      { type: 'batch.paid', batchId: 'none' },
      { type: 'accumulate.done', ledgerEntryId: '1' },
    ];
    const results = await Promise.all(events.flatMap((event) => Array.from({ length: 50 }, () => t.service.engine.applyEvent(paymentId, event, { source: 'test' }))));
    expect(results.every((r) => r.outcome === 'duplicate')).toBe(true);
    expect((await t.db.pool.query('SELECT version FROM payments WHERE payment_id = $1', [paymentId])).rows[0].version).toBe(version);
    // And the split step itself, run 50 times at once for the paid payment: the stored payout answers.
    const { createSplitActor } = await import('../src/actors/payouts/split.actor.js');
    const split = createSplitActor({ pool: t.db.pool, payouts: t.service.payouts });
    const answers = await Promise.all(Array.from({ length: 50 }, () => split.perform({ paymentId, effect: 'split', attempt: 0 }, undefined as never)));
    expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
    expect(await hostTransactions(t)).toBe(before);
  });
});
