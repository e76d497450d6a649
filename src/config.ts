import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { durationSchema, parseDurationList } from './domain/duration.js';
import { DEFAULT_STUCK_AFTER_STATES, stuckOverridesSchema } from './domain/stuck-limits.js';

// Configuration is read once, here. Anything invalid stops the start with the variable's name and
// what is wrong with it, instead of surfacing later as a confusing runtime failure.

/** Durations are written with their unit ("30s", "15m", "3d") and parsed to milliseconds (src/domain/duration.ts). */
const duration = (fallback: string) => durationSchema(fallback);

/**
 * A standard 5-field cron expression (minute hour day-of-month month day-of-week), checked with the
 * parser pg-boss schedules with, so a value that starts here is one pg-boss accepts. 6-field (seconds)
 * and @-macros are refused: the schedules are documented, and reviewed, in 5-field form.
 */
function cronProblem(value: string): string | null {
  const fields = value.trim().split(/\s+/);
  if (fields.length !== 5) return `it has ${fields.length} field${fields.length === 1 ? '' : 's'}`;
  try {
    CronExpressionParser.parse(value.trim(), { tz: 'UTC', strict: false });
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

const cron = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((value, ctx) => {
      const problem = cronProblem(value);
      if (problem) ctx.addIssue({ code: 'custom', message: `expected a 5-field cron expression like */5 * * * * (got '${value}': ${problem})` });
    });

/** SUBSCRIPTION_REMINDERS: durations before expiry, comma-separated; kept as text (parseReminders reads it), checked here. */
const durationList = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .superRefine((value, ctx) => {
      try {
        parseDurationList(value);
      } catch (error) {
        ctx.addIssue({ code: 'custom', message: `comma-separated durations like 3d,1d,12h: ${(error as Error).message}` });
      }
    });

const int = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);
const optionalText = z.string().trim().min(1).optional();
const url = z.url({ protocol: /^https?$/ });

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  /**
   * What this process runs (docs/deploy.md): `all` (HTTP and workers, `npm start`), `web` (the HTTP
   * surface only: it sends jobs but works none), `worker` (effect workers, schedules, long polling;
   * HTTP only /health and /metrics). web and worker need DATABASE_URL and real (or shared) providers.
   */
  ROLE: z.enum(['all', 'web', 'worker']).default('all'),
  HOST: z.string().default('127.0.0.1'),
  /** Reverse proxies in front of us whose X-Forwarded-For is believed (0 = none). */
  TRUST_PROXY_HOPS: int(0, 0, 10),
  PORT: int(3000, 0, 65535),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Public address buyers and NowPayments reach us at (IPN callback, success page). */
  PUBLIC_BASE_URL: url.optional(),

  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  EMBEDDED_PG_DIR: z.string().default('.data/postgres'),
  EMBEDDED_PG_PORT: int(54329, 1, 65535),
  /**
   * Connections of the service's pool, and of pg-boss's (fetch, complete, maintenance). Small on
   * purpose: on a 2-core Postgres, 20 + 10 connections doing short statements cost twice the Postgres
   * CPU per payment of 10 + 4 (contention and context switches, not work; `npm run bench`, README):
   * requests wait in the pool instead of in Postgres.
   */
  DB_POOL_MAX: int(10, 2, 200),
  JOB_POOL_MAX: int(4, 2, 100),

  /** Bearer token for /admin; without it the admin surface answers 503 rather than running open. */
  ADMIN_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  /** Signs status-page tokens; a random one is generated per process when unset (sandbox only). */
  STATUS_TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),

  NOWPAYMENTS_API_URL: url.default('https://api.nowpayments.io'),
  NOWPAYMENTS_API_KEY: optionalText,
  NOWPAYMENTS_IPN_SECRET: optionalText,
  RECONCILE_AFTER: duration('15m'),
  RECONCILE_EVERY: cron('*/5 * * * *'),
  /** Status API requests per minute per client IP (the success page polls with backoff, ~10/min). */
  STATUS_RATE_LIMIT: int(120, 1, 1_000_000),
  /** Order creations per minute per client IP (each one creates a NowPayments invoice). */
  ORDER_RATE_LIMIT: int(20, 1, 1_000_000),

  TELEGRAM_BOT_TOKEN: optionalText,
  TELEGRAM_API_ROOT: url.default('https://api.telegram.org'),
  TELEGRAM_WEBHOOK_SECRET: optionalText,
  TELEGRAM_UPDATES: z.enum(['webhook', 'polling', 'off']).default('off'),
  /** grammY's own default is 500 s; a worker must learn quickly that Telegram did not answer. */
  TELEGRAM_REQUEST_TIMEOUT: duration('10s'),
  INVITE_EXPIRE_AFTER: duration('1d'),
  SUBSCRIPTION_REMINDERS: durationList('3d,1d'),
  SUBSCRIPTION_REMOVAL_DRY_RUN: z.stringbool().default(false),
  /**
   * How often due reminders and removals are swept (cron). pg-boss files at most one job per schedule
   * and minute, so every minute is the finest: a removal lands within about a minute of the expiry.
   */
  SUBSCRIPTION_SWEEP_EVERY: cron('* * * * *'),

  CHANGENOW_API_URL: url.default('https://api.changenow.io/v2'),
  CHANGENOW_API_KEY: optionalText,
  ETH_RPC_URL: url.optional(),
  /** When set, the node must report this chain id or nothing is signed (1 = Ethereum mainnet). */
  ETH_CHAIN_ID: z.coerce.number().int().positive().optional(),
  HOST_WALLET_PRIVATE_KEY: z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'must be 0x followed by 64 hex digits').optional(),
  /** The highest maxFeePerGas the host wallet ever signs, in gwei (a fee spike waits instead of overpaying). */
  HOST_WALLET_MAX_FEE_GWEI: z.coerce.number().int().positive().optional(),
  /** Blocks on top of a payout's block before it counts as settled. */
  PAYOUT_CONFIRMATIONS: int(3, 1, 100),
  /** Checks of an unsettled payout (receipt, exchange) before it parks for review; backoff between them. */
  PAYOUT_SETTLE_RETRY_LIMIT: int(40, 1, 1000),
  /** How often threshold channels are swept for unclaimed batches and unfinished batches restarted (cron). */
  PAYOUT_SWEEP_EVERY: z.string().default('* * * * *'),

  JOB_RETRY_LIMIT: int(8, 0, 100),
  JOB_RETRY_DELAY: duration('2s'),
  JOB_RETRY_DELAY_MAX: duration('5m'),
  JOB_EXPIRE_AFTER: duration('5m'),
  /**
   * Workers refresh each job's heartbeat every half of this; a job whose heartbeat stopped this long (its
   * worker died: kill -9, lost host) is retried by any instance at once instead of after JOB_EXPIRE_AFTER.
   * Whole seconds, at least 10s (pg-boss). A slow job with a live worker keeps beating: only
   * JOB_EXPIRE_AFTER bounds it.
   */
  JOB_HEARTBEAT: duration('10s').refine((ms) => ms >= 10_000 && ms % 1000 === 0, 'must be whole seconds, at least 10s (pg-boss heartbeat)'),
  /** How often pg-boss's supervisor fails jobs whose heartbeat stopped or that expired (1s..60s). */
  JOB_SUPERVISE_EVERY: duration('5s').refine((ms) => ms >= 1000 && ms <= 60_000 && ms % 1000 === 0, 'must be whole seconds between 1s and 60s'),
  /** Production refuses the embedded Postgres (data on the service's own disk, no backups) unless this says so. */
  ALLOW_EMBEDDED_DB_IN_PRODUCTION: z.stringbool().default(false),
  WORKER_BATCH_SIZE: int(20, 1, 500),
  WORKER_CONCURRENCY: int(2, 1, 64),
  /**
   * Jobs this process's own transitions create that it runs itself right after the commit, at most at
   * once (eager dispatch, src/actors/eager-jobs.ts); beyond that they wait for a worker. 0: never.
   * Only where workers run (ROLE all or worker).
   */
  EAGER_JOB_LIMIT: int(40, 0, 1000),
  SHUTDOWN_GRACE: duration('10s'),

  // Operators (docs/operators.md): when a payment counts as stuck, and how long /metrics reuses its counts.
  /** A payment in one state longer than this is listed as stuck (every state STUCK_AFTER_STATES does not name). */
  STUCK_AFTER: duration('30m'),
  /** Per-state limits, state=duration (or never), e.g. received=2h,confirmed=5m,needs_review=0s; paid and failed are never stuck. */
  STUCK_AFTER_STATES: stuckOverridesSchema(DEFAULT_STUCK_AFTER_STATES),
  /** How long a /metrics scrape reuses the payment, queue and invite counts it read (0s = every scrape reads). */
  METRICS_CACHE_FOR: duration('10s'),

  // Buyers: whom they ask for help (buyer pages, the bot's /help) and how long the bot offers an open invoice again.
  /** A Telegram @handle, an e-mail address (or mailto:) or an https URL, named on every buyer page and in /help. */
  SUPPORT_CONTACT: optionalText,
  /** A second tap on the same plan within this time answers the buyer's open order (its invoice) instead of a new one. */
  ORDER_REUSE_WINDOW: duration('1h'),

  // Operators' inspector (docs/operators-inspector.md).
  /** The Stately inspector's web UI the inspector page embeds (the operator's browser loads it; the statechart page needs no internet). */
  INSPECTOR_URL: url.default('https://stately.ai/inspect'),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(public readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings count as unset, so an `.env` line like `DATABASE_URL=` means "use the default".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`));
  }
  return parsed.data;
}
