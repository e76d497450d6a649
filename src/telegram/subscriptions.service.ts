import type { Api } from 'grammy';
import type { PgBoss, Queue } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import { parseDurationList } from '../domain/duration.js';
import { hasEnded } from '../domain/subscription.js';
import { inTransaction } from '../persistence/transaction.js';
import { classifyTelegramError } from './telegram-errors.js';
import { renewKeyboard } from './keyboards.js';
import { expiredText, formatDate, reminderText } from './messages.js';
import { channelTexts } from '../channels/owner-texts.js';
import {
  armTimers,
  clearRemovalStarted,
  findSubscription,
  grantSubscription,
  lockSubscription,
  markRemovalDryRun,
  markRemovalStarted,
  markRemoved,
  type Grant,
  type GrantInput,
} from './subscriptions.repo.js';
import { sweepSubscriptions } from './subscription-sweep.js';

export { REMINDER_LEASE_MS, REMINDER_TRIES, SWEEP_BATCH, sweepSubscriptions, type SweepResult } from './subscription-sweep.js';

// Subscriptions: a paid order starts or extends one (once per order), reminders go out before it ends,
// and at its end the member is removed.
//
// Timers are columns of the subscription (migrations/016.do.subscription-timers.sql), not jobs: the
// statement that sets an expiry arms them (next_reminder_at for the reminders, expires_at itself for the
// removal), and ONE scheduled job (queue subscription-sweep, cron SUBSCRIPTION_SWEEP_EVERY) sweeps what
// is due, in batches, on whichever instance pg-boss hands the run to. A grant enqueues nothing.
//
// - Removal: the sweep reads the due ids, then decides each with expireSubscription, which locks the
//   row and re-reads the expiry there, so a renewal that committed first wins (and one in progress,
//   holding the lock, makes the sweep skip the row until its next run). Two sweeps never act on one
//   row: the second finds it locked (SKIP LOCKED) or already decided. A removal Telegram refuses is
//   retried with backoff (removal_retry_at: 5 s doubling up to 10 min, for as long as it fails).
// - Reminders, at least once per (subscription, expiry, offset) and never twice otherwise, like the
//   jobs they replace: a sweep claims due reminders (FOR UPDATE SKIP LOCKED, so concurrent sweeps split
//   them) by moving next_reminder_at a lease ahead, sends outside any transaction, then advances it to
//   the next offset (compare-and-set on the claim, so a renewal that re-armed meanwhile is kept). A crash
//   between claim and advance leaves the claim to run out and the reminder is sent again — exactly what
//   a crashed pg-boss reminder job did. A transient failure retries after 30 s, doubling, four tries in
//   all (the old queue's retryLimit 3); 403 and other refusals are final. A reminder is sent only for the
//   expiry it was armed for (reminders_for = expires_at), so a renewal re-arms for its new expiry and
//   nothing is said about an old one.
//
// Upgrade: expiry and reminder jobs queued before migration 016 still run (the legacy workers below
// stay for a transition). Their expiry job is a harmless duplicate of the sweep (expireSubscription
// re-checks under the lock); their reminder job is the only source of that expiry's reminders (the
// migration arms no columns for it) and stands down once a renewal armed the columns. Once no such job
// is left (at the latest when every subscription granted before the upgrade has ended), the two legacy
// queues and workers can go.

export const EXPIRY_QUEUE = 'subscription-expiry';
export const REMINDER_QUEUE = 'subscription-reminder';
export const SWEEP_QUEUE = 'subscription-sweep';
/** pg-boss files at most one job per schedule and 60 s slot, so a minute is the finest a cron sweep runs. */
export const DEFAULT_SWEEP_EVERY = '* * * * *';

export const subscriptionQueues: Record<string, Omit<Queue, 'name'>> = {
  // Legacy (jobs queued before migration 016): nothing sends to them any more; see the top of this file.
  [EXPIRY_QUEUE]: { policy: 'standard', retryLimit: 8, retryDelay: 5, retryBackoff: true, retryDelayMax: 600, notify: true },
  [REMINDER_QUEUE]: { policy: 'standard', retryLimit: 3, retryDelay: 30, retryBackoff: true, notify: true },
  // exclusive: one sweep queued or running at a time (a slow one is not stacked up behind); retries are
  // the next scheduled run. Overlapping runs anyway (an expired job, a manual one) are safe: claims.
  [SWEEP_QUEUE]: { policy: 'exclusive', retryLimit: 0, expireInSeconds: 900, notify: true },
};

export interface ExpiryJob {
  subscriptionId: string;
  expiresAt: string;
}
export interface ReminderJob extends ExpiryJob {
  beforeMs: number;
}

export interface SubscriptionDeps {
  pool: pg.Pool;
  boss: PgBoss;
  api: Api;
  log: Logger;
  /** Offsets before expiry at which reminders go out, in ms. */
  remindersMs: number[];
  dryRun: boolean;
  /** Cron of the sweep (SUBSCRIPTION_SWEEP_EVERY); DEFAULT_SWEEP_EVERY when absent. */
  sweepEvery?: string;
}

/** What arming timers needs. `boss` is no longer used (nothing is enqueued) and is accepted for old callers. */
export interface TimerDeps {
  remindersMs: readonly number[];
  boss?: unknown;
}

/** SUBSCRIPTION_REMINDERS: durations before expiry, comma-separated ("3d,1d"); empty for none. */
export function parseReminders(value: string): number[] {
  try {
    return parseDurationList(value);
  } catch (error) {
    throw new Error(`SUBSCRIPTION_REMINDERS: ${(error as Error).message}`, { cause: error });
  }
}

/** Grants the order's period and arms its reminders and expiry in the same statement; call inside a transaction. Enqueues no job. */
export async function grantAndScheduleIn(deps: TimerDeps, tx: pg.PoolClient, input: GrantInput): Promise<Grant> {
  return grantSubscription(tx, input, deps.remindersMs);
}

export function grantAndSchedule(deps: TimerDeps & { pool: pg.Pool }, input: GrantInput): Promise<Grant> {
  return inTransaction(deps.pool, (tx) => grantAndScheduleIn(deps, tx, input));
}

/**
 * Re-arms a subscription's timers after its expiry was moved (a manual grant, extension or revoke), in
 * the caller's transaction: reminders for the stored expiry, no removal backoff. The row's own
 * expires_at is armed (`_expiresAt` is what the caller just stored there).
 */
export async function schedule(deps: TimerDeps, tx: pg.PoolClient, subscriptionId: string, _expiresAt?: Date): Promise<void> {
  await armTimers(tx, subscriptionId, deps.remindersMs);
}

export type ExpiryOutcome = 'removed' | 'dry-run' | 'kept' | 'already-removed' | 'missing';

/**
 * Removes the member if, now, the subscription has ended. The row stays locked while Telegram is
 * asked, so a renewal that commits first is seen (and wins), and one that arrives during the removal
 * waits and re-admits the buyer with its own invite afterwards.
 */
export function expireSubscription(deps: SubscriptionDeps, subscriptionId: string): Promise<ExpiryOutcome> {
  return checkExpiry(deps, subscriptionId, false) as Promise<ExpiryOutcome>;
}

/** expireSubscription; with `skipLocked` (the sweep) a row someone else holds is left for the next run: 'busy'. */
export async function checkExpiry(deps: SubscriptionDeps, subscriptionId: string, skipLocked: boolean): Promise<ExpiryOutcome | 'busy'> {
  const tx = await deps.pool.connect();
  let outcome: ExpiryOutcome | 'busy';
  let notify: { buyer: number; title: string; openChannelId: string } | null = null;
  const log = deps.log.child({ subscriptionId });
  try {
    await tx.query('BEGIN');
    const sub = skipLocked ? await lockSubscription(tx, subscriptionId, { skipLocked: true }) : await lockSubscription(tx, subscriptionId);
    if (sub === 'locked') {
      outcome = 'busy';
    } else if (!sub) {
      outcome = 'missing';
    } else if (!hasEnded(sub.expiresAt, new Date())) {
      // Renewed. If an earlier removal was cut off after the ban, lift it (only_if_banned never removes a member).
      if (sub.removalStartedAt) {
        await deps.api.unbanChatMember(Number(sub.closedChannelId), Number(sub.buyerTelegramId), { only_if_banned: true });
        await clearRemovalStarted(tx, subscriptionId);
      }
      outcome = 'kept';
    } else if (sub.removedAt) {
      outcome = 'already-removed';
    } else if (deps.dryRun) {
      await markRemovalDryRun(tx, subscriptionId);
      log.info({ buyer: sub.buyerTelegramId, chatId: sub.closedChannelId }, 'subscription ended: removal skipped (SUBSCRIPTION_REMOVAL_DRY_RUN)');
      outcome = 'dry-run';
    } else {
      await markRemovalStarted(tx, subscriptionId);
      try {
        // A ban removes the member; lifting it at once lets them come back through a renewal's invite.
        await deps.api.banChatMember(Number(sub.closedChannelId), Number(sub.buyerTelegramId));
        await deps.api.unbanChatMember(Number(sub.closedChannelId), Number(sub.buyerTelegramId), { only_if_banned: true });
      } catch (error) {
        // Keep removal_started_at so whoever comes next (a retry, or this check after a renewal) finishes or undoes it.
        await tx.query('COMMIT');
        throw error;
      }
      await markRemoved(tx, subscriptionId);
      notify = { buyer: Number(sub.buyerTelegramId), title: sub.title, openChannelId: sub.openChannelId };
      outcome = 'removed';
    }
    await tx.query('COMMIT');
  } catch (error) {
    await tx.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
  if (notify) {
    // Telling them is a courtesy: a blocked bot must not fail (and so repeat) a removal that happened.
    // In the owner's words when the channel has them (src/telegram/messages.ts); plain text.
    const texts = await channelTexts(deps.pool, notify.openChannelId).catch(() => undefined);
    await deps.api
      .sendMessage(notify.buyer, expiredText({ title: notify.title, texts }), {
        reply_markup: renewKeyboard(notify.openChannelId),
      })
      .catch((error: unknown) => log.warn({ failure: classifyTelegramError(error) }, 'could not tell the buyer their subscription ended'));
  }
  if (outcome === 'busy') log.debug('subscription expiry: row held by someone else; the next sweep checks it');
  else log.info({ outcome }, 'subscription expiry checked');
  return outcome;
}

export type ReminderOutcome = 'sent' | 'skipped' | 'undeliverable';

/**
 * A legacy reminder job (queued before migration 016, or by an instance that predates it): sends the
 * reminder if the subscription still ends when this reminder was scheduled for, and the columns do not
 * own that expiry's reminders (reminders_for = the expiry: the sweep sends them, and this one stands down).
 */
export async function remind(deps: SubscriptionDeps, job: ReminderJob): Promise<ReminderOutcome> {
  const sub = await findSubscription(deps.pool, job.subscriptionId);
  if (!sub || sub.removedAt || sub.expiresAt.toISOString() !== job.expiresAt || hasEnded(sub.expiresAt, new Date())) return 'skipped';
  if (sub.remindersFor?.getTime() === sub.expiresAt.getTime()) return 'skipped';
  try {
    const texts = await channelTexts(deps.pool, sub.openChannelId);
    await deps.api.sendMessage(Number(sub.buyerTelegramId), reminderText({ title: sub.title, texts }, sub.expiresAt), {
      reply_markup: renewKeyboard(sub.openChannelId),
    });
    return 'sent';
  } catch (error) {
    const failure = classifyTelegramError(error);
    if (failure?.kind === 'forbidden' || failure?.kind === 'rejected') {
      deps.log.info({ subscriptionId: job.subscriptionId, failure }, 'reminder undeliverable');
      return 'undeliverable';
    }
    throw error;
  }
}

/** Kept here too for its importers (the bot, the invite actor); the texts live in messages.ts. */
export { formatDate };

/** Each job settles on its own: one failing removal does not retry the batch's others. */
async function settle<T>(jobs: { id: string; data: T }[], log: Logger, run: (data: T) => Promise<unknown>) {
  const settled = await Promise.allSettled(jobs.map((job) => run(job.data)));
  return settled.map((outcome, i) => {
    const id = jobs[i]!.id;
    if (outcome.status === 'fulfilled') return { id, status: 'completed' as const };
    const error = outcome.reason as Error;
    log.warn({ jobId: id, err: error }, 'subscription job failed; pg-boss retries it');
    return { id, status: 'failed' as const, output: { message: error.message } };
  });
}

export async function startSubscriptionWorkers(deps: SubscriptionDeps): Promise<() => Promise<void>> {
  const options = { batchSize: 10, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 5, perJobResults: true } as const;
  // Legacy workers, for jobs queued before migration 016 (see the top of this file).
  await deps.boss.work<ExpiryJob>(EXPIRY_QUEUE, options, (jobs) => settle(jobs, deps.log, (data) => expireSubscription(deps, data.subscriptionId)));
  await deps.boss.work<ReminderJob>(REMINDER_QUEUE, options, (jobs) => settle(jobs, deps.log, (data) => remind(deps, data)));
  // The sweep: one cron schedule for the deployment (schedule() is an upsert; pg-boss sends one job per
  // occurrence, whichever instances run), worked by whichever instance fetches it.
  await deps.boss.schedule(SWEEP_QUEUE, deps.sweepEvery ?? DEFAULT_SWEEP_EVERY);
  await deps.boss.work(SWEEP_QUEUE, { pollingIntervalSeconds: 5 }, async () => {
    await sweepSubscriptions(deps);
  });
  return async () => {
    await deps.boss.offWork(SWEEP_QUEUE);
    await deps.boss.offWork(EXPIRY_QUEUE);
    await deps.boss.offWork(REMINDER_QUEUE);
  };
}
