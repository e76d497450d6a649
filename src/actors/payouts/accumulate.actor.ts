import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { viewOf } from '../../machines/payment.view.js';
import { creditShare, readPayoutFacts, shareOfFacts, type PayoutFacts } from '../../payouts/payment-facts.repo.js';
import type { InlineEffect, LastWork, TransitionScope } from '../../persistence/apply-event.js';
import { inTransaction, type Queryable } from '../../persistence/transaction.js';
import type { EffectActor } from '../effect-actor.js';
import { claimAndScheduleIn } from './batches.js';

// Effect "accumulate" (threshold payouts): book the payment's share in the channel's ledger (once per
// payment, whatever the retries), with its USD value locked at NowPayments' rate, then try to claim a
// batch: if the channel's open credits now reach its threshold, one batch takes exactly them and its
// payment job is scheduled. Credit, claim and the batch's job commit together.
//
// It needs nothing but our own tables, so, like routing, it runs inside the transition that asks for
// it (accumulateInline: the transaction that routes the payment) — no job, no queue wait, no second
// write of the payment. Unlike routing, its failure must not hold the payment's invite (access and
// payout are independent regions): the engine takes its writes back and queues it as a job instead
// (onError 'queue'; see InlineEffect), which retries and, when its retries run out, parks the payout only.
// Claims of one channel take turns until commit (claimAndScheduleIn), so two payments crossing the
// threshold together are claimed by whichever commits second, at once, not by the periodic sweep.

// The claim's lock is held until commit, so it is taken last (`last`): inline, the engine runs it after the
// payment and its jobs are written, right before the commit, and payments of one channel queue behind
// each other for a statement and a commit, not for the whole transition.
async function accumulate(tx: Queryable, boss: PgBoss, paymentId: string, facts: PayoutFacts, { last, reads }: TransitionScope): Promise<PaymentEvent> {
  const share = await shareOfFacts(tx, paymentId, facts, reads);
  if ('problem' in share) return { type: 'payout.failed', reason: share.problem };
  const { channel, split } = share;
  const { entries } = await creditShare(tx, paymentId, channel, split, null);
  const threshold = channel.thresholdUsd;
  if (threshold) last(async (db) => void (await claimAndScheduleIn(boss, db, channel.openChannelId, threshold)));
  return { type: 'accumulate.done', ledgerEntryId: entries[0]!.entryId };
}

/** In the transition's own transaction, from the snapshot being written (nothing is read back). */
export function accumulateInline(deps: { boss: PgBoss }): InlineEffect {
  return {
    onError: 'queue',
    perform: (tx, snapshot, scope) => accumulate(tx, deps.boss, snapshot.context.paymentId, viewOf(snapshot), scope),
  };
}

/** As a job: queued when the inline run failed (or by an earlier version); reads the stored payment. */
export function createAccumulateActor(deps: { pool: pg.Pool; boss: PgBoss }): EffectActor {
  return {
    effect: 'accumulate',
    perform: (job) =>
      inTransaction(deps.pool, async (tx) => {
        const claims: LastWork[] = [];
        const event = await accumulate(tx, deps.boss, job.paymentId, await readPayoutFacts(tx, job.paymentId), { last: (work) => void claims.push(work), reads: new Map() });
        for (const claim of claims) await claim(tx);
        return event;
      }),
  };
}
