import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config.js';

// Secrets never reach a log line: headers that carry credentials, known secret-bearing fields, and the
// status token in query strings (it would reveal an invite link to whoever reads the logs).
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers["x-nowpayments-sig"]',
  'req.headers["x-telegram-bot-api-secret-token"]',
  'req.headers["x-changenow-api-key"]',
  'req.headers.cookie',
  '*.token',
  '*.secret',
  '*.apiKey',
  '*.privateKey',
  '*.password',
  '*.inviteLink',
  '*.invite_link',
  'config.ADMIN_TOKEN',
  'config.NOWPAYMENTS_API_KEY',
  'config.NOWPAYMENTS_IPN_SECRET',
  'config.TELEGRAM_BOT_TOKEN',
  'config.CHANGENOW_API_KEY',
  'config.HOST_WALLET_PRIVATE_KEY',
  'config.STATUS_TOKEN_SECRET',
];

export const REDACTED = '[Redacted]';

/** Removes secret-bearing query parameters from a URL before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|secret|key)=)[^&#]*/gi, '$1[Redacted]');
}

// Path redaction only reaches fields it is told about. A secret also travels inside text: grammY's
// HttpError (and the FetchError nested in it) carries the request URL, https://api.telegram.org/bot<token>/…;
// a provider may echo an API key in an error body; any error's message, stack or cause chain may quote
// a connection string or a header. So every line is scrubbed as a whole, after serialisation, of every
// configured secret value (as written, JSON-escaped and URL-encoded) and of anything shaped like a bot
// token, whatever field, message, stack or nested error carries it.

/** Shorter values are not scrubbed: they would shred ordinary words (configuration demands far longer ones). */
export const MIN_SECRET_LENGTH = 8;
const BOT_TOKEN = /\d{5,}:[A-Za-z0-9_-]{30,}/g;
const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

export class SecretScrubber {
  private readonly values = new Set<string>();
  private pattern: RegExp | null = null;

  constructor(values: Iterable<string | null | undefined> = []) {
    this.add(...values);
  }

  /** Adds secret values (null, undefined and values shorter than MIN_SECRET_LENGTH are ignored). */
  add(...values: Array<string | null | undefined>): void {
    for (const value of values) {
      if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) continue;
      const forms = [value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)];
      // A hex key (the wallet's) may be printed without its 0x or in another case.
      if (/^0x[0-9a-fA-F]+$/.test(value)) forms.push(value.slice(2), value.slice(2).toLowerCase(), value.toLowerCase());
      for (const form of forms) if (form.length >= MIN_SECRET_LENGTH) this.values.add(form);
    }
    const sorted = [...this.values].sort((a, b) => b.length - a.length);
    this.pattern = sorted.length > 0 ? new RegExp(sorted.map(escapeRegex).join('|'), 'g') : null;
  }

  scrub(text: string): string {
    const scrubbed = this.pattern ? text.replace(this.pattern, REDACTED) : text;
    return scrubbed.replace(BOT_TOKEN, REDACTED);
  }
}

const SCRUBBER = Symbol.for('telepay.logger.secrets');

export interface LoggerSecretsOptions {
  /** Secret values to scrub from every line (see configSecrets), or a scrubber to share and extend later. */
  secrets?: Iterable<string | null | undefined> | SecretScrubber;
}

const scrubberFrom = (secrets: LoggerSecretsOptions['secrets']) => (secrets instanceof SecretScrubber ? secrets : new SecretScrubber(secrets ?? []));

export function loggerOptions(level: LoggerOptions['level'], options: LoggerSecretsOptions = {}): LoggerOptions {
  const scrubber = scrubberFrom(options.secrets);
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: REDACTED },
    serializers: {
      req: (req: { method: string; url: string; id?: string; ip?: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id, ip: req.ip }),
    },
    // The serialised line (message, every field, err with its stack, cause chain and nested errors).
    hooks: { streamWrite: (line) => scrubber.scrub(line) },
  };
}

export interface CreateLoggerOptions extends LoggerSecretsOptions {
  /** Where lines go (default stdout); tests pass a captured stream. */
  destination?: DestinationStream;
  /**
   * Human-readable lines (pino-pretty) instead of JSON. Default: when stdout is a terminal and NODE_ENV
   * is not production or test, and pino-pretty (a development dependency) is installed. Piped or
   * collected output, and the production image, stay JSON.
   */
  pretty?: boolean;
}

/** pino-pretty as a stream. It formats the line pino wrote, so it only ever sees the scrubbed text. */
function prettyStream(): DestinationStream | null {
  try {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (options: Record<string, unknown>) => DestinationStream;
    return pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true });
  } catch {
    return null; // not installed (npm ci --omit=dev): JSON it is
  }
}

const wantsPretty = () => Boolean(process.stdout.isTTY) && process.env.NODE_ENV !== 'production' && process.env.NODE_ENV !== 'test';

export function createLogger(level: LoggerOptions['level'] = 'info', options: CreateLoggerOptions = {}): Logger {
  const scrubber = scrubberFrom(options.secrets);
  const destination = options.destination ?? ((options.pretty ?? wantsPretty()) ? prettyStream() : null);
  const log = destination ? pino(loggerOptions(level, { secrets: scrubber }), destination) : pino(loggerOptions(level, { secrets: scrubber }));
  // Where addLogSecrets and scrubSecrets find it; pino children (and Fastify's request loggers) are
  // Object.create(parent), so they inherit it.
  Object.defineProperty(log, SCRUBBER, { value: scrubber, enumerable: false });
  return log;
}

function scrubberOf(log: unknown): SecretScrubber | undefined {
  const found = (log as Record<symbol, unknown> | null | undefined)?.[SCRUBBER];
  return found instanceof SecretScrubber ? found : undefined;
}

/**
 * Adds secrets to a logger made by createLogger (and to all its children): for values known only after
 * the logger exists, such as a status token secret generated at start. Returns false for another logger.
 */
export function addLogSecrets(log: Logger, values: Iterable<string | null | undefined>): boolean {
  const scrubber = scrubberOf(log);
  scrubber?.add(...values);
  return scrubber !== undefined;
}

/** The text with this logger's secrets removed (for messages that leave the process, e.g. an HTTP 4xx). */
export function scrubSecrets(log: unknown, text: string): string {
  const scrubber = scrubberOf(log);
  return scrubber ? scrubber.scrub(text) : text.replace(BOT_TOKEN, REDACTED);
}

/** Every secret value in the configuration, for createLogger(level, { secrets: configSecrets(config) }). */
export function configSecrets(config: Partial<Config>): string[] {
  const keys = [
    'TELEGRAM_BOT_TOKEN',
    'TELEGRAM_WEBHOOK_SECRET',
    'NOWPAYMENTS_API_KEY',
    'NOWPAYMENTS_IPN_SECRET',
    'CHANGENOW_API_KEY',
    'ADMIN_TOKEN',
    'STATUS_TOKEN_SECRET',
    'HOST_WALLET_PRIVATE_KEY',
  ] as const satisfies ReadonlyArray<keyof Config>;
  const values: string[] = [];
  for (const key of keys) {
    const value = config[key];
    if (typeof value === 'string' && value.length > 0) values.push(value);
  }
  // A DATABASE_URL's password, when it has one.
  if (config.DATABASE_URL) {
    try {
      const password = decodeURIComponent(new URL(config.DATABASE_URL).password);
      if (password) values.push(password);
    } catch {
      // not a URL: nothing to extract
    }
  }
  return values;
}
