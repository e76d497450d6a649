import { and, assign, setup } from 'xstate';
import { gt, gte } from '../domain/money.js';
import {
  NP_RANK,
  type EffectName,
  type NpEvent,
  type NpFacts,
  type NpStatus,
  type PaymentEvent,
  type Route,
} from './payment.events.js';

// The payment statechart. Pure: it decides, and names the work its decision implies as effect actions
// ("effect.invite", ...). The engine (src/persistence/apply-event.ts) turns those into pg-boss jobs in
// the same transaction that stores the new snapshot. No invoke/fromPromise here: a restored actor
// restarts invocations, which is exactly the duplicate side effect this service exists to prevent.

export type FailureReason = 'failed' | 'expired' | 'refunded' | 'cancelled';
export type PayoutStep = 'splitting' | 'split' | 'accumulating';

export interface PaymentContext {
  paymentId: string;
  orderId: string | null;
  np: NpFacts & { status: NpStatus | null; rank: number };
  failure: FailureReason | null;
  route: Route | null;
  access: { inviteLink: string | null; undeliverableReason: string | null };
  payout: {
    exchangeId: string | null;
    txHash: string | null;
    ledgerEntryId: string | null;
    batchId: string | null;
    reviewStep: PayoutStep | null;
  };
  /** Why a part of the payment waits for a person; an entry exists only while that part is parked. */
  reviews: { payment?: string; access?: string; payout?: string };
  /** Bumped when an operator retries a step, so the retried job gets a new deterministic id. */
  attempts: Record<EffectName, number>;
  /** Exception axis (paid late, refunded after delivery, accepted underpayment): never moves the main state. */
  exceptions: string[];
}

export interface PaymentInput {
  paymentId: string;
}

const statusOf = (event: NpEvent): NpStatus => event.type.slice(3) as NpStatus;

/** Facts as they stand if this NowPayments event is applied: known values are kept unless the event has new ones. */
function mergeFacts(context: PaymentContext, event: NpEvent): PaymentContext['np'] {
  const next: PaymentContext['np'] = { ...context.np, status: statusOf(event), rank: NP_RANK[statusOf(event)] };
  for (const [key, value] of Object.entries(event.facts) as [keyof NpFacts, string | null | undefined][]) {
    if (value !== undefined && value !== null) next[key] = value;
  }
  return next;
}

function paidEnough(np: NpFacts): boolean {
  return Boolean(np.actuallyPaid && np.payAmount && gte(np.actuallyPaid, np.payAmount));
}

function underpaidReason(np: NpFacts): string {
  if (!np.actuallyPaid || !np.payAmount) return 'NowPayments did not report how much was paid';
  return `paid ${np.actuallyPaid} of ${np.payAmount} ${np.payCurrency ?? ''}`.trim();
}

/** operator.reinvite inside the access region: back to inviting under a new invite attempt (a new job id). */
const REINVITE = {
  target: 'inviting',
  actions: ['forgetInvite', { type: 'bumpAttempt', params: { effect: 'invite' } }],
} as const;

const effect = (name: EffectName) => ({
  type: `effect.${name}` as const,
  params: ({ context }: { context: PaymentContext }) => ({ effect: name, attempt: context.attempts[name] }),
});

export const paymentMachine = setup({
  types: {
    context: {} as PaymentContext,
    events: {} as PaymentEvent,
    input: {} as PaymentInput,
  },
  actions: {
    // Effects: no-ops here on purpose. transition() returns them; the engine enqueues them.
    'effect.route': (_, _params: EffectParams) => {},
    'effect.invite': (_, _params: EffectParams) => {},
    'effect.split': (_, _params: EffectParams) => {},
    'effect.settle': (_, _params: EffectParams) => {},
    'effect.accumulate': (_, _params: EffectParams) => {},

    recordNp: assign(({ context, event }) => {
      const np = mergeFacts(context, event as NpEvent);
      return { np, orderId: context.orderId ?? np.orderId ?? null };
    }),
    parkUnderpaid: assign(({ context }) => ({ reviews: { ...context.reviews, payment: `underpaid: ${underpaidReason(context.np)}` } })),
    fail: assign((_, params: { reason: FailureReason }) => ({ failure: params.reason })),
    recordRefundAfterDelivery: assign(({ context }) => ({
      exceptions: [...context.exceptions, 'refunded after finished: access and payout were already under way'],
    })),
    acceptUnderpaid: assign(({ context, event }) => ({
      exceptions: [...context.exceptions, `underpayment accepted by ${'by' in event ? event.by : 'operator'}${'by' in event && event.reason ? ` (${event.reason})` : ''}`],
    })),
    clearPaymentReview: assign(({ context }) => ({ reviews: { ...context.reviews, payment: undefined } })),
    parkPayment: assign(({ context, event }) => ({
      reviews: { ...context.reviews, payment: reasonOf(event) },
    })),
    recordRoute: assign(({ event }) => ({ route: event.type === 'route.done' ? event.route : null })),

    recordInviteSent: assign(({ context, event }) => ({
      access: { ...context.access, inviteLink: event.type === 'invite.sent' ? event.inviteLink : context.access.inviteLink },
    })),
    recordUndeliverable: assign(({ context, event }) =>
      event.type === 'invite.undeliverable'
        ? { access: { inviteLink: event.inviteLink, undeliverableReason: event.reason } }
        : { access: context.access },
    ),
    parkAccess: assign(({ context, event }) => ({ reviews: { ...context.reviews, access: reasonOf(event) } })),
    // A re-issued invite starts from nothing: the old link (used by a stranger, revoked, or never delivered) is not shown again.
    forgetInvite: assign(() => ({ access: { inviteLink: null, undeliverableReason: null } })),
    clearAccessReview: assign(({ context }) => ({ reviews: { ...context.reviews, access: undefined } })),

    recordSplit: assign(({ context, event }) =>
      event.type === 'split.done' ? { payout: { ...context.payout, exchangeId: event.exchangeId, txHash: event.txHash } } : {},
    ),
    recordSettled: assign(({ context, event }) =>
      event.type === 'payout.settled' ? { payout: { ...context.payout, txHash: event.txHash ?? context.payout.txHash } } : {},
    ),
    recordAccumulated: assign(({ context, event }) =>
      event.type === 'accumulate.done' ? { payout: { ...context.payout, ledgerEntryId: event.ledgerEntryId } } : {},
    ),
    recordBatch: assign(({ context, event }) =>
      event.type === 'batch.paid' ? { payout: { ...context.payout, batchId: event.batchId } } : {},
    ),
    parkPayout: assign(({ context, event }, params: { step: PayoutStep }) => ({
      reviews: { ...context.reviews, payout: reasonOf(event) },
      payout: { ...context.payout, reviewStep: params.step },
    })),
    clearPayoutReview: assign(({ context }) => ({
      reviews: { ...context.reviews, payout: undefined },
      payout: { ...context.payout, reviewStep: null },
    })),
    bumpAttempt: assign(({ context }, params: { effect: EffectName }) => ({
      attempts: { ...context.attempts, [params.effect]: context.attempts[params.effect] + 1 },
    })),
  },
  guards: {
    advances: ({ context, event }) => NP_RANK[statusOf(event as NpEvent)] > context.np.rank,
    paidEnough: ({ context, event }) => paidEnough(mergeFacts(context, event as NpEvent)),
    paidMore: ({ context, event }) => {
      const paid = (event as NpEvent).facts.actuallyPaid;
      return Boolean(paid && (!context.np.actuallyPaid || gt(paid, context.np.actuallyPaid)));
    },
    // Money may still arrive after NowPayments gave up waiting; "refunded" means it went back.
    recoverableFailure: ({ context }) => context.failure === 'expired' || context.failure === 'failed',
    notRefunded: ({ context }) => context.failure !== 'refunded',
    refundNotRecorded: ({ context }) => !context.exceptions.some((e) => e.startsWith('refunded after finished')),
    isInstant: ({ context }) => context.route?.strategy === 'instant',
    exhausted: ({ event }, params: { effect: EffectName }) => event.type === 'effect.exhausted' && event.effect === params.effect,
    reviewStepIs: ({ context }, params: { step: PayoutStep }) => context.payout.reviewStep === params.step,
  },
}).createMachine({
  id: 'payment',
  context: ({ input }) => ({
    paymentId: input.paymentId,
    orderId: null,
    np: { status: null, rank: 0 },
    failure: null,
    route: null,
    access: { inviteLink: null, undeliverableReason: null },
    payout: { exchangeId: null, txHash: null, ledgerEntryId: null, batchId: null, reviewStep: null },
    reviews: {},
    attempts: { route: 0, invite: 0, split: 0, settle: 0, accumulate: 0 },
    exceptions: [],
  }),
  initial: 'received',
  // A refund reported after goods were under way is recorded for operators; it never rewinds the payment.
  on: {
    'np.refunded': { guard: 'refundNotRecorded', actions: 'recordRefundAfterDelivery' },
  },
  states: {
    received: {
      on: {
        'np.waiting': { guard: 'advances', actions: 'recordNp' },
        'np.confirming': { guard: 'advances', actions: 'recordNp' },
        'np.confirmed': { guard: 'advances', actions: 'recordNp' },
        'np.sending': { guard: 'advances', actions: 'recordNp' },
        'np.partially_paid': { target: 'underpaid', actions: 'recordNp' },
        'np.finished': [
          { guard: 'paidEnough', target: 'confirmed', actions: 'recordNp' },
          { target: 'underpaid', actions: 'recordNp' },
        ],
        'np.failed': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'failed' } }] },
        'np.expired': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'expired' } }] },
        'np.refunded': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'refunded' } }] },
      },
    },
    underpaid: {
      entry: 'parkUnderpaid',
      exit: 'clearPaymentReview',
      on: {
        'np.partially_paid': { guard: 'paidMore', actions: ['recordNp', 'parkUnderpaid'] },
        'np.finished': [
          { guard: 'paidEnough', target: 'confirmed', actions: 'recordNp' },
          { guard: 'paidMore', actions: ['recordNp', 'parkUnderpaid'] },
        ],
        'np.failed': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'failed' } }] },
        'np.expired': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'expired' } }] },
        'np.refunded': { target: 'failed', actions: ['recordNp', { type: 'fail', params: { reason: 'refunded' } }] },
        'operator.accept_underpaid': { target: 'confirmed', actions: 'acceptUnderpaid' },
        'operator.cancel': { target: 'failed', actions: { type: 'fail', params: { reason: 'cancelled' } } },
      },
    },
    // Not final: NowPayments may still report funds after it marked the payment expired or failed.
    failed: {
      on: {
        'np.finished': { guard: and(['recoverableFailure', 'paidEnough']), target: 'confirmed', actions: 'recordNp' },
        'np.refunded': { guard: 'notRefunded', actions: ['recordNp', { type: 'fail', params: { reason: 'refunded' } }] },
      },
    },
    confirmed: {
      entry: effect('route'),
      on: {
        'route.done': { target: 'routed', actions: 'recordRoute' },
        'route.rejected': { target: 'needs_review', actions: 'parkPayment' },
        'effect.exhausted': { guard: { type: 'exhausted', params: { effect: 'route' } }, target: 'needs_review', actions: 'parkPayment' },
      },
    },
    needs_review: {
      exit: 'clearPaymentReview',
      on: {
        'operator.retry': { target: 'confirmed', actions: { type: 'bumpAttempt', params: { effect: 'route' } } },
        'operator.cancel': { target: 'failed', actions: { type: 'fail', params: { reason: 'cancelled' } } },
      },
    },
    // Access and payout are independent regions: a Telegram outage never holds a payout, a swap outage never holds an invite.
    routed: {
      type: 'parallel',
      onDone: 'paid',
      states: {
        access: {
          initial: 'inviting',
          states: {
            inviting: {
              entry: effect('invite'),
              on: {
                'invite.sent': { target: 'invited', actions: 'recordInviteSent' },
                'invite.undeliverable': { target: 'undeliverable', actions: 'recordUndeliverable' },
                'invite.failed': { target: 'review', actions: 'parkAccess' },
                'effect.exhausted': { guard: { type: 'exhausted', params: { effect: 'invite' } }, target: 'review', actions: 'parkAccess' },
              },
            },
            // Final for the payment's progress, but an operator may still re-issue the invite (operator.reinvite).
            invited: { type: 'final', on: { 'operator.reinvite': REINVITE } },
            // The link exists but the bot could not DM it (buyer blocked the bot): the success page shows it.
            undeliverable: { type: 'final', on: { 'operator.reinvite': REINVITE } },
            review: {
              exit: 'clearAccessReview',
              on: {
                'operator.retry': { target: 'inviting', actions: { type: 'bumpAttempt', params: { effect: 'invite' } } },
                'operator.reinvite': REINVITE,
              },
            },
          },
        },
        payout: {
          initial: 'deciding',
          states: {
            deciding: { always: [{ guard: 'isInstant', target: 'splitting' }, { target: 'accumulating' }] },
            splitting: {
              entry: effect('split'),
              on: {
                'split.done': { target: 'split', actions: 'recordSplit' },
                'payout.failed': { target: 'review', actions: { type: 'parkPayout', params: { step: 'splitting' } } },
                'effect.exhausted': {
                  guard: { type: 'exhausted', params: { effect: 'split' } },
                  target: 'review',
                  actions: { type: 'parkPayout', params: { step: 'splitting' } },
                },
              },
            },
            split: {
              entry: effect('settle'),
              on: {
                'payout.settled': { target: 'done', actions: 'recordSettled' },
                'payout.failed': { target: 'review', actions: { type: 'parkPayout', params: { step: 'split' } } },
                'effect.exhausted': {
                  guard: { type: 'exhausted', params: { effect: 'settle' } },
                  target: 'review',
                  actions: { type: 'parkPayout', params: { step: 'split' } },
                },
              },
            },
            accumulating: {
              entry: effect('accumulate'),
              on: {
                'accumulate.done': { target: 'accumulated', actions: 'recordAccumulated' },
                'payout.failed': { target: 'review', actions: { type: 'parkPayout', params: { step: 'accumulating' } } },
                'effect.exhausted': {
                  guard: { type: 'exhausted', params: { effect: 'accumulate' } },
                  target: 'review',
                  actions: { type: 'parkPayout', params: { step: 'accumulating' } },
                },
              },
            },
            // The owner's share sits in the ledger until the channel's threshold is reached and a batch pays it.
            accumulated: { on: { 'batch.paid': { target: 'done', actions: 'recordBatch' } } },
            review: {
              exit: 'clearPayoutReview',
              on: {
                'operator.retry': [
                  { guard: { type: 'reviewStepIs', params: { step: 'splitting' } }, target: 'splitting', actions: { type: 'bumpAttempt', params: { effect: 'split' } } },
                  { guard: { type: 'reviewStepIs', params: { step: 'split' } }, target: 'split', actions: { type: 'bumpAttempt', params: { effect: 'settle' } } },
                  { target: 'accumulating', actions: { type: 'bumpAttempt', params: { effect: 'accumulate' } } },
                ],
              },
            },
            done: { type: 'final' },
          },
        },
      },
    },
    // Not a final state, so a refund reported after delivery can still be recorded on the exception axis.
    // A re-issued invite reopens the access region only: the payout stays done and nothing of it runs again.
    paid: {
      on: {
        'operator.reinvite': {
          target: ['#payment.routed.access.inviting', '#payment.routed.payout.done'],
          actions: ['forgetInvite', { type: 'bumpAttempt', params: { effect: 'invite' } }],
        },
      },
    },
  },
});

export interface EffectParams {
  effect: EffectName;
  attempt: number;
}

function reasonOf(event: PaymentEvent): string {
  if ('reason' in event && typeof event.reason === 'string') return event.reason;
  if (event.type === 'effect.exhausted') return `${event.effect} gave up after its retries: ${event.error}`;
  return event.type;
}
