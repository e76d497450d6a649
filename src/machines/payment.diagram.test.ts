import { describe, expect, it } from 'vitest';
import { paymentMachine } from './payment.machine.js';
import { activeIds, chartOf, highlightOf, initialValueOf, toMermaid } from './payment.diagram.js';

const ROUTED = (access: string, payout: string) => ({ routed: { access, payout } });

describe('payment diagram', () => {
  it('draws every state and the transitions operators act on', () => {
    const text = toMermaid(paymentMachine);
    expect(text.startsWith('stateDiagram-v2')).toBe(true);
    for (const state of ['received', 'underpaid', 'failed', 'confirmed', 'needs_review', 'inviting', 'invited', 'splitting', 'accumulated', 'paid']) {
      expect(text).toContain(`"${state}"`);
    }
    expect(text).toContain('payment_needs_review --> payment_confirmed : operator.retry');
    expect(text).toContain('payment_routed --> payment_paid : all regions done');
  });

  it('has no stray root node: every state an arrow touches is declared, and the machine-wide transition is a note', () => {
    const text = toMermaid(paymentMachine);
    const declared = new Set([...text.matchAll(/state (?:"[^"]+" as )?(\w+)/g)].map((m) => m[1]));
    const used = [...text.matchAll(/^\s*(\w+) --> (\w+)/gm)].flatMap((m) => [m[1], m[2]]);
    expect(used.length).toBeGreaterThan(20);
    for (const id of used) expect(declared, `${id} is drawn but not declared`).toContain(id);
    expect(text).not.toMatch(/^\s*payment --> /m);
    expect(text).toMatch(/note right of payment_received : in any state, np\.refunded \[refundNotRecorded\]/);
  });

  it('draws the payout region\'s eventless decision with both exits', () => {
    const text = toMermaid(paymentMachine);
    expect(text).toContain('payment_routed_payout_deciding --> payment_routed_payout_splitting : always [isInstant]');
    expect(text).toContain('payment_routed_payout_deciding --> payment_routed_payout_accumulating : always [else]');
  });

  it('writes guards, the fallback of guarded candidates, entry effects and transitions that keep the state', () => {
    const text = toMermaid(paymentMachine);
    expect(text).toContain('payment_received --> payment_confirmed : np.finished [paidEnough]');
    expect(text).toContain('payment_received --> payment_underpaid : np.finished [else]');
    expect(text).toContain('payment_failed --> payment_confirmed : np.finished [recoverableFailure && paidEnough]');
    expect(text).toContain('payment_confirmed --> payment_needs_review : effect.exhausted [exhausted(route)]');
    expect(text).toContain('payment_confirmed : entry / effect.route');
    expect(text).toContain('payment_received : np.waiting [advances]');
    // A transition that keeps the state is not drawn as an arrow back to itself.
    expect(text).not.toMatch(/payment_received --> payment_received/);
  });

  it('reads the machine as data: initial value, active ids of a parallel value', () => {
    const chart = chartOf(paymentMachine);
    expect(initialValueOf(chart)).toBe('received');
    expect([...activeIds(chart, ROUTED('invited', 'review'))].sort()).toEqual(
      ['payment', 'payment.routed', 'payment.routed.access', 'payment.routed.access.invited', 'payment.routed.payout', 'payment.routed.payout.review'].sort(),
    );
    expect(chart.states.get('payment.routed.payout.deciding')?.type).toBe('atomic');
  });

  it('highlights where a payment is and the path it took, eventless exits included', () => {
    const chart = chartOf(paymentMachine);
    const steps = [
      { event_type: 'np.waiting', from_state: null, to_state: 'received' },
      { event_type: 'np.finished', from_state: 'received', to_state: 'confirmed' },
      { event_type: 'route.done', from_state: 'confirmed', to_state: ROUTED('inviting', 'accumulating') },
      { event_type: 'invite.sent', from_state: ROUTED('inviting', 'accumulating'), to_state: ROUTED('invited', 'accumulating') },
      { event_type: 'payout.failed', from_state: ROUTED('invited', 'accumulating'), to_state: ROUTED('invited', 'review') },
    ];
    const h = highlightOf(chart, steps, ROUTED('invited', 'review'));
    expect(h.current).toContain('payment.routed.payout.review');
    expect(h.current).toContain('payment.routed.access.invited');
    expect(h.current).not.toContain('payment.confirmed');
    for (const id of ['payment.received', 'payment.confirmed', 'payment.routed.payout.deciding', 'payment.routed.payout.accumulating', 'payment.routed.access.inviting']) {
      expect(h.visited, id).toContain(id);
    }
    for (const id of ['payment.underpaid', 'payment.routed.payout.splitting', 'payment.paid']) expect(h.visited, id).not.toContain(id);
    const label = (id: string) => {
      const t = chart.transitions.find((x) => x.id === id)!;
      return `${t.source} -> ${t.target} : ${t.label}`;
    };
    expect([...h.taken].map(label).sort()).toEqual(
      [
        'payment -> payment.received : ',
        'payment.received -> payment.confirmed : np.finished [paidEnough]',
        'payment.confirmed -> payment.routed : route.done',
        'payment.routed.access -> payment.routed.access.inviting : ',
        'payment.routed.payout -> payment.routed.payout.deciding : ',
        'payment.routed.payout.deciding -> payment.routed.payout.accumulating : always [else]',
        'payment.routed.access.inviting -> payment.routed.access.invited : invite.sent',
        'payment.routed.payout.accumulating -> payment.routed.payout.review : payout.failed',
      ].sort(),
    );
  });
});
