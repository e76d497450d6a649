import { OPERATOR_EVENTS, type OperatorEventType } from '../machines/payment.events.js';
import { restore } from '../machines/payment.step.js';
import type { PaymentView } from '../machines/payment.view.js';

/** The parallel regions of a routed payment (null before routing and once paid). */
export interface Regions {
  access: string | null;
  payout: string | null;
}

export const regionsOf = (view: PaymentView | null): Regions => ({ access: view?.access.state ?? null, payout: view?.payout.state ?? null });

// What an operator may do to a payment, and what it waits for. Both are derived, never stored: the
// actions from the pure statechart (snapshot.can on the restored snapshot, guards included, so the list
// can never offer what POST /admin/payments/:id/events would refuse), the wait from the read model.

export interface OperatorAction {
  /** The event to POST to /admin/payments/:id/events (with by and reason). */
  type: OperatorEventType;
  label: string;
}

/** Which operator events the payment's current state takes, in a fixed order. */
export function allowedEvents(snapshot: unknown): OperatorEventType[] {
  if (!snapshot) return [];
  const current = restore(snapshot);
  return OPERATOR_EVENTS.filter((type) => current.can({ type, by: 'operator', reason: 'checking what the state allows' }));
}

/** Allowed events with a label that says what they do for this payment. */
export function allowedActions(snapshot: unknown, regions: Regions): OperatorAction[] {
  return allowedEvents(snapshot).map((type) => ({ type, label: labelOf(type, regions) }));
}

function labelOf(type: OperatorEventType, regions: Regions): string {
  switch (type) {
    case 'operator.retry': {
      const parked = [regions.access === 'review' && 'invite', regions.payout === 'review' && 'payout'].filter(Boolean);
      if (parked.length === 2) return 'Retry invite and payout';
      if (parked[0] === 'invite') return 'Retry invite';
      if (parked[0] === 'payout') return 'Resume payout';
      return 'Retry routing';
    }
    case 'operator.reinvite':
      return 'Re-issue invite';
    case 'operator.accept_underpaid':
      return 'Accept underpayment';
    case 'operator.cancel':
      return 'Cancel payment';
  }
}

export interface WaitingFor {
  /** Short and stable, for counting ("review:access", "settle", "nowpayments"). */
  key: string;
  text: string;
}

const PAYOUT_WAIT: Record<string, WaitingFor> = {
  deciding: { key: 'route', text: 'the payout to be planned' },
  splitting: { key: 'split', text: 'the split job (exchange and host-wallet transaction)' },
  split: { key: 'settle', text: 'the payout transaction and exchange to settle' },
  accumulating: { key: 'accumulate', text: 'the accumulate job (ledger credit)' },
  accumulated: { key: 'batch', text: "the channel's threshold batch" },
};

/** What the payment is waiting for, from the read model (one-word state and the regions). */
export function waitingFor(state: string, regions: Regions): WaitingFor {
  switch (state) {
    case 'received':
      return { key: 'nowpayments', text: 'the buyer to pay (NowPayments status)' };
    case 'underpaid':
      return { key: 'underpaid', text: 'more money, or an operator to accept or cancel the underpayment' };
    case 'confirmed':
      return { key: 'route', text: 'the route job' };
    case 'needs_review': {
      // Routed: the access or payout region parked; before routing: the payment itself (route rejected or exhausted).
      const parts = [regions.access === 'review' && 'access', regions.payout === 'review' && 'payout'].filter((p): p is string => typeof p === 'string');
      const which = parts.length ? parts : ['payment'];
      return { key: `review:${which.join('+')}`, text: `an operator (${which.join(' and ')} parked for review)` };
    }
    case 'paid':
    case 'failed':
      return { key: 'nothing', text: 'nothing' };
    default: {
      const waits: WaitingFor[] = [];
      if (regions.access === 'inviting') waits.push({ key: 'invite', text: 'the invite job (Telegram)' });
      const payout = regions.payout ? PAYOUT_WAIT[regions.payout] : undefined;
      if (payout) waits.push(payout);
      if (!waits.length) return { key: 'route', text: 'the next step' };
      return { key: waits.map((w) => w.key).join('+'), text: waits.map((w) => w.text).join(' and ') };
    }
  }
}

/** Where the other operator pages show this payment (served by the inspector routes). */
export function linksOf(paymentId: string) {
  const id = encodeURIComponent(paymentId);
  return { detail: `/admin/payments/${id}`, inspect: `/admin/payments/${id}/inspect`, statechart: `/admin/payments/${id}/statechart` };
}
