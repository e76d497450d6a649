import type pg from 'pg';
import { inTransaction, type Queryable } from '../persistence/transaction.js';

// The invites table: one row per order, written step by step so a retried job knows exactly how far
// the last attempt got (link created? send attempted? sent?). bigint ids come back as strings.

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

const COLUMNS = `order_id AS "orderId", payment_id AS "paymentId", chat_id::text AS "chatId",
  buyer_telegram_id::text AS "buyerTelegramId", invite_link AS "inviteLink", expire_date AS "expireDate",
  link_name AS "linkName", extended_at AS "extendedAt",
  create_attempts AS "createAttempts", replaced_links AS "replacedLinks", send_attempted_at AS "sendAttemptedAt",
  sent_at AS "sentAt", message_id::text AS "messageId", undeliverable_reason AS "undeliverableReason",
  revoked_at AS "revokedAt", revoke_reason AS "revokeReason", joined_by::text AS "joinedBy", joined_at AS "joinedAt",
  invite_attempt AS "inviteAttempt"`;

export interface ClaimInput {
  orderId: string;
  paymentId: string;
  chatId: string;
  buyerTelegramId: string;
  /**
   * Who holds the lease: `<pg-boss job id>#<retry count>` (leaseOwner). A retry of the same job takes
   * the lease over at once (pg-boss retries a job only once it judged the earlier attempt dead: failed,
   * expired, heartbeat lost), and the owner string fences the earlier attempt out if it was still alive.
   */
  owner: string;
  leaseMs: number;
}

/** The lease owner of one attempt of one job; the part before '#' names the job. */
export const leaseOwner = (jobId: string, retryCount: number): string => `${jobId}#${retryCount}`;

/**
 * Creates the order's invite row if absent and leases it to this job; counts a link creation about to
 * happen (no link stored yet), so more than one attempt shows a timed-out call may have left a link behind. Null when another job holds an
 * unexpired lease (a second payment for the same order). A later attempt of the same job takes over
 * at once; every write that acts on the invite's behalf is then fenced on the owner (see `fenced`).
 */
export async function claimInvite(db: Queryable, c: ClaimInput): Promise<Invite | null> {
  const { rows } = await db.query<Invite>(
    `INSERT INTO invites (order_id, payment_id, chat_id, buyer_telegram_id, lease_owner, lease_until, create_attempts)
     VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond', 1)
     ON CONFLICT (order_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until, updated_at = now(),
       -- No link yet means this job is about to ask Telegram for one: counted before the call.
       create_attempts = invites.create_attempts + CASE WHEN invites.invite_link IS NULL THEN 1 ELSE 0 END
       WHERE invites.lease_until IS NULL OR invites.lease_until < now()
          OR split_part(invites.lease_owner, '#', 1) = split_part(EXCLUDED.lease_owner, '#', 1)
     RETURNING ${COLUMNS}`,
    [c.orderId, c.paymentId, c.chatId, c.buyerTelegramId, c.owner, c.leaseMs],
  );
  return rows[0] ?? null;
}

/** The lease moved on (a later attempt of this job took it over): this run must not act any more. */
export class LeaseLost extends Error {
  override name = 'LeaseLost';
  constructor(orderId: string, owner: string) {
    super(`invite for order ${orderId}: lease no longer held by ${owner} (a later attempt took over); stopping without acting`);
  }
}

export async function releaseInvite(db: Queryable, orderId: string, owner: string): Promise<void> {
  await db.query('UPDATE invites SET lease_owner = NULL, lease_until = NULL WHERE order_id = $1 AND lease_owner = $2', [orderId, owner]);
}

async function update(db: Queryable, orderId: string, set: string, values: unknown[] = []): Promise<Invite> {
  const { rows } = await db.query<Invite>(`UPDATE invites SET ${set}, updated_at = now() WHERE order_id = $1 RETURNING ${COLUMNS}`, [orderId, ...values]);
  if (!rows[0]) throw new Error(`invite for order ${orderId} disappeared`);
  return rows[0];
}

/** An update that only the lease holder may make; LeaseLost otherwise. */
async function fenced(db: Queryable, orderId: string, owner: string, set: string, values: unknown[] = []): Promise<Invite> {
  const { rows } = await db.query<Invite>(
    `UPDATE invites SET ${set}, updated_at = now() WHERE order_id = $1 AND lease_owner = $2 RETURNING ${COLUMNS}`,
    [orderId, owner, ...values],
  );
  if (!rows[0]) throw new LeaseLost(orderId, owner);
  return rows[0];
}

/**
 * A later invite attempt of the payment (an operator asked again). When the invite was already sent or
 * ended (undeliverable, revoked, used), the row starts over for this attempt — the caller has revoked
 * the old link first — so this attempt creates, sends and records a link of its own; otherwise the
 * attempt only takes the row over and resumes it. Fenced by the lease; a repeat of the same attempt is a no-op.
 */
export async function takeInviteAttempt(db: Queryable, orderId: string, owner: string, attempt: number, startOver: boolean): Promise<Invite> {
  const reset = startOver
    ? `, replaced_links = replaced_links + (invite_link IS NOT NULL)::int, invite_link = NULL, link_name = NULL, expire_date = NULL,
       extended_at = NULL, created_at = NULL, send_attempted_at = NULL, sent_at = NULL, message_id = NULL, undeliverable_reason = NULL,
       revoked_at = NULL, revoke_reason = NULL, joined_by = NULL, joined_at = NULL`
    : '';
  const { rows } = await db.query<Invite>(
    `UPDATE invites SET invite_attempt = $3${reset}, updated_at = now()
      WHERE order_id = $1 AND lease_owner = $2 AND invite_attempt < $3 RETURNING ${COLUMNS}`,
    [orderId, owner, attempt],
  );
  if (rows[0]) return rows[0];
  return (await findInvite(db, orderId))!;
}

export interface LinkAttempt {
  orderId: string;
  attempt: number;
  name: string;
  expireDate: Date;
}

/**
 * Records a createChatInviteLink about to be made (before the call): its number, the name it gives
 * the link, the expiry it asks for. Earlier attempts of the order still pending never got their
 * answer recorded (the asker died): they become 'lost'. Fenced on the lease.
 */
export async function beginLinkAttempt(
  pool: pg.Pool,
  a: { orderId: string; owner: string; name: (attempt: number) => string; expireDate: Date },
): Promise<LinkAttempt> {
  return inTransaction(pool, async (tx) => {
    // The row lock holds the lease still while the attempt is numbered and written.
    const { rows } = await tx.query<{ attempt: number }>(
      `WITH holder AS (
         SELECT order_id FROM invites WHERE order_id = $1 AND lease_owner = $2 FOR UPDATE
       ), lost AS (
         UPDATE invite_link_attempts SET outcome = 'lost', resolved_at = now()
          WHERE order_id IN (SELECT order_id FROM holder) AND outcome = 'pending'
       )
       SELECT coalesce((SELECT max(attempt) FROM invite_link_attempts WHERE order_id = h.order_id), 0) + 1 AS attempt FROM holder h`,
      [a.orderId, a.owner],
    );
    const row = rows[0];
    if (!row) throw new LeaseLost(a.orderId, a.owner);
    const name = a.name(row.attempt);
    await tx.query(
      `INSERT INTO invite_link_attempts (order_id, attempt, chat_id, name, expire_date)
       SELECT order_id, $2, chat_id, $3, $4 FROM invites WHERE order_id = $1`,
      [a.orderId, row.attempt, name, a.expireDate],
    );
    return { orderId: a.orderId, attempt: row.attempt, name, expireDate: a.expireDate };
  });
}

/** Telegram answered with an error (no link exists), or gave no answer (a link may exist: lost). */
export async function resolveLinkAttempt(db: Queryable, a: Pick<LinkAttempt, 'orderId' | 'attempt'>, outcome: 'refused' | 'lost'): Promise<void> {
  await db.query(
    `UPDATE invite_link_attempts SET outcome = $3, resolved_at = now() WHERE order_id = $1 AND attempt = $2 AND outcome = 'pending'`,
    [a.orderId, a.attempt, outcome],
  );
}

/**
 * Stored the moment Telegram returns it, before anyone is told, with the attempt that made it.
 * `extended`: created with its full lifetime already (nothing to extend). Fenced on the lease; the
 * attempt is marked stored in the same statement, so a link is either the order's or counted lost.
 */
export async function saveLink(db: Queryable, owner: string, a: LinkAttempt, link: string, extended: boolean): Promise<Invite> {
  const { rows } = await db.query<Invite>(
    `WITH saved AS (
       UPDATE invites SET invite_link = $3, expire_date = $4, link_name = $5, created_at = now(), revoked_at = NULL, revoke_reason = NULL,
              extended_at = CASE WHEN $6 THEN now() END, updated_at = now()
        WHERE order_id = $1 AND lease_owner = $2
        RETURNING *
     ), attempt AS (
       UPDATE invite_link_attempts SET outcome = 'stored', invite_link = $3, resolved_at = now()
        WHERE order_id = (SELECT order_id FROM saved) AND attempt = $7
     )
     SELECT ${COLUMNS} FROM saved`,
    [a.orderId, owner, link, a.expireDate, a.name, extended, a.attempt],
  );
  if (!rows[0]) throw new LeaseLost(a.orderId, owner);
  return rows[0];
}

/** editChatInviteLink gave the stored link its full lifetime: from now on it may be sent. */
export const markExtended = (db: Queryable, orderId: string, owner: string, expireDate: Date) =>
  fenced(db, orderId, owner, 'expire_date = $3, extended_at = now()', [expireDate]);

/** The old link expired or was revoked before it was sent: forget it (it was revoked first); a new one is created next, counted here. */
export const dropLink = (db: Queryable, orderId: string) =>
  update(
    db,
    orderId,
    'invite_link = NULL, expire_date = NULL, link_name = NULL, extended_at = NULL, created_at = NULL, revoked_at = NULL, revoke_reason = NULL, replaced_links = replaced_links + 1, create_attempts = create_attempts + 1',
  );

/** Set right before each sendMessage request; only the lease holder may (LeaseLost otherwise). */
export const markSendAttempted = (db: Queryable, orderId: string, owner: string) =>
  fenced(db, orderId, owner, 'send_attempted_at = now()');

/**
 * Telegram answered with an error (429, 5xx) or was never reached, so the message certainly did not go
 * out: a retry may send it. Recorded before any wait. Only the lease holder's own mark is cleared
 * (a later attempt's mark stays); false when the lease moved on.
 */
export async function clearSendAttempt(db: Queryable, orderId: string, owner: string): Promise<boolean> {
  const { rowCount } = await db.query('UPDATE invites SET send_attempted_at = NULL, updated_at = now() WHERE order_id = $1 AND lease_owner = $2 AND sent_at IS NULL', [
    orderId,
    owner,
  ]);
  return (rowCount ?? 0) > 0;
}

/** Also ends the lease: nothing is left to do for this invite. */
export const markSent = (db: Queryable, orderId: string, messageId: number) =>
  update(db, orderId, 'sent_at = now(), message_id = $2, lease_owner = NULL, lease_until = NULL', [messageId]);

export const markUndeliverable = (db: Queryable, orderId: string, reason: string) =>
  update(db, orderId, 'undeliverable_reason = coalesce(undeliverable_reason, $2)', [reason]);

export async function findInviteByLink(db: Queryable, link: string): Promise<Invite | null> {
  const { rows } = await db.query<Invite>(`SELECT ${COLUMNS} FROM invites WHERE invite_link = $1`, [link]);
  return rows[0] ?? null;
}

export async function findInvite(db: Queryable, orderId: string): Promise<Invite | null> {
  const { rows } = await db.query<Invite>(`SELECT ${COLUMNS} FROM invites WHERE order_id = $1`, [orderId]);
  return rows[0] ?? null;
}

export const markJoined = (db: Queryable, orderId: string, userId: string) =>
  update(db, orderId, 'joined_by = coalesce(joined_by, $2), joined_at = coalesce(joined_at, now())', [userId]);

export const markRevoked = (db: Queryable, orderId: string, reason: string) =>
  update(db, orderId, 'revoked_at = coalesce(revoked_at, now()), revoke_reason = coalesce(revoke_reason, $2)', [reason]);

/**
 * Invite links that may exist at Telegram with nobody owning them: createChatInviteLink calls whose
 * answer was lost (timeout, reset, the asker died). Each asked for a short expiry (the invite actor's
 * PENDING_LINK_LIFETIME), so such a link dies soon; Telegram cannot list links, so this record is all
 * there is. A call still pending after `inFlightMs` had its asker die (requests time out long before).
 * `liveOnly`: only those whose expiry has not passed yet (a gauge); otherwise all ever (a counter).
 */
export async function orphanInviteLinks(db: Queryable, options: { liveOnly?: boolean; inFlightMs?: number } = {}): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM invite_link_attempts
      WHERE (outcome = 'lost' OR (outcome = 'pending' AND started_at < now() - $1 * interval '1 millisecond'))
        AND (NOT $2 OR expire_date > now())`,
    [options.inFlightMs ?? 120_000, options.liveOnly ?? false],
  );
  return Number(rows[0]?.n ?? 0);
}
