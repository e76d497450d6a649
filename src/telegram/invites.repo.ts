import type { Queryable } from '../persistence/transaction.js';

// The invites table: one row per order, written step by step so a retried job knows exactly how far
// the last attempt got (link created? send attempted? sent?). bigint ids come back as strings.
// Each step is one statement (its own transaction unless the caller passes one), named so that every
// connection parses and plans it once; which steps share a write, and why that keeps the invite
// at-most-once, is in the invite actor's header (src/actors/telegram/invite.actor.ts). The claim that
// starts each job, alone or with the subscription's grant, is in src/telegram/invite-claim.repo.ts.

export type { Queryable };

export interface Invite {
  orderId: string;
  paymentId: string;
  chatId: string;
  buyerTelegramId: string;
  inviteLink: string | null;
  expireDate: Date | null;
  /** The stored link's name at Telegram (editChatInviteLink needs it again). */
  linkName: string | null;
  /** When the stored link was extended to its full lifetime; null: still short-lived, never sent. */
  extendedAt: Date | null;
  createAttempts: number;
  replacedLinks: number;
  sendAttemptedAt: Date | null;
  sentAt: Date | null;
  messageId: string | null;
  undeliverableReason: string | null;
  revokedAt: Date | null;
  revokeReason: string | null;
  joinedBy: string | null;
  joinedAt: Date | null;
  /** The payment's invite attempt this row serves (bumped by operator.reinvite / operator.retry). */
  inviteAttempt: number;
}

export const INVITE_COLUMNS = `order_id AS "orderId", payment_id AS "paymentId", chat_id::text AS "chatId",
  buyer_telegram_id::text AS "buyerTelegramId", invite_link AS "inviteLink", expire_date AS "expireDate",
  link_name AS "linkName", extended_at AS "extendedAt",
  create_attempts AS "createAttempts", replaced_links AS "replacedLinks", send_attempted_at AS "sendAttemptedAt",
  sent_at AS "sentAt", message_id::text AS "messageId", undeliverable_reason AS "undeliverableReason",
  revoked_at AS "revokedAt", revoke_reason AS "revokeReason", joined_by::text AS "joinedBy", joined_at AS "joinedAt",
  invite_attempt AS "inviteAttempt"`;

/** The lease owner of one attempt of one job; the part before '#' names the job. */
export const leaseOwner = (jobId: string, retryCount: number): string => `${jobId}#${retryCount}`;

export interface LinkAttempt {
  orderId: string;
  attempt: number;
  name: string;
  expireDate: Date;
}

/**
 * The link's name at Telegram (at most 32 characters), as SQL: the order and the attempt, e.g.
 * "ord_4x…#2", so an operator can find every link an order made in the channel's settings. An order id
 * too long for the room left by "#<attempt>" loses its "ord_" prefix, then its tail. Computed in the
 * statement that numbers the attempt, so numbering, naming and recording are one statement.
 */
const linkNameSql = (orderId: string, attempt: string) =>
  `(CASE WHEN length(${orderId}) <= 32 - length('#' || ${attempt}) THEN ${orderId}
         ELSE left(regexp_replace(${orderId}, '^ord_', ''), 32 - length('#' || ${attempt})) END || '#' || ${attempt})`;

/**
 * CTEs that record a createChatInviteLink about to be made for the order in `holder` (order_id,
 * chat_id; empty = nothing recorded): the next attempt number, its name and the expiry it asks for
 * ($expire). The order's attempts still pending never got their answer recorded (the asker died):
 * they become 'lost'. All in the statement that locks the invite row, so the lease holds while the
 * attempt is numbered and written; a concurrent numbering (impossible under the lease) would fail on
 * the primary key rather than share a number.
 */
export const recordAttempt = (holder: string, expire: string) => `
  begun AS (
    SELECT h.order_id, h.chat_id, coalesce((SELECT max(a.attempt) FROM invite_link_attempts a WHERE a.order_id = h.order_id), 0) + 1 AS attempt
      FROM ${holder} h
  ), lost AS (
    UPDATE invite_link_attempts SET outcome = 'lost', resolved_at = now()
     WHERE order_id IN (SELECT order_id FROM begun) AND outcome = 'pending'
  ), recorded AS (
    INSERT INTO invite_link_attempts (order_id, attempt, chat_id, name, expire_date)
    SELECT order_id, attempt, chat_id, ${linkNameSql('order_id', 'attempt::text')}, ${expire} FROM begun
    RETURNING order_id, attempt, name, expire_date
  )`;

export const attemptOf = (row: { attemptNo: number | null; attemptName: string | null; attemptExpireDate: Date | null }, orderId: string): LinkAttempt | null =>
  row.attemptNo === null ? null : { orderId, attempt: row.attemptNo, name: row.attemptName!, expireDate: row.attemptExpireDate! };

/** The lease moved on (a later attempt of this job took it over): this run must not act any more. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
  constructor(orderId: string, owner: string) {
    super(`invite for order ${orderId}: lease no longer held by ${owner} (a later attempt took over); stopping without acting`);
  }
}

const RELEASE = { name: 'invite-release', text: 'UPDATE invites SET lease_owner = NULL, lease_until = NULL WHERE order_id = $1 AND lease_owner = $2' };

export async function releaseInvite(db: Queryable, orderId: string, owner: string): Promise<void> {
  await db.query({ ...RELEASE, values: [orderId, owner] });
}

const TAKE_ATTEMPT = {
  name: 'invite-take-attempt',
  text: `UPDATE invites SET invite_attempt = $3, updated_at = now()
          WHERE order_id = $1 AND lease_owner = $2 AND invite_attempt < $3 RETURNING ${INVITE_COLUMNS}`,
};
const TAKE_ATTEMPT_OVER = {
  name: 'invite-take-attempt-over',
  text: `UPDATE invites SET invite_attempt = $3, replaced_links = replaced_links + (invite_link IS NOT NULL)::int, invite_link = NULL, link_name = NULL,
                expire_date = NULL, extended_at = NULL, created_at = NULL, send_attempted_at = NULL, sent_at = NULL, message_id = NULL,
                undeliverable_reason = NULL, revoked_at = NULL, revoke_reason = NULL, joined_by = NULL, joined_at = NULL, updated_at = now()
          WHERE order_id = $1 AND lease_owner = $2 AND invite_attempt < $3 RETURNING ${INVITE_COLUMNS}`,
};

/**
 * A later invite attempt of the payment (an operator asked again). When the invite was already sent or
 * ended (undeliverable, revoked, used), the row starts over for this attempt — the caller has revoked
 * the old link first — so this attempt creates, sends and records a link of its own; otherwise the
 * attempt only takes the row over and resumes it. Fenced by the lease; a repeat of the same attempt is a no-op.
 */
export async function takeInviteAttempt(db: Queryable, orderId: string, owner: string, attempt: number, startOver: boolean): Promise<Invite> {
  const { rows } = await db.query<Invite>({ ...(startOver ? TAKE_ATTEMPT_OVER : TAKE_ATTEMPT), values: [orderId, owner, attempt] });
  if (rows[0]) return rows[0];
  return (await findInvite(db, orderId))!;
}

const attemptSelect = `SELECT attempt AS "attemptNo", name AS "attemptName", expire_date AS "attemptExpireDate" FROM recorded`;
const BEGIN_ATTEMPT = {
  name: 'invite-begin-link-attempt',
  text: `WITH holder AS (
    SELECT order_id, chat_id FROM invites WHERE order_id = $1 AND lease_owner = $2 FOR UPDATE
  ), ${recordAttempt('holder', '$3')}
  ${attemptSelect}`,
};
const REPLACE_AND_BEGIN_ATTEMPT = {
  name: 'invite-replace-and-begin-link-attempt',
  text: `WITH holder AS (
    UPDATE invites SET invite_link = NULL, expire_date = NULL, link_name = NULL, extended_at = NULL, created_at = NULL, revoked_at = NULL,
                       revoke_reason = NULL, replaced_links = replaced_links + 1, create_attempts = create_attempts + 1, updated_at = now()
     WHERE order_id = $1 AND lease_owner = $2
    RETURNING order_id, chat_id
  ), ${recordAttempt('holder', '$3')}
  ${attemptSelect}`,
};

/**
 * Records a createChatInviteLink about to be made (before the call), in one statement: its number, the
 * name it gives the link, the expiry it asks for. Earlier attempts of the order still pending never got
 * their answer recorded (the asker died): they become 'lost'. Fenced on the lease (LeaseLost).
 * `replacing`: the stored link expired or was revoked before it was sent (the caller revoked it at
 * Telegram first): it is forgotten in the same statement, and the creation about to happen counted.
 */
export async function beginLinkAttempt(db: Queryable, a: { orderId: string; owner: string; expireDate: Date; replacing?: boolean }): Promise<LinkAttempt> {
  const { rows } = await db.query<{ attemptNo: number | null; attemptName: string | null; attemptExpireDate: Date | null }>({
    ...(a.replacing ? REPLACE_AND_BEGIN_ATTEMPT : BEGIN_ATTEMPT),
    values: [a.orderId, a.owner, a.expireDate],
  });
  const attempt = rows[0] && attemptOf(rows[0], a.orderId);
  if (!attempt) throw new LeaseLost(a.orderId, a.owner);
  return attempt;
}

const RESOLVE_ATTEMPT = {
  name: 'invite-resolve-link-attempt',
  text: `UPDATE invite_link_attempts SET outcome = $3, resolved_at = now() WHERE order_id = $1 AND attempt = $2 AND outcome = 'pending'`,
};

/** Telegram answered with an error (no link exists), or gave no answer (a link may exist: lost). */
export async function resolveLinkAttempt(db: Queryable, a: Pick<LinkAttempt, 'orderId' | 'attempt'>, outcome: 'refused' | 'lost'): Promise<void> {
  await db.query({ ...RESOLVE_ATTEMPT, values: [a.orderId, a.attempt, outcome] });
}

/**
 * Stores a link with the attempt that made it; the attempt is marked stored in the same statement, so a
 * link is either the order's or counted lost. `extended`: created with its full lifetime already
 * (nothing to extend). `sendAttempted`: "send attempted" is set in the same write (see SendRecord).
 */
const saveLinkStatement = (sendAttempted: boolean) => ({
  name: sendAttempted ? 'invite-save-link-send-attempted' : 'invite-save-link',
  text: `WITH saved AS (
    UPDATE invites SET invite_link = $3, expire_date = $4, link_name = $5, created_at = now(), revoked_at = NULL, revoke_reason = NULL,
           extended_at = CASE WHEN $6 THEN now() END${sendAttempted ? ', send_attempted_at = now()' : ''}, updated_at = now()
     WHERE order_id = $1 AND lease_owner = $2
     RETURNING order_id
  ), attempt AS (
    UPDATE invite_link_attempts SET outcome = 'stored', invite_link = $3, resolved_at = now()
     WHERE order_id = (SELECT order_id FROM saved) AND attempt = $7
  )
  SELECT order_id FROM saved`,
});
const SAVE_LINK = saveLinkStatement(false);
const SAVE_LINK_SEND_ATTEMPTED = saveLinkStatement(true);

async function storeLink(db: Queryable, owner: string, a: LinkAttempt, link: string, extended: boolean, sendAttempted: boolean): Promise<void> {
  const { rows } = await db.query({
    ...(sendAttempted ? SAVE_LINK_SEND_ATTEMPTED : SAVE_LINK),
    values: [a.orderId, owner, link, a.expireDate, a.name, extended, a.attempt],
  });
  if (!rows[0]) throw new LeaseLost(a.orderId, owner);
}

/**
 * Stored the moment Telegram returns it, before anyone is told (and before it is extended: an orphan
 * of a crash after this point is no orphan, and one before it dies with its short expiry). Fenced on the lease.
 */
export const saveLink = (db: Queryable, owner: string, a: LinkAttempt, link: string, extended: boolean): Promise<void> => storeLink(db, owner, a, link, extended, false);

/**
 * What is still to be recorded about the link when "send attempted" is set, in that same write (both
 * happen after the last Bot API call about the link and before sendMessage, with nothing in between):
 * - none: the link is stored and has its full lifetime already;
 * - extended: editChatInviteLink just gave the stored link its full lifetime (`expireDate`);
 * - stored: createChatInviteLink just made the link with its full lifetime (INVITE_EXPIRE_AFTER within
 *   the pending lifetime: nothing to extend), not stored yet.
 */
export type SendRecord = { kind: 'none' } | { kind: 'extended'; expireDate: Date } | { kind: 'stored'; attempt: LinkAttempt; link: string };

const MARK_SEND_ATTEMPTED = {
  name: 'invite-mark-send-attempted',
  text: 'UPDATE invites SET send_attempted_at = now(), updated_at = now() WHERE order_id = $1 AND lease_owner = $2 RETURNING order_id',
};
const MARK_EXTENDED_SEND_ATTEMPTED = {
  name: 'invite-mark-extended-send-attempted',
  text: `UPDATE invites SET expire_date = $3, extended_at = now(), send_attempted_at = now(), updated_at = now()
          WHERE order_id = $1 AND lease_owner = $2 RETURNING order_id`,
};

/** Set right before each sendMessage request, with what `record` still holds; only the lease holder may (LeaseLost otherwise). */
export async function markSendAttempted(db: Queryable, orderId: string, owner: string, record: SendRecord = { kind: 'none' }): Promise<void> {
  if (record.kind === 'stored') return storeLink(db, owner, record.attempt, record.link, true, true);
  const { rows } =
    record.kind === 'extended'
      ? await db.query({ ...MARK_EXTENDED_SEND_ATTEMPTED, values: [orderId, owner, record.expireDate] })
      : await db.query({ ...MARK_SEND_ATTEMPTED, values: [orderId, owner] });
  if (!rows[0]) throw new LeaseLost(orderId, owner);
}

const CLEAR_SEND_ATTEMPT = {
  name: 'invite-clear-send-attempt',
  text: 'UPDATE invites SET send_attempted_at = NULL, updated_at = now() WHERE order_id = $1 AND lease_owner = $2 AND sent_at IS NULL',
};

/**
 * Telegram answered with an error (429, 5xx) or was never reached, so the message certainly did not go
 * out: a retry may send it. Recorded before any wait. Only the lease holder's own mark is cleared
 * (a later attempt's mark stays); false when the lease moved on.
 */
export async function clearSendAttempt(db: Queryable, orderId: string, owner: string): Promise<boolean> {
  const { rowCount } = await db.query({ ...CLEAR_SEND_ATTEMPT, values: [orderId, owner] });
  return (rowCount ?? 0) > 0;
}

// The outcome of a send is a fact, recorded whoever holds the lease now (a later attempt that took over
// finds it); the same write ends this run's lease, and only this run's: nothing is left to do for it.
const endLease = (owner = '$3') => `lease_owner = CASE WHEN lease_owner = ${owner} THEN NULL ELSE lease_owner END,
                  lease_until = CASE WHEN lease_owner = ${owner} THEN NULL ELSE lease_until END`;
/**
 * "sent" with parameters order id, message id, owner numbered from $first: a statement of its own
 * (markSent) or a CTE of the statement that records the invite's result and applies it (the runner).
 */
export const markSentSql = (first: number) =>
  `UPDATE invites SET sent_at = now(), message_id = $${first + 1}, ${endLease(`$${first + 2}`)}, updated_at = now() WHERE order_id = $${first} RETURNING order_id`;
const MARK_SENT = { name: 'invite-mark-sent', text: markSentSql(1) };
const MARK_UNDELIVERABLE = {
  name: 'invite-mark-undeliverable',
  text: `UPDATE invites SET undeliverable_reason = coalesce(undeliverable_reason, $2), ${endLease()}, updated_at = now() WHERE order_id = $1 RETURNING order_id`,
};

async function recordFact(db: Queryable, statement: { name: string; text: string }, orderId: string, values: unknown[]): Promise<void> {
  const { rows } = await db.query({ ...statement, values: [orderId, ...values] });
  if (!rows[0]) throw new Error(`invite for order ${orderId} disappeared`);
}

/** sendMessage answered: the DM went out. Also ends `owner`'s lease. */
export const markSent = (db: Queryable, orderId: string, messageId: number, owner: string) => recordFact(db, MARK_SENT, orderId, [messageId, owner]);

/** The DM cannot go out, or may have gone out unconfirmed (then it is not sent again). Also ends `owner`'s lease. */
export const markUndeliverable = (db: Queryable, orderId: string, reason: string, owner: string) => recordFact(db, MARK_UNDELIVERABLE, orderId, [reason, owner]);

const FIND_BY_LINK = { name: 'invite-find-by-link', text: `SELECT ${INVITE_COLUMNS} FROM invites WHERE invite_link = $1` };
const FIND = { name: 'invite-find', text: `SELECT ${INVITE_COLUMNS} FROM invites WHERE order_id = $1` };

export async function findInviteByLink(db: Queryable, link: string): Promise<Invite | null> {
  const { rows } = await db.query<Invite>({ ...FIND_BY_LINK, values: [link] });
  return rows[0] ?? null;
}

export async function findInvite(db: Queryable, orderId: string): Promise<Invite | null> {
  const { rows } = await db.query<Invite>({ ...FIND, values: [orderId] });
  return rows[0] ?? null;
}

const MARK_JOINED = {
  name: 'invite-mark-joined',
  text: 'UPDATE invites SET joined_by = coalesce(joined_by, $2), joined_at = coalesce(joined_at, now()), updated_at = now() WHERE order_id = $1 RETURNING order_id',
};
const MARK_REVOKED = {
  name: 'invite-mark-revoked',
  text: 'UPDATE invites SET revoked_at = coalesce(revoked_at, now()), revoke_reason = coalesce(revoke_reason, $2), updated_at = now() WHERE order_id = $1 RETURNING order_id',
};

export const markJoined = (db: Queryable, orderId: string, userId: string) => recordFact(db, MARK_JOINED, orderId, [userId]);

export const markRevoked = (db: Queryable, orderId: string, reason: string) => recordFact(db, MARK_REVOKED, orderId, [reason]);

/**
 * Invite links that may exist at Telegram with nobody owning them: createChatInviteLink calls whose
 * answer was lost (timeout, reset, the asker died). Each asked for a short expiry (the invite actor's
 * PENDING_LINK_LIFETIME), so such a link dies soon; Telegram cannot list links, so this record is all
 * there is. A call still pending after `inFlightMs` had its asker die (requests time out long before).
 * `liveOnly`: only those whose expiry has not passed yet (a gauge); otherwise all ever (a counter).
 */
export async function orphanInviteLinks(db: Queryable, options: { liveOnly?: boolean; inFlightMs?: number } = {}): Promise<number> {
  const { rows } = await db.query<{ n: string }>({
    name: 'invite-orphan-links',
    text: `SELECT count(*) AS n FROM invite_link_attempts
            WHERE (outcome = 'lost' OR (outcome = 'pending' AND started_at < now() - $1 * interval '1 millisecond'))
              AND (NOT $2 OR expire_date > now())`,
    values: [options.inFlightMs ?? 120_000, options.liveOnly ?? false],
  });
  return Number(rows[0]?.n ?? 0);
}
