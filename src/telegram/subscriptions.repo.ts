import type pg from 'pg';
import { grantPeriod } from '../domain/subscription.js';
import type { Queryable } from './invites.repo.js';

// Subscriptions (buyer x channel) and the grants (one per order) that start or extend them. Expiry
// times are kept to the millisecond so the value a job carries compares equal to the stored one.
// The timers (migrations/016.do.subscription-timers.sql) are columns of the same row: expires_at for the
// removal, next_reminder_at / reminders_for for the reminders, armed in the statement (or transaction)
// that sets the expiry and swept by one scheduled job (src/telegram/subscriptions.service.ts).

export interface Subscription {
  subscriptionId: string;
  buyerTelegramId: string;
  openChannelId: string;
  expiresAt: Date;
  removedAt: Date | null;
  removalStartedAt: Date | null;
  /** The expiry the reminder columns were armed for (null: not armed, e.g. granted before migration 016). */
  remindersFor: Date | null;
}

export interface SubscriptionWithChannel extends Subscription {
  closedChannelId: string;
  title: string;
}

export interface GrantInput {
  orderId: string;
  paymentId: string;
  buyerTelegramId: string;
  openChannelId: string;
  planId: string;
  durationDays: number;
}

export interface Grant {
  subscriptionId: string;
  startsAt: Date;
  expiresAt: Date;
  /** false when this order had been granted before: nothing was extended this time. */
  fresh: boolean;
}

const SUB = `s.subscription_id::text AS "subscriptionId", s.buyer_telegram_id::text AS "buyerTelegramId",
  s.open_channel_id::text AS "openChannelId", s.expires_at AS "expiresAt", s.removed_at AS "removedAt",
  s.removal_started_at AS "removalStartedAt", s.reminders_for AS "remindersFor"`;

const MS = `interval '1 millisecond'`;

/**
 * SQL: the next reminder of a subscription ending at `expiry` — the soonest `expiry - offset` (offsets in
 * ms, a bigint[] parameter) still ahead of the database's now(), or NULL when none is. reminderTimes'
 * rule (src/domain/subscription.ts): a reminder whose moment has passed is not sent late.
 */
export const nextReminderSql = (expiry: string, offsets: string) =>
  `(SELECT min(${expiry} - o * ${MS}) FROM unnest(${offsets}::bigint[]) AS o WHERE ${expiry} - o * ${MS} > now())`;

/** SQL assignments arming a subscription's timers for the expiry `expiry`: its reminders from the start, no removal backoff. */
const armTimersSql = (expiry: string, offsets: string) =>
  `reminders_for = ${expiry}, next_reminder_at = ${nextReminderSql(expiry, offsets)}, reminder_attempts = 0, removal_attempts = 0, removal_retry_at = NULL`;

// Insert-or-touch takes the row lock in one statement (ON CONFLICT DO UPDATE locks the existing row)
// and answers the expiry as it stands once the lock is ours (the newest row version, whatever the
// statement's snapshot). The order's earlier grant, if any, is read in the same statement; a grant of
// the same order committed while this one waited for the lock is not in that statement's snapshot, so
// the grant insert skips an order already granted (ON CONFLICT on order_id) and the extension, which
// only follows an inserted grant, does not happen: an order never extends a subscription twice.
/**
 * The CTEs `prior` (the order's earlier grant) and `sub` (the buyer's subscription to the channel,
 * inserted or touched: locked), as SQL expressions: the buyer, the channel and the order. With `from`
 * (a FROM clause, with its WHERE), the subscription is the one row per row it yields, and none when it
 * yields none: the invite's statement (src/telegram/invite-claim.repo.ts) locks only when the channel and
 * the plan it reads exist. Selected with LOCKED_FOR_GRANT, `FROM sub LEFT JOIN prior ON true`.
 */
export const lockForGrantCtes = (k: { buyer: string; channel: string; orderId: string; from?: string }) => {
  const row = `${k.buyer}, ${k.channel}, date_trunc('milliseconds', now())`;
  return `prior AS (
      SELECT subscription_id::text AS subscription_id, starts_at, expires_at FROM subscription_grants WHERE order_id = ${k.orderId}
    ), sub AS (
      INSERT INTO subscriptions (buyer_telegram_id, open_channel_id, expires_at) ${k.from ? `SELECT ${row} FROM ${k.from}` : `VALUES (${row})`}
      ON CONFLICT (buyer_telegram_id, open_channel_id) DO UPDATE SET updated_at = subscriptions.updated_at
      RETURNING subscription_id::text AS subscription_id, expires_at
    )`;
};

/** What lockForGrantCtes answers (LockedForGrant). */
export const LOCKED_FOR_GRANT = `sub.subscription_id AS "subscriptionId", sub.expires_at AS "expiresAt", date_trunc('milliseconds', now()) AS now,
           prior.subscription_id AS "priorSubscriptionId", prior.starts_at AS "priorStartsAt", prior.expires_at AS "priorExpiresAt"`;

/** The subscription locked for a grant, the database's clock then, and the order's earlier grant if there was one. */
export interface LockedForGrant {
  subscriptionId: string;
  expiresAt: Date;
  now: Date;
  priorSubscriptionId: string | null;
  priorStartsAt: Date | null;
  priorExpiresAt: Date | null;
}

const LOCK_SUBSCRIPTION = {
  name: 'subscription-lock-for-grant',
  text: `WITH ${lockForGrantCtes({ buyer: '$1', channel: '$2', orderId: '$3' })}
    SELECT ${LOCKED_FOR_GRANT}
      FROM sub LEFT JOIN prior ON true`,
};

// The grant (skipped when the order has one), then the extension, which follows only an inserted grant.
const grantedCte = `granted AS (
       INSERT INTO subscription_grants (order_id, subscription_id, payment_id, plan_id, duration_days, starts_at, expires_at)
       VALUES ($2, $1, $3, $4, $5, $6, $7)
       ON CONFLICT (order_id) DO NOTHING
       RETURNING subscription_id, starts_at, expires_at
     )`;
const extendSql = `UPDATE subscriptions s SET expires_at = granted.expires_at, removed_at = NULL, removal_dry_run_at = NULL, updated_at = now(),
            ${armTimersSql('granted.expires_at', '$8')}
       FROM granted WHERE s.subscription_id = granted.subscription_id
     RETURNING s.subscription_id::text AS "subscriptionId", granted.starts_at AS "startsAt", granted.expires_at AS "expiresAt"`;
/**
 * The grant as CTEs: `granted` and `extended` (the subscription moved to the grant's end, its timers
 * armed; a row only when the grant was inserted), parameters $1..$8 (grantValues): a statement that
 * composes them numbers its own parameters after these.
 */
export const grantCtes = `${grantedCte}, extended AS (${extendSql})`;

const GRANT = { name: 'subscription-grant', text: `WITH ${grantedCte} ${extendSql}` };

/** The order's earlier grant, when the lock found one: nothing is to be granted or extended. */
export const priorGrantOf = (sub: LockedForGrant): Grant | null =>
  sub.priorSubscriptionId === null ? null : { subscriptionId: sub.priorSubscriptionId, startsAt: sub.priorStartsAt!, expiresAt: sub.priorExpiresAt!, fresh: false };

/**
 * The grant statement's parameters ($1..$8): the period is grantPeriod's rule, the one place it is
 * decided, fed with the expiry read under the lock and the database's clock then.
 */
export function grantValues(sub: LockedForGrant, g: Pick<GrantInput, 'orderId' | 'paymentId' | 'planId' | 'durationDays'>, remindersMs: readonly number[]): unknown[] {
  const period = grantPeriod({ currentExpiresAt: sub.expiresAt, now: sub.now, durationDays: g.durationDays });
  return [sub.subscriptionId, g.orderId, g.paymentId, g.planId, g.durationDays, period.startsAt, period.expiresAt, remindersMs];
}

/**
 * The grant as `extended` answered it, or, when the insert skipped (a grant of the same order committed
 * while this transaction waited for the lock, see LOCK_SUBSCRIPTION), that earlier grant: one more read, rare.
 */
export async function grantMade(tx: Queryable, extended: Omit<Grant, 'fresh'> | undefined, orderId: string): Promise<Grant> {
  if (extended) return { ...extended, fresh: true };
  const { rows: prior } = await tx.query<Omit<Grant, 'fresh'>>(
    `SELECT subscription_id::text AS "subscriptionId", starts_at AS "startsAt", expires_at AS "expiresAt" FROM subscription_grants WHERE order_id = $1`,
    [orderId],
  );
  return { ...prior[0]!, fresh: false };
}

/**
 * Starts or extends the buyer's subscription for this order, once. Call inside a transaction: the
 * subscription row is locked, so concurrent grants for the same buyer and channel (or the same order)
 * take turns, and an expiry decision in progress finishes before a renewal lands (or sees it). The
 * period itself is grantPeriod's rule (src/domain/subscription.ts), fed with the expiry read under the
 * lock and the database's clock. The statement that moves the expiry also arms its timers (reminders at
 * `remindersMs` before it; the removal is expires_at itself): nothing else is scheduled anywhere.
 * Two statements (lock and read; grant and extend), one when the order was granted before. The invite
 * actor composes the same pieces into its own two (src/telegram/invite-claim.repo.ts): the lock with
 * its read of the route, channel and plan, the grant with the invite's claim.
 */
export async function grantSubscription(tx: pg.PoolClient, g: GrantInput, remindersMs: readonly number[]): Promise<Grant> {
  const { rows: subs } = await tx.query<LockedForGrant>({ ...LOCK_SUBSCRIPTION, values: [g.buyerTelegramId, g.openChannelId, g.orderId] });
  const sub = subs[0]!;
  const prior = priorGrantOf(sub);
  if (prior) return prior;
  const { rows } = await tx.query<Omit<Grant, 'fresh'>>({ ...GRANT, values: grantValues(sub, g, remindersMs) });
  return grantMade(tx, rows[0], g.orderId);
}

/** Arms a locked subscription's timers for its current expiry (after a manual grant, extension or revoke moved it). */
export async function armTimers(tx: Queryable, subscriptionId: string, remindersMs: readonly number[]): Promise<void> {
  await tx.query(`UPDATE subscriptions s SET ${armTimersSql('s.expires_at', '$2')} WHERE subscription_id = $1`, [subscriptionId, remindersMs]);
}

/**
 * Locks the subscription FOR UPDATE (the lock grants take). With `skipLocked`, answers 'locked' at once
 * instead of waiting when someone else holds it (a concurrent sweep, or a renewal in progress).
 */
export async function lockSubscription(tx: pg.PoolClient, subscriptionId: string): Promise<SubscriptionWithChannel | null>;
export async function lockSubscription(tx: pg.PoolClient, subscriptionId: string, options: { skipLocked: true }): Promise<SubscriptionWithChannel | null | 'locked'>;
export async function lockSubscription(tx: pg.PoolClient, subscriptionId: string, options: { skipLocked?: boolean } = {}): Promise<SubscriptionWithChannel | null | 'locked'> {
  const { rows } = await tx.query<SubscriptionWithChannel>(
    `SELECT ${SUB}, c.closed_channel_id::text AS "closedChannelId", c.title
       FROM subscriptions s JOIN channels c ON c.open_channel_id = s.open_channel_id
      WHERE s.subscription_id = $1 FOR UPDATE OF s${options.skipLocked ? ' SKIP LOCKED' : ''}`,
    [subscriptionId],
  );
  if (rows[0]) return rows[0];
  if (!options.skipLocked) return null;
  // Nothing answered: either there is no such row, or it is locked.
  const { rows: exists } = await tx.query('SELECT 1 FROM subscriptions WHERE subscription_id = $1', [subscriptionId]);
  return exists.length ? 'locked' : null;
}

export async function findSubscription(db: Queryable, subscriptionId: string): Promise<SubscriptionWithChannel | null> {
  const { rows } = await db.query<SubscriptionWithChannel>(
    `SELECT ${SUB}, c.closed_channel_id::text AS "closedChannelId", c.title
       FROM subscriptions s JOIN channels c ON c.open_channel_id = s.open_channel_id WHERE s.subscription_id = $1`,
    [subscriptionId],
  );
  return rows[0] ?? null;
}

export async function subscriptionsOfBuyer(db: Queryable, buyerTelegramId: string): Promise<SubscriptionWithChannel[]> {
  const { rows } = await db.query<SubscriptionWithChannel>(
    `SELECT ${SUB}, c.closed_channel_id::text AS "closedChannelId", c.title
       FROM subscriptions s JOIN channels c ON c.open_channel_id = s.open_channel_id
      WHERE s.buyer_telegram_id = $1 ORDER BY s.expires_at DESC`,
    [buyerTelegramId],
  );
  return rows;
}

const set = (db: Queryable, subscriptionId: string, assignments: string) =>
  db.query(`UPDATE subscriptions SET ${assignments}, updated_at = now() WHERE subscription_id = $1`, [subscriptionId]);

export const markRemovalStarted = (db: Queryable, id: string) => set(db, id, 'removal_started_at = now()');
// A removal decided (done, undone, logged) ends its retries.
const DONE = 'removal_attempts = 0, removal_retry_at = NULL';
export const clearRemovalStarted = (db: Queryable, id: string) => set(db, id, `removal_started_at = NULL, ${DONE}`);
export const markRemoved = (db: Queryable, id: string) => set(db, id, `removed_at = now(), removal_started_at = NULL, ${DONE}`);
export const markRemovalDryRun = (db: Queryable, id: string) => set(db, id, `removal_dry_run_at = now(), ${DONE}`);

/** A removal Telegram refused (or that failed otherwise): the sweep tries again after a backoff, 5 s doubling up to 10 min. */
export async function markRemovalFailed(db: Queryable, subscriptionId: string): Promise<{ attempts: number; retryAt: Date } | null> {
  const { rows } = await db.query<{ attempts: number; retryAt: Date }>(
    `UPDATE subscriptions SET removal_attempts = removal_attempts + 1,
            removal_retry_at = now() + least(600, 5 * power(2, least(removal_attempts, 10))) * interval '1 second', updated_at = now()
      WHERE subscription_id = $1 RETURNING removal_attempts AS attempts, removal_retry_at AS "retryAt"`,
    [subscriptionId],
  );
  return rows[0] ?? null;
}

export interface LockedSubscription extends Subscription {
  /** The database's clock when the lock was taken (the one grants compute with), to the millisecond. */
  now: Date;
  /** Inserted by this call (the buyer had no subscription to the channel). */
  created: boolean;
}

/**
 * The buyer's subscription to a channel, locked FOR UPDATE — the same row lock grantSubscription and the
 * expiry job take, so a manual change, a renewal and an expiry decision take turns. With `create`, a
 * missing one is inserted (ending now, as grantSubscription starts one) and locked in the same
 * statement. Null when there is none (and `create` is not set). Call inside a transaction.
 */
export async function lockSubscriptionOf(tx: pg.PoolClient, buyerTelegramId: string, openChannelId: string, options: { create?: boolean } = {}): Promise<LockedSubscription | null> {
  const { rows } = await tx.query<LockedSubscription>(
    options.create
      ? `INSERT INTO subscriptions AS s (buyer_telegram_id, open_channel_id, expires_at) VALUES ($1, $2, date_trunc('milliseconds', now()))
         ON CONFLICT (buyer_telegram_id, open_channel_id) DO UPDATE SET updated_at = s.updated_at
         RETURNING ${SUB}, date_trunc('milliseconds', now()) AS now, (s.xmax = 0) AS created`
      : `SELECT ${SUB}, date_trunc('milliseconds', now()) AS now, false AS created
           FROM subscriptions s WHERE s.buyer_telegram_id = $1 AND s.open_channel_id = $2 FOR UPDATE OF s`,
    [buyerTelegramId, openChannelId],
  );
  return rows[0] ?? null;
}

/** Moves a locked subscription's expiry (a manual grant or extension): a removed one counts as a member again, as after a renewal. */
export async function setSubscriptionExpiry(tx: pg.PoolClient, subscriptionId: string, expiresAt: Date): Promise<void> {
  await tx.query(
    `UPDATE subscriptions SET expires_at = $2, removed_at = NULL, removal_dry_run_at = NULL, updated_at = now() WHERE subscription_id = $1`,
    [subscriptionId, expiresAt],
  );
}

/** Ends a locked subscription at `at` (a revoke: its moment, even for one that had lapsed unremoved); answers the stored expiry. */
export async function endSubscriptionAt(tx: pg.PoolClient, subscriptionId: string, at: Date): Promise<Date> {
  const { rows } = await tx.query<{ expiresAt: Date }>(
    `UPDATE subscriptions SET expires_at = date_trunc('milliseconds', $2::timestamptz), updated_at = now() WHERE subscription_id = $1 RETURNING expires_at AS "expiresAt"`,
    [subscriptionId, at],
  );
  return rows[0]!.expiresAt;
}
