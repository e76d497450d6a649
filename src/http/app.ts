import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Engine } from '../persistence/apply-event.js';
import { registerErrorHandler } from './plugins/error-handler.js';
import { registerOpenApi } from './plugins/openapi.js';
import { healthRoutes } from './routes/health.route.js';

export interface AppDeps {
  config: Config;
  pool: pg.Pool;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
}

/** The HTTP surface, built from its dependencies: main.ts listens on it, tests use app.inject. */
export async function buildApp(deps: AppDeps, registerRoutes?: (app: FastifyInstance) => Promise<void>): Promise<FastifyInstance> {
  // Typed as the base logger so plugins and route modules share one FastifyInstance type.
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // Webhook bodies are small; anything larger is refused with 413 before it is parsed.
    bodyLimit: 256 * 1024,
    // Only as many proxy hops as configured are believed, so a client cannot pick its own IP for rate limits.
    trustProxy: (_address: string, hop: number) => hop < deps.config.TRUST_PROXY_HOPS,
    requestIdHeader: 'x-request-id',
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);
  // Registered once for the app; a route opts in with `config.rateLimit` (webhooks never do: providers must not be throttled).
  await app.register(rateLimit, { global: false });
  await registerOpenApi(app);
  await app.register(healthRoutes, { pool: deps.pool, boss: deps.boss });
  await registerRoutes?.(app);
  return app;
}
