import type { Api } from 'grammy';
import { z } from 'zod';
import { durationSchema, formatDuration } from '../domain/duration.js';
import { ConflictError, NotFoundError } from '../domain/errors.js';
import { hasEnded } from '../domain/subscription.js';
import { safeText } from '../domain/text.js';
import { inTransaction, type Queryable } from '../persistence/transaction.js';
import { markRevoked } from '../telegram/invites.repo.js';
import { openChannelKeyboard } from '../telegram/keyboards.js';
import { formatDate, grantInviteText } from '../telegram/messages.js';
import { endSubscriptionAt, lockSubscriptionOf, setSubscriptionExpiry } from '../telegram/subscriptions.repo.js';
import { expireSubscription, schedule, type ExpiryOutcome, type SubscriptionDeps } from '../telegram/subscriptions.service.js';
import { classifyTelegramError, isLinkGone } from '../telegram/telegram-errors.js';
import { findChannel } from './channels.repo.js';

// Access an admin gives or takes by hand: grant, extend (by a duration) or revoke one buyer's access to
// a channel. Each change takes the subscription's row lock — the one a paid renewal (grantSubscription)
// and the expiry job take — so a manual change, a renewal and an expiry decision are ordered one after
// the other, each seeing what the one before committed. Each change is recorded in
// subscription_adjustments (who, why, when, expiry before and after) in the same transaction.
//
// - grant: access for `duration` from the current expiry or from now, whichever is later (the paid
//   renewal rule); refused while access is running (use extend). Creates the subscription when the
//   buyer never had one, and re-admits a removed buyer with a single-use invite link sent by DM.
// - extend: the same rule on an existing subscription that was not removed (a removed buyer needs grant).
// - revoke: ends the subscription now (the expiry becomes the revoke's moment), then removes the member
//   exactly as expiry does — expireSubscription: ban, then unban with only_if_banned, marked removed, told
//   so — and revokes the unused invite links of the orders granted before it. An expiry job for the new
//   expiry is scheduled in the same transaction, so a removal that Telegram refuses now is retried. A
//   renewal that commits after the revoke grants again from then, like any payment after a lapse.
// Reminder and expiry jobs for a moved expiry come from the one scheduling function (schedule); jobs
// scheduled for an earlier expiry find it moved when they run and do nothing.

export const ACCESS_ACTIONS = ['grant', 'extend', 'revoke'] as const;
export type AccessAction = (typeof ACCESS_ACTIONS)[number];

export const accessChangeSchema = z
  .strictObject({
    action: z.enum(ACCESS_ACTIONS, { error: 'must be "grant", "extend" or "revoke"' }),
    duration: durationSchema().optional().meta({ description: 'grant / extend: how long, e.g. "30d", "12h" (at most 10 years)', example: '30d' }),
    by: safeText().trim().min(1, 'must not be empty').max(64).meta({ description: 'who acts, recorded', example: 'alice' }),
    reason: safeText().trim().min(1, 'must not be empty').max(500).meta({ description: 'why, recorded', example: 'refund dispute settled' }),
  })
  .superRefine((v, ctx) => {
    if (v.action !== 'revoke' && v.duration === undefined) ctx.addIssue({ code: 'custom', path: ['duration'], message: `is required to ${v.action} (e.g. "30d")` });
    if (v.action !== 'revoke' && v.duration !== undefined && v.duration < 60_000) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'must be at least 1m' });
    if (v.action === 'revoke' && v.duration !== undefined) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'is not taken by revoke' });
  });

export type AccessChange = z.output<typeof accessChangeSchema>;

export interface OwnerAccessDeps extends SubscriptionDeps {
  /** Lifetime of the single-use link a grant sends a buyer who is not in the channel (INVITE_EXPIRE_AFTER). */
  inviteExpireAfterMs: number;
}

export interface AccessChangeResult {
  adjustment: AdjustmentView;
  subscription: { subscription_id: string; status: 'active' | 'expired' | 'removed'; expires_at: string; removed_at: string | null };
  /** revoke: what became of the member. "pending": Telegram refused for now; the expiry job retries it. */
  removal?: { outcome: ExpiryOutcome | 'pending'; error?: string; revoked_links: number };
  /** grant to a buyer who is not in the channel: the single-use link, and whether the DM went out. */
  invite?: { link: string | null; expires_at: string | null; dm: 'sent' | 'failed' | 'unconfirmed' | 'not sent'; error?: string };
}

export interface AdjustmentView {
  adjustment_id: string;
  subscription_id: string;
  open_channel_id: string;
  buyer_telegram_id: string;
  action: AccessAction;
  duration: string | null;
  expires_before: string | null;
  expires_after: string;
  by: string;
  reason: string;
  created_at: string;
}

interface AdjustmentRow {
  adjustmentId: string;
  subscriptionId: string;
  openChannelId: string;
  buyerTelegramId: string;
  action: AccessAction;
  durationMs: string | null;
  expiresBefore: Date | null;
  expiresAfter: Date;
  by: string;
  reason: string;
  createdAt: Date;
}

const ADJUSTMENT = `adjustment_id::text AS "adjustmentId", subscription_id::text AS "subscriptionId", open_channel_id::text AS "openChannelId",
  buyer_telegram_id::text AS "buyerTelegramId", action, duration_ms::text AS "durationMs", expires_before AS "expiresBefore",
  expires_after AS "expiresAfter", adjusted_by AS by, reason, created_at AS "createdAt"`;

const adjustmentView = (r: AdjustmentRow): AdjustmentView => ({
  adjustment_id: r.adjustmentId,
  subscription_id: r.subscriptionId,
  open_channel_id: r.openChannelId,
  buyer_telegram_id: r.buyerTelegramId,
  action: r.action,
  duration: r.durationMs === null ? null : formatDuration(Number(r.durationMs)),
  expires_before: r.expiresBefore?.toISOString() ?? null,
  expires_after: r.expiresAfter.toISOString(),
  by: r.by,
  reason: r.reason,
  created_at: r.createdAt.toISOString(),
});

async function recordAdjustment(
  tx: Queryable,
  a: { subscriptionId: string; openChannelId: string; buyerTelegramId: string; action: AccessAction; durationMs: number | null; expiresBefore: Date | null; expiresAfter: Date; by: string; reason: string },
): Promise<AdjustmentRow> {
  const { rows } = await tx.query<AdjustmentRow>(
    `INSERT INTO subscription_adjustments (subscription_id, open_channel_id, buyer_telegram_id, action, duration_ms, expires_before, expires_after, adjusted_by, reason)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING ${ADJUSTMENT}`,
    [a.subscriptionId, a.openChannelId, a.buyerTelegramId, a.action, a.durationMs, a.expiresBefore, a.expiresAfter, a.by, a.reason],
  );
  return rows[0]!;
}

/** The manual changes of one buyer's subscription to a channel (or of the whole channel), newest first. */
export async function adjustmentsOf(db: Queryable, openChannelId: string, options: { buyerTelegramId?: string; limit?: number } = {}): Promise<AdjustmentView[]> {
  const { rows } = await db.query<AdjustmentRow>(
    `SELECT ${ADJUSTMENT} FROM subscription_adjustments
      WHERE open_channel_id = $1 AND ($2::bigint IS NULL OR buyer_telegram_id = $2)
      ORDER BY adjustment_id DESC LIMIT $3`,
    [openChannelId, options.buyerTelegramId ?? null, options.limit ?? 100],
  );
  return rows.map(adjustmentView);
}

async function subscriptionState(db: Queryable, subscriptionId: string): Promise<AccessChangeResult['subscription']> {
  const { rows } = await db.query<{ expiresAt: Date; removedAt: Date | null; ended: boolean }>(
    `SELECT expires_at AS "expiresAt", removed_at AS "removedAt", expires_at <= now() AS ended FROM subscriptions WHERE subscription_id = $1`,
    [subscriptionId],
  );
  const s = rows[0]!;
  return {
    subscription_id: subscriptionId,
    status: s.removedAt ? 'removed' : s.ended ? 'expired' : 'active',
    expires_at: s.expiresAt.toISOString(),
    removed_at: s.removedAt?.toISOString() ?? null,
  };
}

/** Grants, extends or revokes one buyer's access to a channel; see the top of this file. */
export async function changeAccess(deps: OwnerAccessDeps, openChannelId: string, buyerTelegramId: string, change: AccessChange): Promise<AccessChangeResult> {
  const channel = await findChannel(deps.pool, openChannelId);
  if (!channel) throw new NotFoundError(`open_channel_id: no channel ${openChannelId}`);
  const log = deps.log.child({ module: 'owner-access', openChannelId, buyer: buyerTelegramId, action: change.action, by: change.by });
  const common = { openChannelId, buyerTelegramId, by: change.by, reason: change.reason };

  if (change.action === 'revoke') {
    // The expiry job decides "ended" with this process's clock: the revoke's moment is taken from it too.
    const at = new Date();
    const { adjustment, links } = await inTransaction(deps.pool, async (tx) => {
      const sub = await lockSubscriptionOf(tx, buyerTelegramId, openChannelId);
      if (!sub) throw new NotFoundError(`buyer ${buyerTelegramId} has no subscription to channel ${openChannelId}: nothing to revoke`);
      if (sub.removedAt) throw new ConflictError(`buyer ${buyerTelegramId} was already removed from channel ${openChannelId} on ${formatDate(sub.removedAt)}`);
      const expiresAt = await endSubscriptionAt(tx, sub.subscriptionId, at);
      const row = await recordAdjustment(tx, { ...common, subscriptionId: sub.subscriptionId, action: 'revoke', durationMs: null, expiresBefore: sub.expiresAt, expiresAfter: expiresAt });
      // Retries the removal with backoff if Telegram refuses it below (a no-op once it is done).
      await schedule(deps, tx, sub.subscriptionId, expiresAt);
      return { adjustment: row, links: await unusedInviteOrders(tx, sub.subscriptionId) };
    });
    let removal: NonNullable<AccessChangeResult['removal']>;
    try {
      const outcome = await expireSubscription(deps, adjustment.subscriptionId);
      // "already-removed": the expiry job scheduled above got there first, on this revoke's behalf.
      removal = { outcome: outcome === 'already-removed' ? 'removed' : outcome, revoked_links: 0 };
    } catch (error) {
      log.warn({ err: error }, 'revoke: Telegram did not remove the member yet; the expiry job retries');
      removal = { outcome: 'pending', error: classifyTelegramError(error)?.description ?? (error as Error).message, revoked_links: 0 };
    }
    // Only when the member is out: a renewal that landed in between ("kept") needs its links.
    if (removal.outcome === 'removed' || removal.outcome === 'pending') {
      removal.revoked_links = await revokeLinks(deps, log, channel.closedChannelId, links);
    }
    log.info({ outcome: removal.outcome }, 'access revoked by an admin');
    return { adjustment: adjustmentView(adjustment), subscription: await subscriptionState(deps.pool, adjustment.subscriptionId), removal };
  }

  const durationMs = change.duration!;
  const { adjustment, readmit, banned } = await inTransaction(deps.pool, async (tx) => {
    const sub = await lockSubscriptionOf(tx, buyerTelegramId, openChannelId, { create: change.action === 'grant' });
    if (!sub) throw new NotFoundError(`buyer ${buyerTelegramId} has no subscription to channel ${openChannelId}: use "grant"`);
    const running = !sub.created && !sub.removedAt && !hasEnded(sub.expiresAt, sub.now);
    if (change.action === 'grant' && running) {
      throw new ConflictError(`buyer ${buyerTelegramId} already has access to channel ${openChannelId} until ${formatDate(sub.expiresAt)}: use "extend"`);
    }
    if (change.action === 'extend' && sub.removedAt) {
      throw new ConflictError(`buyer ${buyerTelegramId} was removed from channel ${openChannelId} on ${formatDate(sub.removedAt)}: use "grant" to let them back in`);
    }
    // The renewal rule (domain/subscription.ts grantPeriod): from the current expiry, or from now once it passed.
    const startsAt = sub.created ? sub.now.getTime() : Math.max(sub.expiresAt.getTime(), sub.now.getTime());
    const expiresAt = new Date(startsAt + durationMs);
    await setSubscriptionExpiry(tx, sub.subscriptionId, expiresAt);
    const row = await recordAdjustment(tx, {
      ...common,
      subscriptionId: sub.subscriptionId,
      action: change.action,
      durationMs,
      expiresBefore: sub.created ? null : sub.expiresAt,
      expiresAfter: expiresAt,
    });
    await schedule(deps, tx, sub.subscriptionId, expiresAt);
    // Not in the channel: never had access, or removed (a removal under way counts: it bans first).
    return {
      adjustment: row,
      readmit: change.action === 'grant' && (sub.created || sub.removedAt !== null || sub.removalStartedAt !== null),
      banned: sub.removalStartedAt !== null,
    };
  });
  // A removal cut off after its ban: the expiry check, now seeing a running subscription, lifts the ban (only_if_banned).
  if (banned) await expireSubscription(deps, adjustment.subscriptionId).catch((error: unknown) => log.warn({ err: error }, 'grant: could not lift an earlier ban yet; the expiry job retries'));
  log.info({ expiresAt: adjustment.expiresAfter }, `access ${change.action === 'grant' ? 'granted' : 'extended'} by an admin`);
  const result: AccessChangeResult = { adjustment: adjustmentView(adjustment), subscription: await subscriptionState(deps.pool, adjustment.subscriptionId) };
  if (readmit) result.invite = await sendGrantInvite(deps, log, { closedChannelId: channel.closedChannelId, title: channel.title }, buyerTelegramId, adjustment);
  return result;
}

/** Orders granted on this subscription whose link was neither used nor revoked (read under the revoke's lock). */
async function unusedInviteOrders(tx: Queryable, subscriptionId: string): Promise<string[]> {
  const { rows } = await tx.query<{ orderId: string }>(
    `SELECT i.order_id AS "orderId" FROM invites i JOIN subscription_grants g ON g.order_id = i.order_id
      WHERE g.subscription_id = $1 AND i.joined_at IS NULL AND i.revoked_at IS NULL`,
    [subscriptionId],
  );
  return rows.map((r) => r.orderId);
}

/** Revokes those orders' links as they stand now (a link stored since the lock is included); answers how many. */
async function revokeLinks(deps: OwnerAccessDeps, log: OwnerAccessDeps['log'], closedChannelId: string, orderIds: string[]): Promise<number> {
  if (orderIds.length === 0) return 0;
  const { rows } = await deps.pool.query<{ orderId: string; link: string | null }>(
    `SELECT order_id AS "orderId", invite_link AS link FROM invites WHERE order_id = ANY($1::text[]) AND joined_at IS NULL AND revoked_at IS NULL`,
    [orderIds],
  );
  let revoked = 0;
  for (const { orderId, link } of rows) {
    if (!link) continue;
    try {
      await deps.api.revokeChatInviteLink(Number(closedChannelId), link);
    } catch (error) {
      if (!isLinkGone(error)) {
        log.warn({ orderId, failure: classifyTelegramError(error) }, 'revoke: could not revoke an unused invite link');
        continue;
      }
    }
    await markRevoked(deps.pool, orderId, 'access revoked by an admin');
    revoked += 1;
  }
  return revoked;
}

/**
 * A buyer let back in by hand gets what a paid order gets: a single-use link (member limit 1, expiring
 * after INVITE_EXPIRE_AFTER), by DM. The grant stands whatever Telegram answers; the link (when made) is
 * in the answer so the admin can pass it on if the DM fails.
 */
async function sendGrantInvite(
  deps: OwnerAccessDeps,
  log: OwnerAccessDeps['log'],
  channel: { closedChannelId: string; title: string },
  buyerTelegramId: string,
  adjustment: AdjustmentRow,
): Promise<NonNullable<AccessChangeResult['invite']>> {
  const expireDate = new Date(Math.floor((Date.now() + deps.inviteExpireAfterMs) / 1000) * 1000);
  let link: string;
  try {
    const created = await createLink(deps.api, channel.closedChannelId, `grant#${adjustment.adjustmentId}`.slice(0, 32), expireDate);
    link = created.invite_link;
  } catch (error) {
    const description = classifyTelegramError(error)?.description ?? (error as Error).message;
    log.warn({ failure: description }, 'grant: could not create an invite link');
    return { link: null, expires_at: null, dm: 'not sent', error: `no invite link could be created (${description}): is the bot an admin of the closed channel, allowed to invite users?` };
  }
  try {
    await deps.api.sendMessage(Number(buyerTelegramId), grantInviteText(channel, adjustment.expiresAfter, expireDate), { reply_markup: openChannelKeyboard(link) });
    return { link, expires_at: expireDate.toISOString(), dm: 'sent' };
  } catch (error) {
    const failure = classifyTelegramError(error);
    const description = failure?.description ?? (error as Error).message;
    log.warn({ failure: description }, 'grant: could not DM the invite link');
    // No answer (a timeout after Telegram may have acted): not retried here, so never a second DM.
    if (failure?.kind === 'unknown') return { link, expires_at: expireDate.toISOString(), dm: 'unconfirmed', error: `delivery unconfirmed (${description}); pass the link on if it did not arrive` };
    return { link, expires_at: expireDate.toISOString(), dm: 'failed', error: `the buyer could not be messaged (${description}); pass the link on` };
  }
}

const createLink = (api: Api, chatId: string, name: string, expireDate: Date) =>
  api.createChatInviteLink(Number(chatId), { name, member_limit: 1, expire_date: Math.floor(expireDate.getTime() / 1000) });

