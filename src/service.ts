import type { FastifyInstance } from 'fastify';
import type { Bot } from 'grammy';
import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { createActors, inlineEffects } from './actors/index.js';
import type { EffectActor } from './actors/effect-actor.js';
import { batchQueues, resumeParkedBatch, startBatchWorkers } from './actors/payouts/batches.js';
import { startActors, startDeadLetterWorker } from './actors/runner.js';
import { createEagerRunner } from './actors/eager-jobs.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { buildHealthApp } from './http/health-app.js';
import { IPN_PATH } from './http/routes/ipn.route.js';
import { createIpnService, type IpnService } from './intake/ipn.service.js';
import { RECONCILE_QUEUE, startReconcileJob } from './intake/reconcile.job.js';
import { EFFECTS, type EffectName } from './machines/payment.events.js';
import { createNowPaymentsClient, type NowPaymentsClient } from './nowpayments/client.js';
import { startJournalFeed } from './operator/journal-feed.js';
import { countTelegramErrors } from './operator/metrics.js';
import { createOrderService, type OrderService } from './orders/order.service.js';
import { createPayoutExecutor, type PayoutExecutor } from './payouts/payout-executor.js';
import { createPayoutTargetCheck } from './payouts/payout-target-check.js';
import { createEngine, type Engine } from './persistence/apply-event.js';
import { openDatabase, type Database } from './persistence/database.js';
import { backfillPaymentViews } from './persistence/backfill-views.js';
import { migrate } from './persistence/migrate.js';
import { startListener } from './persistence/listener.js';
import { createBoss, ensureQueues, heartbeatSecondsOf } from './persistence/queues.js';
import { addLogSecrets, configSecrets } from './logger.js';
import { resolveRuntime, StartupError, type Runtime } from './runtime.js';
import { createHostWallet, type HostWallet } from './providers/chain/host-wallet.js';
import { createChangeNowClient, type ChangeNowClient } from './providers/changenow/changenow.client.js';
import { sandboxRoutes, startSandboxNowPayments, type SandboxNowPayments } from './sandbox/sandbox-nowpayments.js';
import { sandboxChatRoutes } from './sandbox/sandbox-chat.js';
import { startSandboxPayouts, type SandboxPayouts } from './sandbox/sandbox-payouts.js';
import { SANDBOX_TELEGRAM_TOKEN, startSandboxTelegram, type SandboxTelegram } from './sandbox/sandbox-telegram.js';
import { buyingBot } from './telegram/bot.js';
import { createTelegramBot } from './telegram/client.js';
import { joinTracking } from './telegram/join-tracking.js';
import { parseReminders, startSubscriptionWorkers, subscriptionQueues } from './telegram/subscriptions.service.js';
import { replyFailed, startUpdates } from './telegram/updates.js';

// The composition root: the one place that turns configuration into a running service. It chooses
// real providers or the sandbox fakes, builds each service once with explicit dependencies, starts the
// workers, and listens last. Shutdown runs the same list backwards: HTTP stops first, then the
// workers, pg-boss (which lets jobs in flight finish), the pool, Postgres, and finally the fakes.
// main.ts runs it for `npm start`; end-to-end tests run it on a test database.

export interface ServiceOptions {
  /** Effects whose actor runs in this process (default: all). Tests that study one stage run only its actor. */
  effects?: readonly EffectName[];
  /** Replace an effect's actor (tests that need a slow or failing one); an inline effect replaced so runs as a job. */
  actors?: Partial<Record<EffectName, EffectActor>>;
  /** Provider clients to use instead of the ones the configuration would build (tests). */
  nowPayments?: NowPaymentsClient | null;
}

export interface Service {
  app: FastifyInstance;
  db: Database;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
  runtime: Runtime;
  ipn: IpnService;
  orders: OrderService;
  nowPayments: NowPaymentsClient | null;
  ipnSecret: string;
  bot: Bot;
  changeNow: ChangeNowClient;
  wallet: HostWallet;
  payouts: PayoutExecutor;
  /** The in-process fakes, when this run is the sandbox (null for a real provider). */
  sandbox: { nowPayments: SandboxNowPayments | null; telegram: SandboxTelegram | null; payouts: SandboxPayouts | null };
  /** Stops taking requests and jobs, lets in-flight work finish, then closes pg-boss, the pool and Postgres. */
  close(): Promise<void>;
}

/** Closers in construction order; closing runs them backwards, each once, logging (not throwing) failures. */
function closers(log: Logger) {
  const stack: Array<() => Promise<void>> = [];
  return {
    add(stop: () => Promise<void>) {
      stack.push(stop);
    },
    async closeAll() {
      while (stack.length) await stack.pop()!().catch((err: unknown) => log.error({ err }, 'error during shutdown'));
    },
  };
}

export async function startService(config: Config, log: Logger, options: ServiceOptions = {}): Promise<Service> {
  // Every secret the configuration holds is scrubbed from every log line, provider errors included.
  addLogSecrets(log, configSecrets(config));
  const stops = closers(log);
  try {
    let listeningUrl = '';
    const runtime = resolveRuntime(config, log, () => listeningUrl);
    addLogSecrets(log, [runtime.statusTokenSecret]);
    let remindersMs: number[];
    try {
      remindersMs = parseReminders(config.SUBSCRIPTION_REMINDERS);
    } catch (error) {
      throw new StartupError((error as Error).message);
    }
    if (config.TELEGRAM_UPDATES === 'webhook' && !config.TELEGRAM_WEBHOOK_SECRET) {
      throw new StartupError('TELEGRAM_WEBHOOK_SECRET is required with TELEGRAM_UPDATES=webhook: without it anyone could post fake updates.');
    }
    if (!config.TELEGRAM_BOT_TOKEN && config.NODE_ENV === 'production') {
      throw new StartupError('TELEGRAM_BOT_TOKEN is required in production: no invite can be sent without it.');
    }

    // Providers: real ones from the configuration, or in-process fakes in the sandbox.
    const sandboxNowPayments = runtime.sandbox ? await startSandboxNowPayments() : null;
    if (sandboxNowPayments) {
      stops.add(() => sandboxNowPayments.stop());
      log.warn({ nowPaymentsUrl: sandboxNowPayments.fake.url }, 'SANDBOX: no NowPayments credentials; payments are simulated, nothing is real. Simulate a buyer paying with POST /sandbox/orders/<order_id>/pay');
    }
    // resolveRuntime already refused to start without an IPN secret outside the sandbox.
    const ipnSecret = sandboxNowPayments?.ipnSecret ?? config.NOWPAYMENTS_IPN_SECRET!;
    const nowPayments =
      options.nowPayments !== undefined
        ? options.nowPayments
        : (sandboxNowPayments?.client ??
          (config.NOWPAYMENTS_API_KEY ? createNowPaymentsClient({ baseUrl: config.NOWPAYMENTS_API_URL, apiKey: config.NOWPAYMENTS_API_KEY }) : null));
    if (!nowPayments) log.warn('NOWPAYMENTS_API_KEY not set: invoices cannot be created and reconciliation only re-applies stored IPNs');

    const sandboxTelegram = config.TELEGRAM_BOT_TOKEN ? null : await startSandboxTelegram(log);
    if (sandboxTelegram) {
      stops.add(() => sandboxTelegram.stop());
      log.warn('TELEGRAM_BOT_TOKEN not set: using an in-process fake Telegram Bot API (sandbox); invites are logged, not sent');
    }

    // Payouts: ChangeNow, an Ethereum node and the host wallet's key, all three or none (the sandbox).
    const payoutSettings = { CHANGENOW_API_KEY: config.CHANGENOW_API_KEY, ETH_RPC_URL: config.ETH_RPC_URL, HOST_WALLET_PRIVATE_KEY: config.HOST_WALLET_PRIVATE_KEY };
    const missing = Object.entries(payoutSettings).filter(([, value]) => !value).map(([name]) => name);
    if (missing.length > 0 && (config.NODE_ENV === 'production' || missing.length < 3)) {
      throw new StartupError(`${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} required to pay channel owners (ChangeNow swaps sent by the host wallet); set ${missing.length < 3 ? 'all three' : 'them'}, or none of them outside production for the sandbox.`);
    }
    const sandboxPayouts = missing.length === 3 ? await startSandboxPayouts({ log }) : null;
    addLogSecrets(log, [sandboxNowPayments?.ipnSecret, sandboxPayouts?.hostPrivateKey, sandboxPayouts?.changeNow.apiKey]);
    if (sandboxPayouts) stops.add(() => sandboxPayouts.stop());

    // Database, schema, queues, the engine.
    const db = await openDatabase(config, (message) => log.info(message));
    stops.add(() => db.close());
    const applied = await migrate(db.pool);
    if (applied.length) log.info({ migrations: applied }, 'database migrated');
    const backfilled = await backfillPaymentViews(db.pool);
    if (backfilled) log.info({ payments: backfilled }, 'read model computed for payments written before it existed');
    // Before pg-boss, so it closes after pg-boss has let the jobs using it finish.
    const changeNow = createChangeNowClient(
      sandboxPayouts
        ? { baseUrl: sandboxPayouts.changeNow.baseUrl, apiKey: sandboxPayouts.changeNow.apiKey }
        : { baseUrl: config.CHANGENOW_API_URL, apiKey: config.CHANGENOW_API_KEY! },
    );
    const wallet = createHostWallet({
      pool: db.pool,
      rpcUrl: sandboxPayouts?.chain.rpcUrl ?? config.ETH_RPC_URL!,
      privateKey: sandboxPayouts?.hostPrivateKey ?? config.HOST_WALLET_PRIVATE_KEY!,
      ...((sandboxPayouts?.chain.chainId ?? config.ETH_CHAIN_ID) !== undefined && { chainId: sandboxPayouts?.chain.chainId ?? config.ETH_CHAIN_ID }),
      ...(config.HOST_WALLET_MAX_FEE_GWEI !== undefined && { maxFeePerGasCap: BigInt(config.HOST_WALLET_MAX_FEE_GWEI) * 10n ** 9n }),
      log: log.child({ module: 'host-wallet' }),
    });
    stops.add(async () => wallet.close());
    // The sandbox chain mines a block per transaction and nothing else: one confirmation is all it will ever show.
    const payouts = createPayoutExecutor({ pool: db.pool, changeNow, wallet, confirmations: sandboxPayouts ? 1 : config.PAYOUT_CONFIRMATIONS, log: log.child({ module: 'payouts' }) });
    // ROLE (docs/deploy.md): `web` serves HTTP and sends jobs (in its transactions) but works none, so it
    // runs no cron schedules and no supervisor; `worker` works the queues and serves only health and metrics.
    const servesHttp = config.ROLE !== 'worker';
    const runsWorkers = config.ROLE !== 'web';
    // The process's one LISTEN connection, for pg-boss and the journal feed: Postgres wakes every listening
    // backend of the database on every NOTIFY, whatever its channel. Closed after both stopped.
    const listener = startListener({ connectionString: db.url, log: log.child({ module: 'listener' }) });
    stops.add(() => listener.close());
    const boss = createBoss(db.url, { max: config.JOB_POOL_MAX, superviseSeconds: config.JOB_SUPERVISE_EVERY / 1000, schedule: runsWorkers, supervise: runsWorkers, listener });
    // A stop right after start can race pg-boss's own connections (its pool's, still connecting);
    // one that outlives boss.stop() is ended by our Postgres stopping: expected then, not an error.
    let bossStopped = false;
    boss.on('error', (err: Error & { code?: string }) => {
      if (bossStopped && err.code === '57P01') log.warn({ err }, 'pg-boss: a connection that outlived its stop was closed by the database shutdown');
      else log.error({ err }, 'pg-boss error');
    });
    await boss.start();
    stops.add(async () => {
      bossStopped = true;
      await boss.stop({ graceful: true, close: true, timeout: config.SHUTDOWN_GRACE });
    });
    await ensureQueues(boss, config, {
      // exclusive: one reconciliation queued or active at a time, so a slow run never overlaps the next.
      [RECONCILE_QUEUE]: { policy: 'exclusive', retryLimit: 0, expireInSeconds: 600, notify: true },
      ...subscriptionQueues,
      ...batchQueues(config.PAYOUT_SETTLE_RETRY_LIMIT),
    });
    // Routing and the threshold credit run inside the confirming transaction; a test that replaces one's
    // actor (slow, failing) gets it as a job.
    const inline = Object.fromEntries(Object.entries(inlineEffects({ boss })).filter(([effect]) => !options.actors?.[effect as EffectName]));
    // Jobs the engine's transitions create here are run here at once when a slot is free (eager-jobs.ts).
    const eager = createEagerRunner({ limit: runsWorkers ? config.EAGER_JOB_LIMIT : 0, heartbeatMs: heartbeatSecondsOf(config) * 1000 });
    stops.add(() => eager.stop(config.SHUTDOWN_GRACE));
    const engine = createEngine({
      pool: db.pool,
      inline,
      eager,
      onInlineQueued: (paymentId, effect, err) => log.warn({ paymentId, effect, err }, 'inline effect failed; queued as a job instead'),
      onAfterCommitFailed: (paymentId, effect, err) => log.warn({ paymentId, effect, err }, 'work after the commit failed (the periodic sweep does it)'),
    });
    // Journal inserts as they commit, for the operators' live pages and the buyer's status cache: only
    // where HTTP is served (a worker's health app reads neither). Closed after HTTP stops.
    const journalFeed = servesHttp ? startJournalFeed({ listener, log: log.child({ module: 'journal-feed' }) }) : null;
    if (journalFeed) stops.add(() => journalFeed.close());

    // Services, each built once.
    const { pool } = db;
    const ipn = createIpnService({ pool, engine, log: log.child({ module: 'intake' }) });
    const orders = createOrderService({
      pool,
      nowPayments,
      statusTokenSecret: runtime.statusTokenSecret,
      publicBaseUrl: runtime.publicBaseUrl,
      log,
      reuseOpenOrderForMs: config.ORDER_REUSE_WINDOW,
    });
    const bot = createTelegramBot({
      token: config.TELEGRAM_BOT_TOKEN ?? SANDBOX_TELEGRAM_TOKEN,
      apiRoot: sandboxTelegram?.fake.apiRoot ?? config.TELEGRAM_API_ROOT,
      timeoutMs: config.TELEGRAM_REQUEST_TIMEOUT,
      ...(sandboxTelegram && { botInfo: sandboxTelegram.fake.botInfo }),
    });
    bot.api.config.use(countTelegramErrors); // telepay_provider_errors_total{provider="telegram"}: every failed Bot API call, after auto-retry
    bot.use(joinTracking({ pool, log }));
    bot.use(buyingBot({ pool, log, orderService: orders, supportContact: config.SUPPORT_CONTACT }));
    bot.catch((error) => replyFailed(error, log));

    // Workers: effect actors, the dead letter, reconciliation, subscriptions, Telegram updates.
    const actors = { ...createActors({ pool, boss, log, config, telegram: bot.api, remindersMs, payouts }), ...options.actors };
    const running = (options.effects ?? EFFECTS).flatMap((effect) => actors[effect] ?? []);
    const runnerDeps = { boss, pool, engine, log, config };
    if (runsWorkers) await startActors(runnerDeps, running);
    if (runsWorkers) eager.start(runnerDeps, running);
    if (runsWorkers) await startDeadLetterWorker(runnerDeps);
    if (runsWorkers) {
      stops.add(
        await startReconcileJob(boss, config.RECONCILE_EVERY, {
          pool,
          engine,
          ipn,
          log: log.child({ module: 'reconcile' }),
          nowPayments: nowPayments ?? undefined,
          olderThanMs: config.RECONCILE_AFTER,
        }),
      );
    }
    if (runsWorkers) stops.add(await startBatchWorkers({ pool, boss, engine, changeNow, payouts, log: log.child({ module: 'batches' }) }, config.PAYOUT_SWEEP_EVERY));
    if (runsWorkers) stops.add(await startSubscriptionWorkers({ pool, boss, api: bot.api, log, remindersMs, dryRun: config.SUBSCRIPTION_REMOVAL_DRY_RUN, sweepEvery: config.SUBSCRIPTION_SWEEP_EVERY }));

    // HTTP, last: nothing is served before everything it needs runs; on close it is the first to stop.
    // A worker listens too, for its probes and the scraper only (src/http/health-app.ts).
    const app = !servesHttp ? await buildHealthApp({ config, pool, boss, log }) : await buildApp({
      config,
      pool,
      boss,
      engine,
      log,
      statusTokenSecret: runtime.statusTokenSecret,
      ipn,
      ipnSecret,
      orders,
      journalFeed,
      // The owner's grant/extend/revoke (src/channels/owner-access.ts): the same Bot API and removal settings as the expiry worker.
      ownerAccess: { api: bot.api, remindersMs, dryRun: config.SUBSCRIPTION_REMOVAL_DRY_RUN, inviteExpireAfterMs: config.INVITE_EXPIRE_AFTER },
      payouts: {
        txStatus: (txKey) => wallet.status(txKey, sandboxPayouts ? 1 : config.PAYOUT_CONFIRMATIONS),
        resumeBatch: (batchId) => resumeParkedBatch({ pool, boss }, batchId),
        checkTarget: createPayoutTargetCheck(changeNow),
      },
      telegramWebhook:
        config.TELEGRAM_UPDATES === 'webhook' && config.TELEGRAM_WEBHOOK_SECRET
          ? { bot, secret: config.TELEGRAM_WEBHOOK_SECRET, onBuyerError: (error) => replyFailed(error, log) }
          : null,
      extraRoutes: [
        ...(sandboxNowPayments
          ? [
              (scope: FastifyInstance) =>
                sandboxRoutes(scope, {
                  sandbox: sandboxNowPayments,
                  webhookUrl: () => `${runtime.publicBaseUrl()}${IPN_PATH}`,
                  statusTokenSecret: runtime.statusTokenSecret,
                  publicBaseUrl: runtime.publicBaseUrl,
                  pool,
                  invoiceLifetimeMs: config.ORDER_REUSE_WINDOW,
                }),
            ]
          : []),
        // The sandbox chat page: a browser plays a Telegram user talking to this bot (src/sandbox/sandbox-chat.ts).
        ...(sandboxTelegram ? [(scope: FastifyInstance) => sandboxChatRoutes(scope, { bot, telegram: sandboxTelegram.fake, pool })] : []),
      ],
    });
    // Updates need our public URL (webhook registration), so they start once we listen; polling stops before HTTP.
    listeningUrl = await app.listen({ host: config.HOST, port: config.PORT });
    // The webhook is registered by whoever serves it; long polling is a worker's job (one poller per bot).
    const receivesUpdates = config.TELEGRAM_UPDATES === 'webhook' ? servesHttp : runsWorkers;
    const stopUpdates = receivesUpdates ? await startUpdates(bot, config, runtime.publicBaseUrl, log) : async () => {};
    stops.add(async () => {
      await app.close();
      await stopUpdates();
    });
    if (sandboxNowPayments) log.warn(`SANDBOX: simulate a payment with: curl -X POST ${runtime.publicBaseUrl()}/sandbox/orders/<order_id>/pay`);

    return {
      app,
      db,
      boss,
      engine,
      log,
      runtime,
      ipn,
      orders,
      nowPayments,
      ipnSecret,
      bot,
      changeNow,
      wallet,
      payouts,
      sandbox: { nowPayments: sandboxNowPayments, telegram: sandboxTelegram, payouts: sandboxPayouts },
      close: () => stops.closeAll(),
    };
  } catch (error) {
    await stops.closeAll();
    throw error;
  }
}
