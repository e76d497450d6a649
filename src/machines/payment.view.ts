import type { SnapshotFrom } from 'xstate';
import type { NpStatus, Route } from './payment.events.js';
import type { FailureReason, PaymentContext, paymentMachine } from './payment.machine.js';

// The one read model of a payment. The persisted XState snapshot is the machine's private business;
// everything anyone else reads about a payment (the buyer's page, operators, reconciliation, the
// actors, the ledger check) is derived here, purely, and written by applyEvent beside the snapshot in
// the same statement (payments.view, plus the indexed columns state, step, rank, np_status).

/** One word for the payment's progress (payments.state, indexed): "everything in needs_review". */
export const SUMMARY_STATES = ['received', 'underpaid', 'failed', 'confirmed', 'needs_review', 'routed', 'invited', 'split', 'accumulated', 'paid'] as const;
export type SummaryState = (typeof SUMMARY_STATES)[number];

/** Where the buyer is, as the success page words it. */
export const BUYER_STEPS = ['waiting_for_payment', 'confirming', 'confirmed', 'invite_sent', 'done', 'underpaid', 'failed', 'needs_review'] as const;
export type BuyerStep = (typeof BUYER_STEPS)[number];

export interface PaymentView {
  state: SummaryState;
  step: BuyerStep;
  /** How far the payment got, for "the order's most advanced payment" (higher is further). */
  rank: number;
  /** Why a person is needed ("access: ...; payout: ..."), or null. */
  reviewReason: string | null;
  orderId: string | null;
  failure: FailureReason | null;
  np: {
    status: NpStatus | null;
    parentPaymentId: string | null;
    payAmount: string | null;
    actuallyPaid: string | null;
    payCurrency: string | null;
    priceAmount: string | null;
    priceCurrency: string | null;
    outcomeAmount: string | null;
    outcomeCurrency: string | null;
  };
  route: Route | null;
  access: { state: string | null; inviteLink: string | null; undeliverableReason: string | null };
  payout: PaymentContext['payout'] & { state: string | null };
  exceptions: string[];
}

type Snapshot = SnapshotFrom<typeof paymentMachine>;

export function reviewReasonOf(context: PaymentContext): string | null {
  const reasons = Object.entries(context.reviews)
    .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
    .map(([part, reason]) => `${part}: ${reason}`);
  return reasons.length ? reasons.join('; ') : null;
}

function regionsOf(snapshot: Snapshot): { access: string | null; payout: string | null } {
  const value = snapshot.value;
  if (typeof value === 'string') return { access: null, payout: null };
  return { access: value.routed.access, payout: value.routed.payout };
}

function summaryOf(snapshot: Snapshot): SummaryState {
  const value = snapshot.value;
  if (typeof value === 'string') return value as SummaryState;
  // routed: two regions; a parked region makes the whole payment need review.
  const { access, payout } = value.routed;
  if (access === 'review' || payout === 'review') return 'needs_review';
  if (payout === 'done') return snapshot.context.route?.strategy === 'threshold' ? 'accumulated' : 'split';
  if (payout === 'split') return 'split';
  if (payout === 'accumulated') return 'accumulated';
  if (access === 'invited' || access === 'undeliverable') return 'invited';
  return 'routed';
}

const CONFIRMING = new Set<NpStatus | null>(['confirming', 'confirmed', 'sending']);

// "done" is access granted (invited, or the link exists but the bot could not DM it and the page shows
// it): the buyer does not wait for the owner's payout. "invite_sent" is the step in which the invite is
// being created and sent.
function stepOf(snapshot: Snapshot): BuyerStep {
  const value = snapshot.value;
  if (typeof value === 'string') {
    switch (value) {
      case 'received':
        return CONFIRMING.has(snapshot.context.np.status) ? 'confirming' : 'waiting_for_payment';
      case 'underpaid':
      case 'failed':
      case 'confirmed':
      case 'needs_review':
        return value;
      case 'paid':
        return 'done';
      default:
        return 'needs_review';
    }
  }
  const { access } = value.routed;
  if (access === 'invited' || access === 'undeliverable') return 'done';
  if (access === 'review') return 'needs_review';
  return 'invite_sent';
}

const RANK: Record<SummaryState, number> = {
  paid: 9,
  accumulated: 8,
  split: 8,
  invited: 8,
  routed: 7,
  needs_review: 6,
  confirmed: 5,
  underpaid: 4,
  received: 3,
  failed: 1,
};

export function viewOf(snapshot: Snapshot): PaymentView {
  const { context } = snapshot;
  const state = summaryOf(snapshot);
  const regions = regionsOf(snapshot);
  const np = context.np;
  return {
    state,
    step: stepOf(snapshot),
    rank: RANK[state],
    reviewReason: reviewReasonOf(context),
    orderId: context.orderId ?? np.orderId ?? null,
    failure: context.failure,
    np: {
      status: np.status,
      parentPaymentId: np.parentPaymentId ?? null,
      payAmount: np.payAmount ?? null,
      actuallyPaid: np.actuallyPaid ?? null,
      payCurrency: np.payCurrency ?? null,
      priceAmount: np.priceAmount ?? null,
      priceCurrency: np.priceCurrency ?? null,
      outcomeAmount: np.outcomeAmount ?? null,
      outcomeCurrency: np.outcomeCurrency ?? null,
    },
    route: context.route,
    access: { state: regions.access, inviteLink: context.access.inviteLink, undeliverableReason: context.access.undeliverableReason },
    payout: { ...context.payout, state: regions.payout },
    exceptions: context.exceptions,
  };
}
