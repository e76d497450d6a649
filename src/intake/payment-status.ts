import { Decimal } from 'decimal.js';
import type pg from 'pg';
import type { FailureReason } from '../machines/payment.machine.js';
import { BUYER_STEPS, type BuyerStep, type PaymentView } from '../machines/payment.view.js';
import type { JournalWatch } from '../operator/journal-feed.js';
import { verifyStatusToken } from '../orders/status-token.js';
import { createStatusCache, type StatusCache } from './status-cache.js';

// What the buyer's success page shows. A pure read: one SELECT over the order, its channel and plan,
// its payment, its subscription grant and its invite; nothing written, nothing enqueued. The replaced
// system re-ran processing from its status poll and sent nine invites for one payment; here only
// verified IPNs and reconciliation produce events.
//
// The API reads through createPaymentStatusReader: the same SELECT, with its answers kept in memory
// until a journal notification says the order's payment moved (the page polls every few seconds; most
// polls ask about a payment that did not move). The token is checked on every read all the same.
//
// Facts only the buyer should see (amounts, the access end, the invoice and the invite link) are
// answered only with the order's signed status token. The plain-words description comes from a
// DescribeStatus in the buyer's language (the HTTP layer holds the dictionaries); English by default.

export const STEPS = BUYER_STEPS;
export type Step = BuyerStep;

export interface PaymentStatusView {
  order_id: string;
  /** The payment's one-word machine state (payments.state), null while no payment exists yet. */
  state: string | null;
  step: Step;
  description: string;
  /** The page stops polling: access granted (done) or the payment failed. */
  final: boolean;
  updated_at: string;
  state_entered_at: string;
  /** What was ordered (null for a payment no order is known for). */
  order: { channel_title: string | null; plan_title: string | null; duration_days: number | null; price_usd: string } | null;
  /** What arrived in the currency the buyer paid in, and what is missing (token only; null before anything arrived). */
  paid: { amount: string; currency: string; expected: string | null; missing: string | null } | null;
  /** When the channel access this order granted ends (token only). */
  access_ends_at: string | null;
  /** The invoice to pay (the rest of an underpayment goes to the same address; token only). */
  invoice_url: string | null;
  /** Why a failed payment failed. */
  failure: FailureReason | null;
  /** The single-use invite link and until when it can be used (token only). */
  invite: { url: string; expires_at: string | null; single_use: true } | null;
  invite_undeliverable: boolean;
}

/** What a description may mention. Amounts only with the token. */
export interface StatusFacts {
  authorised: boolean;
  undeliverable: boolean;
  failure: FailureReason | null;
  received: { paid: string; expected: string; missing: string | null; currency: string } | null;
}

/** The plain-words description of a step, in one language. */
export type DescribeStatus = (step: Step, facts: StatusFacts) => string;

interface Row {
  order_created_at: Date | null;
  price_usd: string | null;
  invoice_url: string | null;
  channel_title: string | null;
  plan_title: string | null;
  duration_days: number | null;
  access_ends_at: Date | null;
  invite_expires_at: Date | null;
  payment_id: string | null;
  state: string | null;
  view: PaymentView | null;
  updated_at: Date | null;
  state_entered_at: Date | null;
}

// The order's payment that matters to the buyer: the one that was granted access, else the most
// advanced (a repeat deposit parked for review must not hide the first payment's invite), else the latest.
// Every join is on a primary key (the plan by its channel and id), the payments by payments_order_idx.
//
// A named statement: node-postgres parses it once per pooled connection and from then on sends only
// Bind/Execute, so Postgres plans it once per connection too (after five custom plans its generic
// plan, the same index lookups) instead of parsing and planning six joins on every poll (measured:
// planning was most of the database's time per poll). A new text needs a new name: node-postgres
// refuses a name it already prepared for another text on that connection.
export const STATUS_STATEMENT = 'payment-status/1';
const QUERY = `
  SELECT o.created_at AS order_created_at, o.price_usd::text AS price_usd, o.invoice_url,
         c.title AS channel_title, pl.title AS plan_title, pl.duration_days,
         g.expires_at AS access_ends_at, i.expire_date AS invite_expires_at,
         p.payment_id, p.state, p.view, p.updated_at, p.state_entered_at
    FROM (SELECT $1::text AS order_id) q
    LEFT JOIN orders o ON o.order_id = q.order_id
    LEFT JOIN channels c ON c.open_channel_id = o.open_channel_id
    LEFT JOIN plans pl ON pl.open_channel_id = o.open_channel_id AND pl.plan_id = o.plan_id
    LEFT JOIN subscription_grants g ON g.order_id = o.order_id
    LEFT JOIN invites i ON i.order_id = o.order_id
    LEFT JOIN LATERAL (
      SELECT p.payment_id, p.state, p.view, p.updated_at, p.state_entered_at FROM payments p
       WHERE p.order_id = q.order_id
       ORDER BY (p.payment_id = o.granted_payment_id) DESC NULLS LAST,
                p.rank DESC NULLS LAST,
                p.updated_at DESC
       LIMIT 1) p ON true`;

export interface StatusQuery {
  orderId: string;
  token?: string | undefined;
}

const isAmount = (v: string | null | undefined): v is string => typeof v === 'string' && /^\d+(\.\d+)?$/.test(v) && !new Decimal(v).isZero();

/** What arrived against what was asked, in the pay currency; null before anything arrived. */
function receivedOf(view: PaymentView | null): StatusFacts['received'] {
  const np = view?.np;
  if (!np || !isAmount(np.actuallyPaid) || !np.payCurrency) return null;
  const paid = new Decimal(np.actuallyPaid);
  const expected = isAmount(np.payAmount) ? new Decimal(np.payAmount) : null;
  const missing = expected?.gt(paid) ? expected.minus(paid).toFixed() : null;
  return { paid: paid.toFixed(), expected: expected ? expected.toFixed() : '', missing, currency: np.payCurrency };
}

/** The one named SELECT; null when neither an order nor a payment is known under this id. */
async function selectStatusRow(pool: pg.Pool, orderId: string): Promise<Row | null> {
  const row = (await pool.query<Row>({ name: STATUS_STATEMENT, text: QUERY, values: [orderId] })).rows[0];
  return !row || (row.order_created_at === null && row.payment_id === null) ? null : row;
}

function viewOf(row: Row, orderId: string, authorised: boolean, describe: DescribeStatus): PaymentStatusView {
  const step: Step = row.view?.step ?? 'waiting_for_payment';
  const access = row.view?.access;
  const hasLink = step === 'done' && typeof access?.inviteLink === 'string' && access.inviteLink.length > 0;
  const undeliverable = step === 'done' && Boolean(access?.undeliverableReason);
  const since = (row.state_entered_at ?? row.order_created_at ?? new Date(0)).toISOString();
  // Amounts are shown only with the token: without it they are not even computed.
  const received = authorised ? receivedOf(row.view) : null;
  const failure = step === 'failed' ? (row.view?.failure ?? 'failed') : null;
  return {
    order_id: orderId,
    state: row.state,
    step,
    description: describe(step, { authorised, undeliverable, failure, received: received?.expected ? received : null }),
    final: step === 'done' || step === 'failed',
    updated_at: (row.updated_at ?? row.order_created_at ?? new Date(0)).toISOString(),
    state_entered_at: since,
    order:
      row.price_usd === null
        ? null
        : { channel_title: row.channel_title, plan_title: row.plan_title, duration_days: row.duration_days, price_usd: new Decimal(row.price_usd).toFixed() },
    paid: received ? { amount: received.paid, currency: received.currency, expected: received.expected || null, missing: received.missing } : null,
    access_ends_at: authorised && row.access_ends_at ? row.access_ends_at.toISOString() : null,
    invoice_url: authorised ? row.invoice_url : null,
    failure,
    invite: hasLink && authorised ? { url: access!.inviteLink!, expires_at: row.invite_expires_at?.toISOString() ?? null, single_use: true } : null,
    invite_undeliverable: undeliverable,
  };
}

/** null when neither an order nor a payment is known under this id. */
export async function readPaymentStatus(
  pool: pg.Pool,
  statusTokenSecret: string,
  query: StatusQuery,
  describe: DescribeStatus = describeInEnglish,
): Promise<PaymentStatusView | null> {
  const row = await selectStatusRow(pool, query.orderId);
  if (!row) return null;
  return viewOf(row, query.orderId, verifyStatusToken(statusTokenSecret, query.orderId, query.token), describe);
}

// What may be answered from memory (src/intake/status-cache.ts) until a journal notification of one of
// the order's payments. A payment's row only changes with a journal row of it, so everything read from
// `payments` is covered. Of the rest, what can change without a journal row is never cached:
// - confirmed and invite_sent: the actors are at work on the order; they claim it (granted_payment_id,
//   which picks the payment shown), grant the subscription (access_ends_at) and create, extend or
//   replace the invite link (its expiry) in transactions of their own; the journal row that ends the
//   step (route.done, invite.sent, ...) comes after. These steps last seconds; their polls read through.
// - an order whose invoice is not stored yet (the invoice is created after the order row).
// - a payment with no read model yet (written before it existed: filled in by a start-up backfill).
// An unknown order (404) is never cached either: orders are created without a journal row.
// Channel and plan titles change only by an operator's edit, without a notification: the cache's short
// maximum age bounds how long an old title can be shown.
const STEPS_ACTORS_WRITE_IN = new Set<Step>(['confirmed', 'invite_sent']);

function cacheableStatus(row: Row): boolean {
  if (row.order_created_at !== null && row.invoice_url === null) return false;
  if (row.payment_id !== null && row.view === null) return false;
  return !STEPS_ACTORS_WRITE_IN.has(row.view?.step ?? 'waiting_for_payment');
}

/** An order's row as last read, with the answers made from it (per token verdict and language). */
interface KnownStatus {
  row: Row;
  views: Map<DescribeStatus, [anonymous: PaymentStatusView | undefined, authorised: PaymentStatusView | undefined]>;
}

function freeze<T extends object>(view: T): T {
  for (const value of Object.values(view)) if (value !== null && typeof value === 'object') Object.freeze(value);
  return Object.freeze(view);
}

export interface PaymentStatusReader {
  /** As readPaymentStatus: null when neither an order nor a payment is known under this id. */
  read(query: StatusQuery, describe?: DescribeStatus): Promise<PaymentStatusView | null>;
  /** Null when this process has no journal feed to keep a cache correct with. */
  readonly cache: StatusCache<KnownStatus> | null;
  close(): void;
}

const ORDERS_OF_PAYMENTS = {
  name: 'payment-status/orders-of-payments',
  text: 'SELECT payment_id, order_id FROM payments WHERE payment_id = ANY($1::text[]) AND order_id IS NOT NULL',
};

export interface PaymentStatusReaderDeps {
  pool: pg.Pool;
  statusTokenSecret: string;
  /** The process's journal feed; without one (or without its tap) every read is the SELECT. */
  journalFeed?: JournalWatch | null;
  maxEntries?: number;
  maxAgeMs?: number;
  onError?(error: unknown): void;
}

/**
 * The status read the API serves. With the journal feed, answers are cached in memory until a
 * notification says the order's payment moved (a hit reads nothing; a miss is the one SELECT); the token
 * is still checked on every read, and answers with amounts or the invite link are made only for a
 * verified token. Cached answers are frozen: the same object is handed to every poll of that order.
 */
export function createPaymentStatusReader(deps: PaymentStatusReaderDeps): PaymentStatusReader {
  const { pool, statusTokenSecret } = deps;
  const tap = deps.journalFeed?.tap?.bind(deps.journalFeed);
  const cache = tap
    ? createStatusCache<KnownStatus>({
        ordersOf: async (paymentIds) => {
          const { rows } = await pool.query<{ payment_id: string; order_id: string }>({ ...ORDERS_OF_PAYMENTS, values: [paymentIds] });
          return new Map(rows.map((r) => [r.payment_id, r.order_id]));
        },
        ...(deps.maxEntries !== undefined && { maxEntries: deps.maxEntries }),
        ...(deps.maxAgeMs !== undefined && { maxAgeMs: deps.maxAgeMs }),
        ...(deps.onError && { onError: deps.onError }),
      })
    : null;
  const untap = cache && tap ? tap(cache) : () => {};

  const load = async (orderId: string) => {
    const row = await selectStatusRow(pool, orderId);
    return row && { value: { row, views: new Map() } as KnownStatus, paymentId: row.payment_id, cacheable: cacheableStatus(row) };
  };

  return {
    cache,
    async read(query, describe = describeInEnglish) {
      if (!cache) return readPaymentStatus(pool, statusTokenSecret, query, describe);
      const known = await cache.read(query.orderId, () => load(query.orderId));
      if (!known) return null;
      // Every read checks its own token (a remembered valid one is a lookup; any other is hashed and
      // compared in constant time): the cached row is shared, the verdict never is.
      const authorised = verifyStatusToken(statusTokenSecret, query.orderId, query.token);
      let views = known.views.get(describe);
      if (!views) {
        if (known.views.size >= 16) known.views.clear(); // one per language; a caller's ad-hoc functions must not grow it
        known.views.set(describe, (views = [undefined, undefined]));
      }
      const i = authorised ? 1 : 0;
      return (views[i] ??= freeze(viewOf(known.row, query.orderId, authorised, describe)));
    },
    close: () => untap(),
  };
}

const SUPPORT = 'contact support and quote your order id';

export const describeInEnglish: DescribeStatus = (step, o) => {
  switch (step) {
    case 'waiting_for_payment':
      return 'We are waiting for your payment. If you have just paid, it can take a few minutes to appear here; keep this page open.';
    case 'confirming':
      return 'Your payment has been seen on the blockchain and is being confirmed. This usually takes a few minutes; keep this page open.';
    case 'confirmed':
      return 'Your payment is confirmed. We are preparing your access to the channel.';
    case 'invite_sent':
      return 'Your payment is confirmed. Your personal invite link is being created and sent to you in Telegram.';
    case 'done':
      if (!o.authorised) return 'Done: access to the channel has been granted. Open this page from the link you got with your order to see your invite.';
      return o.undeliverable
        ? 'Done: your access is ready, but our bot could not message you in Telegram. Use the button below to join the channel.'
        : 'Done: the bot has sent you an invite link in Telegram. You can also use the button below to join the channel.';
    case 'underpaid': {
      const r = o.received;
      const amounts = r ? ` (received ${r.paid} of ${r.expected} ${r.currency}${r.missing ? `; ${r.missing} ${r.currency} missing` : ''})` : '';
      return `We received less than the price${amounts}, so access is on hold. Nothing is lost: send the missing amount to the same address from the payment page, or ${SUPPORT} to pay the difference or get a refund.`;
    }
    case 'failed':
      switch (o.failure) {
        case 'expired':
          return `The payment window expired before a payment arrived. If you did send money, ${SUPPORT}; otherwise start a new order in the bot.`;
        case 'refunded':
          return `This payment was refunded to you. To get access, start a new order in the bot; with questions, ${SUPPORT}.`;
        case 'cancelled':
          return `This payment was cancelled by support. If you did not expect that, ${SUPPORT}.`;
        default:
          return `The payment provider reported that this payment failed. If money left your wallet, ${SUPPORT}; otherwise start a new order in the bot.`;
      }
    case 'needs_review':
      return `Your payment arrived, but something needs a person to check it. Nothing is lost: we will sort it out; you can ${SUPPORT}.`;
  }
};
