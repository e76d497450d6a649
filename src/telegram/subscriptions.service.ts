import type { Api } from 'grammy';
import type { PgBoss, Queue } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import { v5 as uuidv5 } from 'uuid';
import { parseDurationList } from '../domain/duration.js';
import { hasEnded, reminderTimes } from '../domain/subscription.js';
import { inTransaction } from '../persistence/transaction.js';
import { classifyTelegramError } from './telegram-errors.js';
import { renewKeyboard } from './keyboards.js';
import { expiredText, formatDate, reminderText } from './messages.js';
import { channelTexts } from '../channels/owner-texts.js';
import {
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

// Subscriptions: a paid order starts or extends one (once per order), reminders go out before it ends,
// and at its end the member is removed. Reminder and expiry jobs are scheduled when a grant commits,
// in the same transaction, with ids derived from (subscription, expiry), so a replayed grant schedules
// nothing new. A job never trusts the expiry it was scheduled for: it reads the current one when it
// runs, so a renewal that landed a second earlier wins.

export const EXPIRY_QUEUE = 'subscription-expiry';
export const REMINDER_QUEUE = 'subscription-reminder';

export const subscriptionQueues: Record<string, Omit<Queue, 'name'>> = {
  // Removal talks to Telegram; a failure retries with backoff and, if it keeps failing, stays in
  // pg-boss as failed (visible to operators) with the subscription still marked unremoved.
  [EXPIRY_QUEUE]: { policy: 'standard', retryLimit: 8, retryDelay: 5, retryBackoff: true, retryDelayMax: 600, notify: true },
  [REMINDER_QUEUE]: { policy: 'standard', retryLimit: 3, retryDelay: 30, retryBackoff: true, notify: true },
};

const NAMESPACE = '1d3c5a0e-44a2-4c55-9a8e-6b1f0e7d2c91';
const jobId = (subscriptionId: string, expiresAt: Date, kind: string) => uuidv5(`${subscriptionId}:${expiresAt.toISOString()}:${kind}`, NAMESPACE);

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
}

/** SUBSCRIPTION_REMINDERS: durations before expiry, comma-separated ("3d,1d"); empty for none. */
export function parseReminders(value: string): number[] {
  try {
    return parseDurationList(value);
  } catch (error) {
    throw new Error(`SUBSCRIPTION_REMINDERS: ${(error as Error).message}`, { cause: error });
  }
}

/** Grants the order's period and schedules its reminders and expiry with it; call inside a transaction. */
export async function grantAndScheduleIn(deps: Pick<SubscriptionDeps, 'boss' | 'remindersMs'>, tx: pg.PoolClient, input: GrantInput): Promise<Grant> {
  const grant = await grantSubscription(tx, input);
  if (grant.fresh) await schedule(deps, tx, grant.subscriptionId, grant.expiresAt);
  return grant;
}

export function grantAndSchedule(deps: Pick<SubscriptionDeps, 'pool' | 'boss' | 'remindersMs'>, input: GrantInput): Promise<Grant> {
  return inTransaction(deps.pool, (tx) => grantAndScheduleIn(deps, tx, input));
}

export async function schedule(deps: Pick<SubscriptionDeps, 'boss' | 'remindersMs'>, tx: pg.PoolClient, subscriptionId: string, expiresAt: Date): Promise<void> {
  const db = { executeSql: (text: string, values?: unknown[]) => tx.query(text, values) };
  const data: ExpiryJob = { subscriptionId, expiresAt: expiresAt.toISOString() };
  await deps.boss.send(EXPIRY_QUEUE, data, { id: jobId(subscriptionId, expiresAt, 'expiry'), startAfter: expiresAt, db });
  const reminders = reminderTimes(expiresAt, deps.remindersMs, new Date()).map(({ beforeMs, at }) => ({
    id: jobId(subscriptionId, expiresAt, `remind-${beforeMs}`),
    data: { ...data, beforeMs } satisfies ReminderJob,
    startAfter: at,
  }));
  if (reminders.length) await deps.boss.insert(REMINDER_QUEUE, reminders, { db });
}

export type ExpiryOutcome = 'removed' | 'dry-run' | 'kept' | 'already-removed' | 'missing';

/**
 * Removes the member if, now, the subscription has ended. The row stays locked while Telegram is
 * asked, so a renewal that commits first is seen (and wins), and one that arrives during the removal
 * waits and re-admits the buyer with its own invite afterwards.
 */
export async function expireSubscription(deps: SubscriptionDeps, subscriptionId: string): Promise<ExpiryOutcome> {
  const tx = await deps.pool.connect();
  let outcome: ExpiryOutcome;
  let notify: { buyer: number; title: string; openChannelId: string } | null = null;
  const log = deps.log.child({ subscriptionId });
  try {
    await tx.query('BEGIN');
    const sub = await lockSubscription(tx, subscriptionId);
    if (!sub) {
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
  log.info({ outcome }, 'subscription expiry checked');
  return outcome;
}

export type ReminderOutcome = 'sent' | 'skipped' | 'undeliverable';

/** Sends the reminder if the subscription still ends when this reminder was scheduled for. */
export async function remind(deps: SubscriptionDeps, job: ReminderJob): Promise<ReminderOutcome> {
  const sub = await findSubscription(deps.pool, job.subscriptionId);
  if (!sub || sub.removedAt || sub.expiresAt.toISOString() !== job.expiresAt || hasEnded(sub.expiresAt, new Date())) return 'skipped';
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
  await deps.boss.work<ExpiryJob>(EXPIRY_QUEUE, options, (jobs) => settle(jobs, deps.log, (data) => expireSubscription(deps, data.subscriptionId)));
  await deps.boss.work<ReminderJob>(REMINDER_QUEUE, options, (jobs) => settle(jobs, deps.log, (data) => remind(deps, data)));
  return async () => {
    await deps.boss.offWork(EXPIRY_QUEUE);
    await deps.boss.offWork(REMINDER_QUEUE);
  };
}
