import type { Api } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { accessTargetOf } from '../../telegram/catalog.repo.js';
import {
  claimInvite,
  clearSendAttempt,
  dropLink,
  markSendAttempted,
  markSent,
  markUndeliverable,
  releaseInvite,
  saveLink,
  type Invite,
} from '../../telegram/invites.repo.js';
import { openChannelKeyboard } from '../../telegram/keyboards.js';
import { inTransaction } from '../../persistence/transaction.js';
import { formatDate, grantAndScheduleIn } from '../../telegram/subscriptions.service.js';
import { classifyTelegramError, isLinkGone } from '../../telegram/telegram-errors.js';
import { PermanentFailure } from '../../domain/errors.js';
import type { EffectActor, EffectContext } from '../effect-actor.js';

// Effect "invite": exactly one single-use link per paid order, persisted before anyone is told.
//
// Steps, each recorded in `invites` before the next, so a retry after any crash resumes instead of
// repeating: grant the subscription (once per order) -> create the link and store it -> mark "send
// attempted" -> sendMessage -> mark sent. What a retry does at each point:
//   link stored, nothing sent        -> sends the same link (a new one only if it expired or was
//                                       revoked meanwhile, after revoking the old one)
//   send attempted, not confirmed    -> does NOT send again: the DM may have gone out (a timeout after
//                                       Telegram acted). Reported undeliverable with "delivery
//                                       unconfirmed"; the success page shows the link. At most one DM.
//   sent                             -> reports invite.sent with the stored link
// Single use: member_limit 1 plus an expire_date, and join tracking revokes the link once the buyer
// joined (and removes anyone else who used it). A createChatInviteLink that timed out after Telegram
// acted leaves a link nobody ever saw (named after the order, limit 1, expiring): harmless; the retry
// creates and sends another, and create_attempts shows it happened.

export interface InviteActorDeps {
  pool: pg.Pool;
  boss: PgBoss;
  api: Api;
  log: Logger;
  inviteExpireAfterMs: number;
  /** How long a job may hold an order's invite before another may take it over (pg-boss's job expiry). */
  leaseMs: number;
  remindersMs: number[];
}

const sent = (inviteLink: string): PaymentEvent => ({ type: 'invite.sent', inviteLink });
const undeliverable = (inviteLink: string, reason: string): PaymentEvent => ({ type: 'invite.undeliverable', inviteLink, reason });
const failed = (reason: string): PaymentEvent => ({ type: 'invite.failed', reason });

/** Telegram caps link names at 32 characters; the name lets an operator find the order's links in the channel settings. */
const linkName = (orderId: string) => `order ${orderId}`.slice(0, 32);

export function createInviteActor(deps: InviteActorDeps): EffectActor {
  const { pool, api } = deps;
  // A stored link is reused only while the buyer still has a fair time to use it.
  const minRemainingMs = Math.min(deps.inviteExpireAfterMs / 2, 3_600_000);

  function usable(invite: Invite): invite is Invite & { inviteLink: string } {
    return Boolean(invite.inviteLink && !invite.revokedAt && invite.expireDate && invite.expireDate.getTime() - Date.now() >= minRemainingMs);
  }

  async function createLink(invite: Invite, log: Logger): Promise<string | PaymentEvent> {
    if (invite.inviteLink) {
      // Expired or revoked before it was sent: revoke it for certain, then replace it.
      if (!invite.revokedAt) {
        await api.revokeChatInviteLink(Number(invite.chatId), invite.inviteLink).catch((error: unknown) => {
          if (!isLinkGone(error)) throw error;
        });
      }
      await dropLink(pool, invite.orderId);
      log.info('stored invite link expired or was revoked before it was sent; replacing it');
    }
    const expireDate = new Date(Date.now() + deps.inviteExpireAfterMs);
    try {
      const link = await api.createChatInviteLink(Number(invite.chatId), {
        name: linkName(invite.orderId),
        member_limit: 1,
        expire_date: Math.floor(expireDate.getTime() / 1000),
      });
      await saveLink(pool, invite.orderId, link.invite_link, expireDate);
      return link.invite_link;
    } catch (error) {
      const failure = classifyTelegramError(error);
      if (failure?.kind === 'forbidden' || failure?.kind === 'rejected') {
        return failed(`cannot create an invite link in channel ${invite.chatId} (${failure.description}): is the bot an admin there, allowed to invite users?`);
      }
      throw error; // 429 after bounded waits, 5xx, network: the job retries with backoff
    }
  }

  async function deliver(invite: Invite, text: string, log: Logger): Promise<PaymentEvent> {
    if (invite.inviteLink && invite.sentAt) return sent(invite.inviteLink);
    if (invite.inviteLink && invite.undeliverableReason) return undeliverable(invite.inviteLink, invite.undeliverableReason);
    if (invite.inviteLink && invite.sendAttemptedAt) {
      const reason = 'delivery unconfirmed: an earlier attempt asked Telegram to send the invite and got no answer; not sent again to avoid a duplicate (the success page shows the link)';
      await markUndeliverable(pool, invite.orderId, reason);
      return undeliverable(invite.inviteLink, reason);
    }

    let link: string;
    if (usable(invite)) {
      link = invite.inviteLink;
    } else {
      const created = await createLink(invite, log);
      if (typeof created !== 'string') return created;
      link = created;
    }

    await markSendAttempted(pool, invite.orderId);
    try {
      const message = await api.sendMessage(Number(invite.buyerTelegramId), text, { reply_markup: openChannelKeyboard(link) });
      await markSent(pool, invite.orderId, message.message_id);
      return sent(link);
    } catch (error) {
      const failure = classifyTelegramError(error);
      switch (failure?.kind) {
        case 'forbidden':
        case 'rejected': {
          // 403 (blocked, never started) or 400 (chat not found): the bot cannot DM this buyer at all.
          const reason = `buyer cannot be messaged by the bot (${failure.description}); the link is on the success page`;
          await markUndeliverable(pool, invite.orderId, reason);
          return undeliverable(link, reason);
        }
        case 'rate-limited':
        case 'server':
        case 'unsent':
          // Telegram answered (or was never reached): nothing went out, so the retry may send the same link.
          await clearSendAttempt(pool, invite.orderId);
          throw error;
        case 'unknown': {
          const reason = `delivery unconfirmed (${failure.description}); not sent again to avoid a duplicate (the success page shows the link)`;
          await markUndeliverable(pool, invite.orderId, reason);
          return undeliverable(link, reason);
        }
        default:
          throw error; // not a Telegram error: send_attempted_at stays, so the retry will not send blindly
      }
    }
  }

  return {
    effect: 'invite',
    async perform(job, context: EffectContext): Promise<PaymentEvent> {
      // The invite effect follows route.done, which stores the route: its absence is a bug, not a state to retry.
      const { route, channel, plan } = await accessTargetOf(pool, job.paymentId);
      if (!route) throw new PermanentFailure(`payment ${job.paymentId} has no route`);
      if (!channel) return failed(`channel ${route.channelId} is not configured: add it, then retry`);
      if (!plan) return failed(`plan ${route.planId} not found: cannot tell how long access lasts; add it, then retry`);

      // One transaction: the grant (once per order, with its reminder and expiry jobs) and the invite's lease.
      const { grant, invite } = await inTransaction(pool, async (tx) => ({
        grant: await grantAndScheduleIn(deps, tx, {
          orderId: route.orderId,
          paymentId: job.paymentId,
          buyerTelegramId: route.buyerTelegramId,
          openChannelId: route.channelId,
          planId: plan.planId,
          durationDays: plan.durationDays,
        }),
        invite: await claimInvite(tx, {
          orderId: route.orderId,
          paymentId: job.paymentId,
          chatId: channel.closedChannelId,
          buyerTelegramId: route.buyerTelegramId,
          owner: context.jobId,
          leaseMs: deps.leaseMs,
        }),
      }));
      if (!invite) throw new Error(`another job is delivering the invite for order ${route.orderId}; retrying later`);
      try {
        const text = `Payment received, thank you. Your access to ${channel.title} runs until ${formatDate(grant.expiresAt)}. The button opens the channel; the link admits you once.`;
        const result = await deliver(invite, text, context.log);
        // markSent ended the lease when this run sent the message; every other outcome ends it here.
        if (result.type !== 'invite.sent' || invite.sentAt) await releaseInvite(pool, route.orderId, context.jobId);
        return result;
      } catch (error) {
        await releaseInvite(pool, route.orderId, context.jobId).catch(() => {});
        throw error;
      }
    },
  };
}
