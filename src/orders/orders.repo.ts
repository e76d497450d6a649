import type { Queryable } from '../channels/channels.repo.js';

export type OrderSource = 'api' | 'bot' | 'legacy-ipn';

export interface OrderRow {
  orderId: string;
  buyerTelegramId: string;
  openChannelId: string;
  planId: string | null;
  /** The price when ordered; later plan edits do not change it. */
  priceUsd: string;
  source: OrderSource;
  invoiceId: string | null;
  invoiceUrl: string | null;
  grantedPaymentId: string | null;
  createdAt: Date;
}

export type NewOrder = Pick<OrderRow, 'orderId' | 'buyerTelegramId' | 'openChannelId' | 'planId' | 'priceUsd' | 'source'>;

const COLUMNS = `order_id AS "orderId", buyer_telegram_id::text AS "buyerTelegramId", open_channel_id::text AS "openChannelId",
  plan_id AS "planId", price_usd::text AS "priceUsd", source, invoice_id AS "invoiceId", invoice_url AS "invoiceUrl",
  granted_payment_id AS "grantedPaymentId", created_at AS "createdAt"`;

export async function insertOrder(db: Queryable, o: NewOrder): Promise<OrderRow> {
  const { rows } = await db.query<OrderRow>(
    `INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [o.orderId, o.buyerTelegramId, o.openChannelId, o.planId, o.priceUsd, o.source],
  );
  return rows[0]!;
}

/** Insert unless an order with this id exists; either way answers the stored order (concurrent callers converge). */
export async function insertOrderIfAbsent(db: Queryable, o: NewOrder): Promise<OrderRow> {
  await db.query(
    `INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING`,
    [o.orderId, o.buyerTelegramId, o.openChannelId, o.planId, o.priceUsd, o.source],
  );
  const stored = await findOrder(db, o.orderId);
  if (!stored) throw new Error(`order ${o.orderId} was neither inserted nor found`);
  return stored;
}

export async function findOrder(db: Queryable, orderId: string): Promise<OrderRow | null> {
  const { rows } = await db.query<OrderRow>(`SELECT ${COLUMNS} FROM orders WHERE order_id = $1`, [orderId]);
  return rows[0] ?? null;
}

/**
 * The buyer's order for this plan whose invoice is still open: it has an invoice, was made within the
 * window at today's price, nothing was granted for it, and no payment for it got past "waiting" (a
 * payment under way, underpaid or failed closes it). The newest such order, or null.
 */
export async function findOpenOrder(
  db: Queryable,
  q: { buyerTelegramId: string; openChannelId: string; planId: string; priceUsd: string; newerThanMs: number },
): Promise<OrderRow | null> {
  const { rows } = await db.query<OrderRow>(
    `SELECT ${COLUMNS} FROM orders o
      WHERE o.buyer_telegram_id = $1 AND o.open_channel_id = $2 AND o.plan_id = $3
        AND o.created_at > now() - make_interval(secs => $5::double precision / 1000)
        AND o.price_usd = $4::numeric
        AND o.invoice_url IS NOT NULL AND o.granted_payment_id IS NULL
        AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.order_id AND p.step IS DISTINCT FROM 'waiting_for_payment')
      ORDER BY o.created_at DESC LIMIT 1`,
    [q.buyerTelegramId, q.openChannelId, q.planId, q.priceUsd, q.newerThanMs],
  );
  return rows[0] ?? null;
}

export async function setOrderInvoice(db: Queryable, orderId: string, invoice: { invoiceId: string; invoiceUrl: string }): Promise<void> {
  await db.query('UPDATE orders SET invoice_id = $2, invoice_url = $3 WHERE order_id = $1', [orderId, invoice.invoiceId, invoice.invoiceUrl]);
}

export type ClaimResult = { claimed: true } | { claimed: false; grantedPaymentId: string };

/**
 * Grants the order to this payment unless another payment already holds it. One statement: concurrent
 * claims serialise on the row lock and each re-checks the condition against the winner's committed row,
 * so exactly one payment is granted; the same payment claiming again succeeds (a retried job).
 */
export async function claimOrder(db: Queryable, orderId: string, paymentId: string): Promise<ClaimResult> {
  const claimed = await db.query(
    `UPDATE orders SET granted_payment_id = $2
      WHERE order_id = $1 AND (granted_payment_id IS NULL OR granted_payment_id = $2)`,
    [orderId, paymentId],
  );
  if (claimed.rowCount === 1) return { claimed: true };
  const holder = await findOrder(db, orderId);
  if (!holder?.grantedPaymentId) throw new Error(`order ${orderId} could not be claimed and has no holder`);
  return { claimed: false, grantedPaymentId: holder.grantedPaymentId };
}
