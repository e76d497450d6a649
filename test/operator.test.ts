import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queueOf } from '../src/persistence/queues.js';
import { jobsFor, journalOf, paymentRow } from './support/engine.js';
import { startTestService, type TestService } from './support/service.js';

const token = 'operator-token-'.padEnd(32, 'x');
const auth = { authorization: `Bearer ${token}` };
let t: TestService;

beforeAll(async () => {
  t = await startTestService({ ADMIN_TOKEN: token }, { effects: [] });
});
afterAll(async () => {
  await t.close();
});

async function parked(paymentId: string) {
  const engine = t.service.engine;
  await engine.applyEvent(paymentId, { type: 'np.finished', facts: { payAmount: '1', actuallyPaid: '1', orderId: `o-${paymentId}` } }, { source: 'test' });
  await engine.applyEvent(paymentId, { type: 'route.rejected', reason: 'unknown channel -100777' }, { source: 'test' });
}

describe('operator surface', () => {
  it('needs the admin token', async () => {
    expect((await t.service.app.inject({ url: '/admin/payments' })).statusCode).toBe(401);
    expect((await t.service.app.inject({ url: '/admin/payments', headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
  });

  it('lists parked payments with the reason they wait, and the stuck view', async () => {
    await parked('op-1');
    const res = await t.service.app.inject({ url: '/admin/payments?state=needs_review', headers: auth });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.payments.map((p: { payment_id: string }) => p.payment_id)).toContain('op-1');
    expect(body.payments.find((p: { payment_id: string }) => p.payment_id === 'op-1').review_reason).toBe('payment: unknown channel -100777');
    expect(body.counts.needs_review).toBeGreaterThanOrEqual(1);
    const stuck = await t.service.app.inject({ url: '/admin/payments?stuck_for=1h', headers: auth });
    expect(stuck.json().payments).toEqual([]); // nothing has waited an hour
    const bad = await t.service.app.inject({ url: '/admin/payments?stuck_for=soon', headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain('querystring.stuck_for');
  });

  it('a retry is an operator event through the one path: journalled, and it schedules the step again with a new attempt', async () => {
    await parked('op-2');
    const res = await t.service.app.inject({ method: 'POST', url: '/admin/payments/op-2/events', headers: auth, payload: { type: 'operator.retry', by: 'alice' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ outcome: 'applied', state: 'confirmed' });
    expect((await journalOf(t.db, 'op-2')).at(-1)).toMatchObject({ event_type: 'operator.retry', source: 'operator:alice' });
    expect((await jobsFor(t.db, queueOf('route'), 'op-2')).map((j) => j.data.attempt).sort()).toEqual([0, 1]);
    const detail = (await t.service.app.inject({ url: '/admin/payments/op-2', headers: auth })).json();
    expect(detail.journal.map((j: { event_type: string }) => j.event_type)).toEqual(['np.finished', 'route.rejected', 'operator.retry']);
  });

  it('an operator event the state does not allow changes nothing and says so', async () => {
    await parked('op-3');
    const res = await t.service.app.inject({ method: 'POST', url: '/admin/payments/op-3/events', headers: auth, payload: { type: 'operator.accept_underpaid', by: 'bob' } });
    expect(res.statusCode).toBe(409);
    expect(res.json().message).toBe('operator.accept_underpaid does not apply to payment op-3 in state needs_review; nothing changed.');
    expect((await paymentRow(t.db, 'op-3'))?.version).toBe(2);
  });

  it('serves the statechart as a Mermaid diagram and the dashboard shell', async () => {
    const diagram = await t.service.app.inject({ url: '/admin/machine.mmd', headers: auth });
    expect(diagram.body).toContain('stateDiagram-v2');
    const page = await t.service.app.inject({ url: '/admin/dashboard' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
  });
});
