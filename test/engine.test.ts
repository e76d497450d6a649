import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EffectActor } from '../src/actors/effect-actor.js';
import { PermanentFailure } from '../src/domain/errors.js';
import { startActors, startDeadLetterWorker } from '../src/actors/runner.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { effectQueueOptions, queueOf } from '../src/persistence/queues.js';
import { loadConfig } from '../src/config.js';
import { jobsFor, journalOf, paymentRow, startTestEngine, type TestEngine } from './support/engine.js';
import { recordingPool } from './support/statements.js';

const facts = { orderId: 'order-1', payAmount: '0.05', actuallyPaid: '0.05', payCurrency: 'eth', priceAmount: '100', priceCurrency: 'usd' };
const finished: PaymentEvent = { type: 'np.finished', facts };
const routeDone = (strategy: 'instant' | 'threshold'): PaymentEvent => ({
  type: 'route.done',
  route: { orderId: 'order-1', channelId: '-1001', planId: 'plan-1', buyerTelegramId: '42', strategy, ownerShareUsd: '90', feeUsd: '10' },
});
let seq = 0;
const newPaymentId = () => `${Date.now()}${++seq}`;

let t: TestEngine;
beforeAll(async () => {
  t = await startTestEngine();
});
afterAll(async () => {
  await t.close();
});

describe('applyEvent', () => {
  it('50 concurrent deliveries of the same event: one journal row, one version bump, one job per effect', async () => {
    const paymentId = newPaymentId();
    const results = await Promise.all(Array.from({ length: 50 }, () => t.engine.applyEvent(paymentId, finished, { source: 'ipn' })));
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'duplicate')).toHaveLength(49);
    expect(await journalOf(t.db, paymentId)).toEqual([{ seq: 1, event_type: 'np.finished', source: 'ipn' }]);
    expect(await paymentRow(t.db, paymentId)).toMatchObject({ state: 'confirmed', version: 1 });
    expect(await jobsFor(t.db, queueOf('route'), paymentId)).toHaveLength(1);
  });

  it('the first event for an unknown payment creates its machine: no row is needed beforehand', async () => {
    const paymentId = newPaymentId();
    expect(await paymentRow(t.db, paymentId)).toBeNull();
    const result = await t.engine.applyEvent(paymentId, { type: 'np.waiting', facts: { orderId: 'order-9' } }, { source: 'ipn' });
    expect(result).toMatchObject({ outcome: 'applied', version: 1, state: 'received' });
    const { rows } = await t.db.pool.query('SELECT order_id FROM payments WHERE payment_id = $1', [paymentId]);
    expect(rows[0].order_id).toBe('order-9');
  });

  it('an event that does not start a payment leaves no row behind', async () => {
    const paymentId = newPaymentId();
    const result = await t.engine.applyEvent(paymentId, { type: 'invite.sent', inviteLink: 'l' }, { source: 'actor:invite' });
    expect(result.outcome).toBe('duplicate');
    expect(await paymentRow(t.db, paymentId)).toBeNull();
  });

  it('a late, stale status never regresses the payment and writes nothing', async () => {
    const paymentId = newPaymentId();
    await t.engine.applyEvent(paymentId, finished, { source: 'ipn' });
    const before = await paymentRow(t.db, paymentId);
    for (const status of ['confirming', 'waiting', 'sending', 'expired'] as const) {
      const result = await t.engine.applyEvent(paymentId, { type: `np.${status}`, facts } as PaymentEvent, { source: 'ipn' });
      expect(result.outcome).toBe('duplicate');
    }
    expect(await paymentRow(t.db, paymentId)).toEqual(before);
    expect(await journalOf(t.db, paymentId)).toHaveLength(1);
  });

  it('an error while enqueueing rolls back the state change too', async () => {
    const paymentId = newPaymentId();
    await t.engine.applyEvent(paymentId, finished, { source: 'ipn' });
    await t.boss.deleteQueue(queueOf('invite'));
    try {
      await expect(t.engine.applyEvent(paymentId, routeDone('instant'), { source: 'actor:route' })).rejects.toThrow();
      expect(await paymentRow(t.db, paymentId)).toMatchObject({ state: 'confirmed', version: 1 });
      expect(await journalOf(t.db, paymentId)).toHaveLength(1);
      expect(await jobsFor(t.db, queueOf('split'), paymentId)).toHaveLength(0);
    } finally {
      await t.boss.createQueue(queueOf('invite'), effectQueueOptions(loadConfig({})));
    }
    // Once the queue is back the same event applies normally: nothing was half-written.
    expect(await t.engine.applyEvent(paymentId, routeDone('instant'), { source: 'actor:route' })).toMatchObject({ outcome: 'applied', version: 2 });
  });

  it('a deterministic job id refuses a second job for the same effect attempt, even after completion', async () => {
    const paymentId = newPaymentId();
    await t.engine.applyEvent(paymentId, finished, { source: 'ipn' });
    const again = await t.boss.send(queueOf('route'), { paymentId, effect: 'route', attempt: 0 }, { id: effectJobId(paymentId, 'route', 0) });
    expect(again).toBeNull();
  });
});

describe('applyEvent across processes', () => {
  it('two engines (two processes, each remembering what it last wrote) never lose or repeat an event', async () => {
    const a = t.engine;
    const b = createEngine({ pool: t.db.pool });
    const paymentId = newPaymentId();
    const np = (status: string): PaymentEvent => ({ type: `np.${status}`, facts }) as PaymentEvent;

    expect(await a.applyEvent(paymentId, np('waiting'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 1 });
    // b moves the payment on; a's remembered copy (v1, received) is now behind.
    expect(await b.applyEvent(paymentId, np('confirming'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 2 });
    // On a's stale copy this event applies, so a tries v1 -> v2, loses the compare-and-set, re-reads, applies as v3.
    expect(await a.applyEvent(paymentId, np('confirmed'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 3 });
    expect(await b.applyEvent(paymentId, finished, { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 4, state: 'confirmed' });
    // On a's stale copy (received) route.done does nothing; that proves nothing, so a reads the row and applies it.
    expect(await a.applyEvent(paymentId, routeDone('threshold'), { source: 'actor:route' })).toMatchObject({ outcome: 'applied', version: 5, state: 'routed' });
    // And a replay through either engine is a duplicate.
    expect(await b.applyEvent(paymentId, routeDone('threshold'), { source: 'actor:route' })).toMatchObject({ outcome: 'duplicate', version: 5 });
    expect((await journalOf(t.db, paymentId)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming', 'np.confirmed', 'np.finished', 'route.done']);
  });

  it("a payment's first event costs one statement (no read before the insert); a payment that exists after all is decided on as the lost insert saw it, without a read", async () => {
    const { pool: counting, sent: statements } = recordingPool(t.db.pool);
    const fresh = createEngine({ pool: counting });
    const np = (status: string): PaymentEvent => ({ type: `np.${status}`, facts }) as PaymentEvent;
    const paymentId = newPaymentId();
    expect(await fresh.applyEvent(paymentId, np('waiting'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 1 });
    expect(statements).toEqual(['payment-insert-if-absent']);
    // Another process moves it on; a third, remembering nothing, guesses "new", writes nothing, and decides
    // again on the row its insert found (no read of its own).
    expect(await t.engine.applyEvent(paymentId, np('confirming'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 2 });
    statements.length = 0;
    const third = createEngine({ pool: counting });
    expect(await third.applyEvent(paymentId, np('confirmed'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 3 });
    expect(statements).toEqual(['payment-insert-if-absent', 'payment-update-if-version']);
    // A stale status for it, in yet another process: one statement, nothing written, the journal untouched.
    statements.length = 0;
    expect(await createEngine({ pool: counting }).applyEvent(paymentId, np('waiting'), { source: 'ipn' })).toMatchObject({ outcome: 'duplicate', version: 3 });
    expect(statements).toEqual(['payment-insert-if-absent']);
    // A copy two versions behind (a process that last wrote v1): its update loses and sees v3; one more statement writes v4.
    const behind = createEngine({ pool: counting });
    const other = newPaymentId();
    expect(await behind.applyEvent(other, np('waiting'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 1 });
    expect(await t.engine.applyEvent(other, np('confirming'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 2 });
    expect(await t.engine.applyEvent(other, np('confirmed'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 3 });
    statements.length = 0;
    expect(await behind.applyEvent(other, np('sending'), { source: 'ipn' })).toMatchObject({ outcome: 'applied', version: 4 });
    expect(statements).toEqual(['payment-update-if-version', 'payment-update-if-version']);
    expect((await journalOf(t.db, other)).map((j) => j.seq)).toEqual([1, 2, 3, 4]);
    expect((await journalOf(t.db, paymentId)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming', 'np.confirmed']);
  });

  it('a write that lost to a commit it waited for reads the row: its own view of the payment predates that commit', async () => {
    const np = (status: string): PaymentEvent => ({ type: `np.${status}`, facts }) as PaymentEvent;
    const other = createEngine({ pool: t.db.pool });
    /** Runs `event` through `other` in a transaction held open until `race` (this engine's write) waits for its lock. */
    const beatenBy = async (paymentId: string, event: PaymentEvent, race: () => Promise<unknown>) => {
      const holder = await t.db.pool.connect();
      try {
        await holder.query('BEGIN');
        expect(await other.applyEvent(paymentId, event, { source: 'ipn', tx: holder })).toMatchObject({ outcome: 'applied' });
        const raced = race();
        await vi.waitFor(
          async () => {
            const { rows } = await t.db.pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%payments%' AND pid <> $1`, [(holder as unknown as { processID: number }).processID]);
            expect(rows).not.toHaveLength(0);
          },
          { timeout: 10_000, interval: 10 },
        );
        await holder.query('COMMIT');
        return await raced;
      } finally {
        holder.release();
      }
    };
    const { pool: counting, sent: statements } = recordingPool(t.db.pool);
    // An insert that waited for another process's insert of the same payment: nothing of it in its view.
    const created = newPaymentId();
    const fresh = createEngine({ pool: counting });
    expect(await beatenBy(created, np('waiting'), () => fresh.applyEvent(created, np('confirming'), { source: 'ipn' }))).toMatchObject({ outcome: 'applied', version: 2 });
    expect(statements).toEqual(['payment-insert-if-absent', 'payment-read', 'payment-update-if-version']);
    // An update that waited for another process's update: its view is the version it tried (not newer), so it reads.
    statements.length = 0;
    expect(await beatenBy(created, np('confirmed'), () => fresh.applyEvent(created, np('sending'), { source: 'ipn' }))).toMatchObject({ outcome: 'applied', version: 4 });
    expect(statements).toEqual(['payment-update-if-version', 'payment-read', 'payment-update-if-version']);
    expect((await journalOf(t.db, created)).map((j) => j.event_type)).toEqual(['np.waiting', 'np.confirming', 'np.confirmed', 'np.sending']);
  });

  it('two engines applying the same events concurrently: each event once, versions without gaps', async () => {
    const engines = [t.engine, createEngine({ pool: t.db.pool })];
    const paymentId = newPaymentId();
    const life = ['waiting', 'confirming', 'confirmed', 'sending'].map((s) => ({ type: `np.${s}`, facts }) as PaymentEvent);
    for (const event of [...life, finished, routeDone('instant')]) {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => engines[i % 2]!.applyEvent(paymentId, event, { source: 'ipn' })));
      expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    }
    expect((await journalOf(t.db, paymentId)).map((j) => j.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await jobsFor(t.db, queueOf('invite'), paymentId)).toHaveLength(1);
  });
});

describe('effect jobs', () => {
  it('a job whose effect succeeded but whose worker died before applying the result is retried, and the result is applied once', async () => {
    const paymentId = newPaymentId();
    let performed = 0;
    const route: EffectActor = {
      effect: 'route',
      async perform(job) {
        if (job.paymentId === paymentId) performed++;
        return routeDone('threshold');
      },
    };
    // The "crash": applying the result fails twice (the transaction that records and applies it, then
    // the apply after the result was recorded on its own), as if the process died between performing the
    // effect and committing its outcome. A sequence is not rolled back with the failed transaction, so
    // the job's retry goes through.
    await t.db.pool.query(`
      CREATE SEQUENCE crash_counter;
      CREATE FUNCTION crash_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.event_type = 'route.done' AND NEW.payment_id = '${paymentId}' AND nextval('crash_counter') <= 2 THEN
          RAISE EXCEPTION 'worker died before applying the result';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER crash_once BEFORE INSERT ON payment_journal FOR EACH ROW EXECUTE FUNCTION crash_once();`);
    try {
      await startActors({ boss: t.boss, pool: t.db.pool, engine: t.engine, log: t.log, config: { WORKER_BATCH_SIZE: 5, WORKER_CONCURRENCY: 1 } }, [route]);
      await t.engine.applyEvent(paymentId, finished, { source: 'ipn' });
      await vi.waitFor(async () => expect((await jobsFor(t.db, queueOf('route'), paymentId))[0]?.state).toBe('completed'), { timeout: 25_000, interval: 50 });
      const { rows } = await t.db.pool.query(`SELECT retry_count FROM pgboss.job WHERE name = $1 AND data->>'paymentId' = $2`, [queueOf('route'), paymentId]);
      expect(rows[0].retry_count).toBeGreaterThanOrEqual(1); // it really was retried
      expect(performed).toBe(1); // the retry replayed the recorded result instead of routing again
      expect((await journalOf(t.db, paymentId)).map((j) => j.event_type)).toEqual(['np.finished', 'route.done']);
      expect((await paymentRow(t.db, paymentId))?.state).toBe('routed');
    } finally {
      await t.boss.offWork(queueOf('route'));
      await t.db.pool.query('DROP TRIGGER crash_once ON payment_journal');
    }
  });

  it('a job that cannot succeed goes to the dead-letter queue and parks the payment for review', async () => {
    const paymentId = newPaymentId();
    const deps = { boss: t.boss, pool: t.db.pool, engine: t.engine, log: t.log, config: { WORKER_BATCH_SIZE: 5, WORKER_CONCURRENCY: 1 } };
    const route: EffectActor = {
      effect: 'route',
      async perform() {
        throw new PermanentFailure('channel -1001 is not configured');
      },
    };
    await startActors(deps, [route]);
    await startDeadLetterWorker(deps);
    try {
      await t.engine.applyEvent(paymentId, finished, { source: 'ipn' });
      await vi.waitFor(async () => expect((await paymentRow(t.db, paymentId))?.state).toBe('needs_review'), { timeout: 25_000, interval: 50 });
      expect((await paymentRow(t.db, paymentId))?.review_reason).toBe('payment: route gave up after its retries: channel -1001 is not configured');
      expect((await journalOf(t.db, paymentId)).at(-1)).toMatchObject({ event_type: 'effect.exhausted', source: 'dead-letter' });
    } finally {
      await t.boss.offWork(queueOf('route'));
    }
  });
});
