import { createHash } from 'node:crypto';
import { PgBoss, type Queue } from 'pg-boss';
import type pg from 'pg';
import type { Config } from '../config.js';
import { EFFECTS, type EffectName } from '../machines/payment.events.js';
import type { Listener, ListenHandle } from './listener.js';

// One queue per effect, named after it. A job that exhausts its retries goes to the dead-letter
// queue, whose worker parks the payment for review (effect.exhausted) instead of leaving it stuck.

export const DEAD_LETTER_QUEUE = 'effects-dead-letter';

export const queueOf = (effect: EffectName): string => `effect-${effect}`;

export type QueueSettings = Pick<Config, 'JOB_RETRY_LIMIT' | 'JOB_RETRY_DELAY' | 'JOB_RETRY_DELAY_MAX' | 'JOB_EXPIRE_AFTER' | 'PAYOUT_SETTLE_RETRY_LIMIT'> &
  Partial<Pick<Config, 'JOB_HEARTBEAT'>>;

// Recovery from a dead worker. A job is 'active' while a worker holds it; if the worker dies (kill -9,
// a lost host) nothing completes or fails it. Without heartbeats it waits out expireInSeconds
// (JOB_EXPIRE_AFTER, 5 min) plus the supervisor's next pass (60 s by default) before a retry. With
// heartbeatSeconds on the queue, the worker refreshes each job it holds every heartbeat/2 (pg-boss
// manager #processJobs), and the supervisor of ANY instance (pg-boss boss.js #monitor:
// failJobsByHeartbeat) fails a job whose heartbeat is older than heartbeatSeconds into 'retry' -
// so a crashed worker's jobs resume after JOB_HEARTBEAT + JOB_SUPERVISE_EVERY + the retry delay
// (about 10 + 5 + 2 s by default). A long job whose worker is alive keeps beating and runs until
// expireInSeconds as before. heartbeat_seconds is copied onto each job when it is inserted, from its
// queue (pg-boss plans.insertJobs), so jobs queued before a queue had a heartbeat keep the old expiry.

/** pg-boss's heartbeatSeconds for a queue: whole seconds, at least 10. */
export const heartbeatSecondsOf = (settings: Partial<Pick<Config, 'JOB_HEARTBEAT'>>): number => Math.max(10, Math.round((settings.JOB_HEARTBEAT ?? 10_000) / 1000));

export function effectQueueOptions(settings: QueueSettings, effect?: EffectName): Omit<Queue, 'name'> {
  return {
    policy: 'standard',
    // Settling waits for confirmations and the exchange: each "not yet" is a retry, so it gets more of them.
    retryLimit: effect === 'settle' ? settings.PAYOUT_SETTLE_RETRY_LIMIT : settings.JOB_RETRY_LIMIT,
    retryDelay: Math.max(1, Math.round(settings.JOB_RETRY_DELAY / 1000)),
    retryBackoff: true,
    retryDelayMax: Math.max(1, Math.round(settings.JOB_RETRY_DELAY_MAX / 1000)),
    expireInSeconds: Math.max(1, Math.round(settings.JOB_EXPIRE_AFTER / 1000)),
    heartbeatSeconds: heartbeatSecondsOf(settings),
    deadLetter: DEAD_LETTER_QUEUE,
    // Wake workers on insert instead of waiting for their next poll.
    notify: true,
  };
}

/**
 * Creates (or updates) every queue the engine sends to; pg-boss requires a queue before `send`. Every
 * queue gets the heartbeat (a queue's own heartbeatSeconds, null included, wins), so a dead worker's
 * reconciliation, subscription and payout-batch jobs resume as quickly as its effect jobs.
 */
export async function ensureQueues(boss: PgBoss, settings: QueueSettings, extra: Record<string, Omit<Queue, 'name'>> = {}): Promise<void> {
  const heartbeatSeconds = heartbeatSecondsOf(settings);
  await upsertQueue(boss, DEAD_LETTER_QUEUE, { policy: 'standard', retryLimit: 5, retryBackoff: true, notify: true, heartbeatSeconds });
  for (const effect of EFFECTS) await upsertQueue(boss, queueOf(effect), effectQueueOptions(settings, effect));
  for (const [name, options] of Object.entries(extra)) await upsertQueue(boss, name, { heartbeatSeconds, ...options });
}

async function upsertQueue(boss: PgBoss, name: string, options: Omit<Queue, 'name'>): Promise<void> {
  if (await boss.getQueue(name)) {
    const { policy: _policy, partition: _partition, ...mutable } = options;
    await boss.updateQueue(name, mutable);
  } else {
    await boss.createQueue(name, options);
  }
}

export interface BossOptions {
  max?: number;
  schedule?: boolean;
  superviseSeconds?: number;
  supervise?: boolean;
  /** The process's shared LISTEN connection; without it pg-boss opens a listening connection of its own. */
  listener?: Listener;
}

export function createBoss(connectionString: string, options: BossOptions = {}): PgBoss {
  // The supervisor pass (every instance runs one; queues are claimed in the database so one instance
  // works each queue per interval) fails expired and heartbeat-lost jobs. pg-boss's default of 60 s
  // would add up to a minute to every recovery; 5 s keeps it within seconds. The same interval gates
  // the queue-stats aggregate (pg-boss backs it off by itself when it gets expensive).
  const superviseSeconds = Math.max(1, Math.round(options.superviseSeconds ?? 5));
  const boss = new PgBoss({
    connectionString,
    max: options.max ?? 10,
    useListenNotify: true,
    schedule: options.schedule ?? true,
    supervise: options.supervise ?? true,
    superviseIntervalSeconds: superviseSeconds,
    monitorIntervalSeconds: superviseSeconds,
    // The engine's tables are the source of truth; pg-boss keeps completed jobs 7 days for dedupe by id.
    application_name: 'telepay-boss',
  });
  prepareRepeatedStatements(boss);
  if (options.listener) shareListener(boss, options.listener);
  return boss;
}

/**
 * pg-boss's Notifier (dist/notifier.js) LISTENs through its db's listen(channel, onNotification,
 * onReconnect), which by default opens a pg.Client of its own: a second listening backend that
 * Postgres wakes on every NOTIFY of the database (every journal row too), and one more connection.
 * Installed before boss.start(), this makes it LISTEN on the process's shared connection instead. The
 * Notifier resolves its channel itself; onReconnect (its force-fetch, recovering notifications lost
 * while the connection was down) runs after every reconnect. boss.stop() closes the handle (an
 * UNLISTEN, the connection stays) and then its pool, which never held the shared connection.
 */
function shareListener(boss: PgBoss, listener: Listener): void {
  const db = boss.getDb() as { listen?: (channel: string, onNotification: (payload: string) => void, onReconnect: () => void) => Promise<ListenHandle> };
  db.listen = (channel, onNotification, onReconnect) =>
    listener.listen(
      channel,
      (payload) => {
        // As pg-boss's own listener: only a notification with a payload (the queue's name) is passed on.
        if (payload !== undefined) onNotification(payload);
      },
      onReconnect,
    );
}

/** A statement text seen this often is prepared on each connection (its later runs skip parse and analysis). */
const PREPARE_AFTER = 3;
/** Distinct texts tracked; pg-boss's own come to a few dozen per queue set, so this is only a bound. */
const MAX_TRACKED = 2000;

/**
 * pg-boss sends every statement unnamed, so Postgres parses, analyses and plans its fetch and complete
 * (large CTEs) on every call. This names the ones pg-boss repeats: a parameterised text seen
 * PREPARE_AFTER times gets a name derived from its hash, so each connection prepares it once. Texts
 * with values inlined (seen once each) stay unnamed, so the per-connection statement cache stays bounded.
 * Only the query path changes; pg-boss's LISTEN, transactions and results are untouched.
 */
function prepareRepeatedStatements(boss: PgBoss): void {
  const db = boss.getDb() as { executeSql: (text: string, values?: unknown[]) => Promise<unknown>; pool?: pg.Pool };
  const original = db.executeSql.bind(db);
  const seen = new Map<string, number>();
  db.executeSql = (text, values) => {
    if (!db.pool || !values || values.length === 0) return original(text, values);
    const count = seen.get(text) ?? 0;
    if (count < PREPARE_AFTER) {
      if (seen.size < MAX_TRACKED || count > 0) seen.set(text, count + 1);
      return original(text, values);
    }
    return db.pool.query({ name: `pgboss-${createHash('sha1').update(text).digest('hex').slice(0, 16)}`, text, values });
  };
}
