import { Api, type Transformer } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PaymentEvent } from '../../machines/payment.events.js';
import { accessTargetOf } from '../../telegram/catalog.repo.js';
import {
  beginLinkAttempt,
  claimInvite,
  clearSendAttempt,
  dropLink,
  leaseOwner,
  markExtended,
  markSendAttempted,
  markSent,
  markUndeliverable,
  releaseInvite,
  resolveLinkAttempt,
  saveLink,
  takeInviteAttempt,
  type Invite,
  type LinkAttempt,
} from '../../telegram/invites.repo.js';
import { openChannelKeyboard } from '../../telegram/keyboards.js';
import { inTransaction } from '../../persistence/transaction.js';
import { inviteText } from '../../telegram/messages.js';
import { grantAndScheduleIn } from '../../telegram/subscriptions.service.js';
import { classifyTelegramError, isLinkGone, RETRY_AFTER_HELD, retryAfterOf } from '../../telegram/telegram-errors.js';
import { PermanentFailure } from '../../domain/errors.js';
import type { EffectActor, EffectContext } from '../effect-actor.js';

// Effect "invite": exactly one single-use link per paid order, persisted before anyone is told.
//
// Steps, each recorded before the next, so a retry after any crash resumes instead of repeating:
// grant the subscription (once per order) -> record the link attempt (invite_link_attempts: its name
// names the order and the attempt) -> createChatInviteLink with a SHORT expiry -> store the link ->
// editChatInviteLink to the full INVITE_EXPIRE_AFTER -> mark "send attempted" -> sendMessage -> mark sent.
// What a retry does at each point:
//   attempt recorded, no link stored -> the earlier attempt is counted lost (orphanInviteLinks): a link
//                                       may exist at Telegram that nobody owns; it dies with its short
//                                       expiry (Telegram cannot list links, so it cannot be revoked).
//                                       A new attempt creates the link that is used.
//   link stored, not yet extended    -> extends it (or, if it is gone or about to expire, replaces it)
//   link stored and extended         -> sends the same link (a new one only if it expired or was
//                                       revoked meanwhile, after revoking the old one)
//   send attempted, not confirmed    -> does NOT send again: the DM may have gone out (a timeout after
//                                       Telegram acted). Reported undeliverable with "delivery
//                                       unconfirmed"; the success page shows the link. At most one DM.
//   sent                             -> reports invite.sent with the stored link
// Definite answers are recorded the moment they arrive, before any wait: a 429 (or 5xx) to sendMessage
// clears the "send attempted" mark before its retry_after wait, so a crash during the wait leaves a
// retry free to send (Telegram provably did not); a 403/400 records "undeliverable" at once; a refused
// createChatInviteLink marks its attempt refused (no orphan). So 429 waits happen here, not in grammY's
// auto-retry (which would wait between our mark and our record): auto-retry is kept from seeing the
// 429s of this actor's calls (withoutRateLimitWaits), which wait at most RATE_LIMIT_WAITS times
// RATE_LIMIT_MAX_WAIT_S here.
// Fencing: the lease owner is "<job id>#<retry count>". A later attempt of the same job takes over at
// once (fast recovery after a crash); every write on the invite's behalf is conditional on the owner,
// so an earlier attempt that was still alive (a heartbeat lost, not a crash) stops (LeaseLost) instead
// of sending a second DM.
// Single use: member_limit 1 plus an expire_date, and join tracking revokes the link once the buyer
// joined (and removes anyone else who used it).

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

/** A link not yet stored lives this long at most: an orphan (its answer lost) dies by then. */
export const PENDING_LINK_LIFETIME_MS = 10 * 60_000;
/** A stored, not yet extended link is extended only while it has at least this long left; else replaced. */
const EXTEND_MARGIN_MS = 60_000;
/** 429s waited out in one run (then the job fails and pg-boss retries it later), and the longest wait. */
export const RATE_LIMIT_WAITS = 3;
export const RATE_LIMIT_MAX_WAIT_S = 30;

const sent = (inviteLink: string): PaymentEvent => ({ type: 'invite.sent', inviteLink });
const undeliverable = (inviteLink: string, reason: string): PaymentEvent => ({ type: 'invite.undeliverable', inviteLink, reason });
const failed = (reason: string): PaymentEvent => ({ type: 'invite.failed', reason });

/**
 * The link's name at Telegram (at most 32 characters): the order and the attempt, e.g.
 * "ord_4x…#2", so an operator can find every link an order made in the channel's settings.
 */
export function linkName(orderId: string, attempt: number): string {
  const suffix = `#${attempt}`;
  const room = 32 - suffix.length;
  const core = orderId.length <= room ? orderId : orderId.replace(/^ord_/, '').slice(0, room);
  return `${core}${suffix}`;
}

/** Resolves after ms, or rejects when the job is aborted (shutdown, or pg-boss saw its claim go). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('invite job aborted while waiting out a 429', { cause: signal.reason }));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new Error('invite job aborted while waiting out a 429', { cause: signal.reason }));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * The Bot API as the invite actor uses it: the bot's own client (token, options and every transformer
 * installed on it: token scrubbing, error metrics, auto-retry) with one more, innermost, that moves a
 * 429's retry_after where grammY's auto-retry does not look (RETRY_AFTER_HELD), so auto-retry returns
 * the 429 at once instead of waiting between our "send attempted" mark and our record of the refusal.
 * The wait is this actor's (withRateLimit), after the refusal is recorded; retryAfterOf reads it.
 */
function withoutRateLimitWaits(api: Api): Api {
  const direct = new Api(api.token, api.options);
  const holdRetryAfter: Transformer = async (prev, method, payload, signal) => {
    const response = await prev(method, payload, signal);
    const retryAfter = response.ok ? undefined : response.parameters?.retry_after;
    if (response.ok || response.error_code !== 429 || typeof retryAfter !== 'number') return response;
    const { retry_after: _held, ...parameters } = response.parameters ?? {};
    return { ...response, parameters: { ...parameters, [RETRY_AFTER_HELD]: retryAfter } as typeof parameters };
  };
  direct.config.use(holdRetryAfter, ...api.config.installedTransformers());
  return direct;
}

interface Run {
  invite: Invite;
  owner: string;
  signal: AbortSignal;
  log: Logger;
}

export function createInviteActor(deps: InviteActorDeps): EffectActor {
  const { pool } = deps;
  const api = withoutRateLimitWaits(deps.api);
  // A stored link is reused only while the buyer still has a fair time to use it.
  const minRemainingMs = Math.min(deps.inviteExpireAfterMs / 2, 3_600_000);
  // Links are created short-lived and extended once stored, unless the full lifetime is short anyway.
  const shortLived = deps.inviteExpireAfterMs > PENDING_LINK_LIFETIME_MS;

  /**
   * Makes a Bot API call; a 429 is a definite "not done": `refused` records that first, then the
   * retry_after wait (bounded), then `before` records the next try. Other errors go to the caller.
   */
  async function withRateLimit<P, T>(run: Run, steps: { before: () => Promise<P>; call: (p: P) => Promise<T>; refused?: (p: P) => Promise<void> }): Promise<{ value: T; p: P }> {
    for (let waits = 0; ; waits++) {
      const p = await steps.before();
      try {
        return { value: await steps.call(p), p };
      } catch (error) {
        const retryAfter = retryAfterOf(error);
        if (retryAfter === null) throw error;
        await steps.refused?.(p);
        if (waits >= RATE_LIMIT_WAITS || retryAfter > RATE_LIMIT_MAX_WAIT_S) throw error;
        run.log.info({ retryAfter }, 'Telegram asked to wait (429); refusal recorded, waiting before the next try');
        await pause(retryAfter * 1000, run.signal);
      }
    }
  }

  async function createLink(run: Run): Promise<{ link: string; name: string } | PaymentEvent> {
    const { invite } = run;
    if (invite.inviteLink) {
      // Expired, revoked, or gone before it was sent: revoke it for certain, then replace it.
      if (!invite.revokedAt) {
        await api.revokeChatInviteLink(Number(invite.chatId), invite.inviteLink).catch((error: unknown) => {
          if (!isLinkGone(error)) throw error;
        });
      }
      await dropLink(pool, invite.orderId);
      run.log.info('stored invite link expired or was revoked before it was sent; replacing it');
    }
    const lifetimeMs = shortLived ? PENDING_LINK_LIFETIME_MS : deps.inviteExpireAfterMs;
    let attempt: LinkAttempt | null = null;
    try {
      const { value: link, p } = await withRateLimit(run, {
        before: async () => {
          attempt = await beginLinkAttempt(pool, {
            orderId: invite.orderId,
            owner: run.owner,
            name: (n) => linkName(invite.orderId, n),
            // Whole seconds: what Telegram is asked for is exactly what is recorded.
            expireDate: new Date(Math.floor((Date.now() + lifetimeMs) / 1000) * 1000),
          });
          return attempt;
        },
        call: (a) =>
          api.createChatInviteLink(Number(invite.chatId), { name: a.name, member_limit: 1, expire_date: Math.floor(a.expireDate.getTime() / 1000) }),
        refused: (a) => resolveLinkAttempt(pool, a, 'refused'),
      });
      await saveLink(pool, run.owner, p, link.invite_link, !shortLived);
      return { link: link.invite_link, name: p.name };
    } catch (error) {
      const failure = classifyTelegramError(error);
      const current = attempt as LinkAttempt | null;
      if (current && failure) await resolveLinkAttempt(pool, current, failure.kind === 'unknown' ? 'lost' : 'refused');
      if (failure?.kind === 'forbidden' || failure?.kind === 'rejected') {
        return failed(`cannot create an invite link in channel ${invite.chatId} (${failure.description}): is the bot an admin there, allowed to invite users?`);
      }
      throw error; // 429 after bounded waits, 5xx, network: the job retries with backoff
    }
  }

  /** Gives the stored link its full lifetime. 'gone': Telegram no longer knows it (expired, revoked). */
  async function extendLink(run: Run, link: string, name: string | null): Promise<string | PaymentEvent | 'gone'> {
    const { invite } = run;
    try {
      const { p: expireDate } = await withRateLimit(run, {
        before: async () => new Date(Math.floor((Date.now() + deps.inviteExpireAfterMs) / 1000) * 1000),
        // editChatInviteLink resets what it is not given: name and member limit go again.
        call: (at) =>
          api.editChatInviteLink(Number(invite.chatId), link, {
            ...(name !== null && { name }),
            member_limit: 1,
            expire_date: Math.floor(at.getTime() / 1000),
          }),
      });
      await markExtended(pool, invite.orderId, run.owner, expireDate);
      return link;
    } catch (error) {
      if (isLinkGone(error)) return 'gone';
      const failure = classifyTelegramError(error);
      if (failure?.kind === 'forbidden' || failure?.kind === 'rejected') {
        return failed(`cannot extend the invite link in channel ${invite.chatId} (${failure.description}): is the bot an admin there, allowed to invite users?`);
      }
      throw error;
    }
  }

  /** The link to send: the stored one when it is ours for long enough, else extended, else a new one. */
  async function linkToSend(run: Run): Promise<string | PaymentEvent> {
    const { invite } = run;
    const remaining = invite.expireDate ? invite.expireDate.getTime() - Date.now() : -1;
    if (invite.inviteLink && !invite.revokedAt) {
      if (invite.extendedAt && remaining >= minRemainingMs) return invite.inviteLink;
      if (!invite.extendedAt && remaining >= EXTEND_MARGIN_MS) {
        const extended = await extendLink(run, invite.inviteLink, invite.linkName);
        if (extended !== 'gone') return extended;
      }
    }
    const created = await createLink(run);
    if ('type' in created) return created;
    if (!shortLived) return created.link;
    const extended = await extendLink(run, created.link, created.name);
    if (extended === 'gone') throw new Error(`the invite link just created for order ${invite.orderId} is already gone at Telegram; retrying`);
    return extended;
  }

  async function deliver(run: Run, text: string): Promise<PaymentEvent> {
    const { invite, owner } = run;
    if (invite.inviteLink && invite.sentAt) return sent(invite.inviteLink);
    if (invite.inviteLink && invite.undeliverableReason) return undeliverable(invite.inviteLink, invite.undeliverableReason);
    if (invite.inviteLink && invite.sendAttemptedAt) {
      const reason = 'delivery unconfirmed: an earlier attempt asked Telegram to send the invite and got no answer; not sent again to avoid a duplicate (the success page shows the link)';
      await markUndeliverable(pool, invite.orderId, reason);
      return undeliverable(invite.inviteLink, reason);
    }

    const ready = await linkToSend(run);
    if (typeof ready !== 'string') return ready;
    const link = ready;

    try {
      const { value: message } = await withRateLimit(run, {
        // Marked before every request; cleared by a definite refusal before any wait.
        before: () => markSendAttempted(pool, invite.orderId, owner),
        call: () => api.sendMessage(Number(invite.buyerTelegramId), text, { reply_markup: openChannelKeyboard(link) }),
        refused: async () => {
          await clearSendAttempt(pool, invite.orderId, owner);
        },
      });
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
          await clearSendAttempt(pool, invite.orderId, owner);
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

  /**
   * An operator asked again (operator.reinvite, or operator.retry after a parked invite): the job's
   * attempt is newer than the one the invite row served. If that invite was sent or ended (undeliverable,
   * revoked, used by someone), its link is revoked and this attempt sends a new one; if nothing went out
   * yet, this attempt simply resumes it. Once per attempt: a replay of the same attempt finds it taken.
   */
  async function startAttempt(invite: Invite, owner: string, attempt: number, log: Logger): Promise<Invite> {
    // A send whose fate is unknown (attempted, no answer) is not "ended": resumed, it is reported as
    // delivery unconfirmed rather than sent twice; a re-issue of that answers with a new link.
    const ended = Boolean(invite.sentAt || invite.undeliverableReason || invite.revokedAt || invite.joinedAt);
    if (ended && invite.inviteLink && !invite.revokedAt) {
      await api.revokeChatInviteLink(Number(invite.chatId), invite.inviteLink).catch((error: unknown) => {
        if (!isLinkGone(error)) throw error;
      });
    }
    if (ended) log.info({ orderId: invite.orderId, attempt }, 'invite re-issued: the old link is revoked and a new one is sent');
    return takeInviteAttempt(pool, invite.orderId, owner, attempt, ended);
  }

  return {
    effect: 'invite',
    async perform(job, context: EffectContext): Promise<PaymentEvent> {
      // The invite effect follows route.done, which stores the route: its absence is a bug, not a state to retry.
      const { route, channel, plan } = await accessTargetOf(pool, job.paymentId);
      if (!route) throw new PermanentFailure(`payment ${job.paymentId} has no route`);
      if (!channel) return failed(`channel ${route.channelId} is not configured: add it, then retry`);
      if (!plan) return failed(`plan ${route.planId} not found: cannot tell how long access lasts; add it, then retry`);

      const owner = leaseOwner(context.jobId, context.retryCount);
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
          owner,
          leaseMs: deps.leaseMs,
        }),
      }));
      if (!invite) throw new Error(`another job is delivering the invite for order ${route.orderId}; retrying later`);
      try {
        const current = job.attempt > invite.inviteAttempt ? await startAttempt(invite, owner, job.attempt, context.log) : invite;
        const text = inviteText(channel, grant);
        const result = await deliver({ invite: current, owner, signal: context.signal, log: context.log }, text);
        // markSent ended the lease when this run sent the message; every other outcome ends it here.
        if (result.type !== 'invite.sent' || current.sentAt) await releaseInvite(pool, route.orderId, owner);
        return result;
      } catch (error) {
        await releaseInvite(pool, route.orderId, owner).catch(() => {});
        throw error;
      }
    },
  };
}
