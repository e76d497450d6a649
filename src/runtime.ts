import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { ConfigError, configSchema, type Config } from './config.js';
import { EmbeddedPostgresError } from './persistence/embedded-postgres.js';
import { isDatabaseUnavailable } from './persistence/database.js';

export interface Runtime {
  /** No provider credentials and not production: fakes stand in for NowPayments / Telegram. */
  sandbox: boolean;
  statusTokenSecret: string;
  /** Where buyers and providers reach us (PUBLIC_BASE_URL, else the address the server listens on). */
  publicBaseUrl(): string;
}

/** A start refused for a reason the operator fixes (configuration, environment): reported in one line, no stack. */
export class StartupError extends Error {
  override name = 'StartupError';
  readonly problems: string[];
  constructor(problems: string | string[]) {
    const list = Array.isArray(problems) ? problems : [problems];
    super(list.join('\n'));
    this.problems = list;
  }
}

export interface StartupProblem {
  /** The variables the problem is about (to leave out problems about variables already reported invalid). */
  variables: string[];
  message: string;
}

/**
 * Every cross-field check the start makes, at once, so one run reports everything to fix instead of
 * one problem per attempt. zod checks each variable alone (config.ts); these need several together.
 */
export function startupProblems(config: Config): StartupProblem[] {
  const problems: StartupProblem[] = [];
  const add = (variables: string[], message: string) => problems.push({ variables, message });
  const production = config.NODE_ENV === 'production';
  const sandbox = !production && !config.NOWPAYMENTS_API_KEY && !config.NOWPAYMENTS_IPN_SECRET;

  if (production) {
    const required: Array<[keyof Config, string]> = [
      ['PUBLIC_BASE_URL', 'PUBLIC_BASE_URL is required in production: NowPayments calls it back and buyers open their success page there.'],
      ['NOWPAYMENTS_API_KEY', 'NOWPAYMENTS_API_KEY is required in production: no invoice can be created and no silent payment looked up without it.'],
      ['ADMIN_TOKEN', 'ADMIN_TOKEN is required in production: operators and /metrics need it (at least 24 characters).'],
      ['STATUS_TOKEN_SECRET', 'STATUS_TOKEN_SECRET is required in production: status links must survive restarts.'],
      ['TELEGRAM_BOT_TOKEN', 'TELEGRAM_BOT_TOKEN is required in production: no invite can be sent without it.'],
    ];
    for (const [name, message] of required) if (!config[name]) add([name], message);
    if (!config.DATABASE_URL && !config.ALLOW_EMBEDDED_DB_IN_PRODUCTION) {
      add(
        ['DATABASE_URL', 'ALLOW_EMBEDDED_DB_IN_PRODUCTION'],
        'DATABASE_URL is required in production: the embedded Postgres keeps the books on this machine only (no backups, no failover); set ALLOW_EMBEDDED_DB_IN_PRODUCTION=true to accept that.',
      );
    }
  }
  if (!sandbox && !config.NOWPAYMENTS_IPN_SECRET) {
    add(['NOWPAYMENTS_IPN_SECRET'], 'NOWPAYMENTS_IPN_SECRET is required outside the sandbox: without it no IPN can be verified.');
  }
  if (config.TELEGRAM_UPDATES === 'webhook' && !config.TELEGRAM_WEBHOOK_SECRET) {
    add(['TELEGRAM_WEBHOOK_SECRET', 'TELEGRAM_UPDATES'], 'TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_UPDATES=webhook: without it anyone could post fake updates.');
  }
  // Payouts: all three or none (none = the sandbox chain, never in production). Same rule as service.ts.
  const payoutSettings = { CHANGENOW_API_KEY: config.CHANGENOW_API_KEY, ETH_RPC_URL: config.ETH_RPC_URL, HOST_WALLET_PRIVATE_KEY: config.HOST_WALLET_PRIVATE_KEY };
  const missing = Object.entries(payoutSettings)
    .filter(([, value]) => !value)
    .map(([name]) => name);
  if (missing.length > 0 && (production || missing.length < 3)) {
    add(
      missing,
      `${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required to pay channel owners (ChangeNow swaps sent by the host wallet); set ${missing.length < 3 ? 'all three' : 'them'}, or none of them outside production for the sandbox.`,
    );
  }
  // Split roles (docs/deploy.md) run beside other instances: they must share the database and the
  // providers. The embedded Postgres and the sandbox fakes live inside one process, so a web instance
  // would store payments no worker sees, and a worker would "send" invites to a fake no one reads.
  if (config.ROLE !== undefined && config.ROLE !== 'all') {
    if (!config.DATABASE_URL) {
      add(['ROLE', 'DATABASE_URL'], `ROLE=${config.ROLE} needs DATABASE_URL: web and worker instances share one Postgres (the embedded one belongs to a single process); or run ROLE=all.`);
    }
    const fakes: string[] = [];
    if (sandbox) fakes.push('NOWPAYMENTS_API_KEY and NOWPAYMENTS_IPN_SECRET');
    if (!config.TELEGRAM_BOT_TOKEN) fakes.push('TELEGRAM_BOT_TOKEN');
    if (missing.length === 3) fakes.push('CHANGENOW_API_KEY, ETH_RPC_URL and HOST_WALLET_PRIVATE_KEY');
    if (fakes.length > 0) {
      add(
        ['ROLE', ...fakes.flatMap((f) => f.split(/, | and /))],
        `ROLE=${config.ROLE} cannot use the in-process sandbox fakes (each would belong to this process alone): set ${fakes.join('; ')} (the *_URL settings may point at shared stand-ins); or run ROLE=all.`,
      );
    }
  }
  return problems;
}

/**
 * The configuration as far as it is valid: each variable parsed alone, the invalid ones left out (and
 * named). Lets the start report the cross-field problems beside zod's, in one go.
 */
export function partialConfig(env: Record<string, string | undefined>): { config: Config; invalid: Set<string> } {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const config: Record<string, unknown> = {};
  const invalid = new Set<string>();
  for (const [name, schema] of Object.entries(configSchema.shape)) {
    const parsed = (schema as { safeParse(value: unknown): { success: boolean; data?: unknown } }).safeParse(cleaned[name]);
    if (parsed.success) config[name] = parsed.data;
    else invalid.add(name);
  }
  return { config: config as Config, invalid };
}

/** ConfigError's problems plus the cross-field ones that are not about an invalid variable. */
export function configurationProblems(error: ConfigError, env: Record<string, string | undefined>): string[] {
  const { config, invalid } = partialConfig(env);
  const more = startupProblems(config).filter((p) => !p.variables.some((v) => invalid.has(v)));
  return [...error.problems, ...more.map((p) => p.message)];
}

/** Decides sandbox vs real providers and the secrets that must exist before anything is served. */
export function resolveRuntime(config: Config, log: Logger, listeningUrl: () => string): Runtime {
  const problems = startupProblems(config);
  if (problems.length > 0) throw new StartupError(problems.map((p) => p.message));
  const sandbox = config.NODE_ENV !== 'production' && !config.NOWPAYMENTS_API_KEY && !config.NOWPAYMENTS_IPN_SECRET;
  let statusTokenSecret = config.STATUS_TOKEN_SECRET;
  if (!statusTokenSecret) {
    statusTokenSecret = randomBytes(32).toString('base64url');
    log.warn('STATUS_TOKEN_SECRET not set: using a random one; status links stop working after a restart');
  }
  return {
    sandbox,
    statusTokenSecret,
    publicBaseUrl: () => (config.PUBLIC_BASE_URL ?? listeningUrl()).replace(/\/+$/, ''),
  };
}

const codeOf = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

function databaseTarget(config: Pick<Config, 'DATABASE_URL' | 'EMBEDDED_PG_PORT'> | null): string {
  if (!config) return 'the database';
  if (!config.DATABASE_URL) return `the embedded Postgres on port ${config.EMBEDDED_PG_PORT}`;
  try {
    const url = new URL(config.DATABASE_URL);
    return `the database at ${url.hostname}:${url.port || '5432'}${url.pathname}`;
  } catch {
    return 'the database at DATABASE_URL';
  }
}

/**
 * A failed start as one line for stderr: what went wrong and what to change. `expected` is false for
 * an error nobody anticipated (a bug): the caller may print its stack as well.
 */
export function describeStartFailure(error: unknown, config: Pick<Config, 'HOST' | 'PORT' | 'DATABASE_URL' | 'EMBEDDED_PG_PORT'> | null): { line: string; expected: boolean } {
  const oneLine = (text: string) => text.replace(/\s*\n\s*/g, '; ').trim();
  const list = (problems: string[]) => problems.map((p) => oneLine(p).replace(/\.$/, '')).join('; ');
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof ConfigError) return { line: `invalid configuration: ${list(error.problems)}. Fix these variables (see .env.example).`, expected: true };
  if (error instanceof StartupError) return { line: `${list(error.problems)}. See .env.example.`, expected: true };
  if (error instanceof EmbeddedPostgresError) return { line: oneLine(error.message), expected: true };
  const code = codeOf(error);
  if (code === 'EADDRINUSE' && config) {
    return { line: `port ${config.PORT} on ${config.HOST} is already in use (another TelePay Engine, or another program): stop it, or set PORT to a free port.`, expected: true };
  }
  if (code === 'EACCES' && config && /listen/i.test(message)) {
    return { line: `not allowed to listen on ${config.HOST}:${config.PORT}: use a PORT above 1023, or run with the right to bind it.`, expected: true };
  }
  if (code === 'EADDRNOTAVAIL' && config) return { line: `HOST ${config.HOST} is not an address of this machine: set HOST (0.0.0.0 for all).`, expected: true };
  const target = databaseTarget(config);
  if (code === '28P01' || code === '28000') return { line: `${target} refused our login (${oneLine(message)}): fix the user or password in DATABASE_URL.`, expected: true };
  if (code === '3D000') return { line: `${oneLine(message)} on ${target}: create it, or fix the database name in DATABASE_URL.`, expected: true };
  if (isDatabaseUnavailable(error)) {
    return { line: `cannot reach ${target} (${code ?? oneLine(message)}): is Postgres running there? Fix DATABASE_URL, or unset it to use the embedded Postgres.`, expected: true };
  }
  return { line: `unexpected error: ${oneLine(message)}`, expected: false };
}
