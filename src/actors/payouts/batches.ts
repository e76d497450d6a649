import { randomUUID } from 'node:crypto';
import type { PgBoss, Queue } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import { v5 as uuidv5 } from 'uuid';
import { findChannel } from '../../channels/channels.repo.js';
import { HOST_ASSET, isDirect, isUsdStablecoin, lockedUnits } from '../../domain/payout-plan.js';
import { fromBaseUnits } from '../../domain/units.js';
import { deadLetters } from '../../operator/metrics.js';
import type { Engine, RidingWork } from '../../persistence/apply-event.js';
import type { Queryable } from '../../persistence/transaction.js';
import { inTransaction } from '../../persistence/transaction.js';
import { NotYet, type PayoutExecutor } from '../../payouts/payout-executor.js';
import {
  batchPayoutId,
  channelsWithOpenCredits,
  claimBatch,
  findBatch,
  lockAndCheckThreshold,
  tryLockAndCheckThresholdSql,
  paymentsOfBatch,
  resumeBatch,
  setBatchStatus,
  unfinishedBatches,
} from '../../payouts/payout-batches.repo.js';
import { findPayout, planPayout, resumeFromReview } from '../../payouts/payouts.repo.js';
import type { ChangeNowClient } from '../../providers/changenow/changenow.client.js';

// Threshold payouts. A channel's open credits are claimed into a batch once they are worth its
// threshold (atomically: src/payouts/payout-batches.repo.ts); the batch is then paid by a job chain on
// queue "payout-batch" through the same exchange + send + settle path as an instant payout, and on
// settlement every payment in it receives batch.paid through applyEvent. The batch row and its payout
// row record every step, so a job that dies mid-batch resumes where it stopped; a job id derived from
// (batch, attempt) keeps a batch to one job at a time.
//
// Volatility lock: an owner paid in a USD stablecoin is owed the USD value locked at payment time (the
// credits' usd_value, NowPayments' rate). The batch sends as much ETH as a fixed-rate quote says buys
// that value now; the difference to the credited ETH is the platform's (ledger: exchange_difference).
// An owner paid in ETH (or another volatile coin) receives the credited ETH: that owner chose the asset.

export const BATCH_QUEUE = 'payout-batch';
export const BATCH_DEAD_LETTER = 'payout-batch-dead-letter';
export const SWEEP_QUEUE = 'payout-sweep';

const NAMESPACE = '8c2f6a4e-1b7d-4c39-a0e5-5d9b2f7c3e11';
const batchJobId = (batchId: string, attempt: number) => uuidv5(`${batchId}:${attempt}`, NAMESPACE);

interface BatchJob {
  batchId: string;
  attempt: number;
}

export function batchQueues(settleRetryLimit: number): Record<string, Omit<Queue, 'name'>> {
  return {
    // The dead-letter queue first: pg-boss refuses a queue whose dead letter does not exist yet.
    [BATCH_DEAD_LETTER]: { policy: 'standard', retryLimit: 5, retryBackoff: true, notify: true },
    [BATCH_QUEUE]: { policy: 'standard', retryLimit: settleRetryLimit, retryDelay: 2, retryBackoff: true, retryDelayMax: 300, deadLetter: BATCH_DEAD_LETTER, notify: true },
    // exclusive: one sweep queued or active at a time.
    [SWEEP_QUEUE]: { policy: 'exclusive', retryLimit: 0, expireInSeconds: 300, notify: true },
  };
}

/** Sends the batch's job inside the caller's transaction (or alone); a second send for the same attempt is refused by its id. */
export async function enqueueBatch(boss: PgBoss, db: Queryable | null, batchId: string, attempt: number): Promise<void> {
  const options = { id: batchJobId(batchId, attempt), ...(db ? { db: { executeSql: (text: string, values?: unknown[]) => db.query(text, values) } } : {}) };
  await boss.send(BATCH_QUEUE, { batchId, attempt } satisfies BatchJob, options);
}

/**
 * Inside the caller's transaction: claims the channel's open credits into a batch if they reach its
 * threshold, and schedules paying it. Claims of one channel take turns: one statement
 * (lockAndCheckThreshold) takes the channel's claim lock, held until commit, and then sums the open
 * credits with a snapshot taken after the lock was granted, so the check sees every credit committed
 * before it, including the one its own transaction just made. Below the threshold (most payments) the
 * lock is then held only for that statement's reply and the COMMIT; only when enough do the claim
 * statement and the batch's job follow.
 */
export async function claimAndScheduleIn(boss: PgBoss, tx: Queryable, openChannelId: string, thresholdUsd: string, options: { exact?: boolean } = {}): Promise<string | null> {
  if (!(await lockAndCheckThreshold(tx, openChannelId, thresholdUsd, options))) return null;
  return claimCheckedIn(boss, tx, openChannelId, thresholdUsd);
}

/** The claim and its batch's job, once this transaction's check under the channel's lock found enough. */
async function claimCheckedIn(boss: PgBoss, tx: Queryable, openChannelId: string, thresholdUsd: string): Promise<string | null> {
  const batch = await claimBatch(tx, { openChannelId, thresholdUsd, batchId: randomUUID(), fresh: true, checked: true });
  if (!batch) return null;
  await enqueueBatch(boss, tx, batch.batchId, 0);
  return batch.batchId;
}

/**
 * At the end of a payment's transaction that credited the channel (src/actors/payouts/accumulate.actor.ts):
 * claims the channel's open credits if they are worth its threshold, under the channel's claim lock, but
 * without waiting for it. The check rides in the statement that writes the payment (TransitionScope.ride);
 * the claim, when enough, follows in the same transaction. When another transaction holds the lock
 * nothing was checked, and `busy` is called: the caller checks after its commit (claimWhenReady, which
 * waits for the lock there).
 */
export function claimCheckRiding(boss: PgBoss, openChannelId: string, thresholdUsd: string, busy: () => void): RidingWork {
  const check = tryLockAndCheckThresholdSql(openChannelId, thresholdUsd);
  return {
    name: 'batch-claim-try',
    ...check,
    async then(enough, tx) {
      if (enough === null) busy();
      else if (enough === true) await claimCheckedIn(boss, tx, openChannelId, thresholdUsd);
    },
  };
}

/**
 * After a commit whose check found the channel's claim lock busy (claimCheckRiding): waits for the
 * lock in one statement of its own, which releases it at once (nothing is held across a round trip),
 * and sums the open credits then, seeing the holder's credit; claims (claimAndSchedule) only if enough.
 */
export async function claimWhenReady(deps: { pool: pg.Pool; boss: PgBoss }, openChannelId: string, thresholdUsd: string): Promise<string | null> {
  if (!(await lockAndCheckThreshold(deps.pool, openChannelId, thresholdUsd))) return null;
  return claimAndSchedule(deps, openChannelId, thresholdUsd);
}

/** The same in a transaction of its own; `exact` (the sweep) sums every open credit, not the fold and what came since. */
export async function claimAndSchedule(deps: { pool: pg.Pool; boss: PgBoss }, openChannelId: string, thresholdUsd: string, options: { exact?: boolean } = {}): Promise<string | null> {
  return inTransaction(deps.pool, (tx) => claimAndScheduleIn(deps.boss, tx, openChannelId, thresholdUsd, options));
}

export interface BatchDeps {
  pool: pg.Pool;
  boss: PgBoss;
  engine: Engine;
  changeNow: ChangeNowClient;
  payouts: PayoutExecutor;
  log: Logger;
}

/** Plans the batch's payout once: the amount (USD-locked for stablecoin owners) is frozen in the payout row. */
async function planBatchPayout(deps: BatchDeps, batchId: string) {
  const payoutId = batchPayoutId(batchId);
  const existing = await findPayout(deps.pool, payoutId);
  if (existing) return existing;
  const batch = await findBatch(deps.pool, batchId);
  if (!batch) throw new Error(`batch ${batchId} does not exist`);
  const channel = await findChannel(deps.pool, batch.openChannelId);
  if (!channel) throw new Error(`channel ${batch.openChannelId} of batch ${batchId} does not exist`);
  const direct = isDirect(channel.currency, channel.network);
  let amountUnits = batch.totalUnits;
  if (!direct && isUsdStablecoin(channel.currency)) {
    const pair = { fromCurrency: HOST_ASSET.currency, fromNetwork: HOST_ASSET.network, toCurrency: channel.currency.toLowerCase(), toNetwork: channel.network.toLowerCase() };
    const quote = await deps.changeNow.estimateFixedRate(pair, fromBaseUnits(batch.totalUnits, HOST_ASSET.decimals));
    amountUnits = lockedUnits(batch.totalUnits, batch.usdValue, quote.toAmount);
  }
  return inTransaction(deps.pool, async (tx) => {
    const planned = await planPayout(tx, {
      payoutId,
      kind: 'batch',
      openChannelId: channel.openChannelId,
      paymentId: null,
      batchId,
      clearedUnits: batch.totalUnits,
      amountUnits,
      owedUsd: batch.usdValue,
      toAddress: channel.walletAddress,
      toCurrency: channel.currency,
      toNetwork: channel.network,
      direct,
    });
    await setBatchStatus(tx, batchId, 'paying');
    return planned;
  });
}

/** One run of a batch's job: resume from what is recorded, go as far as possible, throw NotYet to be retried. */
export async function payBatch(deps: BatchDeps, batchId: string): Promise<'settled' | 'review'> {
  const batch = await findBatch(deps.pool, batchId);
  if (!batch) throw new Error(`batch ${batchId} does not exist`);
  if (batch.status === 'review') return 'review';
  if (batch.status !== 'settled') {
    const payout = await planBatchPayout(deps, batchId);
    // The batch was resumed by an operator (status back to paying): its payout resumes too.
    if (payout.status === 'review') await resumeFromReview(deps.pool, payout.payoutId);
    const sent = await deps.payouts.send(payout.payoutId);
    if (sent.outcome === 'review') {
      await setBatchStatus(deps.pool, batchId, 'review', sent.reason);
      return 'review';
    }
    const settled = await deps.payouts.settle(payout.payoutId);
    if (settled.outcome === 'review') {
      await setBatchStatus(deps.pool, batchId, 'review', settled.reason);
      return 'review';
    }
    await setBatchStatus(deps.pool, batchId, 'settled');
  }
  // Settled (now or by an earlier run that died before telling every payment): tell them; replays are no-ops.
  for (const paymentId of await paymentsOfBatch(deps.pool, batchId)) {
    await deps.engine.applyEvent(paymentId, { type: 'batch.paid', batchId }, { source: 'actor:batch' });
  }
  return 'settled';
}

/** Operator: resume a parked batch from its recorded step, under a new job. */
export async function resumeParkedBatch(deps: { pool: pg.Pool; boss: PgBoss }, batchId: string): Promise<boolean> {
  const attempt = await resumeBatch(deps.pool, batchId);
  if (attempt === null) return false;
  await enqueueBatch(deps.boss, null, batchId, attempt);
  return true;
}

/** Claims crossed thresholds nobody claimed (a threshold lowered, a crash between credit and claim) and restarts unfinished batches. */
export async function sweep(deps: BatchDeps): Promise<{ claimed: number; restarted: number }> {
  let claimed = 0;
  for (const channel of await channelsWithOpenCredits(deps.pool)) {
    if (await claimAndSchedule(deps, channel.openChannelId, channel.thresholdUsd, { exact: true })) claimed++;
  }
  let restarted = 0;
  for (const batch of await unfinishedBatches(deps.pool)) {
    // Refused (null) while the attempt's job exists, queued, running or completed: nothing doubles.
    if (await deps.boss.send(BATCH_QUEUE, { batchId: batch.batchId, attempt: batch.attempt } satisfies BatchJob, { id: batchJobId(batch.batchId, batch.attempt) })) restarted++;
  }
  return { claimed, restarted };
}

export async function startBatchWorkers(deps: BatchDeps, sweepCron: string): Promise<() => Promise<void>> {
  await deps.boss.work<BatchJob>(BATCH_QUEUE, { batchSize: 5, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 2 }, async (jobs) => {
    for (const job of jobs) {
      try {
        const outcome = await payBatch(deps, job.data.batchId);
        deps.log.info({ batchId: job.data.batchId, outcome }, 'payout batch run finished');
      } catch (error) {
        if (error instanceof NotYet) deps.log.debug({ batchId: job.data.batchId, reason: error.message }, 'payout batch waits');
        else deps.log.warn({ batchId: job.data.batchId, err: error }, 'payout batch run failed; retrying');
        throw error;
      }
    }
  });
  await deps.boss.work<BatchJob>(BATCH_DEAD_LETTER, { batchSize: 5, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1 }, async (jobs) => {
    for (const job of jobs) {
      await setBatchStatus(deps.pool, job.data.batchId, 'review', 'the batch job used up its retries (provider down or not settling); resume it after checking the payout');
      deadLetters.inc({ queue: BATCH_QUEUE });
      deps.log.error({ batchId: job.data.batchId }, 'payout batch exhausted its retries; parked for review');
    }
  });
  await deps.boss.schedule(SWEEP_QUEUE, sweepCron);
  await deps.boss.work(SWEEP_QUEUE, { pollingIntervalSeconds: 5 }, async () => {
    const result = await sweep(deps);
    if (result.claimed || result.restarted) deps.log.info(result, 'payout sweep');
  });
  return async () => {
    await deps.boss.offWork(BATCH_QUEUE);
    await deps.boss.offWork(BATCH_DEAD_LETTER);
    await deps.boss.offWork(SWEEP_QUEUE);
  };
}
