import { describe, expect, it } from 'vitest';
import { NP_STATUSES, type NpEvent, type NpStatus, type PaymentEvent, type Route } from './payment.events.js';
import { initialSnapshot, persist, restore, step, type Effect, type PaymentSnapshot } from './payment.step.js';
import { viewOf } from './payment.view.js';

const paid = { payAmount: '0.05', actuallyPaid: '0.05', payCurrency: 'eth', priceAmount: '100', priceCurrency: 'usd', orderId: 'o-1' };
const np = (status: NpStatus, facts: NpEvent['facts'] = paid): PaymentEvent => ({ type: `np.${status}`, facts }) as PaymentEvent;
const route = (strategy: Route['strategy']): PaymentEvent => ({
  type: 'route.done',
  route: { orderId: 'o-1', channelId: '-100123', planId: 'p-1', buyerTelegramId: '42', strategy, ownerShareUsd: '90', feeUsd: '10' },
});

/** Runs events through the pure machine, keeping every effect it asked for. */
function run(events: PaymentEvent[], from: PaymentSnapshot = initialSnapshot('pay-1')) {
  let snapshot = from;
  const effects: Effect[] = [];
  const changes: boolean[] = [];
  for (const event of events) {
    const result = step(snapshot, event);
    snapshot = result.next;
    effects.push(...result.effects);
    changes.push(result.changed);
  }
  return { snapshot, effects, changes, summary: viewOf(snapshot) };
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  // Small deterministic PRNG (mulberry32) so a failing order can be reproduced from its seed.
  let t = seed;
  const random = () => {
    t = (t + 0x6d2b79f5) | 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe('each NowPayments status alone', () => {
  const expected: Record<NpStatus, string> = {
    waiting: 'received',
    confirming: 'received',
    confirmed: 'received',
    sending: 'received',
    partially_paid: 'underpaid',
    finished: 'confirmed',
    failed: 'failed',
    refunded: 'failed',
    expired: 'failed',
  };
  for (const status of NP_STATUSES) {
    it(`${status} leads to ${expected[status]}`, () => {
      const { snapshot, effects } = run([np(status)]);
      expect(snapshot.value).toBe(expected[status]);
      expect(snapshot.context.np.status).toBe(status);
      expect(effects).toEqual(status === 'finished' ? [{ effect: 'route', attempt: 0 }] : []);
    });
  }

  it('finished with less paid than asked parks as underpaid with the amounts in the reason', () => {
    const { snapshot, effects, summary } = run([np('finished', { ...paid, actuallyPaid: '0.0499' })]);
    expect(snapshot.value).toBe('underpaid');
    expect(effects).toEqual([]);
    expect(summary.reviewReason).toContain('paid 0.0499 of 0.05 eth');
  });

  it('finished without amounts is never taken as paid', () => {
    expect(run([np('finished', { orderId: 'o-1' })]).snapshot.value).toBe('underpaid');
  });
});

describe('sequences', () => {
  const happy: NpStatus[] = ['waiting', 'confirming', 'confirmed', 'sending', 'finished'];

  it('in order: reaches confirmed and asks to route exactly once', () => {
    const { snapshot, effects } = run(happy.map((s) => np(s)));
    expect(snapshot.value).toBe('confirmed');
    expect(effects).toEqual([{ effect: 'route', attempt: 0 }]);
  });

  it('shuffled: every order ends in the same state with one route effect', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const order = shuffled(happy, seed);
      const { snapshot, effects } = run(order.map((s) => np(s)));
      expect({ seed, value: snapshot.value }).toEqual({ seed, value: 'confirmed' });
      expect(effects).toHaveLength(1);
    }
  });

  it('repeated: every event delivered twice changes nothing the second time', () => {
    const events = [...happy.map((s) => np(s)), route('instant')];
    let snapshot = initialSnapshot('pay-1');
    for (const event of events) {
      snapshot = step(snapshot, event).next;
      const again = step(snapshot, event);
      expect(again.changed).toBe(false);
      expect(again.next).toBe(snapshot);
      expect(again.effects).toEqual([]);
    }
  });

  it('a stale status after finished never moves the payment backwards', () => {
    const done = run([np('finished')]).snapshot;
    for (const status of ['waiting', 'confirming', 'confirmed', 'sending', 'partially_paid', 'failed', 'expired'] as const) {
      const result = step(done, np(status));
      expect(result.changed, status).toBe(false);
      expect(result.next.value).toBe('confirmed');
    }
  });

  it('a stale status within received is ignored (confirming after sending)', () => {
    const { changes, snapshot } = run([np('sending'), np('confirming')]);
    expect(changes).toEqual([true, false]);
    expect(snapshot.context.np.status).toBe('sending');
  });

  it('all statuses shuffled after finished keep the payment confirmed (failure statuses only win before it)', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const rest = shuffled(NP_STATUSES.filter((s) => s !== 'finished' && s !== 'refunded'), seed);
      const { snapshot } = run([np('finished'), ...rest.map((s) => np(s))]);
      expect(snapshot.value).toBe('confirmed');
    }
  });
});

describe('lifecycle', () => {
  it('instant payout: route -> invite and split in parallel -> settle -> paid', () => {
    const a = run([np('finished'), route('instant')]);
    expect(a.snapshot.value).toEqual({ routed: { access: 'inviting', payout: 'splitting' } });
    expect(a.effects.map((e) => e.effect)).toEqual(['route', 'invite', 'split']);
    const b = run([{ type: 'invite.sent', inviteLink: 'https://t.me/+abc' }, { type: 'split.done', exchangeId: 'ex-1', txHash: '0x1' }], a.snapshot);
    expect(b.summary.state).toBe('split');
    expect(b.effects).toEqual([{ effect: 'settle', attempt: 0 }]);
    const c = run([{ type: 'payout.settled', txHash: '0x1' }], b.snapshot);
    expect(c.snapshot.value).toBe('paid');
    expect(c.snapshot.context.access.inviteLink).toBe('https://t.me/+abc');
  });

  it('threshold payout: accumulate -> accumulated -> batch paid -> paid', () => {
    const a = run([np('finished'), route('threshold'), { type: 'invite.sent', inviteLink: 'l' }]);
    expect(a.effects.map((e) => e.effect)).toEqual(['route', 'invite', 'accumulate']);
    const b = run([{ type: 'accumulate.done', ledgerEntryId: 'le-1' }], a.snapshot);
    expect(b.summary.state).toBe('accumulated');
    const c = run([{ type: 'batch.paid', batchId: 'b-1' }], b.snapshot);
    expect(c.snapshot.value).toBe('paid');
  });

  it('a Telegram outage does not hold the payout, and an operator retry re-invites with a new attempt', () => {
    const a = run([np('finished'), route('instant'), { type: 'effect.exhausted', effect: 'invite', error: 'Telegram 502' }]);
    expect(a.summary).toMatchObject({ state: 'needs_review', reviewReason: 'access: invite gave up after its retries: Telegram 502' });
    const b = run([{ type: 'split.done', exchangeId: 'e', txHash: 'h' }, { type: 'payout.settled' }], a.snapshot);
    expect(b.snapshot.value).toEqual({ routed: { access: 'review', payout: 'done' } });
    const c = run([{ type: 'operator.retry', by: 'ops' }], b.snapshot);
    expect(c.effects).toEqual([{ effect: 'invite', attempt: 1 }]);
    expect(c.summary.reviewReason).toBeNull();
    expect(run([{ type: 'invite.sent', inviteLink: 'l' }], c.snapshot).snapshot.value).toBe('paid');
  });

  it('a swap outage does not hold the invite', () => {
    const a = run([np('finished'), route('instant'), { type: 'payout.failed', reason: 'ChangeNow 503' }, { type: 'invite.sent', inviteLink: 'l' }]);
    expect(a.snapshot.value).toEqual({ routed: { access: 'invited', payout: 'review' } });
    const b = run([{ type: 'operator.retry', by: 'ops' }], a.snapshot);
    expect(b.effects).toEqual([{ effect: 'split', attempt: 1 }]);
  });

  it('a blocked buyer makes the invite undeliverable but still counts as access granted', () => {
    const a = run([np('finished'), route('threshold'), { type: 'invite.undeliverable', inviteLink: 'l', reason: 'Forbidden: bot was blocked by the user' }]);
    expect(a.snapshot.context.access).toEqual({ inviteLink: 'l', undeliverableReason: 'Forbidden: bot was blocked by the user' });
    expect(a.summary.state).toBe('invited');
  });

  it('a route rejection parks the payment; an operator retry routes again with a new attempt', () => {
    const a = run([np('finished'), { type: 'route.rejected', reason: 'unknown channel -100999' }]);
    expect(a.summary).toMatchObject({ state: 'needs_review', reviewReason: 'payment: unknown channel -100999' });
    const b = run([{ type: 'operator.retry', by: 'ops' }], a.snapshot);
    expect(b.snapshot.value).toBe('confirmed');
    expect(b.effects).toEqual([{ effect: 'route', attempt: 1 }]);
  });

  it('an operator may accept an underpayment', () => {
    const a = run([np('partially_paid', { ...paid, actuallyPaid: '0.04' }), { type: 'operator.accept_underpaid', by: 'ops' }]);
    expect(a.snapshot.value).toBe('confirmed');
    expect(a.snapshot.context.exceptions).toEqual(['underpayment accepted by ops']);
  });

  it('money reported after expiry still confirms; after a refund it does not', () => {
    expect(run([np('expired'), np('finished')]).snapshot.value).toBe('confirmed');
    expect(run([np('refunded'), np('finished')]).snapshot.value).toBe('failed');
  });

  it('a refund after delivery is recorded once and never rewinds the payment', () => {
    const a = run([np('finished'), route('instant'), np('refunded'), np('refunded')]);
    expect(a.changes).toEqual([true, true, true, false]);
    expect(a.snapshot.value).toEqual({ routed: { access: 'inviting', payout: 'splitting' } });
    expect(a.snapshot.context.exceptions).toHaveLength(1);
  });

  it('results that arrive before their step are ignored, not applied early', () => {
    const { changes, snapshot } = run([{ type: 'invite.sent', inviteLink: 'l' }, { type: 'batch.paid', batchId: 'b' }]);
    expect(changes).toEqual([false, false]);
    expect(snapshot.value).toBe('received');
  });
});

describe('persistence round trip', () => {
  it('a snapshot stored as JSON and restored continues exactly where it stopped', () => {
    const a = run([np('finished'), route('instant'), { type: 'invite.sent', inviteLink: 'l' }]);
    const restored = restore(JSON.parse(JSON.stringify(persist(a.snapshot))));
    expect(restored.value).toEqual(a.snapshot.value);
    expect(step(restored, { type: 'invite.sent', inviteLink: 'l' }).changed).toBe(false);
    const next = step(restored, { type: 'split.done', exchangeId: 'e', txHash: 'h' });
    expect(next.effects).toEqual([{ effect: 'settle', attempt: 0 }]);
  });
});

describe('operator.reinvite: a new invite link for the buyer', () => {
  const reinvite: PaymentEvent = { type: 'operator.reinvite', by: 'ops', reason: 'a stranger used the link' };
  const can = (snapshot: PaymentSnapshot, event: PaymentEvent) => snapshot.can(event);

  it('from invited (while the payout runs): back to inviting under the next invite attempt, the old link forgotten', () => {
    const a = run([np('finished'), route('threshold'), { type: 'invite.sent', inviteLink: 'https://t.me/+old' }]);
    expect(a.snapshot.value).toEqual({ routed: { access: 'invited', payout: 'accumulating' } });
    expect(can(a.snapshot, reinvite)).toBe(true);
    const b = run([reinvite], a.snapshot);
    expect(b.snapshot.value).toEqual({ routed: { access: 'inviting', payout: 'accumulating' } });
    expect(b.effects).toEqual([{ effect: 'invite', attempt: 1 }]);
    expect(b.snapshot.context.access).toEqual({ inviteLink: null, undeliverableReason: null });
    expect(b.summary.step).toBe('invite_sent');
    // The payout region is untouched: no accumulate job again, and its result still applies.
    const c = run([{ type: 'accumulate.done', ledgerEntryId: 'le-1' }, { type: 'invite.sent', inviteLink: 'https://t.me/+new' }], b.snapshot);
    expect(c.effects).toEqual([]);
    expect(c.snapshot.value).toEqual({ routed: { access: 'invited', payout: 'accumulated' } });
    expect(c.snapshot.context.access.inviteLink).toBe('https://t.me/+new');
    // A second re-issue takes the attempt after that.
    expect(run([reinvite], c.snapshot).effects).toEqual([{ effect: 'invite', attempt: 2 }]);
  });

  it('from undeliverable: the buyer unblocked the bot, so the invite is sent again', () => {
    const a = run([np('finished'), route('threshold'), { type: 'invite.undeliverable', inviteLink: 'l', reason: 'Forbidden: bot was blocked by the user' }]);
    const b = run([reinvite], a.snapshot);
    expect(b.snapshot.value).toEqual({ routed: { access: 'inviting', payout: 'accumulating' } });
    expect(b.effects).toEqual([{ effect: 'invite', attempt: 1 }]);
    expect(b.snapshot.context.access.undeliverableReason).toBeNull();
  });

  it('from access review: like a retry, and the review is cleared', () => {
    const a = run([np('finished'), route('instant'), { type: 'invite.failed', reason: 'bot is not an admin' }]);
    expect(a.summary.state).toBe('needs_review');
    const b = run([reinvite], a.snapshot);
    expect(b.effects).toEqual([{ effect: 'invite', attempt: 1 }]);
    expect(b.summary).toMatchObject({ state: 'routed', reviewReason: null });
  });

  it('after paid (a stranger used the link once everything was done): access reopens, the payout stays done', () => {
    const a = run([np('finished'), route('instant'), { type: 'invite.sent', inviteLink: 'l' }, { type: 'split.done', exchangeId: 'e', txHash: 'h' }, { type: 'payout.settled' }]);
    expect(a.snapshot.value).toBe('paid');
    const b = run([reinvite], a.snapshot);
    expect(b.snapshot.value).toEqual({ routed: { access: 'inviting', payout: 'done' } });
    expect(b.effects).toEqual([{ effect: 'invite', attempt: 1 }]);
    expect(b.snapshot.context.payout.txHash).toBe('h');
    const c = run([{ type: 'invite.sent', inviteLink: 'l2' }], b.snapshot);
    expect(c.snapshot.value).toBe('paid');
    expect(c.effects).toEqual([]);
  });

  it('is refused (no change, no effect) while the invite is still being made, and before access exists', () => {
    const inviting = run([np('finished'), route('instant')]);
    for (const snapshot of [inviting.snapshot, run([np('finished')]).snapshot, run([np('waiting')]).snapshot, run([np('expired')]).snapshot]) {
      expect(can(snapshot, reinvite)).toBe(false);
      expect(step(snapshot, reinvite)).toMatchObject({ changed: false, effects: [] });
    }
  });

  it('survives a persistence round trip', () => {
    const a = run([np('finished'), route('threshold'), { type: 'invite.sent', inviteLink: 'l' }]);
    const restored = restore(JSON.parse(JSON.stringify(persist(a.snapshot))));
    expect(restored.can(reinvite)).toBe(true);
    expect(step(restored, reinvite).effects).toEqual([{ effect: 'invite', attempt: 1 }]);
  });
});

describe('which operator events each state allows (what the operator surface offers)', () => {
  const ops = (snapshot: PaymentSnapshot) =>
    (['operator.retry', 'operator.reinvite', 'operator.accept_underpaid', 'operator.cancel'] as const).filter((type) => snapshot.can({ type, by: 'ops', reason: 'r' }));

  it('matches the statechart', () => {
    expect(ops(run([np('waiting')]).snapshot)).toEqual([]);
    expect(ops(run([np('partially_paid', { ...paid, actuallyPaid: '0.01' })]).snapshot)).toEqual(['operator.accept_underpaid', 'operator.cancel']);
    expect(ops(run([np('finished'), { type: 'route.rejected', reason: 'x' }]).snapshot)).toEqual(['operator.retry', 'operator.cancel']);
    expect(ops(run([np('finished'), route('instant')]).snapshot)).toEqual([]);
    expect(ops(run([np('finished'), route('instant'), { type: 'payout.failed', reason: 'x' }]).snapshot)).toEqual(['operator.retry']);
    expect(ops(run([np('finished'), route('instant'), { type: 'invite.failed', reason: 'x' }]).snapshot)).toEqual(['operator.retry', 'operator.reinvite']);
    expect(ops(run([np('finished'), route('threshold'), { type: 'invite.sent', inviteLink: 'l' }]).snapshot)).toEqual(['operator.reinvite']);
  });

  it('an operator retry that parks nothing changes nothing', () => {
    const a = run([np('finished'), route('instant'), { type: 'invite.sent', inviteLink: 'l' }]);
    expect(step(a.snapshot, { type: 'operator.retry', by: 'ops', reason: 'r' })).toMatchObject({ changed: false, effects: [] });
  });

  it('accepting an underpayment keeps who and why on the exception axis', () => {
    const a = run([np('partially_paid', { ...paid, actuallyPaid: '0.04' }), { type: 'operator.accept_underpaid', by: 'ops', reason: 'buyer paid the rest by card' }]);
    expect(a.snapshot.context.exceptions).toEqual(['underpayment accepted by ops (buyer paid the rest by card)']);
  });
});
