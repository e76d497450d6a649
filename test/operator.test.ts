import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BATCH_DEAD_LETTER } from '../src/actors/payouts/batches.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { BATCH_DEAD_LETTER_QUEUE } from '../src/operator/dead-letters.repo.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { DEAD_LETTER_QUEUE, queueOf } from '../src/persistence/queues.js';
import { jobsFor, journalOf, paymentRow } from './support/engine.js';
import { inlineNotRun, seedOrder, startIntake, uniqueId, type IntakeHarness } from './support/intake.js';

// The operator surface over a real service (no effect workers and routing as an unworked job, so every
// payment stays where a test puts it; the dead-letter worker runs). needs_review and underpaid are stuck at once (0s); other states
// only after an hour, so a payment in them is never listed here.

const token = 'operator-token-'.padEnd(32, 'x');
const auth = { authorization: `Bearer ${token}` };
let h: IntakeHarness;

beforeAll(async () => {
  h = await startIntake({ ADMIN_TOKEN: token, STUCK_AFTER: '1h', STUCK_AFTER_STATES: 'needs_review=0s,underpaid=0s,accumulated=never' }, { effects: [], actors: inlineNotRun });
});
afterAll(async () => {
  await h?.close();
});

const app = () => h.t.service.app;
const apply = (paymentId: string, event: PaymentEvent) => h.t.service.engine.applyEvent(paymentId, event, { source: 'test' });
const get = async (url: string) => {
  const res = await app().inject({ url, headers: auth });
  expect(res.statusCode, res.body).toBe(200);
  return res.json();
};
const act = (paymentId: string, payload: Record<string, unknown>) =>
  app().inject({ method: 'POST', url: `/admin/payments/${encodeURIComponent(paymentId)}/events`, headers: auth, payload });

const paid = (orderId: string) => ({ payAmount: '1', actuallyPaid: '1', orderId });
const route = (orderId: string, strategy: 'instant' | 'threshold' = 'threshold'): PaymentEvent => ({
  type: 'route.done',
  route: { orderId, channelId: '-1001', planId: 'p', buyerTelegramId: '4242', strategy, ownerShareUsd: '9', feeUsd: '1' },
});

/** A payment whose route was rejected: parked for review before routing. */
async function parked(paymentId: string, orderId = `o-${paymentId}`) {
  await apply(paymentId, { type: 'np.finished', facts: paid(orderId) });
  await apply(paymentId, { type: 'route.rejected', reason: 'unknown channel -100777' });
}

describe('operator surface', () => {
  it('needs the admin token', async () => {
    for (const url of ['/admin/payments', '/admin/payments?stuck=true', '/admin/search?q=x', '/admin/dead-letters']) {
      expect((await app().inject({ url })).statusCode).toBe(401);
      expect((await app().inject({ url, headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
    }
  });

  it('lists parked payments with the reason they wait, and the stuck_for view', async () => {
    await parked('op-1');
    const body = await get('/admin/payments?state=needs_review');
    expect(body.payments.map((p: { payment_id: string }) => p.payment_id)).toContain('op-1');
    expect(body.payments.find((p: { payment_id: string }) => p.payment_id === 'op-1').review_reason).toBe('payment: unknown channel -100777');
    expect(body.counts.needs_review).toBeGreaterThanOrEqual(1);
    expect((await get('/admin/payments?stuck_for=1h')).payments).toEqual([]); // nothing has waited an hour
    const bad = await app().inject({ url: '/admin/payments?stuck_for=soon', headers: auth });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().message).toContain('querystring.stuck_for');
  });
});

describe('stuck payments (per-state limits)', () => {
  it('a payment parked for review is listed at once (0s limit) with why it waits, its last error, its actions and links', async () => {
    // The route job fails once (it will retry) before the route is rejected: that is the last error.
    await apply('stuck-1', { type: 'np.finished', facts: paid('o-stuck-1') });
    const routeJob = effectJobId('stuck-1', 'route', 0);
    await h.t.service.boss.fail(queueOf('route'), routeJob, { message: 'routing service answered 503' });
    await apply('stuck-1', { type: 'route.rejected', reason: 'unknown channel -100777' });
    // A payment in confirmed has an hour before it counts as stuck: not listed.
    await apply('stuck-2', { type: 'np.finished', facts: paid('o-stuck-2') });

    const body = await get('/admin/payments?stuck=true');
    const ids = body.payments.map((p: { payment_id: string }) => p.payment_id);
    expect(ids).toContain('stuck-1');
    expect(ids).not.toContain('stuck-2');
    const item = body.payments.find((p: { payment_id: string }) => p.payment_id === 'stuck-1');
    expect(item).toMatchObject({
      state: 'needs_review',
      order_id: 'o-stuck-1',
      limit_seconds: 0,
      review_reason: 'payment: unknown channel -100777',
      waiting_for: { key: 'review:payment' },
      regions: { access: null, payout: null },
      actions: [
        { type: 'operator.retry', label: 'Retry routing' },
        { type: 'operator.cancel', label: 'Cancel payment' },
      ],
      last_error: { job_id: routeJob, queue: 'effect-route', state: 'retry', attempt: 0, message: 'routing service answered 503' },
      links: { inspect: '/admin/payments/stuck-1/inspect', statechart: '/admin/payments/stuck-1/statechart' },
      batch: null,
    });
    expect(new Date(item.since).getTime()).toBeLessThanOrEqual(Date.now());
    expect(body.counts.confirmed).toBeGreaterThanOrEqual(1);
    expect(body.stuck_by_state.needs_review).toBeGreaterThanOrEqual(1);
    expect(body.stuck_by_state.confirmed).toBeUndefined();
    expect(body.stuck_by_wait['review:payment'].count).toBeGreaterThanOrEqual(1);
    expect(body.limits).toMatchObject({ needs_review: '0s', underpaid: '0s', confirmed: '1h', accumulated: 'never', paid: 'never', failed: 'never' });
    // Filtered by state too.
    expect((await get('/admin/payments?stuck=true&state=underpaid')).payments.map((p: { state: string }) => p.state)).not.toContain('needs_review');
  });

  it('a payout parked for review waits for "review:payout" and offers to resume it', async () => {
    await apply('stuck-3', { type: 'np.finished', facts: paid('o-stuck-3') });
    await apply('stuck-3', route('o-stuck-3', 'instant'));
    await apply('stuck-3', { type: 'invite.sent', inviteLink: 'https://t.me/+s3' });
    await apply('stuck-3', { type: 'payout.failed', reason: 'ChangeNow: pair not available' });
    const item = (await get('/admin/payments?stuck=true')).payments.find((p: { payment_id: string }) => p.payment_id === 'stuck-3');
    expect(item).toMatchObject({ waiting_for: { key: 'review:payout' }, regions: { access: 'invited', payout: 'review' } });
    expect(item.actions).toEqual([
      { type: 'operator.retry', label: 'Resume payout' },
      { type: 'operator.reinvite', label: 'Re-issue invite' },
    ]);
  });
});

describe('operator actions: allowed -> new state and a journal row with who and why; refused -> 409, nothing changed', () => {
  async function expectApplied(paymentId: string, type: string, state: string) {
    const by = 'alice';
    const reason = `because ${type} is right for ${paymentId}`;
    const res = await act(paymentId, { type, by, reason });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ outcome: 'applied', state });
    expect((await journalOf(h.t.db, paymentId)).at(-1)).toMatchObject({ event_type: type, source: 'operator:alice' });
    const detail = await get(`/admin/payments/${paymentId}`);
    expect(detail.payment.state).toBe(state);
    expect(detail.journal.at(-1)).toMatchObject({ event_type: type, by, reason, source: 'operator:alice' });
    return detail;
  }
  async function expectRefused(paymentId: string, type: string) {
    const before = await paymentRow(h.t.db, paymentId);
    const journal = await journalOf(h.t.db, paymentId);
    const res = await act(paymentId, { type, by: 'bob', reason: 'trying' });
    expect(res.statusCode, res.body).toBe(409);
    expect(res.json().message).toBe(`${type} does not apply to payment ${paymentId} in state ${before!.state}; nothing changed.`);
    expect(await paymentRow(h.t.db, paymentId)).toEqual(before);
    expect(await journalOf(h.t.db, paymentId)).toEqual(journal);
  }

  it('retry: a parked route runs again under a new attempt', async () => {
    await parked('act-retry');
    await expectApplied('act-retry', 'operator.retry', 'confirmed');
    expect((await jobsFor(h.t.db, queueOf('route'), 'act-retry')).map((j) => j.data.attempt).sort()).toEqual([0, 1]);
    const detail = await get('/admin/payments/act-retry');
    expect(detail.journal.map((j: { event_type: string }) => j.event_type)).toEqual(['np.finished', 'route.rejected', 'operator.retry']);
    expect(detail.actions).toEqual([]);
    await expectRefused('act-retry', 'operator.retry'); // nothing parked any more
  });

  it('reinvite: from invited back to inviting under the next invite attempt; refused while inviting', async () => {
    await apply('act-reinvite', { type: 'np.finished', facts: paid('o-act-reinvite') });
    await apply('act-reinvite', route('o-act-reinvite'));
    await expectRefused('act-reinvite', 'operator.reinvite'); // the invite is still being made
    await apply('act-reinvite', { type: 'invite.sent', inviteLink: 'https://t.me/+used-by-a-stranger' });
    const detail = await expectApplied('act-reinvite', 'operator.reinvite', 'routed');
    expect(detail.payment.view.access).toMatchObject({ state: 'inviting', inviteLink: null });
    expect((await jobsFor(h.t.db, queueOf('invite'), 'act-reinvite')).map((j) => j.data.attempt).sort()).toEqual([0, 1]);
    expect(detail.jobs.map((j: { id: string }) => j.id)).toContain(effectJobId('act-reinvite', 'invite', 1));
  });

  it('resume a parked payout: operator.retry in the payout region re-runs its step', async () => {
    await apply('act-payout', { type: 'np.finished', facts: paid('o-act-payout') });
    await apply('act-payout', route('o-act-payout', 'instant'));
    await apply('act-payout', { type: 'payout.failed', reason: 'ChangeNow 503' });
    const detail = await expectApplied('act-payout', 'operator.retry', 'routed');
    expect(detail.payment.view.payout.state).toBe('splitting');
    expect((await jobsFor(h.t.db, queueOf('split'), 'act-payout')).map((j) => j.data.attempt).sort()).toEqual([0, 1]);
  });

  it('accept an underpayment; cancel another; neither applies to a parked route', async () => {
    await apply('act-accept', { type: 'np.partially_paid', facts: { payAmount: '1', actuallyPaid: '0.5', orderId: 'o-act-accept' } });
    await expectRefused('act-accept', 'operator.retry');
    const accepted = await expectApplied('act-accept', 'operator.accept_underpaid', 'confirmed');
    expect(accepted.payment.view.exceptions).toEqual([expect.stringMatching(/^underpayment accepted by alice \(because/)]);
    await apply('act-cancel', { type: 'np.partially_paid', facts: { payAmount: '1', actuallyPaid: '0.5', orderId: 'o-act-cancel' } });
    await expectApplied('act-cancel', 'operator.cancel', 'failed');
    await expectRefused('act-cancel', 'operator.cancel');
    await parked('act-refused');
    await expectRefused('act-refused', 'operator.accept_underpaid');
    await expectRefused('act-refused', 'operator.reinvite');
  });

  it('a reason is required, the payment must exist', async () => {
    await parked('act-bad');
    const missing = await act('act-bad', { type: 'operator.retry', by: 'alice' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().message).toContain('body.reason');
    const blank = await act('act-bad', { type: 'operator.retry', by: 'alice', reason: '   ' });
    expect(blank.statusCode).toBe(400);
    expect((await act('nope', { type: 'operator.retry', by: 'alice', reason: 'x' })).statusCode).toBe(404);
    expect((await paymentRow(h.t.db, 'act-bad'))?.version).toBe(2);
  });
});

describe('jobs are found by their deterministic ids', () => {
  it('the detail lists every job the journal scheduled, by primary key, with the last error', async () => {
    await parked('jobs-1');
    await act('jobs-1', { type: 'operator.retry', by: 'alice', reason: 'channel added' });
    const [first, second] = [effectJobId('jobs-1', 'route', 0), effectJobId('jobs-1', 'route', 1)];
    await h.t.service.boss.fail(queueOf('route'), second, { message: 'still no channel' });
    const detail = await get('/admin/payments/jobs-1');
    expect(detail.jobs.map((j: { id: string; queue: string; attempt: number }) => [j.id, j.queue, j.attempt])).toEqual([
      [first, 'effect-route', 0],
      [second, 'effect-route', 1],
    ]);
    expect(detail.last_error).toMatchObject({ job_id: second, message: 'still no channel', state: 'retry' });
    // The same as a scan by payment id would find (the test may scan; the service never does).
    expect((await jobsFor(h.t.db, queueOf('route'), 'jobs-1')).map((j) => j.id).sort()).toEqual([first, second].sort());
  });
});

describe('search', () => {
  it('finds payments by payment id, order id, buyer, channel and transaction hash', async () => {
    const { orderId } = await seedOrder(h, { withInvoice: false });
    const { rows } = await h.t.db.pool.query<{ open_channel_id: string; closed_channel_id: string }>(
      'SELECT o.open_channel_id::text, c.closed_channel_id::text FROM orders o JOIN channels c USING (open_channel_id) WHERE o.order_id = $1',
      [orderId],
    );
    const channel = rows[0]!;
    const paymentId = uniqueId('srch');
    await apply(paymentId, { type: 'np.finished', facts: paid(orderId) });
    const txHash = `0x${'ab'.repeat(32)}`;
    const hostHash = `0x${'cd'.repeat(32)}`;
    const payoutId = uniqueId('po');
    await h.t.db.pool.query(
      `INSERT INTO chain_transactions (tx_key, from_address, chain_id, nonce, to_address, raw_tx, tx_hash) VALUES ($1, '0xhost', 1, 7, '0xpayin', '0x00', $2)`,
      [`payout:${payoutId}`, hostHash],
    );
    await h.t.db.pool.query(
      `INSERT INTO payouts (payout_id, kind, open_channel_id, payment_id, cleared_units, amount_units, to_address, to_currency, to_network, direct, tx_key, tx_hash, owner_payout_hash, status)
       VALUES ($1, 'instant', $2, $3, 100, 100, '0xowner', 'usdt', 'eth', true, $4, $5, 'TRONhash0123456789abcdef', 'sent')`,
      [payoutId, channel.open_channel_id, paymentId, `payout:${payoutId}`, txHash],
    );

    const found = async (q: string) => (await get(`/admin/search?q=${encodeURIComponent(q)}`)) as { payments: { payment_id: string; matched: string[] }[]; payouts: { payout_id: string }[] };
    const hit = async (q: string, why: string) => {
      const result = await found(q);
      expect(result.payments.find((p) => p.payment_id === paymentId)?.matched, `${q} (${why})`).toContain(why);
      return result;
    };
    await hit(paymentId, 'payment id');
    await hit(orderId, 'order id');
    await hit('4242', 'buyer');
    await hit(channel.open_channel_id, 'channel');
    await hit(channel.closed_channel_id, 'channel');
    expect((await hit(txHash.toUpperCase().replace('0X', '0x'), 'transaction hash')).payouts.map((p) => p.payout_id)).toEqual([payoutId]);
    await hit(hostHash, 'transaction hash');
    await hit('TRONhash0123456789abcdef', 'transaction hash');
    expect((await found('no-such-thing')).payments).toEqual([]);
    expect((await found('99999999999999999999')).payments).toEqual([]); // beyond bigint: not tried as an id
    expect((await app().inject({ url: '/admin/search?q=', headers: auth })).statusCode).toBe(400);
  });
});

describe('dead letters', () => {
  it('a job out of retries is dead-lettered, parks its payment, and is listed with its source and error', async () => {
    await apply('dead-1', { type: 'np.finished', facts: paid('o-dead-1') });
    const id = effectJobId('dead-1', 'route', 0);
    await h.t.db.pool.query('UPDATE pgboss.job SET retry_limit = 0 WHERE name = $1 AND id = $2', [queueOf('route'), id]);
    await h.t.service.boss.fail(queueOf('route'), id, { message: 'route gave up: database of channels unreachable' });
    await vi.waitFor(async () => expect((await paymentRow(h.t.db, 'dead-1'))?.state).toBe('needs_review'), { timeout: 20_000, interval: 50 });
    const { dead_letters } = await get('/admin/dead-letters?payment_id=dead-1');
    expect(dead_letters).toEqual([
      expect.objectContaining({ queue: DEAD_LETTER_QUEUE, source_queue: 'effect-route', source_id: id, payment_id: 'dead-1', effect: 'route', attempt: 0, error: 'route gave up: database of channels unreachable' }),
    ]);
    expect((await get('/admin/dead-letters')).dead_letters.length).toBeGreaterThanOrEqual(1);
    expect((await get('/admin/payments/dead-1')).payment.review_reason).toBe('payment: route gave up after its retries: route gave up: database of channels unreachable');
  });

  it('knows both dead-letter queues', () => {
    expect(BATCH_DEAD_LETTER_QUEUE).toBe(BATCH_DEAD_LETTER);
  });
});

describe('pages and documents', () => {
  it('serves the statechart as Mermaid and the dashboard shell under a hash-only CSP', async () => {
    expect((await app().inject({ url: '/admin/machine.mmd', headers: auth })).body).toContain('stateDiagram-v2');
    const page = await app().inject({ url: '/admin/dashboard' });
    expect(page.statusCode).toBe(200);
    const csp = page.headers['content-security-policy'] as string;
    expect(csp).toMatch(/^default-src 'none'; script-src 'sha256-[A-Za-z0-9+/=]+'; style-src 'sha256-[A-Za-z0-9+/=]+'; connect-src 'self'/);
    expect(csp).not.toContain('unsafe');
    expect(page.body).not.toContain('<script src');
    expect(page.body).toContain('<script>');
  });

  it('OpenAPI covers every route, both webhooks included; /docs is Swagger UI served from its own package', async () => {
    const doc = await get('/docs/openapi.json');
    const documented = new Set(Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)));
    // Every route the app serves, from fastify's own route tree (each line a path segment, nested by
    // indentation), but Swagger UI's files, the sandbox's play-the-buyer pages and HEAD twins.
    const stack: string[] = [];
    const served = app()
      .printRoutes({ commonPrefix: false })
      .split('\n')
      .flatMap((line) => {
        const m = /^([\s│]*)[├└]── (\S+)(?: \(([A-Z, ]+)\))?/.exec(line);
        if (!m) return [];
        const depth = m[1]!.length / 4;
        stack.length = depth;
        stack.push(m[2]!);
        const path = stack.join('').replace(/:(\w+)/g, '{$1}');
        return (m[3] ?? '').split(', ').filter((method) => method && method !== 'HEAD').map((method) => `${method} ${path}`);
      })
      .filter((route) => !/ \/(docs|sandbox)(\/|$)/.test(route) || route === 'GET /docs/openapi.json');
    expect(served).toEqual(expect.arrayContaining(['GET /admin/payments/{payment_id}', 'POST /admin/payout-batches/{batch_id}/retry', 'POST /webhooks/nowpayments']));
    expect(served.filter((route) => !documented.has(route))).toEqual([]);
    for (const route of ['POST /webhooks/nowpayments', 'POST /webhooks/telegram', 'GET /admin/search', 'GET /admin/dead-letters', 'GET /metrics', 'POST /admin/payments/{payment_id}/events']) {
      expect(documented, route).toContain(route);
    }
    const telegram = doc.paths['/webhooks/telegram'].post;
    expect(telegram.parameters).toEqual([expect.objectContaining({ name: 'x-telegram-bot-api-secret-token', in: 'header', required: true })]);
    expect(doc.paths['/webhooks/nowpayments'].post.parameters).toEqual([expect.objectContaining({ name: 'x-nowpayments-sig', in: 'header', required: true })]);
    expect(doc.paths['/admin/payments/{payment_id}/events'].post.requestBody.content['application/json'].schema.required).toEqual(['type', 'by', 'reason']);

    const ui = await app().inject({ url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.body).toContain('swagger-ui-bundle.js');
    expect(ui.body).not.toMatch(/https?:\/\//);
    expect(ui.headers['content-security-policy']).toContain("script-src 'self'");
    const bundle = await app().inject({ url: '/docs/static/swagger-ui-bundle.js' });
    expect(bundle.statusCode).toBe(200);
    expect(bundle.body.length).toBeGreaterThan(100_000);
    const init = await app().inject({ url: '/docs/static/swagger-initializer.js' });
    expect(init.body).toContain('./json');
  });
});
