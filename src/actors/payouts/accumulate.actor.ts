import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { viewOf } from '../../machines/payment.view.js';
import { creditShare, readPayoutFacts, shareOfFacts, type PayoutFacts } from '../../payouts/payment-facts.repo.js';
import type { InlineEffect, TransitionScope } from '../../persistence/apply-event.js';
import { inTransaction, type Queryable } from '../../persistence/transaction.js';
import type { EffectActor } from '../effect-actor.js';
import { claimAndScheduleIn, claimCheckRiding, claimWhenReady } from './batches.js';
import { coalesced, type Coalesced } from './coalesced-checks.js';

// Effect "accumulate" (threshold payouts): book the payment's share in the channel's ledger (once per
// payment, whatever the retries), with its USD value locked at NowPayments' rate, then try to claim a
// batch: if the channel's open credits now reach its threshold, one batch takes exactly them and its
// payment job is scheduled; the claim and the batch's job commit together.
//
// It needs nothing but our own tables, so, like routing, it runs inside the transition that asks for
// it (accumulateInline: the transaction that routes the payment) — no job, no queue wait, no second
// write of the payment. Unlike routing, its failure must not hold the payment's invite (access and
// payout are independent regions): the engine takes its writes back and queues it as a job instead
// (onError 'queue'; see InlineEffect), which retries and, when its retries run out, parks the payout only.
//
// When is the batch claimed? Claims of a channel take turns on its claim lock, and the check that takes
// it last sees every credit committed before it and its own, so credits crossing the threshold together
// are claimed at once. Inline (the engine's own transaction) the check is the transaction's last step:
// it rides in the statement that writes the payment (TransitionScope.ride: no round trip of its own),
// and does not wait for the lock (claimCheckRiding): held by another payment of the channel, the check
// moves to after this commit (TransitionScope.afterCommit, claimWhenReady), where it waits holding
// nothing else, and one such check serves every payment of the channel that asked for one before it
// started (coalesced-checks.ts). Waiting inside the transaction instead held each payment's
// transaction open behind the one before it, and every payment of a busy channel queued for a round
// trip and a commit (all payments on one channel, closed loop: 49 payments/s with that wait, 69 with
// no check at all). A crash between the commit and a moved check leaves the claim to the periodic
// sweep. In a caller's transaction (and as a job) the check waits for the lock in the transaction
// (claimAndScheduleIn): the engine cannot run anything after a commit it does not see.
async function accumulate(tx: Queryable, deps: AccumulateDeps, paymentId: string, facts: PayoutFacts, { afterCommit, ride, reads }: TransitionScope): Promise<PaymentEvent> {
  const share = await shareOfFacts(tx, paymentId, facts, reads);
  if ('problem' in share) return { type: 'payout.failed', reason: share.problem };
  const { channel, split } = share;
  const { entries } = await creditShare(tx, paymentId, channel, split, null);
  const threshold = channel.thresholdUsd;
  const { checks } = deps;
  if (threshold && afterCommit && ride && checks) {
    const { openChannelId } = channel;
    const checkAfterCommit = (pool: pg.Pool) => checks(`${openChannelId}:${threshold}`, () => claimWhenReady({ pool, boss: deps.boss }, openChannelId, threshold));
    ride(claimCheckRiding(deps.boss, openChannelId, threshold, () => afterCommit(checkAfterCommit)));
  } else if (threshold) await claimAndScheduleIn(deps.boss, tx, channel.openChannelId, threshold);
  return { type: 'accumulate.done', ledgerEntryId: entries[0]!.entryId };
}

interface AccumulateDeps {
  boss: PgBoss;
  /** Inline: the checks after a commit, one run shared by the payments of a channel that asked before it started. */
  checks?: Coalesced<string>;
}

/** In the transition's own transaction, from the snapshot being written (nothing is read back). */
export function accumulateInline(deps: { boss: PgBoss }): InlineEffect {
  const checks = coalesced<string>();
  return {
    onError: 'queue',
    perform: (tx, snapshot, scope) => accumulate(tx, { boss: deps.boss, checks }, snapshot.context.paymentId, viewOf(snapshot), scope),
  };
}

/** As a job: queued when the inline run failed (or by an earlier version); reads the stored payment. */
export function createAccumulateActor(deps: { pool: pg.Pool; boss: PgBoss }): EffectActor {
  return {
    effect: 'accumulate',
    perform: (job) =>
      inTransaction(deps.pool, async (tx) =>
        accumulate(tx, { boss: deps.boss }, job.paymentId, await readPayoutFacts(tx, job.paymentId), { afterCommit: null, ride: null, reads: new Map() }),
      ),
  };
}
