import type { Queryable } from './transaction.js';
import type { Effect } from '../machines/payment.step.js';
import { effectJobId } from './job-id.js';
import { queueOf } from './queues.js';

// Every job a transition asks for, in ONE insert inside the transition's transaction: the engine makes
// it a CTE of the statement that writes the transition (persistence/transition-statements.ts), so the
// jobs are inserted exactly when the compare-and-set wins, in the same round trip; insertEffectJobs is
// the same insert as a statement of its own.
//
// Why not boss.send(): pg-boss 12 inserts one queue's jobs per call with a large statement sent
// unnamed, so Postgres parses and plans it on every call (about 1 ms each, planning more than
// executing), and a transition with two effects (invite + split) paid that twice. These statements are
// named, so each connection prepares them once, and one insert serves any number of queues.
//
// It writes exactly the row pg-boss 12.35.0 (pinned in package.json) writes for send(queue, data,
// { id }): every option comes from the queue's row (retry limit, delay, backoff, expiry, retention,
// heartbeat, dead letter, policy), timestamps from pgboss.job_now(), and a conflict on the id is
// ignored (a second job for the same payment, effect and attempt is refused, as before). It inserts into
// pgboss.job, the partitioned parent, so Postgres routes each row to its queue's partition. Workers
// are woken as pg-boss wakes them: one pg_notify per notify-enabled queue that got a runnable job,
// committed with the insert. test/engine-inline.test.ts compares its rows with pg-boss's own, column by
// column, so an upgrade that changes the job table fails there first.

const NOTIFY_CHANNEL = `'pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24)`;

/**
 * The insert, as the body of a CTE named `ins` (RETURNING the queue names): the jobs in `$param`, a JSON
 * array of { id, name, data }, for every row of `source` (one row: the jobs are inserted; none: not).
 */
export const insertJobsSql = (param: string, source = '') => `
      INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
                              retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds)
      SELECT j.id, q.name, j.data, 0, pgboss.job_now(), pgboss.job_now(), q.expire_seconds, q.deletion_seconds,
             pgboss.job_now() + q.retention_seconds * interval '1s',
             q.retry_limit, q.retry_delay, coalesce(q.retry_backoff, false), q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds
        FROM ${source ? `${source} CROSS JOIN ` : ''}jsonb_to_recordset(${param}::jsonb) AS j(id uuid, name text, data jsonb)
        LEFT JOIN pgboss.queue q ON q.name = j.name
      ON CONFLICT DO NOTHING
      RETURNING name`;

/** pg_notify for each notify-enabled queue the CTE `ins` inserted into: pg-boss's own wake-up, committed with the insert. */
export const WAKE_WORKERS_SQL = `SELECT name, pg_notify(${NOTIFY_CHANNEL}, name)
      FROM (SELECT DISTINCT name FROM ins) woken
     WHERE EXISTS (SELECT 1 FROM pgboss.queue q WHERE q.name = woken.name AND q.notify)`;

export const INSERT_EFFECT_JOBS = {
  name: 'effect-jobs-insert',
  text: `
    WITH ins AS (${insertJobsSql('$1')})
    ${WAKE_WORKERS_SQL}`,
};

/** The job rows (JSON) for these effects of one payment. */
export function effectJobsJson(paymentId: string, effects: readonly Effect[]): string {
  return JSON.stringify(
    effects.map(({ effect, attempt }) => ({
      // Deterministic id: a second job for the same (payment, effect, attempt) is refused even after completion.
      id: effectJobId(paymentId, effect, attempt),
      name: queueOf(effect),
      data: { paymentId, effect, attempt },
    })),
  );
}

// A queue that does not exist leaves q.name null: the insert fails (job.name is NOT NULL) instead of
// silently dropping the job, and the whole transition rolls back, as pg-boss's send() refuses it.
const NOT_NULL_VIOLATION = '23502';

/** The jobs for these effects of one payment; call inside the transaction that stores the state asking for them. */
export async function insertEffectJobs(tx: Queryable, paymentId: string, effects: readonly Effect[]): Promise<void> {
  if (effects.length === 0) return;
  await withMissingQueueNamed(effects, () => tx.query({ ...INSERT_EFFECT_JOBS, values: [effectJobsJson(paymentId, effects)] }));
}

/** Runs a statement that inserts these effects' jobs, naming the queue when one is missing. */
export async function withMissingQueueNamed<T>(effects: readonly Effect[], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const { code, column } = error as { code?: string; column?: string };
    if (code !== NOT_NULL_VIOLATION || column !== 'name') throw error;
    throw new Error(`a queue for ${effects.map((e) => queueOf(e.effect)).join(', ')} does not exist (the service creates them at start)`, { cause: error });
  }
}
