import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChannel } from '../src/channels/channel-admin.service.js';
import { createChannelSchema } from '../src/channels/channel.schema.js';
import type { NpFacts } from '../src/machines/payment.events.js';
import { insertEffectJobs } from '../src/persistence/effect-jobs.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { queueOf } from '../src/persistence/queues.js';
import { inTransaction } from '../src/persistence/transaction.js';
import { insertOrder } from '../src/orders/orders.repo.js';
import { journalOf, paymentRow, startTestEngine, type TestEngine } from './support/engine.js';

// The cheap path of a transition: routing decided inside the transaction that confirms the payment,
// and every job of a transition written by one named statement that must write what pg-boss writes.

let t: TestEngine;
let seq = 0;
const newPaymentId = () => `${Date.now()}${String(++seq).padStart(3, '0')}`;

async function seedOrder(strategy: 'instant' | 'threshold') {
  const openChannelId = `-10077${++seq}`;
  await createChannel(
    t.db.pool,
    createChannelSchema.parse({
      open_channel_id: openChannelId,
      closed_channel_id: `${openChannelId}0`,
      title: 'inline',
      wallet_address: '0x52908400098527886E0F7030069857D2E4169EE7',
      currency: 'usdt',
      network: 'eth',
      strategy,
      ...(strategy === 'threshold' ? { threshold_usd: '100' } : {}),
      platform_fee_percent: '10',
      plans: [{ plan_id: `${openChannelId}-m`, price_usd: '10', title: 'month', duration_days: 30 }],
    }),
  );
  const orderId = `ord_inline_${++seq}`;
  await insertOrder(t.db.pool, { orderId, buyerTelegramId: '42', openChannelId, planId: `${openChannelId}-m`, priceUsd: '10', source: 'api' });
  return orderId;
}

const paid = (orderId: string): NpFacts => ({ orderId, payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' });

const jobsOf = async (paymentId: string) =>
  (await t.db.pool.query<{ name: string }>(`SELECT name FROM pgboss.job WHERE data->>'paymentId' = $1 ORDER BY name`, [paymentId])).rows.map((r) => r.name);

beforeAll(async () => {
  t = await startTestEngine({ inline: true });
});
afterAll(async () => {
  await t.close();
});

describe('routing inside the confirming transaction', () => {
  it('np.finished returns already routed: two journal rows, the order claimed, invite and payout jobs queued, no route job', async () => {
    const orderId = await seedOrder('threshold');
    const paymentId = newPaymentId();
    const result = await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn' });
    expect(result).toMatchObject({ outcome: 'applied', version: 2, state: 'routed' });
    expect((await journalOf(t.db, paymentId)).map((j) => [j.seq, j.event_type, j.source])).toEqual([
      [1, 'np.finished', 'ipn'],
      [2, 'route.done', 'actor:route'],
    ]);
    expect(await jobsOf(paymentId)).toEqual([queueOf('accumulate'), queueOf('invite')]);
    const { rows } = await t.db.pool.query('SELECT granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
    expect(rows[0].granted_payment_id).toBe(paymentId);
    // A replay changes nothing and queues nothing.
    expect(await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn' })).toMatchObject({ outcome: 'duplicate', version: 2 });
    expect(await jobsOf(paymentId)).toHaveLength(2);
  });

  it('a rejection parks the payment in the same transaction and queues nothing', async () => {
    const paymentId = newPaymentId();
    const result = await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid('ord_nobody_made') }, { source: 'ipn' });
    expect(result).toMatchObject({ outcome: 'applied', version: 2, state: 'needs_review' });
    expect(await jobsOf(paymentId)).toEqual([]);
  });

  it('when the transaction fails after routing, nothing of it stays: not the payment, not the claim, not the jobs', async () => {
    const orderId = await seedOrder('instant');
    const paymentId = newPaymentId();
    await expect(
      inTransaction(t.db.pool, async (tx) => {
        const applied = await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn', tx });
        expect(applied).toMatchObject({ outcome: 'applied', state: 'routed' });
        throw new Error('the caller fails after the engine wrote');
      }),
    ).rejects.toThrow('the caller fails');
    expect(await paymentRow(t.db, paymentId)).toBeNull();
    expect(await jobsOf(paymentId)).toEqual([]);
    const { rows } = await t.db.pool.query('SELECT granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
    expect(rows[0].granted_payment_id).toBeNull();
    // Applied again (the IPN's retry), it routes as if the first never happened.
    expect(await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 2, state: 'routed' });
    expect(await jobsOf(paymentId)).toEqual([queueOf('invite'), queueOf('split')]);
  });

  it('the same finished IPN applied 10 times at once: one transition, one claim, one job per effect', async () => {
    const orderId = await seedOrder('instant');
    const paymentId = newPaymentId();
    const results = await Promise.all(Array.from({ length: 10 }, () => t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn' })));
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    expect((await journalOf(t.db, paymentId)).map((j) => j.seq)).toEqual([1, 2]);
    expect(await jobsOf(paymentId)).toEqual([queueOf('invite'), queueOf('split')]);
  });
});

describe('effect jobs in one named statement', () => {
  // Every column pg-boss derives for a job; ids, timestamps and the payload differ by construction.
  const COLUMNS = `name, priority, state, retry_limit, retry_count, retry_delay, retry_backoff, retry_delay_max, expire_seconds,
    deletion_seconds, singleton_key, singleton_on, group_id, group_tier, policy, dead_letter, heartbeat_seconds, blocked, blocking,
    pending_dependencies, output, extract(epoch FROM keep_until - start_after)::int AS retention, start_after <= now() AS runnable`;

  it('writes the row pg-boss send() writes, for every effect queue', async () => {
    for (const effect of ['invite', 'split', 'settle', 'accumulate'] as const) {
      const ours = newPaymentId();
      const theirs = newPaymentId();
      await insertEffectJobs(t.db.pool, ours, [{ effect, attempt: 0 }]);
      await t.boss.send(queueOf(effect), { paymentId: theirs, effect, attempt: 0 }, { id: effectJobId(theirs, effect, 0) });
      const row = async (paymentId: string) =>
        (await t.db.pool.query(`SELECT ${COLUMNS}, id FROM pgboss.job WHERE data->>'paymentId' = $1`, [paymentId])).rows;
      const [a] = await row(ours);
      const [b] = await row(theirs);
      expect(a.id).toBe(effectJobId(ours, effect, 0));
      expect({ ...a, id: undefined }).toEqual({ ...b, id: undefined });
    }
  });

  it('refuses a second job for the same payment, effect and attempt, even after completion', async () => {
    const paymentId = newPaymentId();
    await insertEffectJobs(t.db.pool, paymentId, [{ effect: 'invite', attempt: 0 }]);
    await t.db.pool.query(`UPDATE pgboss.job SET state = 'completed' WHERE id = $1`, [effectJobId(paymentId, 'invite', 0)]);
    await insertEffectJobs(t.db.pool, paymentId, [{ effect: 'invite', attempt: 0 }, { effect: 'invite', attempt: 1 }]);
    const { rows } = await t.db.pool.query(`SELECT data->>'attempt' AS attempt, state FROM pgboss.job WHERE data->>'paymentId' = $1 ORDER BY 1`, [paymentId]);
    expect(rows).toEqual([
      { attempt: '0', state: 'completed' },
      { attempt: '1', state: 'created' },
    ]);
  });

  it('wakes a waiting worker at once (NOTIFY), not at its next poll', async () => {
    const [first, second] = [newPaymentId(), newPaymentId()];
    const queue = queueOf('settle');
    const seen: string[] = [];
    let next: (id: string) => void = () => {};
    const picked = () => new Promise<string>((resolve) => (next = resolve));
    let firstPicked = picked();
    await t.db.pool.query('DELETE FROM pgboss.job WHERE name = $1', [queue]); // jobs earlier tests left there
    await insertEffectJobs(t.db.pool, first, [{ effect: 'settle', attempt: 0 }]);
    // A poll interval far beyond the test's timeout: after its first batch the worker sleeps, and only
    // the notification of the second insert can wake it in time.
    await t.boss.work<{ paymentId: string }>(queue, { pollingIntervalSeconds: 600, notifyPollingIntervalSeconds: 600 }, async ([job]) => {
      seen.push(job!.data.paymentId);
      next(job!.data.paymentId);
    });
    expect(await firstPicked).toBe(first);
    firstPicked = picked();
    await insertEffectJobs(t.db.pool, second, [{ effect: 'settle', attempt: 0 }]);
    expect(await firstPicked).toBe(second);
    expect(seen).toEqual([first, second]);
    await t.boss.offWork(queue);
  });
});
