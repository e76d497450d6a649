import type pg from 'pg';
import { channelTexts } from '../channels/owner-texts.js';
import { renewKeyboard } from './keyboards.js';
import { reminderText } from './messages.js';
import { markRemovalFailed, nextReminderSql } from './subscriptions.repo.js';
import { checkExpiry, type ExpiryOutcome, type SubscriptionDeps } from './subscriptions.service.js';
import { classifyTelegramError } from './telegram-errors.js';

// The subscription sweep: one scheduled job sends the reminders that are due and removes the members
// whose subscription ended, reading the timers the grant armed (the rules are at the top of
// subscriptions.service.ts).

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
