import type { SnapshotFrom } from 'xstate';
import type { PaymentContext, paymentMachine } from './payment.machine.js';

// One word for the payment's progress, stored in payments.state (indexed) so operators can query
// "everything in needs_review" or "everything stuck in confirmed" without reading snapshots.
export const SUMMARY_STATES = [
  'received',
  'underpaid',
  'failed',
  'confirmed',
  'needs_review',
  'routed',
  'invited',
  'split',
  'accumulated',
  'paid',
] as const;
export type SummaryState = (typeof SUMMARY_STATES)[number];

export interface PaymentSummary {
  state: SummaryState;
  /** Why a person is needed, or null. */
  reviewReason: string | null;
}

type Snapshot = SnapshotFrom<typeof paymentMachine>;

export function reviewReasonOf(context: PaymentContext): string | null {
  const reasons = Object.entries(context.reviews)
    .filter((entry): entry is [string, string] => typeof entry[1] === 'string')
    .map(([part, reason]) => `${part}: ${reason}`);
  return reasons.length ? reasons.join('; ') : null;
}

export function summarize(snapshot: Snapshot): PaymentSummary {
  const reviewReason = reviewReasonOf(snapshot.context);
  const value = snapshot.value;
  if (typeof value === 'string') {
    return { state: value as SummaryState, reviewReason };
  }
  // routed: two regions; a parked region makes the whole payment need review.
  const { access, payout } = value.routed;
  if (access === 'review' || payout === 'review') return { state: 'needs_review', reviewReason };
  if (payout === 'done') return { state: snapshot.context.route?.strategy === 'threshold' ? 'accumulated' : 'split', reviewReason };
  if (payout === 'split') return { state: 'split', reviewReason };
  if (payout === 'accumulated') return { state: 'accumulated', reviewReason };
  if (access === 'invited' || access === 'undeliverable') return { state: 'invited', reviewReason };
  return { state: 'routed', reviewReason };
}
