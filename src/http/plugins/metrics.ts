import type { FastifyInstance } from 'fastify';
import fastifyMetrics from 'fastify-metrics';
import type pg from 'pg';
import promClient from 'prom-client';
import type { Config } from '../../config.js';
import { attachOperatorMetrics, createCountsReader } from '../../operator/metrics.js';
import { stuckLimits } from '../../domain/stuck-limits.js';

// HTTP request metrics (fastify-metrics: http_request_duration_seconds by method, route template and
// status) and the process's default metrics, in prom-client's default registry: the one /metrics serves
// (src/http/routes/metrics.route.ts) beside the intake and operator counters. Also attaches the
// database-backed operator gauges (payments and stuck payments by state, queue depth and age, orphan
// invite links) to this app's pool.
//
// Registered before the routes: fastify-metrics times requests with global hooks.
//
// fastify-metrics creates its histogram and starts the default collectors each time it is registered,
// and prom-client refuses a second metric of the same name; tests build several apps in one process.
// So it gets prom-client with those three made idempotent: a second app shares the first one's metrics.

// A CommonJS module with only `exports.default`: Node's ESM import hands over the exports object, a
// bundler's interop (vitest) the default itself.
const metricsPlugin = (fastifyMetrics as unknown as { default?: typeof fastifyMetrics.default }).default ?? (fastifyMetrics as unknown as typeof fastifyMetrics.default);

let defaultsStarted = false;
const sharedClient: typeof promClient = Object.assign(Object.create(promClient) as typeof promClient, {
  Histogram: function Histogram(config: promClient.HistogramConfiguration<string>) {
    return (promClient.register.getSingleMetric(config.name) as promClient.Histogram | undefined) ?? new promClient.Histogram(config);
  },
  Summary: function Summary(config: promClient.SummaryConfiguration<string>) {
    return (promClient.register.getSingleMetric(config.name) as promClient.Summary | undefined) ?? new promClient.Summary(config);
  },
  collectDefaultMetrics(config?: promClient.DefaultMetricsCollectorConfiguration<promClient.RegistryContentType>) {
    if (defaultsStarted || promClient.register.getSingleMetric('process_cpu_user_seconds_total')) return;
    defaultsStarted = true;
    promClient.collectDefaultMetrics(config);
  },
});

export interface MetricsPluginDeps {
  pool: pg.Pool;
  config: Pick<Config, 'STUCK_AFTER' | 'STUCK_AFTER_STATES' | 'METRICS_CACHE_FOR'>;
}

export async function registerMetrics(app: FastifyInstance, deps: MetricsPluginDeps): Promise<void> {
  await app.register(metricsPlugin, {
    // Served by our own /metrics route (bearer token when ADMIN_TOKEN is set), not the plugin's.
    endpoint: null,
    promClient: sharedClient,
    defaultMetrics: { enabled: true },
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      // Every request, 404s included (labelled __unknown__); the route label is the template, never the raw URL.
      registeredRoutesOnly: false,
      routeBlacklist: ['/metrics'],
      overrides: { histogram: { buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] } },
    },
  });
  const read = createCountsReader({ pool: deps.pool, limits: stuckLimits(deps.config.STUCK_AFTER, deps.config.STUCK_AFTER_STATES), cacheMs: deps.config.METRICS_CACHE_FOR });
  const detach = attachOperatorMetrics(read);
  app.addHook('onClose', async () => detach());
}
