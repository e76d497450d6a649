import type { FastifyInstance } from 'fastify';
import { register } from 'prom-client';
import { adminAuth } from '../plugins/admin-auth.js';
import { quietLevel } from '../quiet-route.js';

export interface MetricsRouteDeps {
  /** When set, /metrics requires `Authorization: Bearer <ADMIN_TOKEN>` (counters reveal business volume). */
  adminToken?: string | undefined;
}

// Unlike /admin, /metrics stays open when ADMIN_TOKEN is unset: a scraper on a private network is the
// common setup, and the counters hold no secrets.
export async function metricsRoutes(app: FastifyInstance, deps: MetricsRouteDeps): Promise<void> {
  if (deps.adminToken) app.addHook('onRequest', adminAuth(deps.adminToken));
  app.get('/metrics', { logLevel: quietLevel(app), schema: { hide: true } }, async (_request, reply) => {
    return reply.type(register.contentType).send(await register.metrics());
  });
}
