import { DEAD_LETTER_QUEUE } from '../persistence/queues.js';
import type { Queryable } from '../persistence/transaction.js';

// Dead-lettered jobs: a job that used up its retries (or failed with an error retrying cannot fix) is
// copied by pg-boss to its queue's dead-letter queue, with the source queue, id and last error. Effect
// jobs land in effects-dead-letter (its worker parks the payment for review), threshold batch jobs in
// payout-batch-dead-letter (its worker parks the batch). Read by queue name, which pg-boss indexes
// (primary key (name, id)); kept as long as pg-boss retains jobs.

/** The batch chain's dead-letter queue (src/actors/payouts/batches.ts BATCH_DEAD_LETTER; a test checks they agree). */
export const BATCH_DEAD_LETTER_QUEUE = 'payout-batch-dead-letter';
export const DEAD_LETTER_QUEUES = [DEAD_LETTER_QUEUE, BATCH_DEAD_LETTER_QUEUE] as const;

export interface DeadLetter {
  id: string;
  queue: string;
  /** Of the dead-letter job itself: completed once its worker parked the payment or batch. */
  state: string;
  source_queue: string | null;
  source_id: string | null;
  payment_id: string | null;
  batch_id: string | null;
  effect: string | null;
  attempt: number | null;
  error: string | null;
  retries: number | null;
  failed_at: Date;
}

export async function listDeadLetters(db: Queryable, options: { limit: number; paymentId?: string }): Promise<DeadLetter[]> {
  const { rows } = await db.query<DeadLetter>(
    `SELECT id::text, name AS queue, state::text, source_name AS source_queue, source_id::text,
            data->>'paymentId' AS payment_id, data->>'batchId' AS batch_id, data->>'effect' AS effect, (data->>'attempt')::int AS attempt,
            coalesce(source_output->>'message', source_output::text) AS error, source_retry_count AS retries, created_on AS failed_at
       FROM pgboss.job
      WHERE name = ANY($1::text[]) AND ($3::text IS NULL OR data->>'paymentId' = $3)
      ORDER BY created_on DESC
      LIMIT $2`,
    [DEAD_LETTER_QUEUES, options.limit, options.paymentId ?? null],
  );
  return rows;
}
