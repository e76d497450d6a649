import type { Api } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { PaymentEvent } from '../../machines/payment.events.js';
import {
  beginLinkAttempt,
  clearSendAttempt,
  leaseOwner,
  markSendAttempted,
  markSent,
  markSentSql,
  markUndeliverable,
  releaseInvite,
  resolveLinkAttempt,
  saveLink,
  takeInviteAttempt,
  type Invite,
  type LinkAttempt,
  type SendRecord,
} from '../../telegram/invites.repo.js';
import { openChannelKeyboard } from '../../telegram/keyboards.js';
import { inTransaction, type Queryable } from '../../persistence/transaction.js';
import { inviteText } from '../../telegram/messages.js';
import { grantAndClaim, lockAccessTarget } from '../../telegram/invite-claim.repo.js';
import { classifyTelegramError, isLinkGone, retryAfterOf } from '../../telegram/telegram-errors.js';
import { pause, withoutRateLimitWaits } from './rate-limit-waits.js';
import { PermanentFailure } from '../../domain/errors.js';
import type { EffectActor, EffectContext, ResultFact } from '../effect-actor.js';

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
// of sending a second DM. The outcome of a send (sent, undeliverable) is a fact and is recorded
// whoever holds the lease; it ends only this run's lease.
// Single use: member_limit 1 plus an expire_date, and join tracking revokes the link once the buyer
// joined (and removes anyone else who used it).
//
// Writes: one committed write before each Bot API call that changes something, and one for the
// outcome, no more. A first invite job costs four transactions, its result and transition included
// (three when INVITE_EXPIRE_AFTER is within the pending lifetime), down from eight;
// test/telegram-invite-writes.test.ts counts them. Which records share a write, and why each pair is
// still at-most-once:
//   1. read + grant + claim + attempt (one transaction of two statements: the read with the
//      subscription's lock, then the grant with the claim and the attempt; src/telegram/invite-claim.repo.ts):
//      the route/channel/plan read, the grant, the lease and, when the claimed row has no link and no
//      newer invite attempt is to start first, the record of the createChatInviteLink made next. The
//      rule is "the attempt is committed before the call": it is, and the call follows the commit with
//      no other step between (startAttempt, the only step that could, runs only when the claim did not
//      record). The attempt is recorded only if the lease was won, under the same row lock: a job that
//      loses the claim records nothing. A crash after this commit and before the call leaves the
//      attempt pending, which the next attempt counts lost: an over-count of orphans, never an unowned
//      link that is not counted. Later creations (a 429 retry, a replacement) record their attempt in a
//      statement of their own right before their call; a replacement forgets the old link (already
//      revoked at Telegram) in that same statement.
//   2. store the link: alone, committed before editChatInviteLink, so a link that is extended (made to
//      live long) is always one the order owns; before it is stored it can only be a short-lived orphan.
//   3. extended + send attempted (one statement): the edit's result (the new expiry) and the mark before
//      sendMessage. Nothing happens between those two writes (no Bot API call, no read by anyone that
//      acts on the link: the link reaches the buyer only through sendMessage and invite.sent), so the
//      only state the fold removes is "extended, not send attempted", which a crash after the edit now
//      leaves as "stored, not extended": the retry extends the same link again (editChatInviteLink is
//      idempotent) or, if it is near its short expiry, revokes it for certain and replaces it. Sending
//      is still preceded by a committed "send attempted", so at most one DM. When INVITE_EXPIRE_AFTER is
//      within PENDING_LINK_LIFETIME_MS the link is created with its full lifetime and never extended:
//      then 2 and 3 are one write (store + send attempted), committed before sendMessage; a crash before
//      it leaves a link no longer-lived than an orphan of the short-lived path, counted lost.
//   4. sent + lease ended (one write), handed to the runner (EffectContext.withResult), which writes it
//      with the result invite.sent and the transition that applies it: one commit for the three (one
//      statement when the transition is one, else one transaction). At-most-once does not move: "send
//      attempted" was committed before sendMessage, so a crash before this commit (a moment longer than
//      before: the same commit also writes the result and the payment) leaves "attempted, not
//      confirmed", which a retry reports as delivery unconfirmed and never sends again. If that commit
//      fails, the runner commits "sent" alone first. "undeliverable" ends the lease in a write of its own.

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

interface Run {
  invite: Invite;
  owner: string;
  signal: AbortSignal;
  log: Logger;
  /** The createChatInviteLink the claim recorded (a new invite): the first creation uses it, later ones record their own. */
  recorded: LinkAttempt | null;
  /** The write that recorded the outcome (sent, undeliverable) also ended this run's lease. */
  released: boolean;
  /** The runner's hand-over (EffectContext.withResult): "sent" commits with the result and the transition. */
  withResult: EffectContext['withResult'];
}

/** The link to send, and what about it is still to be written with the "send attempted" mark (SendRecord). */
interface Ready {
  link: string;
  record: SendRecord;
}

export function createInviteActor(deps: InviteActorDeps): EffectActor {
  const { pool } = deps;
  const api = withoutRateLimitWaits(deps.api);
  // A stored link is reused only while the buyer still has a fair time to use it.
  const minRemainingMs = Math.min(deps.inviteExpireAfterMs / 2, 3_600_000);
  // Links are created short-lived and extended once stored, unless the full lifetime is short anyway.
  const shortLived = deps.inviteExpireAfterMs > PENDING_LINK_LIFETIME_MS;
  const createLifetimeMs = shortLived ? PENDING_LINK_LIFETIME_MS : deps.inviteExpireAfterMs;
  // Whole seconds: what Telegram is asked for is exactly what is recorded.
  const expiryIn = (ms: number) => new Date(Math.floor((Date.now() + ms) / 1000) * 1000);

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

  /**
   * A new link, its attempt recorded before the call. Short-lived links are stored at once (before they
   * are extended); a link created with its full lifetime is returned unstored: the caller stores it with
   * the "send attempted" mark, before sendMessage.
   */
  async function createLink(run: Run): Promise<{ link: string; attempt: LinkAttempt; stored: boolean } | PaymentEvent> {
    const { invite } = run;
    // Expired, revoked, or gone before it was sent: revoke it for certain, then replace it.
    let replacing = Boolean(invite.inviteLink);
    if (replacing && !invite.revokedAt) {
      await api.revokeChatInviteLink(Number(invite.chatId), invite.inviteLink!).catch((error: unknown) => {
        if (!isLinkGone(error)) throw error;
      });
    }
    if (replacing) run.log.info('stored invite link expired or was revoked before it was sent; replacing it');
    let attempt: LinkAttempt | null = null;
    try {
      const { value: link, p } = await withRateLimit(run, {
        before: async () => {
          if (run.recorded) {
            // Recorded (committed) with the claim, right before this first call.
            attempt = run.recorded;
            run.recorded = null;
          } else {
            // The old link is forgotten in the same write that records this attempt (after its revoke).
            attempt = await beginLinkAttempt(pool, { orderId: invite.orderId, owner: run.owner, expireDate: expiryIn(createLifetimeMs), replacing });
            replacing = false;
          }
          return attempt;
        },
        call: (a) =>
          api.createChatInviteLink(Number(invite.chatId), { name: a.name, member_limit: 1, expire_date: Math.floor(a.expireDate.getTime() / 1000) }),
        refused: (a) => resolveLinkAttempt(pool, a, 'refused'),
      });
      if (shortLived) await saveLink(pool, run.owner, p, link.invite_link, false);
      return { link: link.invite_link, attempt: p, stored: shortLived };
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

  /**
   * Gives the stored link its full lifetime; the new expiry is recorded with the "send attempted" mark
   * that follows. 'gone': Telegram no longer knows it (expired, revoked).
   */
  async function extendLink(run: Run, link: string, name: string | null): Promise<Ready | PaymentEvent | 'gone'> {
    const { invite } = run;
    try {
      const { p: expireDate } = await withRateLimit(run, {
        before: async () => expiryIn(deps.inviteExpireAfterMs),
        // editChatInviteLink resets what it is not given: name and member limit go again.
        call: (at) =>
          api.editChatInviteLink(Number(invite.chatId), link, {
            ...(name !== null && { name }),
            member_limit: 1,
            expire_date: Math.floor(at.getTime() / 1000),
          }),
      });
      return { link, record: { kind: 'extended', expireDate } };
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
  async function linkToSend(run: Run): Promise<Ready | PaymentEvent> {
    const { invite } = run;
    const remaining = invite.expireDate ? invite.expireDate.getTime() - Date.now() : -1;
    if (invite.inviteLink && !invite.revokedAt) {
      if (invite.extendedAt && remaining >= minRemainingMs) return { link: invite.inviteLink, record: { kind: 'none' } };
      if (!invite.extendedAt && remaining >= EXTEND_MARGIN_MS) {
        const extended = await extendLink(run, invite.inviteLink, invite.linkName);
        if (extended !== 'gone') return extended;
      }
    }
    const created = await createLink(run);
    if ('type' in created) return created;
    if (!created.stored) return { link: created.link, record: { kind: 'stored', attempt: created.attempt, link: created.link } };
    const extended = await extendLink(run, created.link, created.attempt.name);
    if (extended === 'gone') throw new Error(`the invite link just created for order ${invite.orderId} is already gone at Telegram; retrying`);
    return extended;
  }

  async function undeliverableAfter(run: Run, link: string, reason: string): Promise<PaymentEvent> {
    await markUndeliverable(pool, run.invite.orderId, reason, run.owner);
    run.released = true;
    return undeliverable(link, reason);
  }

  async function deliver(run: Run, text: string): Promise<PaymentEvent> {
    const { invite, owner } = run;
    if (invite.inviteLink && invite.sentAt) return sent(invite.inviteLink);
    if (invite.inviteLink && invite.undeliverableReason) return undeliverable(invite.inviteLink, invite.undeliverableReason);
    if (invite.inviteLink && invite.sendAttemptedAt) {
      const reason = 'delivery unconfirmed: an earlier attempt asked Telegram to send the invite and got no answer; not sent again to avoid a duplicate (the success page shows the link)';
      return undeliverableAfter(run, invite.inviteLink, reason);
    }

    const ready = await linkToSend(run);
    if ('type' in ready) return ready;
    const { link } = ready;
    let record = ready.record;

    try {
      const { value: message } = await withRateLimit(run, {
        // Marked before every request (the first mark also records what `record` holds); cleared by a
        // definite refusal before any wait.
        before: async () => {
          await markSendAttempted(pool, invite.orderId, owner, record);
          record = { kind: 'none' };
        },
        call: () => api.sendMessage(Number(invite.buyerTelegramId), text, { reply_markup: openChannelKeyboard(link) }),
        refused: async () => {
          await clearSendAttempt(pool, invite.orderId, owner);
        },
      });
      const values = [invite.orderId, message.message_id, owner] as const;
      const sentFact: ResultFact = { name: 'invite-sent', write: (db: Queryable) => markSent(db, ...values), sql: markSentSql, values: [...values] };
      if (run.withResult) run.withResult(sentFact);
      else await sentFact.write(pool);
      run.released = true;
      return sent(link);
    } catch (error) {
      const failure = classifyTelegramError(error);
      switch (failure?.kind) {
        case 'forbidden':
        case 'rejected':
          // 403 (blocked, never started) or 400 (chat not found): the bot cannot DM this buyer at all.
          return undeliverableAfter(run, link, `buyer cannot be messaged by the bot (${failure.description}); the link is on the success page`);
        case 'rate-limited':
        case 'server':
        case 'unsent':
          // Telegram answered (or was never reached): nothing went out, so the retry may send the same link.
          await clearSendAttempt(pool, invite.orderId, owner);
          throw error;
        case 'unknown':
          return undeliverableAfter(run, link, `delivery unconfirmed (${failure.description}); not sent again to avoid a duplicate (the success page shows the link)`);
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
      const owner = leaseOwner(context.jobId, context.retryCount);
      // One transaction of two statements: what to grant and where (read) with the subscription's lock,
      // then the grant (once per order) with the invite's lease and, for an invite still without a link,
      // the record of the createChatInviteLink made next (src/telegram/invite-claim.repo.ts).
      const linkExpireDate = expiryIn(createLifetimeMs);
      const claimed = await inTransaction(pool, async (tx) => {
        const { route, channel, plan, locked } = await lockAccessTarget(tx, job.paymentId);
        // The invite effect follows route.done, which stores the route: its absence is a bug, not a state to retry.
        if (!route) throw new PermanentFailure(`payment ${job.paymentId} has no route`);
        // A missing channel or plan created and locked no subscription: the read takes the lock only with both.
        if (!channel) return failed(`channel ${route.channelId} is not configured: add it, then retry`);
        if (!plan) return failed(`plan ${route.planId} not found: cannot tell how long access lasts; add it, then retry`);
        const { grant, claim } = await grantAndClaim(tx, locked!, {
          orderId: route.orderId,
          paymentId: job.paymentId,
          planId: plan.planId,
          durationDays: plan.durationDays,
          remindersMs: deps.remindersMs,
          chatId: channel.closedChannelId,
          buyerTelegramId: route.buyerTelegramId,
          owner,
          leaseMs: deps.leaseMs,
          attempt: job.attempt,
          linkExpireDate,
        });
        return { orderId: route.orderId, channel, grant, claim };
      });
      if ('type' in claimed) return claimed;
      const { orderId, channel, grant, claim } = claimed;
      if (!claim) throw new Error(`another job is delivering the invite for order ${orderId}; retrying later`);
      const { invite } = claim;
      const run: Run = { invite, owner, signal: context.signal, log: context.log, recorded: claim.linkAttempt, released: false, withResult: context.withResult };
      try {
        if (job.attempt > invite.inviteAttempt) run.invite = await startAttempt(invite, owner, job.attempt, context.log);
        const result = await deliver(run, inviteText(channel, grant));
        // Recording a sent or undeliverable outcome ended the lease in the same write; every other outcome ends it here.
        if (!run.released) await releaseInvite(pool, orderId, owner);
        return result;
      } catch (error) {
        await releaseInvite(pool, orderId, owner).catch(() => {});
        throw error;
      }
    },
  };
}
