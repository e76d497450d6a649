import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from './config.js';

export interface Runtime {
  /** No provider credentials and not production: fakes stand in for NowPayments / Telegram. */
  sandbox: boolean;
  statusTokenSecret: string;
  /** Where buyers and providers reach us (PUBLIC_BASE_URL, else the address the server listens on). */
  publicBaseUrl(): string;
}

export class StartupError extends Error {
  override name = 'StartupError';
}

/** Decides sandbox vs real providers and the secrets that must exist before anything is served. */
export function resolveRuntime(config: Config, log: Logger, listeningUrl: () => string): Runtime {
  const sandbox = config.NODE_ENV !== 'production' && !config.NOWPAYMENTS_API_KEY && !config.NOWPAYMENTS_IPN_SECRET;
  if (!sandbox && !config.NOWPAYMENTS_IPN_SECRET) {
    throw new StartupError('NOWPAYMENTS_IPN_SECRET is required outside the sandbox: without it no IPN can be verified.');
  }
  let statusTokenSecret = config.STATUS_TOKEN_SECRET;
  if (!statusTokenSecret) {
    if (config.NODE_ENV === 'production') throw new StartupError('STATUS_TOKEN_SECRET is required in production: status links must survive restarts.');
    statusTokenSecret = randomBytes(32).toString('base64url');
    log.warn('STATUS_TOKEN_SECRET not set: using a random one; status links stop working after a restart');
  }
  return {
    sandbox,
    statusTokenSecret,
    publicBaseUrl: () => (config.PUBLIC_BASE_URL ?? listeningUrl()).replace(/\/+$/, ''),
  };
}
