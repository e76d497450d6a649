import type { Queryable } from './transaction.js';
import type { EffectName, PaymentEvent } from '../machines/payment.events.js';

export interface EffectKey {
  paymentId: string;
  effect: EffectName;
  attempt: number;
}

/**
 * The result's insert as a CTE named effect_result (RETURNING the result only when this insert recorded
 * it), parameters numbered from $first: recordEffectResult's, and a statement's that records the result
 * and applies it at once (RecordedWith; the runner gates the transition on `EFFECT_RESULT_RECORDED`).
 */
export const effectResultCte = (first: number) =>
  `effect_result AS (INSERT INTO effect_results (payment_id, effect, attempt, result) VALUES ($${first}, $${first + 1}, $${first + 2}, $${first + 3}) ON CONFLICT DO NOTHING RETURNING result)`;
export const effectResultValues = (key: EffectKey, result: PaymentEvent): unknown[] => [key.paymentId, key.effect, key.attempt, result];
/** True when the CTE recorded this result: no other was recorded first, so this is the one to apply. */
export const EFFECT_RESULT_RECORDED = 'EXISTS (SELECT 1 FROM effect_result)';

export async function findEffectResult(pool: Queryable, key: EffectKey): Promise<PaymentEvent | null> {
  const { rows } = await pool.query<{ result: PaymentEvent }>(
    'SELECT result FROM effect_results WHERE payment_id = $1 AND effect = $2 AND attempt = $3',
    [key.paymentId, key.effect, key.attempt],
  );
  return rows[0]?.result ?? null;
}

/** Records the result unless one exists; returns whichever was recorded first, so every replay applies the same event. */
export async function recordEffectResult(pool: Queryable, key: EffectKey, result: PaymentEvent): Promise<PaymentEvent> {
  const { rows } = await pool.query<{ result: PaymentEvent }>({
    name: 'effect-result-record',
    text: `WITH ${effectResultCte(1)}
     SELECT result FROM effect_result
     UNION ALL
     SELECT result FROM effect_results WHERE payment_id = $1 AND effect = $2 AND attempt = $3
     LIMIT 1`,
    values: [key.paymentId, key.effect, key.attempt, result],
  });
  // Under a concurrent first insert the statement's snapshot may miss the winner's row; read it again.
  return rows[0]?.result ?? (await findEffectResult(pool, key)) ?? result;
}
