import type pg from 'pg';
import { BUYER_STEPS, type BuyerStep, type PaymentView } from '../machines/payment.view.js';
import { verifyStatusToken } from '../orders/status-token.js';

// What the buyer's success page shows. A pure read: one SELECT over orders and payments, nothing
// written, nothing enqueued. The replaced system re-ran processing from its status poll and sent nine
// invites for one payment; here only verified IPNs and reconciliation produce events.

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
  invite: { url: string } | null;
  invite_undeliverable: boolean;
}

interface Row {
  order_created_at: Date | null;
  payment_id: string | null;
  state: string | null;
  view: PaymentView | null;
  updated_at: Date | null;
  state_entered_at: Date | null;
}

// The order's payment that matters to the buyer: the one that was granted access, else the most
// advanced (a repeat deposit parked for review must not hide the first payment's invite), else the latest.
const QUERY = `
  SELECT o.created_at AS order_created_at, p.payment_id, p.state, p.view, p.updated_at, p.state_entered_at
    FROM (SELECT $1::text AS order_id) q
    LEFT JOIN orders o ON o.order_id = q.order_id
    LEFT JOIN LATERAL (
      SELECT * FROM payments p
       WHERE p.order_id = q.order_id
       ORDER BY (p.payment_id = o.granted_payment_id) DESC NULLS LAST,
                p.rank DESC NULLS LAST,
                p.updated_at DESC
       LIMIT 1) p ON true`;

export interface StatusQuery {
  orderId: string;
  token?: string | undefined;
}

/** null when neither an order nor a payment is known under this id. */
export async function readPaymentStatus(pool: pg.Pool, statusTokenSecret: string, query: StatusQuery): Promise<PaymentStatusView | null> {
  const row = (await pool.query<Row>(QUERY, [query.orderId])).rows[0];
  if (!row || (row.order_created_at === null && row.payment_id === null)) return null;
  const authorised = verifyStatusToken(statusTokenSecret, query.orderId, query.token);
  const step: Step = row.view?.step ?? 'waiting_for_payment';
  const access = row.view?.access;
  const hasLink = step === 'done' && typeof access?.inviteLink === 'string' && access.inviteLink.length > 0;
  const undeliverable = step === 'done' && Boolean(access?.undeliverableReason);
  const since = (row.state_entered_at ?? row.order_created_at ?? new Date(0)).toISOString();
  return {
    order_id: query.orderId,
    state: row.state,
    step,
    description: describe(step, row.view, { authorised, undeliverable }),
    final: step === 'done' || step === 'failed',
    updated_at: (row.updated_at ?? row.order_created_at ?? new Date(0)).toISOString(),
    state_entered_at: since,
    invite: hasLink && authorised ? { url: access!.inviteLink! } : null,
    invite_undeliverable: undeliverable,
  };
}

const SUPPORT = 'contact support and quote your order id';

function describe(step: Step, context: PaymentView | null, o: { authorised: boolean; undeliverable: boolean }): string {
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
      const np = context?.np;
      const amounts = o.authorised && np?.actuallyPaid && np.payAmount ? ` (received ${np.actuallyPaid} of ${np.payAmount} ${np.payCurrency ?? ''})`.replace(' )', ')') : '';
      return `We received less than the price${amounts}, so access is on hold. Nothing is lost: ${SUPPORT} to pay the difference or get a refund.`;
    }
    case 'failed':
      switch (context?.failure) {
        case 'expired':
          return `The payment window expired before a payment arrived. If you did send money, ${SUPPORT}; otherwise start a new order.`;
        case 'refunded':
          return `This payment was refunded to you. To get access, start a new order; with questions, ${SUPPORT}.`;
        case 'cancelled':
          return `This payment was cancelled by support. If you did not expect that, ${SUPPORT}.`;
        default:
          return `The payment provider reported that this payment failed. If money left your wallet, ${SUPPORT}; otherwise start a new order.`;
      }
    case 'needs_review':
      return `Your payment arrived, but something needs a person to check it. Nothing is lost: we will sort it out; you can ${SUPPORT}.`;
  }
}
