import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEagerRunner, type EagerRunner } from '../src/actors/eager-jobs.js';
import type { EffectActor } from '../src/actors/effect-actor.js';
import { PermanentFailure } from '../src/domain/errors.js';
import type { EffectName, NpFacts, PaymentEvent } from '../src/machines/payment.events.js';
import { createEngine, type EagerJobs, type Engine } from '../src/persistence/apply-event.js';
import { effectJobId } from '../src/persistence/job-id.js';
import { DEAD_LETTER_QUEUE, ensureQueues, queueOf } from '../src/persistence/queues.js';
import { paymentRow, startTestEngine, type TestEngine } from './support/engine.js';

// Eager dispatch (src/actors/eager-jobs.ts): a job the engine's own transaction creates is inserted
// claimed and run by this process right after the commit, with no fetch; it is completed in the commit
// that records its result; a failure, a shutdown or a crash hands it back to pg-boss. Every effect is a
// job here (no inline effects): np.finished asks for the route job.

let t: TestEngine;
let seq = 0;
const newPaymentId = () => `${Date.now()}${String(++seq).padStart(3, '0')}`;
const facts = (orderId: string): NpFacts => ({ orderId, payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' });
const finished = (engine: Engine, paymentId: string) => engine.applyEvent(paymentId, { type: 'np.finished', facts: facts(`ord_eager_${seq}`) }, { source: 'ipn' });

async function jobOf(paymentId: string, effect: EffectName = 'route') {
  const { rows } = await t.db.pool.query<{ state: string; retry_count: number; started_on: Date | null; heartbeat_on: Date | null; completed_on: Date | null }>(
    'SELECT state, retry_count, started_on, heartbeat_on, completed_on FROM pgboss.job WHERE name = $1 AND id = $2',
    [queueOf(effect), effectJobId(paymentId, effect, 0)],
  );
  return rows[0];
}

/** A route actor that answers with `answer` (or throws it), counting its runs; `gate` holds it until opened. */
function routeActor(answer: () => PaymentEvent | Promise<PaymentEvent>) {
  const runs: string[] = [];
  const signals: AbortSignal[] = [];
  const actor: EffectActor = {
    effect: 'route',
    async perform(job, context) {
      runs.push(job.paymentId);
      signals.push(context.signal);
      return answer();
    },
  };
  return { actor, runs, signals };
}

const rejected: PaymentEvent = { type: 'route.rejected', reason: 'no such order (eager test)' };

function runnerWith(actor: EffectActor, limit = 8): { runner: EagerRunner; engine: Engine } {
  const runner = createEagerRunner({ limit, heartbeatMs: 10_000 });
  const engine = createEngine({ pool: t.db.pool, eager: runner });
  runner.start({ boss: t.boss, pool: t.db.pool, engine, log: t.log, config: { WORKER_BATCH_SIZE: 1, WORKER_CONCURRENCY: 1 } }, [actor]);
  return { runner, engine };
}

beforeAll(async () => {
  t = await startTestEngine();
  await ensureQueues(t.boss, { JOB_RETRY_LIMIT: 3, JOB_RETRY_DELAY: 1000, JOB_RETRY_DELAY_MAX: 1000, JOB_EXPIRE_AFTER: 300_000, PAYOUT_SETTLE_RETRY_LIMIT: 3 });
});
afterAll(async () => {
  await t.close();
});

describe('eager dispatch: the engine', () => {
  it('every slot taken is either run once (its job committed, claimed) or given back: 12 concurrent first IPNs of one payment', async () => {
    const taken: EffectName[] = [];
    const runs: string[] = [];
    let released = 0;
    const eager: EagerJobs = {
      take(effect) {
        taken.push(effect);
        return { run: (job) => runs.push(job.id), release: () => released++ };
      },
    };
    const engine = createEngine({ pool: t.db.pool, eager });
    const paymentId = newPaymentId();
    const results = await Promise.all(Array.from({ length: 12 }, () => finished(engine, paymentId)));
    expect(results.filter((r) => r.outcome === 'applied')).toHaveLength(1);
    // One writer won: its job runs here; every other attempt's slot (lost compare-and-set) came back.
    expect(runs).toEqual([effectJobId(paymentId, 'route', 0)]);
    expect(taken.length).toBe(runs.length + released);
    const job = await jobOf(paymentId);
    expect(job).toMatchObject({ state: 'active', retry_count: 0 });
    expect(job!.started_on).not.toBeNull();
    expect(job!.heartbeat_on).not.toBeNull();
  });

  it('a job that exists already (the same payment, effect and attempt) is not handed over again: its slot is given back', async () => {
    const paymentId = newPaymentId();
    const runs: string[] = [];
    let released = 0;
    const engine = createEngine({ pool: t.db.pool, eager: { take: () => ({ run: (job) => runs.push(job.id), release: () => released++ }) } });
    // A worker-bound job for the route step is queued first (by an engine without eager dispatch)...
    await finished(createEngine({ pool: t.db.pool }), paymentId);
    expect(await jobOf(paymentId)).toMatchObject({ state: 'created' });
    // ...then the payment is written again from scratch by an engine that would run it: the job id exists.
    await t.db.pool.query('DELETE FROM payment_journal WHERE payment_id = $1', [paymentId]);
    await t.db.pool.query('DELETE FROM payments WHERE payment_id = $1', [paymentId]);
    expect(await finished(engine, paymentId)).toMatchObject({ outcome: 'applied' });
    expect(runs).toEqual([]);
    expect(released).toBe(1);
    expect(await jobOf(paymentId)).toMatchObject({ state: 'created' });
  });

  it('no slot (none free, or no local runner): the job is queued for a worker, as without eager dispatch', async () => {
    const paymentId = newPaymentId();
    const engine = createEngine({ pool: t.db.pool, eager: { take: () => null } });
    await finished(engine, paymentId);
    expect(await jobOf(paymentId)).toMatchObject({ state: 'created', retry_count: 0, started_on: null });
  });
});

describe('eager dispatch: the runner', () => {
  it('runs the job right after the commit, with no worker at all, and completes it in the commit that records its result', async () => {
    const { actor, runs } = routeActor(() => rejected);
    const { runner, engine } = runnerWith(actor);
    const paymentId = newPaymentId();
    await finished(engine, paymentId);
    await runner.idle();
    expect(runs).toEqual([paymentId]);
    const job = await jobOf(paymentId);
    expect(job).toMatchObject({ state: 'completed', retry_count: 0 });
    const { rows } = await t.db.pool.query<{ recorded_at: Date; completed_on: Date }>(
      `SELECT r.recorded_at, j.completed_on FROM effect_results r, pgboss.job j
        WHERE r.payment_id = $1 AND r.effect = 'route' AND j.id = $2`,
      [paymentId, effectJobId(paymentId, 'route', 0)],
    );
    // One statement: the result and the completion share its transaction's clock.
    expect(rows[0]!.completed_on.getTime()).toBe(rows[0]!.recorded_at.getTime());
    expect((await paymentRow(t.db, paymentId))?.state).not.toBe('confirmed');
    await runner.stop(1000);
  });

  it('at its limit, further jobs wait for a worker; a freed slot takes the next one', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const { actor, runs } = routeActor(async () => {
      await gate;
      return rejected;
    });
    const { runner, engine } = runnerWith(actor, 1);
    const [a, b, c] = [newPaymentId(), newPaymentId(), newPaymentId()];
    await finished(engine, a);
    await finished(engine, b);
    expect(runner.running).toBe(1);
    expect(await jobOf(b)).toMatchObject({ state: 'created' });
    open();
    await runner.idle();
    await finished(engine, c);
    await runner.idle();
    expect(runs).toEqual([a, c]);
    expect(await jobOf(a)).toMatchObject({ state: 'completed' });
    expect(await jobOf(c)).toMatchObject({ state: 'completed' });
    await runner.stop(1000);
  });

  it('a failure goes back to pg-boss as a failed attempt (retried by workers); one that retrying cannot help is dead-lettered at once', async () => {
    const { actor } = routeActor(() => {
      throw new Error('ChangeNow is down (eager test)');
    });
    const { runner, engine } = runnerWith(actor);
    const retried = newPaymentId();
    await finished(engine, retried);
    await runner.idle();
    expect(await jobOf(retried)).toMatchObject({ state: 'retry' });
    await runner.stop(1000);

    const permanent = routeActor(() => {
      throw new PermanentFailure('no route can ever exist (eager test)');
    });
    const second = runnerWith(permanent.actor);
    const parked = newPaymentId();
    await finished(second.engine, parked);
    await second.runner.idle();
    expect(await jobOf(parked)).toMatchObject({ state: 'failed', retry_count: 0 });
    const { rows } = await t.db.pool.query(`SELECT 1 FROM pgboss.job WHERE name = $1 AND data->>'paymentId' = $2`, [DEAD_LETTER_QUEUE, parked]);
    expect(rows).toHaveLength(1);
    await second.runner.stop(1000);
  });

  it('stopping: takes no more; a job still running after the grace is failed back to pg-boss (retried elsewhere) and aborted', async () => {
    const { actor, signals } = routeActor(
      () =>
        new Promise<PaymentEvent>((_, reject) => {
          const signal = signals.at(-1)!;
          signal.addEventListener('abort', () => reject(new Error('aborted')));
        }),
    );
    const { runner, engine } = runnerWith(actor);
    const paymentId = newPaymentId();
    await finished(engine, paymentId);
    expect(runner.running).toBe(1);
    await runner.stop(50);
    expect(signals[0]!.aborted).toBe(true);
    expect(await jobOf(paymentId)).toMatchObject({ state: 'retry' });
    expect(runner.take('route')).toBeNull();
    // After the stop, the engine queues for workers.
    const next = newPaymentId();
    await finished(engine, next);
    expect(await jobOf(next)).toMatchObject({ state: 'created' });
  });
});
