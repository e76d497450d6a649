import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { AppDeps } from './app.js';
import { registerErrorHandler } from './plugins/error-handler.js';
import { registerMetrics } from './plugins/metrics.js';
import { healthRoutes } from './routes/health.route.js';
import { metricsRoutes } from './routes/metrics.route.js';

/**
 * What a ROLE=worker process serves (docs/deploy.md): /health/live, /health/ready (database and pg-boss
 * up) and /metrics (bearer ADMIN_TOKEN when set), for the orchestrator and the scraper. No webhook, no
 * buyer or admin route: nothing public, so a worker needs no ingress, only a port its probes reach.
 */
export async function buildHealthApp(deps: Pick<AppDeps, 'config' | 'pool' | 'boss' | 'log'>): Promise<FastifyInstance> {
  const { config, pool } = deps;
  const app = Fastify({ loggerInstance: deps.log as FastifyBaseLogger, bodyLimit: 16 * 1024 });
  registerErrorHandler(app);
  await registerMetrics(app, { pool, config });
  await app.register(healthRoutes, { pool, boss: deps.boss });
  await app.register(metricsRoutes, { adminToken: config.ADMIN_TOKEN });
  return app;
}
