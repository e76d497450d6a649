import type pg from 'pg';
import type { WrittenAlongside } from '../persistence/transition-statements.js';
import type { Queryable } from '../persistence/transaction.js';
import { sanitizeText } from '../domain/text.js';
import { isDataError } from '../persistence/database.js';

// ipn_deliveries: every verified IPN as it arrived (migrations/004). Stored before anything acts on it.

export type DeliveryStatus = 'received' | 'applied' | 'duplicate' | 'parked' | 'failed';

export interface NewDelivery {
  bodyHash: string;
  /** The request body, decoded as strict UTF-8 (so it is the exact bytes). */
  rawBody: string;
  /**
   * JSON text for the queryable jsonb copy: the raw body itself when Postgres can take it (numbers stay
   * exact), else a sanitised re-serialisation (see sanitizeJson).
   */
  jsonBody: string;
  /** Used when Postgres refuses `jsonBody` (a \u0000 escape, a lone surrogate, a number beyond numeric). */
  sanitisedJsonBody: () => string;
  paymentId: string | null;
  paymentStatus: string | null;
}

export interface StoredDelivery {
  id: string;
  status: DeliveryStatus;
  /** false when an identical body was already stored (a NowPayments retry or a dashboard re-send). */
  inserted: boolean;
}

// What a verified body becomes in the two columns, whatever it contains:
// - raw_body (text) is the body as received. A body JSON.parse accepted holds no raw U+0000 (JSON forbids
//   unescaped control characters; NUL exists there only as the six characters `\u0000`, which text stores
//   fine), and the route decodes strictly as UTF-8 (so no lone surrogate and no replaced byte), hence it
//   is the exact bytes. A NUL that got here anyway would be written as that same six-character escape.
// - body (jsonb) is for queries only. jsonb refuses `\u0000`, unpaired surrogate escapes and numbers
//   beyond numeric, which JSON allows; then the copy is re-serialised with U+FFFD (null for a number) in
//   their place, and the service parks the delivery when text was replaced (see ipn.service.ts). The old
//   textual `\u0000` removal turned the text `\\u0000` into invalid JSON, and every re-send failed again.
// Storing therefore fails only when the database does: never because of the body.
export async function storeDelivery(pool: Queryable, d: NewDelivery): Promise<StoredDelivery> {
  const rawBody = d.rawBody.includes('\u0000') ? d.rawBody.replaceAll('\u0000', '\\u0000') : d.rawBody;
  try {
    return await insertDelivery(pool, d, rawBody, d.jsonBody);
  } catch (error) {
    if (!isDataError(error)) throw error;
    return insertDelivery(pool, d, rawBody, d.sanitisedJsonBody());
  }
}

async function insertDelivery(pool: Queryable, d: NewDelivery, rawBody: string, jsonBody: string): Promise<StoredDelivery> {
  const { rows } = await pool.query<{ id: string; status: DeliveryStatus; inserted: boolean }>({
    name: 'ipn-delivery-store',
    text: `WITH ins AS (
       INSERT INTO ipn_deliveries (body_hash, raw_body, body, payment_id, payment_status)
       VALUES ($1, $2, $3::jsonb, $4, $5)
       ON CONFLICT (body_hash) DO NOTHING
       RETURNING id, status)
     SELECT id, status, true AS inserted FROM ins
     UNION ALL
     SELECT id, status, false FROM ipn_deliveries WHERE body_hash = $1
     LIMIT 1`,
    values: [d.bodyHash, rawBody, jsonBody, d.paymentId, d.paymentStatus],
  });
  const row = rows[0] ?? (await findByHash(pool, d.bodyHash));
  if (!row) throw new Error('ipn delivery neither inserted nor found');
  return row;
}

/** The delivery already stored with these bytes, if any. */
export async function findByHash(pool: Queryable, bodyHash: string): Promise<StoredDelivery | undefined> {
  // A concurrent first insert may be invisible to an earlier statement's snapshot; by now it has committed.
  const { rows } = await pool.query<{ id: string; status: DeliveryStatus }>({ name: 'ipn-delivery-by-hash', text: 'SELECT id, status FROM ipn_deliveries WHERE body_hash = $1', values: [bodyHash] });
  return rows[0] ? { ...rows[0], inserted: false } : undefined;
}

/**
 * Stores a delivery whose outcome is already known (applied in the same transaction): one row written
 * once, instead of "received" and then its outcome. Null when the same bytes were stored meanwhile (a
 * concurrent identical IPN committed first); that one's row stands.
 */
export async function insertDeliveryWithOutcome(tx: Queryable, d: NewDelivery, u: DeliveryUpdate): Promise<string | null> {
  const { rows } = await tx.query<{ id: string }>({
    name: 'ipn-delivery-insert-outcome',
    text: `INSERT INTO ipn_deliveries (body_hash, raw_body, body, payment_id, payment_status, status, problem, event_type, applied_version, attempts)
           VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, 1)
           ON CONFLICT (body_hash) DO NOTHING
           RETURNING id`,
    values: [d.bodyHash, d.rawBody, d.jsonBody, u.paymentId ?? d.paymentId, d.paymentStatus, u.status, u.problem == null ? null : sanitizeText(u.problem).slice(0, 4000), u.eventType ?? null, u.appliedVersion ?? null],
  });
  return rows[0]?.id ?? null;
}

/**
 * The delivery row of an IPN whose transition is being written, as part of that transition's own
 * statement (see WrittenAlongside): stored as applied, with the version it made, or not at all when
 * the transition is not written. Its id comes back; null when the same bytes were stored meanwhile.
 */
export function deliveryWrittenWith(d: NewDelivery, eventType: string): WrittenAlongside {
  return {
    name: 'ipn-delivery-applied',
    sql: (n) => `INSERT INTO ipn_deliveries (body_hash, raw_body, body, payment_id, payment_status, status, event_type, applied_version, attempts)
      SELECT $${n}::text, $${n + 1}::text, $${n + 2}::jsonb, payment_id, $${n + 3}::text, 'applied', $${n + 4}::text, version, 1 FROM written
      ON CONFLICT (body_hash) DO NOTHING
      RETURNING id`,
    values: [d.bodyHash, d.rawBody, d.jsonBody, d.paymentStatus, eventType],
    // When the transition is not written (a re-send, a stale status), the stored delivery of these bytes
    // comes back with that statement: the duplicate is answered without a lookup of its own.
    seen: (n) => `SELECT json_build_object('id', id::text, 'status', status) FROM ipn_deliveries WHERE body_hash = $${n}::text`,
  };
}

/** The alongside's `seen` (deliveryWrittenWith) as a stored delivery: null when none was stored then, undefined when not looked up. */
export function seenDelivery(value: unknown): StoredDelivery | null | undefined {
  if (value === undefined) return undefined;
  if (value === null) return null;
  const { id, status } = value as { id: string; status: DeliveryStatus };
  return { id, status, inserted: false };
}

export interface DeliveryUpdate {
  status: Exclude<DeliveryStatus, 'received'>;
  problem?: string | null;
  eventType?: string | null;
  appliedVersion?: number | null;
  paymentId?: string | null;
}

// A delivery only moves forward (received < failed < parked < duplicate < applied): two concurrent
// appliers of one body must leave "applied" behind, whichever finishes last.
const RANK = `CASE %s WHEN 'received' THEN 0 WHEN 'failed' THEN 1 WHEN 'parked' THEN 2 WHEN 'duplicate' THEN 3 WHEN 'applied' THEN 4 END`;

export async function markDelivery(pool: Queryable, id: string, u: DeliveryUpdate): Promise<void> {
  await pool.query({
    name: 'ipn-delivery-mark',
    text: `UPDATE ipn_deliveries
        SET status = $2, problem = $3, event_type = coalesce($4, event_type),
            applied_version = coalesce($5, applied_version), payment_id = coalesce(payment_id, $6),
            attempts = attempts + 1, updated_at = now()
      WHERE id = $1 AND ${RANK.replace('%s', 'status')} <= ${RANK.replace('%s', '$2::text')}`,
    values: [id, u.status, u.problem == null ? null : sanitizeText(u.problem).slice(0, 4000), u.eventType ?? null, u.appliedVersion ?? null, u.paymentId ?? null],
  });
}

export interface DeliveryRow {
  id: string;
  raw_body: string;
  status: DeliveryStatus;
  payment_id: string | null;
  problem: string | null;
  received_at: Date;
}

export async function getDelivery(pool: pg.Pool, id: string): Promise<DeliveryRow | null> {
  const { rows } = await pool.query<DeliveryRow>(
    'SELECT id, raw_body, status, payment_id, problem, received_at FROM ipn_deliveries WHERE id = $1',
    [id],
  );
  return rows[0] ?? null;
}

/** Stored but never applied (the process died, or applying threw), oldest first; bounded. */
export async function unappliedDeliveries(pool: pg.Pool, options: { olderThanMs: number; limit: number }): Promise<string[]> {
  const { rows } = await pool.query<{ id: string }>(
    `SELECT id FROM ipn_deliveries
      WHERE status IN ('received', 'failed') AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
      ORDER BY received_at LIMIT $2`,
    [options.olderThanMs, options.limit],
  );
  return rows.map((r) => r.id);
}

export interface DeliverySummary {
  id: string;
  payment_id: string | null;
  payment_status: string | null;
  status: DeliveryStatus;
  problem: string | null;
  event_type: string | null;
  applied_version: number | null;
  attempts: number;
  received_at: Date;
  updated_at: Date;
}

export async function listDeliveries(pool: pg.Pool, filter: { status?: DeliveryStatus | undefined; paymentId?: string | undefined; limit: number }): Promise<DeliverySummary[]> {
  const { rows } = await pool.query<DeliverySummary>(
    `SELECT id, payment_id, payment_status, status, problem, event_type, applied_version, attempts, received_at, updated_at
       FROM ipn_deliveries
      WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR payment_id = $2)
      ORDER BY received_at DESC, id DESC LIMIT $3`,
    [filter.status ?? null, filter.paymentId ?? null, filter.limit],
  );
  return rows;
}
