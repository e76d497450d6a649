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
  markRemovalFailed,
  markRemovalStarted,
  markRemoved,
  nextReminderSql,
  type Grant,
  type GrantInput,
} from './subscriptions.repo.js';

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
async function checkExpiry(deps: SubscriptionDeps, subscriptionId: string, skipLocked: boolean): Promise<ExpiryOutcome | 'busy'> {
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

// ---- The sweep -------------------------------------------------------------------------------------

/** Subscriptions read (removals) or claimed (reminders) per statement; a run loops until none is due. */
export const SWEEP_BATCH = 100;
/** How long a claimed reminder is left to its sweep before another may send it (a crash's resend delay). */
export const REMINDER_LEASE_MS = 10 * 60_000;
/** Tries of one reminder (the first and three retries, as the reminder queue's retryLimit 3 allowed). */
export const REMINDER_TRIES = 4;
const REMINDER_RETRY_DELAY_MS = 30_000;
/** Telegram calls in flight per sweep: reminders (no database connection held) and removals (each holds its row lock). */
const REMINDER_CONCURRENCY = 10;
const REMOVAL_CONCURRENCY = 4;

export interface SweepResult {
  reminders: Record<'sent' | 'undeliverable' | 'failed' | 'dropped' | 'gave-up' | 'late', number>;
  removals: Record<ExpiryOutcome | 'busy' | 'failed', number>;
}

interface ClaimedReminder {
  subscriptionId: string;
  action: 'send' | 'drop' | 'give-up';
  buyerTelegramId: string;
  openChannelId: string;
  title: string;
  expiresAt: Date;
  /** next_reminder_at as the claim set it: the compare-and-set key of this claim. */
  lease: Date | null;
  attempts: number;
}

/**
 * Claims up to `limit` due reminders in one statement. Rows another sweep holds are skipped (SKIP
 * LOCKED); each row's decision is made on the version the lock returned (a renewal committed just
 * before is seen): 'send' moves next_reminder_at a lease ahead, 'drop' clears it (the subscription
 * ended, was removed, or its expiry moved without re-arming), 'give-up' (out of tries) advances it.
 */
async function claimReminders(deps: Pick<SubscriptionDeps, 'pool' | 'remindersMs'>, limit: number): Promise<ClaimedReminder[]> {
  const { rows } = await deps.pool.query<ClaimedReminder>(
    `WITH due AS (
       SELECT s.subscription_id,
              CASE WHEN s.removed_at IS NOT NULL OR s.expires_at <= now() OR s.reminders_for IS DISTINCT FROM s.expires_at THEN 'drop'
                   WHEN s.reminder_attempts >= $3 THEN 'give-up'
                   ELSE 'send' END AS action
         FROM subscriptions s
        WHERE s.next_reminder_at <= now()
        ORDER BY s.next_reminder_at
        LIMIT $1
        FOR UPDATE OF s SKIP LOCKED
     )
     UPDATE subscriptions s
        SET next_reminder_at = CASE due.action
              WHEN 'send' THEN date_trunc('milliseconds', now() + $2 * interval '1 millisecond')
              WHEN 'give-up' THEN ${nextReminderSql('s.expires_at', '$4')}
            END,
            reminder_attempts = CASE WHEN due.action = 'send' THEN s.reminder_attempts + 1 ELSE 0 END,
            updated_at = now()
       FROM due, channels c
      WHERE s.subscription_id = due.subscription_id AND c.open_channel_id = s.open_channel_id
     RETURNING s.subscription_id::text AS "subscriptionId", due.action, s.buyer_telegram_id::text AS "buyerTelegramId",
               s.open_channel_id::text AS "openChannelId", c.title, s.expires_at AS "expiresAt", s.next_reminder_at AS lease,
               s.reminder_attempts AS attempts`,
    [limit, REMINDER_LEASE_MS, REMINDER_TRIES, deps.remindersMs],
  );
  return rows;
}

/** Sends one claimed reminder, outside any transaction, and settles its claim. */
async function deliverReminder(deps: SubscriptionDeps, c: ClaimedReminder, deadline: number): Promise<'sent' | 'undeliverable' | 'failed' | 'late'> {
  // Half the lease is left to finish in: past that, another sweep could claim it again, so leave it.
  if (Date.now() > deadline) return 'late';
  const log = deps.log.child({ subscriptionId: c.subscriptionId });
  let outcome: 'sent' | 'undeliverable' | 'failed';
  try {
    const texts = await channelTexts(deps.pool, c.openChannelId);
    await deps.api.sendMessage(Number(c.buyerTelegramId), reminderText({ title: c.title, texts }, c.expiresAt), {
      reply_markup: renewKeyboard(c.openChannelId),
    });
    outcome = 'sent';
  } catch (error) {
    const failure = classifyTelegramError(error);
    outcome = failure?.kind === 'forbidden' || failure?.kind === 'rejected' ? 'undeliverable' : 'failed';
    if (outcome === 'undeliverable') log.info({ failure }, 'reminder undeliverable');
    else log.warn({ err: error, attempt: c.attempts }, 'reminder not sent; the sweep tries again');
  }
  // Only this claim's row, as it left it: a renewal that re-armed meanwhile (new next_reminder_at and
  // reminders_for) is not touched.
  const cas = `WHERE subscription_id = $1 AND next_reminder_at = $2 AND reminders_for = expires_at`;
  const next = nextReminderSql('s.expires_at', '$3');
  if (outcome === 'failed') {
    const delayMs = REMINDER_RETRY_DELAY_MS * 2 ** Math.max(0, c.attempts - 1);
    const retryAt = `date_trunc('milliseconds', now() + $4 * interval '1 millisecond')`;
    // The retry, unless the next reminder comes first: that one is sent instead (a fresh one, fresh tries).
    await deps.pool.query(
      `UPDATE subscriptions s SET next_reminder_at = least(${retryAt}, ${next}),
              reminder_attempts = CASE WHEN ${next} <= ${retryAt} THEN 0 ELSE s.reminder_attempts END, updated_at = now() ${cas}`,
      [c.subscriptionId, c.lease, deps.remindersMs, delayMs],
    );
  } else {
    await deps.pool.query(`UPDATE subscriptions s SET next_reminder_at = ${next}, reminder_attempts = 0, updated_at = now() ${cas}`, [c.subscriptionId, c.lease, deps.remindersMs]);
  }
  return outcome;
}

/** Due removals: ended and not removed (nor logged by a dry run), and renewed ones whose removal was cut off after the ban. */
async function dueRemovals(pool: pg.Pool, limit: number, seen: string[]): Promise<string[]> {
  const retry = `(removal_retry_at IS NULL OR removal_retry_at <= now()) AND subscription_id <> ALL($2::bigint[])`;
  const { rows } = await pool.query<{ id: string }>(
    `SELECT subscription_id::text AS id FROM (
       (SELECT subscription_id, expires_at FROM subscriptions
         WHERE removed_at IS NULL AND removal_dry_run_at IS NULL AND expires_at <= now() AND ${retry}
         ORDER BY expires_at LIMIT $1)
       UNION ALL
       (SELECT subscription_id, expires_at FROM subscriptions
         WHERE removal_started_at IS NOT NULL AND removed_at IS NULL AND expires_at > now() AND ${retry}
         LIMIT $1)
     ) due ORDER BY expires_at LIMIT $1`,
    [limit, seen],
  );
  return rows.map((r) => r.id);
}

async function eachLimited<T>(items: T[], concurrency: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await run(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
}

/**
 * One sweep: every due reminder, then every due removal, in batches of `batchSize` until none is left.
 * Safe to run on several instances at once (see the top of this file); the scheduled job runs it.
 */
export async function sweepSubscriptions(deps: SubscriptionDeps, options: { batchSize?: number } = {}): Promise<SweepResult> {
  const batchSize = options.batchSize ?? SWEEP_BATCH;
  const result: SweepResult = {
    reminders: { sent: 0, undeliverable: 0, failed: 0, dropped: 0, 'gave-up': 0, late: 0 },
    removals: { removed: 0, 'dry-run': 0, kept: 0, 'already-removed': 0, missing: 0, busy: 0, failed: 0 },
  };

  // Reminders: every claim takes its rows out of the due set, so the loop ends.
  for (;;) {
    const claimed = await claimReminders(deps, batchSize);
    const deadline = Date.now() + REMINDER_LEASE_MS / 2;
    for (const c of claimed) {
      if (c.action === 'drop') result.reminders.dropped += 1;
      if (c.action === 'give-up') {
        result.reminders['gave-up'] += 1;
        deps.log.warn({ subscriptionId: c.subscriptionId, tries: REMINDER_TRIES }, 'reminder given up after its tries');
      }
    }
    await eachLimited(
      claimed.filter((c) => c.action === 'send'),
      REMINDER_CONCURRENCY,
      async (c) => {
        const outcome = await deliverReminder(deps, c, deadline).catch((error: unknown) => {
          // Its claim stays: the lease runs out and a later sweep sends it.
          deps.log.warn({ subscriptionId: c.subscriptionId, err: error }, 'reminder claim not settled');
          return 'failed' as const;
        });
        result.reminders[outcome] += 1;
      },
    );
    if (claimed.length < batchSize) break;
  }

  // Removals: a row is read once per run (`seen`), whatever became of it.
  const seen: string[] = [];
  for (;;) {
    const ids = await dueRemovals(deps.pool, batchSize, seen);
    seen.push(...ids);
    await eachLimited(ids, REMOVAL_CONCURRENCY, async (id) => {
      try {
        result.removals[await checkExpiry(deps, id, true)] += 1;
      } catch (error) {
        result.removals.failed += 1;
        const retry = await markRemovalFailed(deps.pool, id).catch(() => null);
        deps.log.warn({ subscriptionId: id, err: error, attempts: retry?.attempts, retryAt: retry?.retryAt }, 'subscription removal failed; the sweep tries again');
      }
    });
    if (ids.length < batchSize) break;
  }

  const acted = [...Object.values(result.reminders), ...Object.values(result.removals)].some((n) => n > 0);
  if (acted) deps.log.info(result, 'subscription sweep');
  return result;
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
