import { PgBoss, type Queue } from 'pg-boss';
import type { Config } from '../config.js';
import { EFFECTS, type EffectName } from '../machines/payment.events.js';

// One queue per effect, named after it. A job that exhausts its retries goes to the dead-letter
// queue, whose worker parks the payment for review (effect.exhausted) instead of leaving it stuck.

export const DEAD_LETTER_QUEUE = 'effects-dead-letter';

export const queueOf = (effect: EffectName): string => `effect-${effect}`;

export type QueueSettings = Pick<Config, 'JOB_RETRY_LIMIT' | 'JOB_RETRY_DELAY' | 'JOB_RETRY_DELAY_MAX' | 'JOB_EXPIRE_AFTER' | 'PAYOUT_SETTLE_RETRY_LIMIT'>;

export function effectQueueOptions(settings: QueueSettings, effect?: EffectName): Omit<Queue, 'name'> {
  return {
    policy: 'standard',
    // Settling waits for confirmations and the exchange: each "not yet" is a retry, so it gets more of them.
    retryLimit: effect === 'settle' ? settings.PAYOUT_SETTLE_RETRY_LIMIT : settings.JOB_RETRY_LIMIT,
    retryDelay: Math.max(1, Math.round(settings.JOB_RETRY_DELAY / 1000)),
    retryBackoff: true,
    retryDelayMax: Math.max(1, Math.round(settings.JOB_RETRY_DELAY_MAX / 1000)),
    expireInSeconds: Math.max(1, Math.round(settings.JOB_EXPIRE_AFTER / 1000)),
    deadLetter: DEAD_LETTER_QUEUE,
    // Wake workers on insert instead of waiting for their next poll.
    notify: true,
  };
}

/** Creates (or updates) every queue the engine sends to; pg-boss requires a queue before `send`. */
export async function ensureQueues(boss: PgBoss, settings: QueueSettings, extra: Record<string, Omit<Queue, 'name'>> = {}): Promise<void> {
  await upsertQueue(boss, DEAD_LETTER_QUEUE, { policy: 'standard', retryLimit: 5, retryBackoff: true, notify: true });
  for (const effect of EFFECTS) await upsertQueue(boss, queueOf(effect), effectQueueOptions(settings, effect));
  for (const [name, options] of Object.entries(extra)) await upsertQueue(boss, name, options);
}

async function upsertQueue(boss: PgBoss, name: string, options: Omit<Queue, 'name'>): Promise<void> {
  if (await boss.getQueue(name)) {
    const { policy: _policy, partition: _partition, ...mutable } = options;
    await boss.updateQueue(name, mutable);
  } else {
    await boss.createQueue(name, options);
  }
}

export function createBoss(connectionString: string, options: { max?: number; schedule?: boolean } = {}): PgBoss {
  return new PgBoss({
    connectionString,
    max: options.max ?? 10,
    useListenNotify: true,
    schedule: options.schedule ?? true,
    // The engine's tables are the source of truth; pg-boss keeps completed jobs 7 days for dedupe by id.
    application_name: 'telepay-boss',
  });
}
