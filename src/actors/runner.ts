import type { JobWithMetadata, PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Engine } from '../persistence/apply-event.js';
import { EFFECT_RESULT_RECORDED, effectResultCte, effectResultValues, findEffectResult, recordEffectResult, type EffectKey } from '../persistence/effect-results.repo.js';
import type { RecordedWith } from '../persistence/transition-statements.js';
import type { PaymentEvent } from '../machines/payment.events.js';
import { DEAD_LETTER_QUEUE, queueOf } from '../persistence/queues.js';
import { completeJobSql, completeJobValues } from '../persistence/effect-jobs.js';
import { inTransaction } from '../persistence/transaction.js';
import { isRetryable } from '../domain/errors.js';
import { countProviderError, deadLetters, jobRetries } from '../operator/metrics.js';
import type { EffectActor, EffectJob, ResultFact } from './effect-actor.js';

export interface RunnerDeps {
  boss: PgBoss;
  pool: pg.Pool;
  engine: Engine;
  log: Logger;
  config: Pick<Config, 'WORKER_BATCH_SIZE' | 'WORKER_CONCURRENCY'>;
}

// pg-boss (dist/worker.js) waits out the polling interval after every fetch, so batch size 1 caps a
// queue at about 1/interval jobs per worker (2/s at 0.5 s). Batches, a burst while batches come back
// full (burstWhenBatchFull re-fetches at once), and NOTIFY wake-ups keep latency low.
export function workOptions(config: RunnerDeps['config']) {
  return {
    batchSize: config.WORKER_BATCH_SIZE,
    localConcurrency: config.WORKER_CONCURRENCY,
    burstWhenBatchFull: config.WORKER_BATCH_SIZE > 1,
    pollingIntervalSeconds: 0.5,
    notifyPollingIntervalSeconds: 2,
    perJobResults: true,
  } as const;
}

/** A job its runner settles itself (an eager job, src/actors/eager-jobs.ts): completed with its result when it can be. */
export interface JobSettle {
  queue: string;
  /** Set by runEffectJob when the commit that recorded the result also completed the job. */
  completed?: boolean;
}

/**
 * Runs one job: replay a recorded result if the effect already happened, else perform it; then record
 * the result and apply it, with the fact the actor handed over (EffectContext.withResult), in one
 * commit: one statement when the transition is one (the engine's recordWith: the fact, the result, and
 * the payment's update gated on this result being the one recorded), else one transaction (fact,
 * result, transition). If that fails, the fact, then the result are recorded on their own and the
 * result applied after, as a retry would, so a performed effect is never performed again only because
 * applying its result failed.
 */
export async function runEffectJob(
  deps: Omit<RunnerDeps, 'boss' | 'config'>,
  actor: EffectActor,
  job: { id: string; data: EffectJob; retryCount: number; signal: AbortSignal },
  settle?: JobSettle,
) {
  const { paymentId, effect, attempt } = job.data;
  const key = { paymentId, effect, attempt };
  const source = `actor:${effect}`;
  if (job.retryCount > 0) jobRetries.inc({ queue: queueOf(effect) });
  const log = deps.log.child({ paymentId, jobId: job.id, effect, attempt });
  // A first claim (retryCount 0) cannot have a recorded result: job ids are unique per (payment, effect,
  // attempt), so only a retry of this very job could have recorded one. Skipping the read saves a round trip.
  const recorded = job.retryCount === 0 ? null : await findEffectResult(deps.pool, key);
  let applied;
  if (recorded) {
    log.info('effect already performed; replaying its recorded result');
    applied = await deps.engine.applyEvent(paymentId, recorded, { source });
  } else {
    let fact: ResultFact | null = null;
    const performed = await actor.perform(job.data, { signal: job.signal, log, jobId: job.id, retryCount: job.retryCount, withResult: (f) => (fact = f) });
    const withFact = fact as ResultFact | null;
    const completion = settle ? { queue: settle.queue, id: job.id, retryCount: job.retryCount } : null;
    try {
      const folded = await deps.engine.applyEvent(paymentId, performed, { source, recordWith: recordedWith(key, performed, withFact, completion) });
      // Not one statement (jobs or inline effects to write, no change, or another result recorded first): one transaction.
      applied =
        folded.outcome !== 'unrecorded'
          ? folded
          : await inTransaction(deps.pool, async (tx) => {
              await withFact?.write(tx);
              const result = await deps.engine.applyEvent(paymentId, await recordEffectResult(tx, key, performed), { source, tx });
              if (completion) await tx.query({ name: 'job-complete', text: completeJobSql(1), values: completeJobValues(completion) });
              return result;
            });
      if (settle) settle.completed = true;
    } catch (error) {
      log.warn({ err: error }, 'recording and applying the effect result together failed; recording it alone first');
      await withFact?.write(deps.pool);
      const result = await recordEffectResult(deps.pool, key, performed);
      applied = await deps.engine.applyEvent(paymentId, result, { source });
    }
  }
  log.debug({ outcome: applied.outcome, state: applied.state }, 'effect result applied');
  return applied;
}

/**
 * The fact (CTE `fact`), the result (CTE effect_result) and, for a job its runner settles, the job's
 * completion (CTE job_done) for the engine's recordWith: the transition is written only if this result
 * is the one recorded.
 */
function recordedWith(key: EffectKey, result: PaymentEvent, fact: ResultFact | null, completion: { queue: string; id: string; retryCount: number } | null): RecordedWith {
  const factValues = fact?.values ?? [];
  const resultValues = effectResultValues(key, result);
  return {
    name: `${fact ? `${fact.name}+` : ''}effect-result${completion ? '+job-done' : ''}`,
    ctes: (first) =>
      [
        ...(fact ? [`fact AS (${fact.sql(first)})`] : []),
        effectResultCte(first + factValues.length),
        ...(completion ? [`job_done AS (${completeJobSql(first + factValues.length + resultValues.length)})`] : []),
      ].join(',\n  '),
    values: [...factValues, ...resultValues, ...(completion ? completeJobValues(completion) : [])],
    gate: EFFECT_RESULT_RECORDED,
  };
}

export async function startActors(deps: RunnerDeps, actors: EffectActor[]): Promise<void> {
  for (const actor of actors) {
    await deps.boss.work<EffectJob>(queueOf(actor.effect), workOptions(deps.config), async (jobs) => {
      const settled = await Promise.allSettled(jobs.map((job) => runEffectJob(deps, actor, job)));
      return settled.map((outcome, i) => {
        const id = jobs[i]!.id;
        if (outcome.status === 'fulfilled') return { id, status: 'completed' as const };
        const error = outcome.reason as Error;
        countProviderError(error);
        deps.log.warn({ jobId: id, paymentId: jobs[i]!.data.paymentId, effect: actor.effect, err: error }, 'effect failed');
        // An error that says retrying cannot help (domain errors carry `retryable`) skips the retries.
        const status = isRetryable(error) ? ('failed' as const) : ('deadletter' as const);
        return { id, status, output: { message: error.message } };
      });
    });
  }
}

/** A job that used up its retries parks its payment for review instead of leaving it waiting forever. */
export async function startDeadLetterWorker(deps: RunnerDeps): Promise<void> {
  await deps.boss.work(
    DEAD_LETTER_QUEUE,
    // Dead-lettering does not NOTIFY, so this queue relies on its (short) poll.
    { batchSize: 10, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1, includeMetadata: true },
    async (jobs: JobWithMetadata<EffectJob>[]) => {
      for (const job of jobs) {
        const { paymentId, effect } = job.data;
        const error = messageOf(job.sourceOutput) ?? 'no error recorded';
        await deps.engine.applyEvent(paymentId, { type: 'effect.exhausted', effect, error }, { source: 'dead-letter' });
        deadLetters.inc({ queue: job.sourceName ?? queueOf(effect) });
        deps.log.error({ paymentId, effect, error }, 'effect exhausted its retries; payment parked for review');
      }
    },
  );
}

function messageOf(output: unknown): string | null {
  if (output && typeof output === 'object' && 'message' in output && typeof output.message === 'string') return output.message;
  return null;
}
