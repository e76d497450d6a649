import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { viewOf } from '../../machines/payment.view.js';
import { creditShare, readPayoutFacts, shareOfFacts, type PayoutFacts } from '../../payouts/payment-facts.repo.js';
import type { InlineEffect, TransitionScope } from '../../persistence/apply-event.js';
import { inTransaction, type Queryable } from '../../persistence/transaction.js';
import type { EffectActor } from '../effect-actor.js';
import { claimAndScheduleIn, claimIfWorth } from './batches.js';

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
// When is the batch claimed? Inline (the engine's own transaction), right after the commit
// (TransitionScope.afterCommit, claimIfWorth): the channel's open credits are summed with no lock, and
// claimed in a transaction of their own when they reach the threshold. Two payments crossing it together
// are claimed at once all the same: the check of whichever commits last sees both credits. Checking
// inside the transaction instead needs the channel's claim lock held to its commit (else two checks
// would each miss the other's uncommitted credit), and every payment of a busy channel then queued
// behind the one before it for a round trip and a commit (all payments on one channel, closed loop:
// 49 payments/s with that lock, 69 without it, and a third less Postgres CPU per payment). A crash between the commit and the check leaves the claim to the periodic sweep. In a
// caller's transaction (and as a job) the claim is made in the transaction, under that lock
// (claimAndScheduleIn), as the engine cannot run anything after a commit it does not see.
async function accumulate(tx: Queryable, deps: { boss: PgBoss }, paymentId: string, facts: PayoutFacts, { afterCommit, reads }: TransitionScope): Promise<PaymentEvent> {
  const share = await shareOfFacts(tx, paymentId, facts, reads);
  if ('problem' in share) return { type: 'payout.failed', reason: share.problem };
  const { channel, split } = share;
  const { entries } = await creditShare(tx, paymentId, channel, split, null);
  const threshold = channel.thresholdUsd;
  if (threshold && afterCommit) afterCommit((pool) => claimIfWorth({ pool, boss: deps.boss }, channel.openChannelId, threshold));
  else if (threshold) await claimAndScheduleIn(deps.boss, tx, channel.openChannelId, threshold);
  return { type: 'accumulate.done', ledgerEntryId: entries[0]!.entryId };
}

/** In the transition's own transaction, from the snapshot being written (nothing is read back). */
export function accumulateInline(deps: { boss: PgBoss }): InlineEffect {
  return {
    onError: 'queue',
    perform: (tx, snapshot, scope) => accumulate(tx, deps, snapshot.context.paymentId, viewOf(snapshot), scope),
  };
}

/** As a job: queued when the inline run failed (or by an earlier version); reads the stored payment. */
export function createAccumulateActor(deps: { pool: pg.Pool; boss: PgBoss }): EffectActor {
  return {
    effect: 'accumulate',
    perform: (job) =>
      inTransaction(deps.pool, async (tx) => accumulate(tx, deps, job.paymentId, await readPayoutFacts(tx, job.paymentId), { afterCommit: null, reads: new Map() })),
  };
}
