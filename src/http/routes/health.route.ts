import type { FastifyInstance } from 'fastify';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import { quietLevel } from '../quiet-route.js';

export interface HealthDeps {
  pool: pg.Pool;
  boss: PgBoss;
}

// live: the process answers. ready: it can do its job (database reachable, queue schema installed and
// pg-boss running), so a load balancer sends traffic only where an IPN can actually be stored.
export async function healthRoutes(app: FastifyInstance, deps: HealthDeps): Promise<void> {
  app.get('/health/live', { logLevel: quietLevel(app) }, async () => ({ status: 'ok' }));
  app.get('/health/ready', { logLevel: quietLevel(app) }, async (_request, reply) => {
    const checks = { database: false, queue: false };
    try {
      await deps.pool.query('SELECT 1');
      checks.database = true;
      checks.queue = await deps.boss.isInstalled();
    } catch {
      // fall through with whatever passed
    }
    const ok = checks.database && checks.queue;
    return reply.status(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', checks });
  });
}
