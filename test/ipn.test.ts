import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIpnService } from '../src/intake/ipn.service.js';
import { reconcileOnce } from '../src/intake/reconcile.job.js';
import type { PaymentStatus } from '../src/nowpayments/ipn.schema.js';
import { signIpn } from '../src/nowpayments/signature.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { queueOf } from '../src/persistence/queues.js';
import type { FakePayment } from '../src/sandbox/nowpayments.fake.js';
import { jobsFor, journalOf } from './support/engine.js';
import { IPN_SECRET, deliveriesOf, metric, paymentIdOf, seedOrder, startIntake, type IntakeHarness } from './support/intake.js';
import { recordingPool } from './support/statements.js';

let h: IntakeHarness;
beforeAll(async () => {
  h = await startIntake();
});
afterAll(async () => {
  await h.close();
});

/** POSTs exact bytes with a signature computed over their parse (or the header given). */
async function post(raw: string, signature: string | null = signIpn(JSON.parse(raw), IPN_SECRET)) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (signature !== null) headers['x-nowpayments-sig'] = signature;
  const res = await fetch(h.webhook, { method: 'POST', headers, body: raw });
  return { status: res.status, body: (await res.json()) as { status?: string; message?: string } };
}

async function payment(paymentId: string) {
  const { rows } = await h.t.db.pool.query<{ state: string; version: number; state_value: unknown; np: Record<string, unknown>; state_entered_at: Date }>(
    `SELECT state, version, state_value, snapshot -> 'context' -> 'np' AS np, state_entered_at FROM payments WHERE payment_id = $1`,
    [paymentId],
  );
  return rows[0] ?? null;
}

const count = async (sql: string, params: unknown[] = []) => Number((await h.t.db.pool.query<{ n: string }>(sql, params)).rows[0]!.n);

describe('IPN door: what is refused', () => {
  it('no signature or a bad one: 401, nothing stored or changed, and counted by reason', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    const missingBefore = await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="missing_signature"');
    const badBefore = await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="bad_signature"');

    expect((await h.np.sendIpn(p, { signature: null })).status).toBe(401);
    expect((await h.np.sendIpn(p, { secret: 'not-our-secret' })).status).toBe(401);
    expect((await h.np.sendIpn(p, { tamper: (b) => void (b.actually_paid = 9999) })).status).toBe(401);
    // A legacy-form signature over a nested body does not cover the nested fields: refused.
    expect((await h.np.sendIpn(p, { form: 'legacy' })).status).toBe(401);

    expect(await payment(paymentIdOf(p))).toBeNull();
    expect(await count('SELECT count(*) AS n FROM payment_journal WHERE payment_id = $1', [paymentIdOf(p)])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM ipn_deliveries WHERE payment_id = $1', [paymentIdOf(p)])).toBe(0);
    expect(await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="missing_signature"')).toBe(missingBefore + 1);
    expect(await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="bad_signature"')).toBe(badBefore + 3);
  });

  it('malformed JSON: 400; a JSON body that is not an object: 400', async () => {
    const before = await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="malformed_json"');
    const sig = 'a'.repeat(128);
    expect(await post('{"payment_id": 1, "payment_status": "finished"', sig)).toMatchObject({ status: 400, body: { message: 'body is not valid JSON' } });
    expect(await post('', sig)).toMatchObject({ status: 400 });
    expect(await post('[1,2]', sig)).toMatchObject({ status: 400, body: { message: 'body must be a JSON object' } });
    expect(await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="malformed_json"')).toBe(before + 2);
  });

  it('an oversized body: 413 before it is parsed, counted', async () => {
    const before = await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="too_large"');
    const body = JSON.stringify({ payment_id: 1, payment_status: 'finished', padding: 'x'.repeat(70 * 1024) });
    expect((await post(body)).status).toBe(413);
    expect(await metric(h.t.url, 'telepay_ipn_rejected_total', 'reason="too_large"')).toBe(before + 1);
  });
});

describe('IPN door: verified bodies', () => {
  it('stores the body as received, then applies it; the same bytes again are one delivery and no second transition', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    const first = await h.np.sendIpn(p);
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ status: 'applied' });
    const again = await h.np.sendIpn(p); // identical bytes: a NowPayments retry
    expect(JSON.parse(again.body)).toMatchObject({ status: 'duplicate' });

    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([
      expect.objectContaining({ status: 'applied', event_type: 'np.finished', applied_version: 2, problem: null }),
    ]);
    const { rows } = await h.t.db.pool.query('SELECT raw_body, body FROM ipn_deliveries WHERE payment_id = $1', [paymentIdOf(p)]);
    expect(rows[0].raw_body).toBe(JSON.stringify(h.np.ipns.at(-1)!.body)); // exactly the bytes sent
    expect(rows[0].body).toMatchObject({ payment_id: p.payment_id, fee: { currency: 'usdttrc20' } });
    // Routing ran inside the same transaction: the IPN's answer already finds the payment routed.
    expect(await journalOf(h.t.db, paymentIdOf(p))).toEqual([
      { seq: 1, event_type: 'np.finished', source: 'ipn' },
      { seq: 2, event_type: 'route.done', source: 'actor:route' },
    ]);
    expect((await payment(paymentIdOf(p)))?.state).toBe('routed');
  });

  it('a re-send of bytes this process applied is answered without the database: duplicate, even while the deliveries table is locked', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'confirming' });
    expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'applied' });
    // Any statement on ipn_deliveries would now wait for this lock; the answer must not.
    const holder = await h.t.db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE ipn_deliveries IN ACCESS EXCLUSIVE MODE');
      const again = await fetch(h.webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-nowpayments-sig': h.np.ipns.at(-1)!.signature! },
        body: JSON.stringify(h.np.ipns.at(-1)!.body),
        signal: AbortSignal.timeout(10_000),
      });
      expect(await again.json()).toMatchObject({ status: 'duplicate' });
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([expect.objectContaining({ status: 'applied' })]);
  });

  it('a progress status is stored and applied in one statement: the delivery row rides in the statement that writes the payment and its journal', async () => {
    // Every statement the service sends, by name, whether on the pool or on a client taken from it.
    const { pool: counting, sent } = recordingPool(h.t.db.pool);
    const service = () => createIpnService({ pool: counting, engine: createEngine({ pool: counting }), log: h.t.service.log });
    const ipn = service();
    const receive = (s: typeof ipn, p: FakePayment) => {
      const raw = JSON.stringify(p);
      return s.receive(Buffer.from(raw), JSON.parse(raw));
    };
    const { orderId } = await seedOrder(h);
    const waiting = h.np.pay(orderId, { status: 'waiting' });
    expect(await receive(ipn, waiting)).toMatchObject({ status: 'applied', version: 1 });
    expect(sent).toEqual(['payment-insert-if-absent+ipn-delivery-applied']);
    sent.length = 0;
    const confirming = h.np.pay(orderId, { status: 'confirming', paymentId: waiting.payment_id });
    expect(await receive(ipn, confirming)).toMatchObject({ status: 'applied', version: 2 });
    expect(sent).toEqual(['payment-update-if-version+ipn-delivery-applied']);
    const id = paymentIdOf(waiting);
    expect(await deliveriesOf(h.t.db, id)).toEqual([
      expect.objectContaining({ status: 'applied', event_type: 'np.waiting', applied_version: 1 }),
      expect.objectContaining({ status: 'applied', event_type: 'np.confirming', applied_version: 2 }),
    ]);
    expect((await journalOf(h.t.db, id)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming']);

    // The same bytes at a process that remembers nothing: one statement. Its guessed insert writes nothing
    // and answers the payment it found (on which the event changes nothing) and the stored delivery of
    // these bytes; no delivery insert is tried (nothing written, no sequence value used).
    sent.length = 0;
    expect(await receive(service(), confirming)).toMatchObject({ status: 'duplicate' });
    expect(sent).toEqual(['payment-insert-if-absent+ipn-delivery-applied']);
    expect(await deliveriesOf(h.t.db, id)).toHaveLength(2);
    // A stale status in new bytes there (NowPayments re-sends "waiting" with a later updated_at): the lost
    // write found no delivery of these bytes, so they are stored as a duplicate at once, no lookup first.
    sent.length = 0;
    const again = { ...waiting, updated_at: new Date(Date.parse(waiting.updated_at) + 60_000).toISOString() };
    expect(await receive(service(), again)).toMatchObject({ status: 'duplicate' });
    expect(sent).toEqual(['payment-insert-if-absent+ipn-delivery-applied', 'ipn-delivery-insert-outcome']);
    expect(await deliveriesOf(h.t.db, id)).toEqual([
      expect.objectContaining({ status: 'applied', event_type: 'np.waiting' }),
      expect.objectContaining({ status: 'applied', event_type: 'np.confirming' }),
      expect.objectContaining({ status: 'duplicate', event_type: 'np.waiting' }),
    ]);
    expect((await journalOf(h.t.db, id)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming']);
  });

  it('ids and amounts as numbers or as strings give the same exact facts (no floats)', async () => {
    const { orderId } = await seedOrder(h, { priceUsd: '0.3' });
    const waiting = h.np.pay(orderId, { status: 'waiting', payAmount: 0.3 });
    expect(JSON.parse((await h.np.sendIpn(waiting)).body)).toMatchObject({ status: 'applied' }); // numbers
    // 0.1 + 0.2 as doubles is 0.30000000000000004; as exact decimals it is 0.3 and pays 0.3 in full.
    const finished = h.np.pay(orderId, { status: 'finished', actuallyPaid: '0.30', outcomeAmount: '0.29' });
    expect(JSON.parse((await h.np.sendIpn(finished, { asStrings: true })).body)).toMatchObject({ status: 'applied' });
    const row = await payment(paymentIdOf(finished));
    expect(row?.state).toBe('routed');
    expect(row?.np).toMatchObject({ status: 'finished', payAmount: '0.3', actuallyPaid: '0.3', outcomeAmount: '0.29', invoiceId: String(finished.invoice_id), orderId });
  });

  it('a verified body with an unknown status is stored, parked with a readable reason, and answered 200', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'waiting', fields: { payment_status: 'paid_by_magic' } });
    const res = await h.np.sendIpn(p);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ status: 'parked', message: 'kept for review: payment_status: unknown payment status "paid_by_magic"' });
    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([
      expect.objectContaining({ status: 'parked', problem: 'payment_status: unknown payment status "paid_by_magic"' }),
    ]);
    expect(await payment(paymentIdOf(p))).toBeNull();
    // The same body again is still parked, and still one row.
    expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'parked' });
    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toHaveLength(1);
  });

  it('an unusable payment_id is parked too, with the body kept for an operator', async () => {
    const raw = JSON.stringify({ payment_id: 'not-a-number', payment_status: 'finished', order_id: 'x', actually_paid: 1 });
    const res = await post(raw);
    expect(res).toMatchObject({ status: 200, body: { status: 'parked' } });
    const { rows } = await h.t.db.pool.query('SELECT status, payment_id, problem, raw_body FROM ipn_deliveries WHERE raw_body = $1', [raw]);
    expect(rows).toEqual([{ status: 'parked', payment_id: null, problem: expect.stringMatching(/^payment_id: /), raw_body: raw }]);
  });

  it('50 concurrent identical IPNs: one delivery row, one transition (finished + its routing), one job per effect', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    const answers = await Promise.all(Array.from({ length: 50 }, () => h.np.sendIpn(p)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const statuses = answers.map((a) => (JSON.parse(a.body) as { status: string }).status);
    expect(statuses.filter((s) => s === 'applied')).toHaveLength(1);
    expect(statuses.filter((s) => s === 'duplicate')).toHaveLength(49);
    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([expect.objectContaining({ status: 'applied', applied_version: 2 })]);
    expect(await journalOf(h.t.db, paymentIdOf(p))).toHaveLength(2);
    expect(await payment(paymentIdOf(p))).toMatchObject({ state: 'routed', version: 2 });
    expect(await jobsFor(h.t.db, queueOf('invite'), paymentIdOf(p))).toHaveLength(1);
    expect(await jobsFor(h.t.db, queueOf('split'), paymentIdOf(p))).toHaveLength(1);
    expect(await jobsFor(h.t.db, queueOf('route'), paymentIdOf(p))).toHaveLength(0);
  });

  it('a stale "confirming" after "finished" is answered 200 and ignored', async () => {
    const { orderId } = await seedOrder(h);
    const confirming = h.np.pay(orderId, { status: 'confirming' });
    const finished = h.np.pay(orderId, { status: 'finished' });
    await h.np.sendIpn(finished);
    const before = await payment(paymentIdOf(finished));
    const late = await h.np.sendIpn(confirming);
    expect(late.status).toBe(200);
    expect(JSON.parse(late.body)).toMatchObject({ status: 'duplicate' });
    expect(await payment(paymentIdOf(finished))).toEqual(before);
    expect(await journalOf(h.t.db, paymentIdOf(finished))).toHaveLength(2);
    expect((await deliveriesOf(h.t.db, paymentIdOf(finished))).map((d) => d.status)).toEqual(['applied', 'duplicate']);
  });

  it('an IPN for an order and payment we never saw creates the payment and processes it (no 500)', async () => {
    // The replaced system answered 500 forever to this: its handler could only UPDATE an existing row.
    const raw = JSON.stringify({
      payment_id: 6_100_000_001, invoice_id: 6_200_000_001, payment_status: 'finished', order_id: 'order-from-nowhere',
      price_amount: 10, price_currency: 'usd', pay_amount: 10.5, actually_paid: 10.5, pay_currency: 'usdttrc20',
      fee: { currency: 'usdttrc20', depositFee: 0.1, serviceFee: 0, withdrawalFee: 0 }, payment_extra_ids: [],
    });
    expect(await post(raw)).toMatchObject({ status: 200, body: { status: 'applied' } });
    // Routing (inside the same transaction) decides what an unknown order means: a person looks at it.
    expect(await payment('6100000001')).toMatchObject({ state: 'needs_review', version: 2 });
    const { rows } = await h.t.db.pool.query('SELECT order_id FROM payments WHERE payment_id = $1', ['6100000001']);
    expect(rows[0].order_id).toBe('order-from-nowhere');
  });

  it('a repeat deposit arrives as its own payment, keeping parent_payment_id for the routing decision', async () => {
    const { orderId } = await seedOrder(h);
    const first = h.np.pay(orderId, { status: 'finished' });
    await h.np.sendIpn(first);
    const child = h.np.pay(orderId, { status: 'finished', child: true });
    expect(JSON.parse((await h.np.sendIpn(child, { asStrings: true })).body)).toMatchObject({ status: 'applied' });
    expect((await payment(paymentIdOf(child)))?.np).toMatchObject({ parentPaymentId: paymentIdOf(first), orderId });
  });
});

describe('NowPayments statuses in any order', () => {
  // mulberry32: a seeded shuffle, so a failure names the seed that reproduces it.
  const rng = (seed: number) => () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const shuffle = <T>(items: T[], seed: number): T[] => {
    const next = rng(seed);
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  };

  // Every status a successful payment can report, a short partial payment included; each snapshot is what
  // NowPayments would send at that moment.
  async function lifecycle(): Promise<FakePayment[]> {
    const { orderId } = await seedOrder(h);
    const steps: Array<[PaymentStatus, string | undefined]> = [
      ['waiting', undefined], ['confirming', '5'], ['partially_paid', '5'], ['confirming', '12.5'], ['confirmed', '12.5'], ['sending', '12.5'], ['finished', '12.5'],
    ];
    return steps.map(([status, paid]) => h.np.pay(orderId, { status, ...(paid ? { actuallyPaid: paid } : {}) }));
  }

  async function finalOf(paymentId: string) {
    const row = await payment(paymentId);
    return { state: row?.state, value: row?.state_value, status: row?.np.status, paid: row?.np.actuallyPaid };
  }

  it('shuffled (several seeds) ends in the same state as in order', async () => {
    const inOrder = await lifecycle();
    for (const ipn of inOrder) expect((await h.np.sendIpn(ipn)).status).toBe(200);
    const expected = await finalOf(paymentIdOf(inOrder[0]!));
    expect(expected).toMatchObject({ state: 'routed', status: 'finished', paid: '12.5' });

    for (const seed of [1, 7, 42, 1337, 20240601]) {
      const ipns = await lifecycle();
      for (const ipn of shuffle(ipns, seed)) expect((await h.np.sendIpn(ipn)).status, `seed ${seed}`).toBe(200);
      expect(await finalOf(paymentIdOf(ipns[0]!)), `seed ${seed}`).toEqual(expected);
      // Routed once, and the invite asked for once, however the statuses arrived.
      expect((await journalOf(h.t.db, paymentIdOf(ipns[0]!))).filter((j) => j.event_type === 'route.done'), `seed ${seed}`).toHaveLength(1);
      expect(await jobsFor(h.t.db, queueOf('invite'), paymentIdOf(ipns[0]!)), `seed ${seed}`).toHaveLength(1);
    }
  });
});

describe('an IPN retried after a failure', () => {
  async function crashTwice(paymentId: string) {
    // Applying fails twice, inside applyEvent's transaction, as a database error would: once in the
    // one-transaction path, once more when the IPN, stored on its own, is applied. A sequence is not
    // rolled back with the failed transaction, so the next attempt goes through.
    await h.t.db.pool.query(`
      CREATE SEQUENCE IF NOT EXISTS ipn_crash_${paymentId};
      CREATE OR REPLACE FUNCTION ipn_crash_${paymentId}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payment_id = '${paymentId}' AND nextval('ipn_crash_${paymentId}') <= 2 THEN
          RAISE EXCEPTION 'database hiccup while applying';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER ipn_crash_${paymentId} BEFORE INSERT ON payment_journal FOR EACH ROW EXECUTE FUNCTION ipn_crash_${paymentId}();`);
    return () => h.t.db.pool.query(`DROP TRIGGER ipn_crash_${paymentId} ON payment_journal`);
  }

  it('is stored on the failure (answered 200, kept), and the retry is applied exactly once', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    const drop = await crashTwice(paymentIdOf(p));
    try {
      const first = await h.np.sendIpn(p);
      expect(first.status).toBe(200); // we hold the body; a 5xx would only make NowPayments retry forever
      expect(JSON.parse(first.body)).toMatchObject({ status: 'stored' });
      expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([
        expect.objectContaining({ status: 'failed', problem: expect.stringContaining('database hiccup while applying') }),
      ]);
      expect(await payment(paymentIdOf(p))).toBeNull(); // nothing half-applied

      // NowPayments (or the dashboard) re-sends the same IPN.
      expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'applied' });
      expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'duplicate' });
      // And reconciliation finds nothing left to do for it.
      const ipn = createIpnService({ pool: h.t.db.pool, engine: h.t.service.engine, log: h.t.service.log });
      await reconcileOnce({ pool: h.t.db.pool, engine: h.t.service.engine, ipn, log: h.t.service.log, olderThanMs: 3_600_000, deliveryGraceMs: 0 });
    } finally {
      await drop();
    }
    expect(await journalOf(h.t.db, paymentIdOf(p))).toEqual([
      { seq: 1, event_type: 'np.finished', source: 'ipn' },
      { seq: 2, event_type: 'route.done', source: 'actor:route' },
    ]);
    expect(await deliveriesOf(h.t.db, paymentIdOf(p))).toEqual([expect.objectContaining({ status: 'applied', applied_version: 2 })]);
    expect(await jobsFor(h.t.db, queueOf('invite'), paymentIdOf(p))).toHaveLength(1);
  });

  it('only a body we could not even store is answered 5xx (so NowPayments retries it), and nothing was applied', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    await h.t.db.pool.query(`
      CREATE FUNCTION refuse_store() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.payment_id = '${paymentIdOf(p)}' THEN RAISE EXCEPTION 'disk full'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_store BEFORE INSERT ON ipn_deliveries FOR EACH ROW EXECUTE FUNCTION refuse_store();`);
    try {
      const res = await h.np.sendIpn(p);
      expect(res.status).toBe(500);
      expect(res.body).not.toContain('disk full'); // internals stay in the log
    } finally {
      await h.t.db.pool.query('DROP TRIGGER refuse_store ON ipn_deliveries');
    }
    expect(await payment(paymentIdOf(p))).toBeNull();
    // NowPayments' retry then goes through.
    expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'applied' });
  });

  it('without a re-send, reconciliation applies the stored delivery, once', async () => {
    const { orderId } = await seedOrder(h);
    const p = h.np.pay(orderId, { status: 'finished' });
    const drop = await crashTwice(paymentIdOf(p));
    try {
      expect(JSON.parse((await h.np.sendIpn(p)).body)).toMatchObject({ status: 'stored' });
    } finally {
      await drop();
    }
    const ipn = createIpnService({ pool: h.t.db.pool, engine: h.t.service.engine, log: h.t.service.log });
    const deps = { pool: h.t.db.pool, engine: h.t.service.engine, ipn, log: h.t.service.log, olderThanMs: 3_600_000, deliveryGraceMs: 0 };
    expect(await reconcileOnce(deps)).toMatchObject({ applied: 1 });
    expect(await reconcileOnce(deps)).toMatchObject({ deliveries: 0, applied: 0 });
    expect(await journalOf(h.t.db, paymentIdOf(p))).toEqual([
      { seq: 1, event_type: 'np.finished', source: 'reconcile' },
      { seq: 2, event_type: 'route.done', source: 'actor:route' },
    ]);
    expect((await payment(paymentIdOf(p)))?.state).toBe('routed');
  });
});

describe('admin surface of intake', () => {
  it('lists parked deliveries and replays a stored one through the same path (operator resume)', async () => {
    const token = 'intake-admin-token-0123456789abcdef';
    const secured = await startIntake({ ADMIN_TOKEN: token });
    const auth = { authorization: `Bearer ${token}` };
    try {
      expect((await fetch(`${secured.t.url}/admin/ipn-deliveries?status=parked`)).status).toBe(401);
      const { orderId } = await seedOrder(secured);
      const odd = secured.np.pay(orderId, { status: 'waiting', fields: { payment_status: 'on_hold' } });
      await secured.np.sendIpn(odd);
      const list = (await (await fetch(`${secured.t.url}/admin/ipn-deliveries?status=parked`, { headers: auth })).json()) as { deliveries: Array<{ id: string; problem: string }> };
      expect(list.deliveries).toEqual([expect.objectContaining({ problem: 'payment_status: unknown payment status "on_hold"' })]);
      const id = list.deliveries[0]!.id;
      // Still not understood: replaying keeps it parked (and says why) instead of failing.
      const again = await fetch(`${secured.t.url}/admin/ipn-deliveries/${id}/replay`, { method: 'POST', headers: auth });
      expect(await again.json()).toMatchObject({ status: 'parked', problem: 'payment_status: unknown payment status "on_hold"' });

      // A delivery stored but never applied (as a failed apply leaves it) is resumed by a replay, once.
      const fine = secured.np.pay(orderId, { status: 'finished', paymentId: odd.payment_id });
      const stored = await secured.t.db.pool.query<{ id: string }>(
        `INSERT INTO ipn_deliveries (body_hash, raw_body, body, payment_id, status) VALUES ('test-' || $1::text, $2::text, $2::text::jsonb, $1::text, 'failed') RETURNING id`,
        [paymentIdOf(fine), JSON.stringify(fine)],
      );
      const replay = await fetch(`${secured.t.url}/admin/ipn-deliveries/${stored.rows[0]!.id}/replay`, { method: 'POST', headers: auth });
      expect(await replay.json()).toMatchObject({ status: 'applied', paymentId: paymentIdOf(fine) });
      expect(await journalOf(secured.t.db, paymentIdOf(fine))).toEqual([
        { seq: 1, event_type: 'np.finished', source: 'operator:replay' },
        { seq: 2, event_type: 'route.done', source: 'actor:route' },
      ]);
      const twice = await fetch(`${secured.t.url}/admin/ipn-deliveries/${stored.rows[0]!.id}/replay`, { method: 'POST', headers: auth });
      expect(await twice.json()).toMatchObject({ status: 'duplicate' });
      expect((await fetch(`${secured.t.url}/admin/ipn-deliveries/999999999/replay`, { method: 'POST', headers: auth })).status).toBe(404);
    } finally {
      await secured.close();
    }
  });

  it('/metrics requires the admin bearer token when ADMIN_TOKEN is set', async () => {
    const token = 'metrics-admin-token-0123456789abcdef';
    const secured = await startIntake({ ADMIN_TOKEN: token });
    try {
      expect((await fetch(`${secured.t.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${secured.t.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789abcdef' } })).status).toBe(401);
      const ok = await fetch(`${secured.t.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('telepay_ipn_rejected_total');
    } finally {
      await secured.close();
    }
  });
});
