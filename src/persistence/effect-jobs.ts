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
//
// A job the engine hands to this process's own runner right after the commit (eager dispatch,
// src/actors/eager-jobs.ts; `eager` in the JSON) is inserted already claimed: 'active', started and
// beating now, retry_count 0, as pg-boss's fetch leaves a job it hands a worker, and no worker is
// woken for it. From then on it is an ordinary active job: its runner beats and settles it through
// pg-boss, and if that process dies, the supervisor fails it on its lost heartbeat and a worker
// retries it, as for a job fetched by a worker that died.

const NOTIFY_CHANNEL = `'pgboss_' || left(encode(sha224('pgboss'::bytea), 'hex'), 24)`;

/**
 * The insert, as the body of a CTE named `ins` (RETURNING id, queue name, state): the jobs in `$param`, a
 * JSON array of { id, name, data, eager? }, for every row of `source` (one row: the jobs are inserted;
 * none: not). An eager job is inserted claimed ('active'), for this process's runner.
 */
export const insertJobsSql = (param: string, source = '') => `
      INSERT INTO pgboss.job (id, name, data, priority, start_after, created_on, expire_seconds, deletion_seconds, keep_until,
                              retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds,
                              state, started_on, heartbeat_on)
      SELECT j.id, q.name, j.data, 0, pgboss.job_now(), pgboss.job_now(), q.expire_seconds, q.deletion_seconds,
             pgboss.job_now() + q.retention_seconds * interval '1s',
             q.retry_limit, q.retry_delay, coalesce(q.retry_backoff, false), q.retry_delay_max, q.policy, q.dead_letter, q.heartbeat_seconds,
             CASE WHEN j.eager THEN 'active' ELSE 'created' END::pgboss.job_state,
             CASE WHEN j.eager THEN pgboss.job_now() END, CASE WHEN j.eager THEN pgboss.job_now() END
        FROM ${source ? `${source} CROSS JOIN ` : ''}jsonb_to_recordset(${param}::jsonb) AS j(id uuid, name text, data jsonb, eager boolean)
        LEFT JOIN pgboss.queue q ON q.name = j.name
      ON CONFLICT DO NOTHING
      RETURNING id, name, state`;

/** pg_notify for each notify-enabled queue the CTE `ins` inserted a runnable job into: pg-boss's own wake-up, committed with the insert. */
export const WAKE_WORKERS_SQL = `SELECT name, pg_notify(${NOTIFY_CHANNEL}, name)
      FROM (SELECT DISTINCT name FROM ins WHERE state = 'created') woken
     WHERE EXISTS (SELECT 1 FROM pgboss.queue q WHERE q.name = woken.name AND q.notify)`;

/** The ids of the eager jobs the CTE `ins` inserted (a conflict inserts none): the ones this process now holds. */
export const EAGER_INSERTED_SQL = `SELECT array_agg(id::text) FROM ins WHERE state = 'active'`;

export const INSERT_EFFECT_JOBS = {
  name: 'effect-jobs-insert',
  text: `
    WITH ins AS (${insertJobsSql('$1')})
    ${WAKE_WORKERS_SQL}`,
};

/**
 * pg-boss's complete() of one claimed job, fenced on its attempt as pg-boss fences it (still 'active',
 * the retry_count it was claimed at), as the body of a CTE or a statement, parameters numbered from
 * $first (completeJobValues). An eager job's runner completes it in the commit that records its
 * result (src/actors/runner.ts): the job is done exactly when its result is.
 */
export const completeJobSql = (first: number) =>
  `UPDATE pgboss.job SET completed_on = pgboss.job_now(), state = 'completed'
     WHERE name = $${first} AND id = $${first + 1}::uuid AND retry_count = $${first + 2} AND state = 'active'`;
export const completeJobValues = (job: { queue: string; id: string; retryCount: number }): unknown[] => [job.queue, job.id, job.retryCount];

/**
 * Leaves a claimed job no retry (retry_limit = the retry it is at), so the fail() that follows is
 * terminal and dead-letters it, as pg-boss's 'deadletter' disposition does for its workers (a
 * disposition only a worker's batch handler can give). Parameters as completeJobSql's.
 */
export const NO_RETRY_LEFT = {
  name: 'job-no-retry-left',
  text: `UPDATE pgboss.job SET retry_limit = retry_count WHERE name = $1 AND id = $2::uuid AND retry_count = $3 AND state = 'active'`,
};

/** The job rows (JSON) for these effects of one payment; `eager[i]`: the i-th is inserted claimed, for this process's runner. */
export function effectJobsJson(paymentId: string, effects: readonly Effect[], eager: readonly boolean[] = []): string {
  return JSON.stringify(
    effects.map(({ effect, attempt }, i) => ({
      // Deterministic id: a second job for the same (payment, effect, attempt) is refused even after completion.
      id: effectJobId(paymentId, effect, attempt),
      name: queueOf(effect),
      data: { paymentId, effect, attempt },
      ...(eager[i] && { eager: true }),
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
