import type { FastifyInstance, LogLevel } from 'fastify';

const ORDER = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

// Busy routes (webhooks, polling) skip the per-request info lines: their route logLevel is 'warn'. A
// route logLevel replaces the logger's level, though, so under LOG_LEVEL=error or silent a plain 'warn'
// would make them louder than the rest; this keeps whichever is quieter.
export function quietLevel(app: FastifyInstance): LogLevel {
  const current = app.log.level;
  return (ORDER.indexOf(current) > ORDER.indexOf('warn') ? current : 'warn') as LogLevel;
}
