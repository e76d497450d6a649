import type { NpEvent, NpFacts } from '../machines/payment.events.js';
import { parseIpn, paymentIdOf, type Ipn } from '../nowpayments/ipn.schema.js';

// One mapping from "what NowPayments told us" to a machine event, used by the IPN endpoint and by
// reconciliation alike, so a payment healed by reconciliation is indistinguishable from one whose IPN
// arrived (only the journal's source differs).

export type IpnMapping =
  | { ok: true; paymentId: string; event: NpEvent }
  | { ok: false; problem: string; /** The payment id when it could be read, so the parked row is findable. */ paymentId: string | null };

export function ipnToEvent(ipn: Ipn): { paymentId: string; event: NpEvent } {
  const facts: NpFacts = {
    orderId: ipn.order_id ?? null,
    invoiceId: ipn.invoice_id ?? null,
    parentPaymentId: ipn.parent_payment_id ?? null,
    payAmount: ipn.pay_amount ?? null,
    actuallyPaid: ipn.actually_paid ?? null,
    payCurrency: ipn.pay_currency ?? null,
    priceAmount: ipn.price_amount ?? null,
    priceCurrency: ipn.price_currency ?? null,
    outcomeAmount: ipn.outcome_amount ?? null,
    outcomeCurrency: ipn.outcome_currency ?? null,
    updatedAt: ipn.updated_at ?? null,
  };
  return { paymentId: ipn.payment_id, event: { type: `np.${ipn.payment_status}`, facts } as NpEvent };
}

/** Parses a verified body (or an API answer) defensively and maps it; never throws. */
export function mapIpnBody(body: unknown): IpnMapping {
  const parsed = parseIpn(body);
  if (!parsed.ok) return { ok: false, problem: parsed.error, paymentId: loosePaymentId(body) };
  return { ok: true, ...ipnToEvent(parsed.ipn) };
}

// Best effort for the parked row only: the id normalised as parseIpn would, else null.
function loosePaymentId(body: unknown): string | null {
  return paymentIdOf(body);
}
