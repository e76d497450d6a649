import type { Queryable } from '../persistence/transaction.js';

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
}

const COLUMNS = `order_id AS "orderId", payment_id AS "paymentId", chat_id::text AS "chatId",
  buyer_telegram_id::text AS "buyerTelegramId", invite_link AS "inviteLink", expire_date AS "expireDate",
  create_attempts AS "createAttempts", replaced_links AS "replacedLinks", send_attempted_at AS "sendAttemptedAt",
  sent_at AS "sentAt", message_id::text AS "messageId", undeliverable_reason AS "undeliverableReason",
  revoked_at AS "revokedAt", revoke_reason AS "revokeReason", joined_by::text AS "joinedBy", joined_at AS "joinedAt"`;

export interface ClaimInput {
  orderId: string;
  paymentId: string;
  chatId: string;
  buyerTelegramId: string;
  /** The pg-boss job id: a retry of the same job carries it and takes its own lease over at once. */
  owner: string;
  leaseMs: number;
}

/**
 * Creates the order's invite row if absent and leases it to this job; counts a link creation about to
 * happen (no link stored yet), so more than one attempt shows a timed-out call may have left a link behind. Null when another job holds an
 * unexpired lease (a second payment for the same order, or a job pg-boss expired while it still ran).
 */
export async function claimInvite(db: Queryable, c: ClaimInput): Promise<Invite | null> {
  const { rows } = await db.query<Invite>(
    `INSERT INTO invites (order_id, payment_id, chat_id, buyer_telegram_id, lease_owner, lease_until, create_attempts)
     VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 millisecond', 1)
     ON CONFLICT (order_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until, updated_at = now(),
       -- No link yet means this job is about to ask Telegram for one: counted before the call.
       create_attempts = invites.create_attempts + CASE WHEN invites.invite_link IS NULL THEN 1 ELSE 0 END
       WHERE invites.lease_until IS NULL OR invites.lease_until < now() OR invites.lease_owner = EXCLUDED.lease_owner
     RETURNING ${COLUMNS}`,
    [c.orderId, c.paymentId, c.chatId, c.buyerTelegramId, c.owner, c.leaseMs],
  );
  return rows[0] ?? null;
}

export async function releaseInvite(db: Queryable, orderId: string, owner: string): Promise<void> {
  await db.query('UPDATE invites SET lease_owner = NULL, lease_until = NULL WHERE order_id = $1 AND lease_owner = $2', [orderId, owner]);
}

async function update(db: Queryable, orderId: string, set: string, values: unknown[] = []): Promise<Invite> {
  const { rows } = await db.query<Invite>(`UPDATE invites SET ${set}, updated_at = now() WHERE order_id = $1 RETURNING ${COLUMNS}`, [orderId, ...values]);
  if (!rows[0]) throw new Error(`invite for order ${orderId} disappeared`);
  return rows[0];
}

/** Stored the moment Telegram returns it, before anyone is told. */
export const saveLink = (db: Queryable, orderId: string, link: string, expireDate: Date) =>
  update(db, orderId, 'invite_link = $2, expire_date = $3, created_at = now(), revoked_at = NULL, revoke_reason = NULL', [link, expireDate]);

/** The old link expired or was revoked before it was sent: forget it (it was revoked first); a new one is created next, counted here. */
export const dropLink = (db: Queryable, orderId: string) =>
  update(
    db,
    orderId,
    'invite_link = NULL, expire_date = NULL, created_at = NULL, revoked_at = NULL, revoke_reason = NULL, replaced_links = replaced_links + 1, create_attempts = create_attempts + 1',
  );

export const markSendAttempted = (db: Queryable, orderId: string) => update(db, orderId, 'send_attempted_at = now()');

/** Telegram answered with an error, so the message certainly did not go out: a retry may send it. */
export const clearSendAttempt = (db: Queryable, orderId: string) => update(db, orderId, 'send_attempted_at = NULL');

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
