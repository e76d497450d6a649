import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { BotError, Bot } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { NotConfiguredError } from '../domain/errors.js';
import type { IpnService } from '../intake/ipn.service.js';
import type { OwnerAccessDeps } from '../channels/owner-access.js';
import type { JournalWatch } from '../operator/journal-feed.js';
import type { OrderService } from '../orders/order.service.js';
import type { PayoutTargetCheck } from '../payouts/payout-target-check.js';
import type { Engine } from '../persistence/apply-event.js';
import { registerErrorHandler } from './plugins/error-handler.js';
import { registerMetrics } from './plugins/metrics.js';
import { registerOpenApi } from './plugins/openapi.js';
import { adminChannelsRoutes } from './routes/admin-channels.route.js';
import { adminIpnRoutes } from './routes/admin-ipn.route.js';
import { adminOwnerRoutes } from './routes/admin-owner.route.js';
import { adminInspectorRoutes } from './routes/admin-inspector.route.js';
import { adminPaymentsRoutes } from './routes/admin-payments.route.js';
import { adminPayoutsRoutes, type AdminPayoutsDeps } from './routes/admin-payouts.route.js';
import { healthRoutes } from './routes/health.route.js';
import { ipnRoutes } from './routes/ipn.route.js';
import { metricsRoutes } from './routes/metrics.route.js';
import { ordersRoutes } from './routes/orders.route.js';
import { paymentStatusRoutes } from './routes/payment-status.route.js';
import { successPageRoutes } from './routes/success-page.route.js';
import { telegramWebhookRoutes } from './routes/telegram-webhook.route.js';

/** Everything the HTTP surface needs, built by the composition root (src/service.ts) or by a test. */
export interface AppDeps {
  config: Config;
  pool: pg.Pool;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
  statusTokenSecret: string;
  ipn: IpnService;
  ipnSecret: string;
  orders: OrderService;
  /** The bot, when Telegram updates arrive by webhook. */
  telegramWebhook?: { bot: Bot; secret: string; onBuyerError(error: BotError): Promise<void> } | null;
  /** Payout operations the HTTP layer cannot build itself (the node's word on a transaction, resuming a batch's job chain). */
  payouts?: Pick<AdminPayoutsDeps, 'txStatus' | 'resumeBatch'> & { checkTarget?: PayoutTargetCheck };
  /** Extra routes the root adds (the sandbox's "play the buyer" endpoints); http never imports src/sandbox. */
  extraRoutes?: FastifyPluginAsync[];
  /** Journal rows as they commit (the service's LISTEN connection): the operators' live inspector and statechart, and the buyer's status cache (dropped on each commit). */
  journalFeed?: JournalWatch | null;
  /** What the owner's manual access changes need besides pool, boss and log (the Bot API, reminders); absent: they answer 503. */
  ownerAccess?: Omit<OwnerAccessDeps, 'pool' | 'boss' | 'log'> | null;
}

/** An app built without the payout machinery (tests of other routes): reads work, actions say so. */
const WITHOUT_PAYOUT_WORKERS: Pick<AdminPayoutsDeps, 'txStatus' | 'resumeBatch'> = {
  txStatus: async () => ({ state: 'not asked: this process runs no payout workers' }),
  resumeBatch: async () => {
    throw new NotConfiguredError('this process runs no payout workers, so it cannot resume a batch');
  },
};

/** The whole HTTP surface, built from its dependencies: the service listens on it, tests use app.inject. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { config, pool } = deps;
  // Typed as the base logger so plugins and route modules share one FastifyInstance type.
  const app = Fastify({
    loggerInstance: deps.log as FastifyBaseLogger,
    // Webhook bodies are small; anything larger is refused with 413 before it is parsed.
    bodyLimit: 256 * 1024,
    // Only as many proxy hops as configured are believed, so a client cannot pick its own IP for rate limits.
    trustProxy: (_address: string, hop: number) => hop < config.TRUST_PROXY_HOPS,
    requestIdHeader: 'x-request-id',
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerErrorHandler(app);
  // Registered once for the app; a route opts in with `config.rateLimit` (webhooks never do: providers must not be throttled).
  await app.register(rateLimit, { global: false });
  // Load shedding: when the event loop lags (the process is saturated), answer 503 with Retry-After
  // instead of queueing requests until they time out. A provider's retry of a shed webhook is safe:
  // nothing was stored, and a stored body is deduplicated anyway.
  await app.register(underPressure, { maxEventLoopDelay: 2_000, retryAfter: 10 });
  await registerOpenApi(app);
  // Before the routes: HTTP request metrics hook every route registered after it.
  await registerMetrics(app, { pool, config });
  await app.register(healthRoutes, { pool, boss: deps.boss });

  // Providers calling us.
  await app.register(ipnRoutes, { ipn: deps.ipn, ipnSecret: deps.ipnSecret });
  if (deps.telegramWebhook) {
    const webhook = deps.telegramWebhook;
    await app.register(async (scope) => telegramWebhookRoutes(scope, webhook));
  }

  // Buyers.
  await app.register(async (scope) => ordersRoutes(scope, { orderService: deps.orders, rateLimitPerMinute: config.ORDER_RATE_LIMIT }));
  await app.register(paymentStatusRoutes, { pool, statusTokenSecret: deps.statusTokenSecret, rateLimitPerMinute: config.STATUS_RATE_LIMIT, journalFeed: deps.journalFeed ?? null });
  await app.register(successPageRoutes, { pool, statusTokenSecret: deps.statusTokenSecret, supportContact: config.SUPPORT_CONTACT });

  // Owners, operators, monitoring.
  await app.register(async (scope) => adminChannelsRoutes(scope, { pool, adminToken: config.ADMIN_TOKEN, ...(deps.payouts?.checkTarget && { checkPayoutTarget: deps.payouts.checkTarget }) }));
  await app.register(async (scope) => adminPaymentsRoutes(scope, { config, pool, engine: deps.engine }));
  await app.register(async (scope) =>
    adminOwnerRoutes(scope, { pool, adminToken: config.ADMIN_TOKEN, access: deps.ownerAccess ? { pool, boss: deps.boss, log: deps.log, ...deps.ownerAccess } : null }),
  );
  await app.register(async (scope) => adminInspectorRoutes(scope, { config, pool, journalFeed: deps.journalFeed ?? null }));
  await app.register(adminIpnRoutes, { pool, ipn: deps.ipn, adminToken: config.ADMIN_TOKEN });
  await app.register(async (scope) => adminPayoutsRoutes(scope, { pool, adminToken: config.ADMIN_TOKEN, ...(deps.payouts ?? WITHOUT_PAYOUT_WORKERS) }));
  await app.register(metricsRoutes, { adminToken: config.ADMIN_TOKEN });

  for (const routes of deps.extraRoutes ?? []) await app.register(routes);
  return app;
}
