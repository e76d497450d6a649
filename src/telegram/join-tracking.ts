import { Composer, type Context } from 'grammy';
import type pg from 'pg';
import type { Logger } from 'pino';
import { findInviteByLink, markJoined, markRevoked } from './invites.repo.js';
import { isLinkGone } from './telegram-errors.js';

// chat_member updates for the closed channels: when someone joins through one of our invite links,
// the link has done its job. The buyer's join is recorded and the link revoked, so it can never admit
// a second person; anyone else who got hold of it is removed and the link revoked. (member_limit 1
// already keeps a second person out while the first stays; revoking closes the gap after they leave.)
//
// Errors propagate: on the webhook that answers 500 and Telegram redelivers the update; every step
// here is safe to repeat.

const MEMBER = new Set(['member', 'restricted', 'administrator', 'creator']);

/** Whether the buyer's subscription to the order's channel runs now (not removed, not expired). */
async function hasLiveSubscription(pool: pg.Pool, orderId: string, buyerTelegramId: string): Promise<boolean> {
  const { rows } = await pool.query(
    `SELECT 1 FROM orders o JOIN subscriptions s ON s.open_channel_id = o.open_channel_id AND s.buyer_telegram_id = $2
      WHERE o.order_id = $1 AND s.removed_at IS NULL AND s.expires_at > now()`,
    [orderId, buyerTelegramId],
  );
  return rows.length > 0;
}

export function joinTracking(deps: { pool: pg.Pool; log: Logger }): Composer<Context> {
  const composer = new Composer<Context>();
  composer.on('chat_member', async (ctx) => {
    const update = ctx.chatMember;
    const joined = !MEMBER.has(update.old_chat_member.status) && MEMBER.has(update.new_chat_member.status);
    const used = update.invite_link?.invite_link;
    if (!joined || !used) return;
    const invite = await findInviteByLink(deps.pool, used);
    if (!invite || invite.chatId !== String(update.chat.id)) return; // a link we did not create for an order
    const userId = update.new_chat_member.user.id;
    const log = deps.log.child({ orderId: invite.orderId, paymentId: invite.paymentId });
    const revoke = () =>
      ctx.api.revokeChatInviteLink(update.chat.id, used).catch((error: unknown) => {
        if (!isLinkGone(error)) throw error;
      });

    if (String(userId) === invite.buyerTelegramId && !(await hasLiveSubscription(deps.pool, invite.orderId, String(userId)))) {
      // The buyer's access was revoked (or ended) after this link was made: the link no longer admits them.
      await ctx.api.banChatMember(update.chat.id, userId);
      await ctx.api.unbanChatMember(update.chat.id, userId, { only_if_banned: true });
      await revoke();
      await markRevoked(deps.pool, invite.orderId, 'the buyer joined after their access had ended or been revoked; removed');
      log.warn('buyer joined through an invite link after their access ended; removed them and revoked the link');
      return;
    }
    if (String(userId) === invite.buyerTelegramId) {
      await markJoined(deps.pool, invite.orderId, String(userId));
      await revoke();
      await markRevoked(deps.pool, invite.orderId, 'used by the buyer');
      log.info('buyer joined the channel; invite link revoked');
      return;
    }
    // Someone else used the buyer's link: out they go, and the link with them.
    await ctx.api.banChatMember(update.chat.id, userId);
    await ctx.api.unbanChatMember(update.chat.id, userId, { only_if_banned: true });
    await revoke();
    await markRevoked(deps.pool, invite.orderId, `used by another user (${userId}), who was removed`);
    log.warn({ intruder: userId }, "someone other than the buyer joined through the buyer's invite link: removed them and revoked the link");
  });
  return composer;
}
