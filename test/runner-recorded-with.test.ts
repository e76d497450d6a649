import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EffectActor } from '../src/actors/effect-actor.js';
import { runEffectJob } from '../src/actors/runner.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { recordEffectResult } from '../src/persistence/effect-results.repo.js';
import { journalOf, startTestEngine, type TestEngine } from './support/engine.js';
import { paidOrderFixture, payAndRoute } from './telegram-fixtures.js';

// The runner records an effect's result, the fact its actor handed over and the transition that applies
// the result in ONE statement when the transition is one (the engine's recordWith). These are the cases
// where that statement cannot simply win: another result was recorded first, the compare-and-set loses,
// the result changes nothing. In each, the fact and exactly one result are recorded, and the payment gets
// the recorded result, once.

let e: TestEngine;

beforeAll(async () => {
  e = await startTestEngine();
});
afterAll(async () => {
  await e?.close();
});

/** A test actor (no outside world): answers `result` and hands over a fact that notes the order as sent. */
function factActor(result: PaymentEvent): EffectActor {
  return {
    effect: 'invite',
    async perform(job, context) {
      const values = [job.paymentId];
      const fact = {
        name: 'test-fact',
        sql: (first: number) => `INSERT INTO test_facts (payment_id) VALUES ($${first}) RETURNING payment_id`,
        values,
        write: (db: { query: (text: string, values: unknown[]) => Promise<unknown> }) => db.query('INSERT INTO test_facts (payment_id) VALUES ($1)', values),
      };
      context.withResult?.(fact);
      return result;
    },
  };
}

async function paidAndRouted() {
  const o = await paidOrderFixture(e.db);
  // A fresh engine per case: it routed the payment, so it remembers the snapshot (no read before its write).
  const engine = createEngine({ pool: e.db.pool });
  await payAndRoute(engine, o.paymentId, o);
  return { o, engine };
}

const job = (paymentId: string) => ({ id: `job-${paymentId}`, data: { paymentId, effect: 'invite' as const, attempt: 0 }, retryCount: 0, signal: new AbortController().signal });

async function recorded(paymentId: string) {
  const results = await e.db.pool.query<{ result: PaymentEvent }>(`SELECT result FROM effect_results WHERE payment_id = $1 AND effect = 'invite'`, [paymentId]);
  const facts = await e.db.pool.query(`SELECT 1 FROM test_facts WHERE payment_id = $1`, [paymentId]);
  const journal = (await journalOf(e.db, paymentId)).map((row) => row.event_type);
  return { results: results.rows.map((row) => row.result.type), facts: facts.rowCount, journal };
}

beforeAll(async () => {
  await e.db.pool.query('CREATE TABLE IF NOT EXISTS test_facts (payment_id text NOT NULL)');
});

describe('an effect result, its fact and its transition in one statement', () => {
  it('the plain case: one statement writes all three', async () => {
    const { o, engine } = await paidAndRouted();
    const applied = await runEffectJob({ pool: e.db.pool, engine, log: e.log }, factActor({ type: 'invite.sent', inviteLink: 'https://t.me/+a' }), job(o.paymentId));
    expect(applied).toMatchObject({ outcome: 'applied' });
    expect(await recorded(o.paymentId)).toEqual({ results: ['invite.sent'], facts: 1, journal: ['np.finished', 'route.done', 'invite.sent'] });
  });

  it('another result recorded first (a later attempt of the job): the payment gets that one; the fact is still written', async () => {
    const { o, engine } = await paidAndRouted();
    await recordEffectResult(e.db.pool, { paymentId: o.paymentId, effect: 'invite', attempt: 0 }, { type: 'invite.undeliverable', inviteLink: 'https://t.me/+b', reason: 'delivery unconfirmed' });
    const applied = await runEffectJob({ pool: e.db.pool, engine, log: e.log }, factActor({ type: 'invite.sent', inviteLink: 'https://t.me/+a' }), job(o.paymentId));
    expect(applied).toMatchObject({ outcome: 'applied' });
    const after = await recorded(o.paymentId);
    expect(after.results).toEqual(['invite.undeliverable']);
    expect(after.journal.at(-1)).toBe('invite.undeliverable');
    expect(after.journal.filter((t) => t.startsWith('invite.'))).toHaveLength(1);
    // Written by the closed-gate statement and again by the transaction after it: a fact, not a count.
    expect(after.facts).toBeGreaterThanOrEqual(1);
  });

  it('the compare-and-set loses (another writer moved the payment): fact and result are kept, the result is applied once on the new version', async () => {
    const { o, engine } = await paidAndRouted();
    // Another process applies the payout step's result: this engine's copy of the payment is now stale.
    await createEngine({ pool: e.db.pool }).applyEvent(o.paymentId, { type: 'accumulate.done', ledgerEntryId: '1' }, { source: 'actor:accumulate' });
    const applied = await runEffectJob({ pool: e.db.pool, engine, log: e.log }, factActor({ type: 'invite.sent', inviteLink: 'https://t.me/+a' }), job(o.paymentId));
    expect(applied).toMatchObject({ outcome: 'applied', version: 4 });
    expect(await recorded(o.paymentId)).toEqual({ results: ['invite.sent'], facts: 1, journal: ['np.finished', 'route.done', 'accumulate.done', 'invite.sent'] });
  });

  it('a result that changes nothing: the fact and the result are still recorded, nothing is applied', async () => {
    const { o, engine } = await paidAndRouted();
    const applied = await runEffectJob({ pool: e.db.pool, engine, log: e.log }, factActor({ type: 'batch.paid', batchId: 'not-yet' }), job(o.paymentId));
    expect(applied.outcome).toBe('duplicate');
    expect(await recorded(o.paymentId)).toEqual({ results: ['batch.paid'], facts: 1, journal: ['np.finished', 'route.done'] });
  });
});
