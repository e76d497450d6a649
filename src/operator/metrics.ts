import type { Transformer } from 'grammy';
import type pg from 'pg';
import { Counter, Gauge } from 'prom-client';
import { NowPaymentsError } from '../nowpayments/client.js';
import { isChainError } from '../providers/chain/chain.errors.js';
import { isChangeNowError } from '../providers/changenow/changenow.errors.js';
import { orphanInviteLinks } from '../telegram/invites.repo.js';
import { classifyTelegramError } from '../telegram/telegram-errors.js';
import { countStuckByState } from './payments.repo.js';
import type { StuckLimits } from '../domain/stuck-limits.js';

// What operators alert on (docs/alerts.yml), in prom-client's default registry beside the intake
// counters (served by /metrics). Process-wide, created once: several services in one test process
// share them, so tests compare deltas.
//
// Counters are incremented where things happen (the effect runner, the Telegram client). Gauges are
// read from the database when Prometheus scrapes, through one reader per process that the HTTP layer
// attaches (src/http/plugins/metrics.ts): payments grouped by state, waiting jobs grouped by queue, and
// the invite actor's lost link attempts, read together once per scrape and reused for METRICS_CACHE_FOR.

export const jobRetries = new Counter({
  name: 'telepay_job_retries_total',
  help: 'Effect jobs run again after a failed attempt (pg-boss retry with backoff), by queue.',
  labelNames: ['queue'] as const,
});

export const deadLetters = new Counter({
  name: 'telepay_dead_letters_total',
  help: 'Jobs that used up their retries (or failed for good) and were dead-lettered, by the queue they came from.',
  labelNames: ['queue'] as const,
});

export const providerErrors = new Counter({
  name: 'telepay_provider_errors_total',
  help: 'Failed calls to a provider by provider (telegram, nowpayments, changenow, chain) and kind of failure.',
  labelNames: ['provider', 'kind'] as const,
});

export type Provider = 'telegram' | 'nowpayments' | 'changenow' | 'chain';

/** The provider and kind of an error a provider client raised; null for anything else (our own bugs, the database). */
export function providerErrorOf(error: unknown): { provider: Provider; kind: string } | null {
  if (isChangeNowError(error)) return { provider: 'changenow', kind: error.kind };
  if (isChainError(error)) return { provider: 'chain', kind: error.kind };
  if (error instanceof NowPaymentsError) return { provider: 'nowpayments', kind: nowPaymentsKind(error.status) };
  const telegram = classifyTelegramError(error);
  if (telegram) return { provider: 'telegram', kind: telegram.kind };
  return null;
}

function nowPaymentsKind(status: number | null): string {
  if (status === null) return 'unavailable';
  if (status === 429) return 'rate-limited';
  if (status >= 500) return 'server';
  if (status < 300) return 'bad_answer';
  return 'rejected';
}

/**
 * Counts an error that failed a job. Telegram errors are left out: countTelegramErrors sees every failed
 * Bot API call (handled or not), so counting them here too would count one failure twice.
 */
export function countProviderError(error: unknown): void {
  const found = providerErrorOf(error);
  if (found && found.provider !== 'telegram') providerErrors.inc(found);
}

/**
 * A grammY API transformer (bot.api.config.use): counts every Bot API call that failed, by the kind
 * classifyTelegramError gives it. Installed after auto-retry, it sees a 429 only once retries ran out.
 */
export const countTelegramErrors: Transformer = async (prev, method, payload, signal) => {
  try {
    const response = await prev(method, payload, signal);
    if (!response.ok) {
      const code = response.error_code;
      providerErrors.inc({ provider: 'telegram', kind: code === 429 ? 'rate-limited' : code >= 500 ? 'server' : code === 403 ? 'forbidden' : 'rejected' });
    }
    return response;
  } catch (error) {
    providerErrors.inc({ provider: 'telegram', kind: classifyTelegramError(error)?.kind ?? 'unknown' });
    throw error;
  }
};

// --- gauges read at scrape time ----------------------------------------------------------------------

export interface OperatorCounts {
  payments: Record<string, { total: number; stuck: number }>;
  queues: { queue: string; depth: number; oldestSeconds: number }[];
  /** Links a lost createChatInviteLink answer may have left at Telegram: still alive, and ever. */
  orphanInviteLinks: { live: number; ever: number };
}

type Reader = () => Promise<OperatorCounts>;
let reader: Reader | null = null;

/** Makes `read` the source of the gauges; returns the detach function (for app close). The last attached wins. */
export function attachOperatorMetrics(read: Reader): () => void {
  reader = read;
  return () => {
    if (reader === read) reader = null;
  };
}

/** Reads the counts at most once per `cacheMs`; a read in flight is shared (every gauge of one scrape asks at once). */
export function createCountsReader(deps: { pool: pg.Pool; limits: StuckLimits; cacheMs: number }): Reader {
  let cached: { at: number; value: Promise<OperatorCounts>; settled: boolean } | null = null;
  return () => {
    if (cached && (!cached.settled || Date.now() - cached.at < deps.cacheMs)) return cached.value;
    const entry: NonNullable<typeof cached> = { at: Date.now(), value: readCounts(deps.pool, deps.limits), settled: false };
    cached = entry;
    entry.value.then(
      () => {
        entry.settled = true;
        entry.at = Date.now();
      },
      // A failed read is not kept: the next scrape tries again.
      () => {
        if (cached === entry) cached = null;
      },
    );
    return entry.value;
  };
}

async function readCounts(pool: pg.Pool, limits: StuckLimits): Promise<OperatorCounts> {
  const [payments, queues, liveOrphans, everOrphans] = await Promise.all([
    countStuckByState(pool, limits),
    // Queued = created or retry (not yet active): pg-boss's partial index job_i11 covers exactly these rows.
    pool.query<{ queue: string; depth: number; oldest: number }>(
      `SELECT q.name AS queue, coalesce(j.depth, 0)::int AS depth, coalesce(j.oldest, 0)::float8 AS oldest
         FROM pgboss.queue q
         LEFT JOIN (SELECT name, count(*) AS depth, extract(epoch FROM now() - min(created_on)) AS oldest
                      FROM pgboss.job WHERE state < 'active' AND NOT blocked GROUP BY name) j ON j.name = q.name`,
    ),
    // As the invite actor records them (src/telegram/invites.repo.ts, invite_link_attempts).
    orphanInviteLinks(pool, { liveOnly: true }),
    orphanInviteLinks(pool),
  ]);
  return {
    payments,
    queues: queues.rows.map((r) => ({ queue: r.queue, depth: r.depth, oldestSeconds: Math.max(0, r.oldest) })),
    orphanInviteLinks: { live: liveOrphans, ever: everOrphans },
  };
}

/** Refreshes a gauge from the current counts; keeps the previous values when the database cannot be read. */
function gaugeFrom<T extends string>(fill: (gauge: Gauge<T>, counts: OperatorCounts) => void) {
  return async function collect(this: Gauge<T>) {
    if (!reader) {
      this.reset();
      return;
    }
    let counts: OperatorCounts;
    try {
      counts = await reader();
    } catch {
      return;
    }
    this.reset();
    fill(this, counts);
  };
}

export const paymentsGauge = new Gauge({
  name: 'telepay_payments',
  help: 'Payments by one-word state (payments.state).',
  labelNames: ['state'] as const,
  collect: gaugeFrom<'state'>((g, c) => Object.entries(c.payments).forEach(([state, n]) => g.set({ state }, n.total))),
});

export const stuckGauge = new Gauge({
  name: 'telepay_payments_stuck',
  help: 'Payments in their state longer than its limit (STUCK_AFTER, STUCK_AFTER_STATES), by state.',
  labelNames: ['state'] as const,
  collect: gaugeFrom<'state'>((g, c) => Object.entries(c.payments).forEach(([state, n]) => g.set({ state }, n.stuck))),
});

export const queueDepthGauge = new Gauge({
  name: 'telepay_queue_depth',
  help: 'Jobs waiting in a pg-boss queue (created or waiting to retry, not yet running).',
  labelNames: ['queue'] as const,
  collect: gaugeFrom<'queue'>((g, c) => c.queues.forEach((q) => g.set({ queue: q.queue }, q.depth))),
});

export const queueAgeGauge = new Gauge({
  name: 'telepay_queue_oldest_job_age_seconds',
  help: 'Age of the oldest job waiting in a pg-boss queue (since it was created; 0 when none waits).',
  labelNames: ['queue'] as const,
  collect: gaugeFrom<'queue'>((g, c) => c.queues.forEach((q) => g.set({ queue: q.queue }, q.oldestSeconds))),
});

export const orphanInviteGauge = new Gauge({
  name: 'telepay_invite_orphan_links',
  help: 'Invite links a createChatInviteLink whose answer was lost may have left at Telegram, nobody owning them, not yet expired.',
  collect: gaugeFrom<string>((g, c) => g.set(c.orphanInviteLinks.live)),
});

export const orphanInviteEverGauge = new Gauge({
  name: 'telepay_invite_orphan_links_ever',
  help: 'Every createChatInviteLink call whose answer was lost (each may have left an unowned link; they expire within minutes).',
  collect: gaugeFrom<string>((g, c) => g.set(c.orphanInviteLinks.ever)),
});
