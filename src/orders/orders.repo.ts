import { channelColumns, splitJoined, type ChannelRow, type Queryable } from '../channels/channels.repo.js';

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

/** The columns read as an OrderRow; `from` qualifies them in a join. */
const columns = (from = '') => `${from}order_id AS "orderId", ${from}buyer_telegram_id::text AS "buyerTelegramId", ${from}open_channel_id::text AS "openChannelId",
  ${from}plan_id AS "planId", ${from}price_usd::text AS "priceUsd", ${from}source AS "source", ${from}invoice_id AS "invoiceId", ${from}invoice_url AS "invoiceUrl",
  ${from}granted_payment_id AS "grantedPaymentId", ${from}created_at AS "createdAt"`;

const COLUMNS = columns();

// Named statements of the hot paths (an order created, a payment routed): planned once per connection.
const INSERT = {
  name: 'order-insert',
  text: `INSERT INTO orders (order_id, buyer_telegram_id, open_channel_id, plan_id, price_usd, source)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
};
const FIND = { name: 'order-find', text: `SELECT ${COLUMNS} FROM orders WHERE order_id = $1` };
const FIND_WITH_CHANNEL_CLAIMING = {
  name: 'order-with-channel+claim',
  text: `WITH claim AS (
           UPDATE orders SET granted_payment_id = $2
            WHERE order_id = $1 AND (granted_payment_id IS NULL OR granted_payment_id = $2)
           RETURNING 1)
         SELECT ${columns('o.')}, ${channelColumns('c.', 'channel.')}, EXISTS (SELECT 1 FROM claim) AS "claimed"
           FROM orders o LEFT JOIN channels c ON c.open_channel_id = o.open_channel_id
          WHERE o.order_id = $1`,
};
const RELEASE_CLAIM = { name: 'order-release-claim', text: 'UPDATE orders SET granted_payment_id = NULL WHERE order_id = $1 AND granted_payment_id = $2' };
const SET_INVOICE = { name: 'order-set-invoice', text: 'UPDATE orders SET invoice_id = $2, invoice_url = $3 WHERE order_id = $1' };
const CLAIM = {
  name: 'order-claim',
  text: `UPDATE orders SET granted_payment_id = $2
          WHERE order_id = $1 AND (granted_payment_id IS NULL OR granted_payment_id = $2)`,
};

export async function insertOrder(db: Queryable, o: NewOrder): Promise<OrderRow> {
  const { rows } = await db.query<OrderRow>({ ...INSERT, values: [o.orderId, o.buyerTelegramId, o.openChannelId, o.planId, o.priceUsd, o.source] });
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
  const { rows } = await db.query<OrderRow>({ ...FIND, values: [orderId] });
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
  await db.query({ ...SET_INVOICE, values: [orderId, invoice.invoiceId, invoice.invoiceUrl] });
}

export type ClaimResult = { claimed: true } | { claimed: false; grantedPaymentId: string };

/**
 * Grants the order to this payment unless another payment already holds it. One statement: concurrent
 * claims serialise on the row lock and each re-checks the condition against the winner's committed row,
 * so exactly one payment is granted; the same payment claiming again succeeds (a retried job).
 */
export async function claimOrder(db: Queryable, orderId: string, paymentId: string): Promise<ClaimResult> {
  const claimed = await db.query({ ...CLAIM, values: [orderId, paymentId] });
  if (claimed.rowCount === 1) return { claimed: true };
  return heldBy(db, orderId);
}

/**
 * The order and its channel (null where there is none), claiming the order for the payment in the same
 * statement (claimOrder's rule):
 * for routing, which decides with the order and its channel whether to keep the claim. `order` is as it
 * was before the claim. `took`: this statement granted the order (it was free), so a refusal must
 * release it (releaseOrderClaim, in the same transaction).
 */
export async function findOrderWithChannelClaiming(
  db: Queryable,
  orderId: string,
  paymentId: string,
): Promise<{ order: OrderRow | null; channel: ChannelRow | null; claim: (ClaimResult & { took: boolean }) | null }> {
  const { rows } = await db.query<Record<string, unknown>>({ ...FIND_WITH_CHANNEL_CLAIMING, values: [orderId, paymentId] });
  if (!rows[0]) return { order: null, channel: null, claim: null };
  const { claimed, ...row } = rows[0];
  const [order, channel] = splitJoined<OrderRow, ChannelRow>(row, 'channel.', 'openChannelId');
  if (claimed === true) return { order, channel, claim: { claimed: true, took: order.grantedPaymentId !== paymentId } };
  // The read names the holder (a repeat deposit); only a claim committed while this statement ran needs a read.
  if (order.grantedPaymentId && order.grantedPaymentId !== paymentId) return { order, channel, claim: { claimed: false, grantedPaymentId: order.grantedPaymentId, took: false } };
  return { order, channel, claim: { ...(await heldBy(db, orderId)), took: false } };
}

/** Takes back a claim this transaction just made (findOrderWithChannelClaiming's `took`). */
export async function releaseOrderClaim(db: Queryable, orderId: string, paymentId: string): Promise<void> {
  await db.query({ ...RELEASE_CLAIM, values: [orderId, paymentId] });
}

async function heldBy(db: Queryable, orderId: string): Promise<ClaimResult> {
  const holder = await findOrder(db, orderId);
  if (!holder?.grantedPaymentId) throw new Error(`order ${orderId} could not be claimed and has no holder`);
  return { claimed: false, grantedPaymentId: holder.grantedPaymentId };
}
