import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EffectContext } from '../src/actors/effect-actor.js';
import { payBatch } from '../src/actors/payouts/batches.js';
import { createSettleActor } from '../src/actors/payouts/settle.actor.js';
import { createSplitActor } from '../src/actors/payouts/split.actor.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { checkBooks } from '../src/payouts/books.js';
import { claimBatch } from '../src/payouts/payout-batches.repo.js';
import { creditPayment } from '../src/payouts/ledger.repo.js';
import { createPayoutExecutor, NotYet } from '../src/payouts/payout-executor.js';
import type { HostWallet } from '../src/providers/chain/host-wallet.js';
import type { ChangeNowClient } from '../src/providers/changenow/changenow.client.js';
import { notRun } from './support/intake.js';
import { startTestService, type TestService } from './support/service.js';
import { hostTransactions, payAndRoute, seedPayoutChannel } from './support/payouts.js';

// A worker that dies at each point of the money path, then a fresh one that runs the same step again:
// the recorded steps make the second run resume, so exactly one exchange is funded and the host wallet
// broadcasts exactly one transaction per payout (counted on the chain), and the books balance.
// No actors run in the service here: the test plays the worker, with providers that "crash" on cue
// (the threshold credit too, which the service would book and claim inside the routing transaction).

let t: TestService;
beforeAll(async () => {
  t = await startTestService({}, { effects: [], actors: { accumulate: notRun('accumulate') } });
});
afterAll(async () => {
  await t?.close();
});

class Crash extends Error {}

const context = { signal: new AbortController().signal, log: undefined as never, jobId: 'test', retryCount: 0 } as unknown as EffectContext;

/** An executor over the service's real providers, where `crash` may wrap any of them. */
function executor(crash: { changeNow?: Partial<ChangeNowClient>; wallet?: Partial<HostWallet> } = {}) {
  const changeNow = { ...bind(t.service.changeNow), ...crash.changeNow } as ChangeNowClient;
  const wallet = Object.assign(Object.create(t.service.wallet) as HostWallet, crash.wallet ?? {});
  return createPayoutExecutor({ pool: t.db.pool, changeNow, wallet, confirmations: 1, log: t.service.log });
}

function bind<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, typeof v === 'function' ? v.bind(o) : v])) as T;
}

/** Runs a step as the job runner would after a restart: again and again while it says "not yet". */
async function untilDone(run: () => Promise<PaymentEvent>): Promise<PaymentEvent> {
  for (let i = 0; i < 50; i++) {
    try {
      return await run();
    } catch (error) {
      if (!(error instanceof NotYet)) throw error;
    }
  }
  throw new Error('never settled');
}

async function instantPayment() {
  const channel = await seedPayoutChannel(t, { strategy: 'instant', currency: 'usdt', network: 'eth' });
  const paymentId = await payAndRoute(t, channel);
  return { channel, paymentId, job: { paymentId, effect: 'split' as const, attempt: 0 } };
}

async function finish(paymentId: string) {
  const payouts = executor();
  const split = await untilDone(() => createSplitActor({ pool: t.db.pool, payouts }).perform({ paymentId, effect: 'split', attempt: 0 }, context));
  expect(split.type).toBe('split.done');
  const settled = await untilDone(() => createSettleActor({ pool: t.db.pool, payouts }).perform({ paymentId, effect: 'settle', attempt: 0 }, context));
  expect(settled.type).toBe('payout.settled');
}

async function expectPaidOnce(paymentId: string, hostTxBefore: number) {
  expect(await hostTransactions(t)).toBe(hostTxBefore + 1);
  const payout = (await t.db.pool.query('SELECT exchange_id, status FROM payouts WHERE payment_id = $1', [paymentId])).rows[0];
  expect(payout.status).toBe('settled');
  const funded = [...t.service.sandbox.payouts!.changeNow.exchanges.values()].filter((e) => e.funded && e.id === payout.exchange_id);
  expect(funded).toHaveLength(1);
  const entries = (await t.db.pool.query(`SELECT count(*)::int AS n FROM ledger_entries WHERE payout_id = $1 AND kind = 'payout'`, [`payment:${paymentId}`])).rows[0];
  expect(entries.n).toBe(1);
  expect((await checkBooks(t.db.pool)).problems.filter((p) => p.paymentId === paymentId)).toEqual([]);
}

describe('a payout worker killed at each point, then restarted', () => {
  it('after the exchange was created, before it was recorded: a second exchange is created, only the recorded one is funded', async () => {
    const { paymentId, job } = await instantPayment();
    const before = await hostTransactions(t);
    const fundedBefore = t.service.sandbox.payouts!.changeNow.fundedCount();
    const real = t.service.changeNow;
    const crashing = executor({ changeNow: { createExchange: async (r) => { await real.createExchange(r); throw new Crash('killed after POST /exchange'); } } });
    await expect(createSplitActor({ pool: t.db.pool, payouts: crashing }).perform(job, context)).rejects.toThrow(Crash);
    await finish(paymentId);
    await expectPaidOnce(paymentId, before);
    expect(t.service.sandbox.payouts!.changeNow.fundedCount()).toBe(fundedBefore + 1);
  });

  it('after signing, before the broadcast reached the node: the retry broadcasts the stored bytes', async () => {
    const { paymentId, job } = await instantPayment();
    const before = await hostTransactions(t);
    const chain = t.service.sandbox.payouts!.chain;
    chain.faults.downOn('eth_sendRawTransaction');
    try {
      await expect(createSplitActor({ pool: t.db.pool, payouts: executor() }).perform(job, context)).rejects.toThrow();
    } finally {
      await chain.faults.down(false);
    }
    const stored = (await t.db.pool.query(`SELECT tx_hash, broadcast_at FROM chain_transactions WHERE tx_key = $1`, [`payout:payment:${paymentId}`])).rows[0];
    expect(stored.broadcast_at).toBeNull();
    expect(await hostTransactions(t)).toBe(before);
    await finish(paymentId);
    await expectPaidOnce(paymentId, before);
    expect((await t.db.pool.query('SELECT tx_hash FROM payouts WHERE payment_id = $1', [paymentId])).rows[0].tx_hash).toBe(stored.tx_hash);
  });

  it('after the broadcast, before it was recorded: the retry finds the same transaction, nothing is signed again', async () => {
    const { paymentId, job } = await instantPayment();
    const before = await hostTransactions(t);
    const wallet = t.service.wallet;
    const crashing = executor({ wallet: { send: async (key, request) => { await wallet.send(key, request); throw new Crash('killed after broadcast'); } } });
    await expect(createSplitActor({ pool: t.db.pool, payouts: crashing }).perform(job, context)).rejects.toThrow(Crash);
    expect(await hostTransactions(t)).toBe(before + 1);
    await finish(paymentId);
    await expectPaidOnce(paymentId, before);
  });

  it('the broadcast answer was lost: the retry resolves it by the hash, one transaction', async () => {
    const { paymentId, job } = await instantPayment();
    const before = await hostTransactions(t);
    t.service.sandbox.payouts!.chain.faults.dropNextSendRawTransaction(1);
    await expect(createSplitActor({ pool: t.db.pool, payouts: executor() }).perform(job, context)).rejects.toThrow();
    await finish(paymentId);
    await expectPaidOnce(paymentId, before);
  });

  it('after the receipt, before the payout was booked: the retry books it once', async () => {
    const { paymentId, job } = await instantPayment();
    const before = await hostTransactions(t);
    const payouts = executor();
    await untilDone(() => createSplitActor({ pool: t.db.pool, payouts }).perform(job, context));
    const wallet = t.service.wallet;
    const crashing = executor({ wallet: { status: async (key, confirmations) => { const s = await wallet.status(key, confirmations); if (s.state === 'confirmed') throw new Crash('killed after the receipt'); return s; } } });
    await expect(untilDone(() => createSettleActor({ pool: t.db.pool, payouts: crashing }).perform({ paymentId, effect: 'settle', attempt: 0 }, context))).rejects.toThrow(Crash);
    await finish(paymentId);
    await expectPaidOnce(paymentId, before);
  });

  it('mid-batch (after the batch was sent): the restarted batch run settles it with one transaction', async () => {
    const channel = await seedPayoutChannel(t, { strategy: 'threshold', currency: 'eth', network: 'eth', thresholdUsd: '15' });
    const paymentIds = [await payAndRoute(t, channel), await payAndRoute(t, channel)];
    for (const paymentId of paymentIds) {
      await creditPayment(t.db.pool, { paymentId, openChannelId: channel.openChannelId, ownerUnits: 2_970_000_000_000_000n, feeUnits: 330_000_000_000_000n, ownerUsd: '9', feeUsd: '1', payoutId: null });
    }
    const batch = (await claimBatch(t.db.pool, { openChannelId: channel.openChannelId, thresholdUsd: '15', batchId: crypto.randomUUID() }))!;
    expect(batch.entryIds).toHaveLength(2);
    const before = await hostTransactions(t);
    const wallet = t.service.wallet;
    const deps = { pool: t.db.pool, boss: t.service.boss, engine: t.service.engine, changeNow: t.service.changeNow, log: t.service.log };
    const crashing = executor({ wallet: { send: async (key, request) => { await wallet.send(key, request); throw new Crash('killed mid-batch'); } } });
    await expect(payBatch({ ...deps, payouts: crashing }, batch.batchId)).rejects.toThrow(Crash);
    let outcome: string | undefined;
    for (let i = 0; i < 50 && outcome === undefined; i++) {
      outcome = await payBatch({ ...deps, payouts: executor() }, batch.batchId).catch((error: unknown) => {
        if (error instanceof NotYet) return undefined;
        throw error;
      });
    }
    expect(outcome).toBe('settled');
    expect(await hostTransactions(t)).toBe(before + 1);
    // 2 × 0.00297 ETH to an ETH owner, no exchange: exactly the credits.
    expect(await wallet.balanceOf(channel.owner)).toBe(5_940_000_000_000_000n);
    expect((await checkBooks(t.db.pool)).balanced).toBe(true);
  });
});
