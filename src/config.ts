import { z } from 'zod';

// Configuration is read once, here. Anything invalid stops the start with the variable's name and
// what is wrong with it, instead of surfacing later as a confusing runtime failure.

const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** Durations are written with their unit ("30s", "15m", "3d") and parsed to milliseconds. */
const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value, ctx) => {
      const match = DURATION.exec(value.trim());
      if (!match) {
        ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 15m, 3d (got '${value}')` });
        return z.NEVER;
      }
      return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    });

const int = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);
const optionalText = z.string().trim().min(1).optional();
const url = z.url({ protocol: /^https?$/ });

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
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
  DB_POOL_MAX: int(20, 2, 200),

  /** Bearer token for /admin; without it the admin surface answers 503 rather than running open. */
  ADMIN_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  /** Signs status-page tokens; a random one is generated per process when unset (sandbox only). */
  STATUS_TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),

  NOWPAYMENTS_API_URL: url.default('https://api.nowpayments.io'),
  NOWPAYMENTS_API_KEY: optionalText,
  NOWPAYMENTS_IPN_SECRET: optionalText,
  RECONCILE_AFTER: duration('15m'),
  RECONCILE_EVERY: z.string().default('*/5 * * * *'),
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
  SUBSCRIPTION_REMINDERS: z.string().default('3d,1d'),
  SUBSCRIPTION_REMOVAL_DRY_RUN: z.stringbool().default(false),

  CHANGENOW_API_URL: url.default('https://api.changenow.io/v2'),
  CHANGENOW_API_KEY: optionalText,
  ETH_RPC_URL: url.optional(),
  HOST_WALLET_PRIVATE_KEY: z.string().regex(/^0x[0-9a-fA-F]{64}$/, 'must be 0x followed by 64 hex digits').optional(),

  JOB_RETRY_LIMIT: int(8, 0, 100),
  JOB_RETRY_DELAY: duration('2s'),
  JOB_RETRY_DELAY_MAX: duration('5m'),
  JOB_EXPIRE_AFTER: duration('5m'),
  WORKER_BATCH_SIZE: int(20, 1, 500),
  WORKER_CONCURRENCY: int(2, 1, 64),
  SHUTDOWN_GRACE: duration('10s'),
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
