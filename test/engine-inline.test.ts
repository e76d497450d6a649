import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { batchQueues, claimAndSchedule } from '../src/actors/payouts/batches.js';
import { createChannel } from '../src/channels/channel-admin.service.js';
import { createChannelSchema } from '../src/channels/channel.schema.js';
import type { NpFacts } from '../src/machines/payment.events.js';
import { inlineEffects } from '../src/actors/index.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { effectJobsJson, insertEffectJobs } from '../src/persistence/effect-jobs.js';
import { composeWrite, UPDATE_IF_VERSION } from '../src/persistence/transition-statements.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { queueOf } from '../src/persistence/queues.js';
import { inTransaction } from '../src/persistence/transaction.js';
import { insertOrder } from '../src/orders/orders.repo.js';
import { journalOf, paymentRow, startTestEngine, type TestEngine } from './support/engine.js';
import { recordingPool } from './support/statements.js';

// The cheap path of a transition: routing decided inside the transaction that confirms the payment,
// and every job of a transition written by one named statement that must write what pg-boss writes.

let t: TestEngine;
let seq = 0;
const newPaymentId = () => `${Date.now()}${String(++seq).padStart(3, '0')}`;

async function seedChannel(strategy: 'instant' | 'threshold', thresholdUsd = '100') {
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
      ...(strategy === 'threshold' ? { threshold_usd: thresholdUsd } : {}),
      platform_fee_percent: '10',
      plans: [{ plan_id: `${openChannelId}-m`, price_usd: '10', title: 'month', duration_days: 30 }],
    }),
  );
  return openChannelId;
}

async function orderIn(openChannelId: string) {
  const orderId = `ord_inline_${++seq}`;
  await insertOrder(t.db.pool, { orderId, buyerTelegramId: '42', openChannelId, planId: `${openChannelId}-m`, priceUsd: '10', source: 'api' });
  return orderId;
}

async function seedOrder(strategy: 'instant' | 'threshold') {
  return orderIn(await seedChannel(strategy));
}

const paid = (orderId: string): NpFacts => ({ orderId, payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' });
/** Paid, with what arrived in the host wallet's currency: enough for the owner's share (9 USD of 10, fee 10%). */
const paidWithOutcome = (orderId: string): NpFacts => ({ ...paid(orderId), outcomeAmount: '0.004', outcomeCurrency: 'eth' });

const ledgerOf = async (paymentId: string) =>
  (await t.db.pool.query<{ kind: string; payout_id: string | null }>(`SELECT kind, payout_id FROM ledger_entries WHERE payment_id = $1 ORDER BY kind`, [paymentId])).rows;

const jobsOf = async (paymentId: string) =>
  (await t.db.pool.query<{ name: string }>(`SELECT name FROM pgboss.job WHERE data->>'paymentId' = $1 ORDER BY name`, [paymentId])).rows.map((r) => r.name);

beforeAll(async () => {
  t = await startTestEngine({ inline: true });
  // The service creates the threshold batches' queues at start; a claimed batch's job goes there.
  for (const [name, options] of Object.entries(batchQueues(5))) await t.boss.createQueue(name, options);
});
afterAll(async () => {
  await t.close();
});

describe('routing inside the confirming transaction', () => {
  it('np.finished returns already routed and, for a threshold channel, credited: three journal rows, the order claimed, the credit booked, only the invite queued', async () => {
    const orderId = await seedOrder('threshold');
    const paymentId = newPaymentId();
    const result = await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(orderId) }, { source: 'ipn' });
    expect(result).toMatchObject({ outcome: 'applied', version: 3, state: 'accumulated' });
    expect((await journalOf(t.db, paymentId)).map((j) => [j.seq, j.event_type, j.source])).toEqual([
      [1, 'np.finished', 'ipn'],
      [2, 'route.done', 'actor:route'],
      [3, 'accumulate.done', 'actor:accumulate'],
    ]);
    expect(await jobsOf(paymentId)).toEqual([queueOf('invite')]);
    expect(await ledgerOf(paymentId)).toEqual([
      { kind: 'payment_credit', payout_id: null },
      { kind: 'platform_fee', payout_id: null },
    ]);
    const { rows } = await t.db.pool.query('SELECT granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
    expect(rows[0].granted_payment_id).toBe(paymentId);
    // A replay changes nothing, books nothing and queues nothing.
    expect(await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(orderId) }, { source: 'ipn' })).toMatchObject({ outcome: 'duplicate', version: 3 });
    expect(await jobsOf(paymentId)).toHaveLength(1);
    expect(await ledgerOf(paymentId)).toHaveLength(2);
  });

  it("in the engine's own transaction the credit needs no savepoint: one BEGIN, no SAVEPOINT, one COMMIT", async () => {
    const { pool: recording, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool: recording, inline: inlineEffects({ boss: t.boss }) });
    const orderId = await seedOrder('threshold');
    const paymentId = newPaymentId();
    expect(await engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(orderId) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 3, state: 'accumulated' });
    expect(sent[0]).toBe('BEGIN');
    expect(sent.filter((s) => s === 'COMMIT')).toHaveLength(1);
    expect(sent.filter((s) => /SAVEPOINT|ROLLBACK/i.test(s))).toEqual([]);
    expect(await ledgerOf(paymentId)).toHaveLength(2);
    // The invite's job rides in the statement that writes the payment and its journal, and so does the
    // threshold check: the channel's claim lock is taken last, right before the commit, without
    // waiting and without a round trip of its own (free here: the check runs in the transaction;
    // nothing runs after the commit).
    expect(sent.slice(-2)).toEqual(['payment-insert-if-absent+jobs+batch-claim-try', 'COMMIT']);
    // The credit reuses the channel row routing read in the same transaction.
    expect(sent.filter((s) => s === 'channel-find')).toEqual([]);
    expect(sent.filter((s) => s.startsWith('order-'))).toEqual(['order-with-channel+claim']);
  });

  it('a threshold credit that cannot be booked (a ledger fault) becomes a job: the payment is routed and its invite queued all the same, nothing half-booked', async () => {
    const channel = await seedChannel('threshold');
    const orderId = await orderIn(channel);
    const paymentId = newPaymentId();
    // A real fault inside Postgres, for this channel only: every ledger insert fails.
    const fn = `fail_ledger_${++seq}`;
    await t.db.pool.query(`CREATE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'ledger is read-only'; END $$`);
    await t.db.pool.query(`CREATE TRIGGER ${fn} BEFORE INSERT ON ledger_entries FOR EACH ROW WHEN (NEW.open_channel_id = ${channel}) EXECUTE FUNCTION ${fn}()`);
    try {
      const result = await t.engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(orderId) }, { source: 'ipn' });
      expect(result).toMatchObject({ outcome: 'applied', version: 2, state: 'routed' });
      const journal = await t.db.pool.query<{ seq: number; event_type: string; effects: { effect: string }[] }>(
        'SELECT seq, event_type, effects FROM payment_journal WHERE payment_id = $1 ORDER BY seq', [paymentId]);
      expect(journal.rows.map((j) => [j.seq, j.event_type, j.effects.map((e) => e.effect).sort()])).toEqual([
        [1, 'np.finished', []],
        [2, 'route.done', ['accumulate', 'invite']],
      ]);
      expect(await jobsOf(paymentId)).toEqual([queueOf('accumulate'), queueOf('invite')]);
      expect(await ledgerOf(paymentId)).toEqual([]);
      const { rows } = await t.db.pool.query('SELECT granted_payment_id FROM orders WHERE order_id = $1', [orderId]);
      expect(rows[0].granted_payment_id).toBe(paymentId);
    } finally {
      await t.db.pool.query(`DROP TRIGGER ${fn} ON ledger_entries; DROP FUNCTION ${fn}()`);
    }
  });

  it('12 payments of one threshold channel confirmed at once: every credit is claimed at once into a batch worth the threshold, none twice, none left to the sweep', async () => {
    // 9 USD per payment for the owner, threshold 27. Claims take turns on the channel's lock and the
    // check that takes it last sees every committed credit (a payment that finds it busy checks after
    // its commit), so nothing is left to the periodic sweep (none runs).
    const channel = await seedChannel('threshold', '27');
    const orders = await Promise.all(Array.from({ length: 12 }, () => orderIn(channel)));
    const results = await Promise.all(orders.map((orderId) => t.engine.applyEvent(newPaymentId(), { type: 'np.finished', facts: paidWithOutcome(orderId) }, { source: 'ipn' })));
    expect(results.map((r) => [r.outcome, r.version, r.state])).toEqual(Array.from({ length: 12 }, () => ['applied', 3, 'accumulated']));
    const { rows: batches } = await t.db.pool.query<{ batch_id: string; entry_count: number; usd_value: string }>(
      'SELECT batch_id, entry_count, trim_scale(usd_value)::text AS usd_value FROM payout_batches WHERE open_channel_id = $1', [channel]);
    // A batch takes every open credit when it is claimed: at least three (27 USD), more when credits
    // committed while it was being claimed. Together they hold all twelve, each once.
    for (const batch of batches) expect(batch.entry_count * 9).toBe(Number(batch.usd_value));
    for (const batch of batches) expect(batch.entry_count).toBeGreaterThanOrEqual(3);
    expect(batches.reduce((n, b) => n + b.entry_count, 0)).toBeLessThanOrEqual(12);
    const { rows: open } = await t.db.pool.query(`SELECT 1 FROM ledger_entries WHERE open_channel_id = $1 AND kind = 'payment_credit' AND payout_id IS NULL`, [channel]);
    // Whatever is left open is below the threshold (the last payment's check saw it all).
    expect(open.length * 9).toBeLessThan(27);
    expect(batches.reduce((n, b) => n + b.entry_count, 0) + open.length).toBe(12);
    // Each batch's payment job was queued with its claim.
    const { rows: jobs } = await t.db.pool.query<{ batch: string }>(`SELECT data->>'batchId' AS batch FROM pgboss.job WHERE name = 'payout-batch' AND data->>'batchId' = ANY($1)`, [batches.map((b) => b.batch_id)]);
    expect(jobs).toHaveLength(batches.length);
  });

  /**
   * Another payment of the channel holds its claim lock (applied in a caller's transaction that stays
   * open, so its check waited for the lock in that transaction and holds it): a payment applied now
   * finds the lock busy, commits, and checks after its commit, waiting there for the holder.
   */
  async function withClaimLockHeld(channel: string, run: (waitForWaiter: () => Promise<void>, release: () => Promise<void>) => Promise<void>) {
    const holder = await t.db.pool.connect();
    try {
      await holder.query('BEGIN');
      expect(await t.engine.applyEvent(newPaymentId(), { type: 'np.finished', facts: paidWithOutcome(await orderIn(channel)) }, { source: 'ipn', tx: holder })).toMatchObject({ state: 'accumulated' });
      const waitForWaiter = () =>
        vi.waitFor(async () => {
          const { rows } = await t.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' AND query LIKE '%batch_claim_check%'`);
          expect(rows).toHaveLength(1);
        }, { timeout: 10_000, interval: 20 });
      await run(waitForWaiter, async () => void (await holder.query('COMMIT')));
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
    }
  }

  it('the claim lock busy at the end of the transaction: the check moves after the commit, waits there, and claims both credits at once', async () => {
    // Two credits of 9 USD make the threshold; the holder's check saw only its own.
    const channel = await seedChannel('threshold', '18');
    const paymentId = newPaymentId();
    const { pool: recording, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool: recording, inline: inlineEffects({ boss: t.boss }) });
    await withClaimLockHeld(channel, async (waitForWaiter, release) => {
      const applied = engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(await orderIn(channel)) }, { source: 'ipn' });
      await waitForWaiter();
      // Committed already: the payment is routed and credited while its check waits.
      expect(await paymentRow(t.db, paymentId)).toMatchObject({ state: 'accumulated' });
      await release();
      expect(await applied).toMatchObject({ outcome: 'applied', state: 'accumulated' });
    });
    // In the transaction: the credit, the payment with the lock tried (busy) in its statement, the
    // commit. After it: the lock waited for and the check, one statement; enough, so the claim and the
    // batch's job in a transaction of their own, under the lock again.
    const tried = sent.indexOf('payment-insert-if-absent+jobs+batch-claim-try');
    expect(sent.slice(tried, tried + 6)).toEqual([
      'payment-insert-if-absent+jobs+batch-claim-try', 'COMMIT', 'batch-claim-lock-and-check', 'BEGIN', 'batch-claim-lock-and-check', expect.stringMatching(/^WITH open AS/),
    ]);
    expect(sent.at(-1)).toBe('COMMIT');
    const { rows: batches } = await t.db.pool.query<{ entry_count: number }>('SELECT entry_count FROM payout_batches WHERE open_channel_id = $1', [channel]);
    expect(batches).toEqual([{ entry_count: 2 }]);
  });

  it('five payments finding the lock busy share the checks after their commits: fewer checks than payments, every credit claimed at once', async () => {
    // Six credits of 9 USD make the threshold: only a check that sees all six (the holder's and the
    // five) can claim, so the shared check must have started after the last of the five committed.
    const channel = await seedChannel('threshold', '54');
    const { pool: recording, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool: recording, inline: inlineEffects({ boss: t.boss }) });
    const paymentIds = Array.from({ length: 5 }, () => newPaymentId());
    const orders = await Promise.all(paymentIds.map(() => orderIn(channel)));
    await withClaimLockHeld(channel, async (waitForWaiter, release) => {
      const applied = paymentIds.map((paymentId, i) => engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(orders[i]!) }, { source: 'ipn' }));
      // All five committed (their checks asked for); one check waits for the lock, the rest wait to share the next.
      await vi.waitFor(async () => {
        const { rows } = await t.db.pool.query(`SELECT 1 FROM payments WHERE payment_id = ANY($1) AND state = 'accumulated'`, [paymentIds]);
        expect(rows).toHaveLength(5);
      }, { timeout: 10_000, interval: 20 });
      await waitForWaiter();
      await release();
      expect((await Promise.all(applied)).map((r) => r.state)).toEqual(Array(5).fill('accumulated'));
    });
    // Outside the claim's own transaction: one check waited for the holder, one served the others (a
    // third at most, if a payment's request came a moment after its commit was seen here).
    const checks = sent.filter((s, i) => s === 'batch-claim-lock-and-check' && sent[i - 1] !== 'BEGIN');
    expect(checks.length).toBeGreaterThanOrEqual(1);
    expect(checks.length).toBeLessThanOrEqual(3);
    const { rows: batches } = await t.db.pool.query<{ entry_count: number }>('SELECT entry_count FROM payout_batches WHERE open_channel_id = $1', [channel]);
    expect(batches).toEqual([{ entry_count: 6 }]);
  });

  it('the check after the commit fails: the payment stays credited and routed, the failure is reported, and a later check claims', async () => {
    const channel = await seedChannel('threshold', '18');
    const paymentId = newPaymentId();
    // The pool refuses the check after the commit only (a connection lost at that moment, say).
    const refusing = (target: { query: unknown }) => (config: unknown, ...rest: unknown[]) =>
      (config as { name?: string })?.name === 'batch-claim-lock-and-check' ? Promise.reject(new Error('connection lost')) : (target.query as (...a: unknown[]) => unknown).call(target, config, ...rest);
    const failing = new Proxy(t.db.pool, {
      get(target, prop) {
        if (prop === 'query') return refusing(target);
        if (prop !== 'connect') return Reflect.get(target, prop, target) as unknown;
        return async () => {
          const client = await target.connect();
          return new Proxy(client, { get: (c, p) => (p === 'query' ? refusing(c) : Reflect.get(c, p, c)) });
        };
      },
    });
    const failures: Array<[string, string, string]> = [];
    const engine = createEngine({ pool: failing, inline: inlineEffects({ boss: t.boss }), onAfterCommitFailed: (id, effect, error) => void failures.push([id, effect, (error as Error).message]) });
    await withClaimLockHeld(channel, async (_waitForWaiter, release) => {
      expect(await engine.applyEvent(paymentId, { type: 'np.finished', facts: paidWithOutcome(await orderIn(channel)) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 3, state: 'accumulated' });
      await release();
    });
    expect(failures).toEqual([[paymentId, 'accumulate', 'connection lost']]);
    expect(await ledgerOf(paymentId)).toEqual([
      { kind: 'payment_credit', payout_id: null },
      { kind: 'platform_fee', payout_id: null },
    ]);
    // What the periodic sweep does for every channel with open credits.
    expect(await claimAndSchedule({ pool: t.db.pool, boss: t.boss }, channel, '18')).toEqual(expect.any(String));
    expect((await ledgerOf(paymentId))[0]!.payout_id).toMatch(/^batch:/);
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

  it("rides in the transition's own statement: inserted when the compare-and-set wins, not at all when it loses", async () => {
    const orderId = await seedOrder('instant');
    const paymentId = newPaymentId();
    const { pool: recording, sent } = recordingPool(t.db.pool);
    const engine = createEngine({ pool: recording, inline: inlineEffects({ boss: t.boss }) });
    await engine.applyEvent(paymentId, { type: 'np.waiting', facts: paid(orderId) }, { source: 'ipn' });
    sent.length = 0;
    expect(await engine.applyEvent(paymentId, { type: 'np.finished', facts: paid(orderId) }, { source: 'ipn' })).toMatchObject({ outcome: 'applied', state: 'routed' });
    expect(sent.filter((name) => name.startsWith('payment-'))).toEqual(['payment-update-if-version+jobs']);
    expect(sent).not.toContain('effect-jobs-insert');
    expect(await jobsOf(paymentId)).toEqual([queueOf('invite'), queueOf('split')]);

    // The same statement on a version that is no longer current writes nothing: no journal row, no job
    // (in a caller's transaction nothing else would take a lost attempt's jobs back).
    const statement = composeWrite(UPDATE_IF_VERSION, { jobs: true }, 15);
    const { rows: [row] } = await t.db.pool.query<{ snapshot: unknown; version: number }>('SELECT snapshot, version FROM payments WHERE payment_id = $1', [paymentId]);
    const stale = row!.version - 1;
    const params = [paymentId, row!.snapshot, stale + 1, 'routed', '{}', null, orderId, '[]', {}, null, 0, 'finished', stale, false];
    const lost = await t.db.pool.query<{ journal_rows: number }>({ ...statement, values: [...params, effectJobsJson(paymentId, [{ effect: 'settle', attempt: 7 }])] });
    expect(lost.rows[0]!.journal_rows).toBe(0);
    expect(await jobsOf(paymentId)).toEqual([queueOf('invite'), queueOf('split')]);

    // A riding expression (TransitionScope.ride) is evaluated only when the statement writes: here a
    // sequence's nextval stands for the claim lock's check, which must not run for a lost attempt.
    const counter = `rider_probe_${++seq}`;
    await t.db.pool.query(`CREATE SEQUENCE ${counter}`);
    const rider = { name: counter, sql: (first: number) => `nextval($${first}::regclass)`, values: [counter], then: async () => {} };
    const riding = composeWrite(UPDATE_IF_VERSION, { jobs: false, riders: [rider] }, 15);
    const notRun = await t.db.pool.query<{ journal_rows: number; rider_0: string | null }>({ ...riding, values: [...params, counter] });
    expect(notRun.rows[0]).toMatchObject({ journal_rows: 0, rider_0: null });
    const entry = JSON.stringify([{ seq: row!.version + 1, event_type: 'np.finished', event: {}, source: 'test', from_state: null, to_state: 'routed', effects: [] }]);
    const current = [...params.slice(0, 2), row!.version + 1, ...params.slice(3, 7), entry, ...params.slice(8, 12), row!.version, false];
    const run = await t.db.pool.query<{ journal_rows: number; rider_0: string | null }>({ ...riding, values: [...current, counter] });
    expect(run.rows[0]).toMatchObject({ journal_rows: 1, rider_0: '1' });
    await t.db.pool.query(`DROP SEQUENCE ${counter}`);
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
