import type { PgBoss } from 'pg-boss';
import type { EagerJobs, EagerSlot } from '../persistence/apply-event.js';
import type { EffectName } from '../machines/payment.events.js';
import { queueOf } from '../persistence/queues.js';
import { completeJobValues, NO_RETRY_LEFT } from '../persistence/effect-jobs.js';
import { isRetryable } from '../domain/errors.js';
import { countProviderError } from '../operator/metrics.js';
import { runEffectJob, type JobSettle, type RunnerDeps } from './runner.js';
import type { EffectActor } from './effect-actor.js';

// Eager dispatch: the job a transition creates in the engine's own transaction (the invite, after the
// finished IPN) is run by this process right after the commit, instead of waiting for a worker to be
// woken and to fetch it. A fetch is a round trip and a writing transaction of its own, and the wake-up
// and fetch were half of the time from route.done to invite.sent at 100 payments/s. Workflow engines
// do the same: Temporal hands an activity scheduled by a workflow task straight back to the worker
// that completed that task ("eager activity execution").
//
// Nothing about the job's guarantees moves. It is inserted claimed in the transition's own statement
// (src/persistence/effect-jobs.ts: 'active', retry_count 0, exactly as a fetch would leave it), so it
// commits with the state that asks for it or not at all; it runs through runEffectJob, as every job;
// it is beaten and settled through pg-boss, fenced on its attempt. If this process dies while holding
// it, the supervisor of any instance fails it on its lost heartbeat and a worker retries it (retry
// count 1), exactly as for a worker that died holding a fetched job: the actors' own records make that
// retry resume, never repeat (the invite's at-most-once DM, the payout's signed-before-broadcast).
//
// A failure is handed back to pg-boss as a failed attempt (retried by its workers with the queue's
// backoff, dead-lettered when retries run out); an error that says retrying cannot help is
// dead-lettered at once, as a worker's would be.
// Slots are bounded (EAGER_JOB_LIMIT): beyond them, and in a process that works no queues, jobs wait
// for workers as before. A job is completed in the commit that records its result (runner.ts,
// JobSettle), so it costs neither a fetch nor a completion of its own; when that commit failed and
// the result was recorded alone, completions are sent in batches (while one is in flight, the next collects).

export interface EagerRunner extends EagerJobs {
  /** Starts taking jobs of these actors' effects (before: none). */
  start(deps: RunnerDeps, actors: readonly EffectActor[]): void;
  /** Takes no more; waits up to graceMs for the running jobs, hands the rest back to pg-boss as failed attempts. */
  stop(graceMs: number): Promise<void>;
  /** Resolves once no eager job runs and every completion is sent (tests). */
  idle(): Promise<void>;
  readonly running: number;
}

interface Running {
  queue: string;
  abort: AbortController;
  done: Promise<void>;
}

interface Attempt {
  id: string;
  retryCount: number;
}

export function createEagerRunner(options: { limit: number; heartbeatMs: number }): EagerRunner {
  let deps: RunnerDeps | null = null;
  const actors = new Map<EffectName, EffectActor>();
  let stopping = false;
  let taken = 0;
  const running = new Map<string, Running>();
  const toComplete = new Map<string, Attempt[]>();
  let completing: Promise<void> | null = null;

  async function sendCompletions(boss: PgBoss): Promise<void> {
    while (toComplete.size > 0) {
      const batch = [...toComplete];
      toComplete.clear();
      for (const [queue, attempts] of batch) {
        // A completion that fails leaves the job active with no heartbeat: the supervisor fails it and
        // the retry finds its result recorded (runEffectJob), so nothing is performed again.
        await boss.complete(queue, attempts).catch((error: unknown) => deps?.log.warn({ err: error, queue, jobs: attempts.length }, 'completing eager jobs failed; they are retried and replay their recorded results'));
      }
    }
  }

  function complete(boss: PgBoss, queue: string, attempt: Attempt): void {
    toComplete.set(queue, [...(toComplete.get(queue) ?? []), attempt]);
    completing ??= sendCompletions(boss).finally(() => (completing = null));
  }

  async function run(slotDeps: RunnerDeps, actor: EffectActor, job: Parameters<EagerSlot['run']>[0], abort: AbortController): Promise<void> {
    const { boss, log } = slotDeps;
    const queue = queueOf(job.effect);
    const attempt: Attempt = { id: job.id, retryCount: 0 };
    // The supervisor fails an active job whose heartbeat is older than heartbeatSeconds: beat at half of it.
    const beat = setInterval(() => void boss.touch(queue, [attempt]).catch((error: unknown) => log.warn({ err: error, jobId: job.id }, 'eager job heartbeat failed')), options.heartbeatMs / 2);
    try {
      const settle: JobSettle = { queue };
      await runEffectJob(slotDeps, actor, { id: job.id, data: { paymentId: job.paymentId, effect: job.effect, attempt: job.attempt }, retryCount: 0, signal: abort.signal }, settle);
      // Usually completed in the commit that recorded its result; else (that commit failed) here.
      if (!settle.completed) complete(boss, queue, attempt);
    } catch (error) {
      countProviderError(error);
      log.warn({ jobId: job.id, paymentId: job.paymentId, effect: job.effect, err: error }, 'effect failed (eager); pg-boss retries it');
      try {
        // An error that says retrying cannot help goes to the dead letter at once, as a worker's would.
        if (!isRetryable(error)) await slotDeps.pool.query({ ...NO_RETRY_LEFT, values: completeJobValues({ queue, ...attempt }) });
        await boss.fail(queue, [attempt], { message: (error as Error).message });
      } catch (failError) {
        log.warn({ err: failError, jobId: job.id }, 'failing an eager job failed; the supervisor retries it when its heartbeat lapses');
      }
    } finally {
      clearInterval(beat);
    }
  }

  return {
    get running() {
      return running.size;
    },
    start(runnerDeps, list) {
      deps = runnerDeps;
      for (const actor of list) actors.set(actor.effect, actor);
    },
    take(effect) {
      const slotDeps = deps;
      const actor = actors.get(effect);
      if (!slotDeps || !actor || stopping || taken >= options.limit) return null;
      taken++;
      let used = false;
      const free = () => {
        if (used) return;
        used = true;
        taken--;
      };
      return {
        run(job) {
          if (used) return;
          const abort = new AbortController();
          const done = run(slotDeps, actor, job, abort).finally(() => {
            running.delete(job.id);
            free();
          });
          running.set(job.id, { queue: queueOf(effect), abort, done });
        },
        release: free,
      };
    },
    async stop(graceMs) {
      stopping = true;
      const all = () => Promise.allSettled([...running.values()].map((r) => r.done));
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise((resolve) => (timer = setTimeout(resolve, graceMs).unref()));
      await Promise.race([all(), grace]);
      clearTimeout(timer);
      if (running.size > 0 && deps) {
        // As pg-boss's own stop does for its workers: failed first (retried elsewhere), then aborted.
        for (const [id, r] of running) {
          await deps.boss.fail(r.queue, [{ id, retryCount: 0 }], { message: 'the service shut down while the job was running' }).catch(() => {});
          r.abort.abort();
        }
        await all();
      }
      await completing;
    },
    async idle() {
      while (running.size > 0 || completing) {
        await Promise.allSettled([...running.values()].map((r) => r.done));
        await completing;
      }
    },
  };
}
