import { pino, type Logger, type LoggerOptions } from 'pino';

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

/** Removes secret-bearing query parameters from a URL before it is logged. */
export function redactUrl(url: string): string {
  return url.replace(/([?&](?:token|secret|key)=)[^&#]*/gi, '$1[Redacted]');
}

export function loggerOptions(level: LoggerOptions['level']): LoggerOptions {
  return {
    level,
    redact: { paths: REDACT_PATHS, censor: '[Redacted]' },
    serializers: {
      req: (req: { method: string; url: string; id?: string; ip?: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id, ip: req.ip }),
    },
  };
}

export function createLogger(level: LoggerOptions['level'] = 'info'): Logger {
  return pino(loggerOptions(level));
}
