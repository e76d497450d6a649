import { describe, expect, it } from 'vitest';
import { paymentMachine } from './payment.machine.js';
import { toMermaid } from './payment.diagram.js';

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
});
