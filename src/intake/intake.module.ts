import type { Module, ModuleDeps } from '../modules.js';
import { adminIpnRoutes } from '../http/routes/admin-ipn.route.js';
import { ipnRoutes, IPN_PATH } from '../http/routes/ipn.route.js';
import { metricsRoutes } from '../http/routes/metrics.route.js';
import { paymentStatusRoutes } from '../http/routes/payment-status.route.js';
import { successPageRoutes } from '../http/routes/success-page.route.js';
import { createNowPaymentsClient } from '../nowpayments/client.js';
import { sandboxRoutes, startSandboxNowPayments, type SandboxNowPayments } from '../sandbox/sandbox-nowpayments.js';
import { createIpnService, type IpnService } from './ipn.service.js';
import { RECONCILE_QUEUE, startReconcileJob } from './reconcile.job.js';

// Intake: everything that brings NowPayments' word into the engine (IPN webhook, reconciliation) and
// everything the buyer reads back (status API, success page). Runs first: it provides the NowPayments
// client and IPN secret that the orders module uses to create invoices.

const SANDBOX_KEY = 'sandboxNowPayments';

function ipnServiceOf(deps: ModuleDeps): IpnService {
  const existing = deps.shared.ipnService as IpnService | undefined;
  if (existing) return existing;
  const created = createIpnService({ pool: deps.pool, engine: deps.engine, log: deps.log.child({ module: 'intake' }) });
  deps.shared.ipnService = created;
  return created;
}

export const intakeModule: Module = {
  name: 'intake',
  // exclusive: one run queued or active at a time, so a slow run never overlaps the next one.
  queues: { [RECONCILE_QUEUE]: { policy: 'exclusive', retryLimit: 0, expireInSeconds: 600, notify: true } },

  async prepare(deps) {
    ipnServiceOf(deps);
    if (deps.runtime.sandbox) {
      const sandbox = await startSandboxNowPayments();
      deps.shared.nowPayments = sandbox.client;
      deps.shared.nowPaymentsIpnSecret = sandbox.ipnSecret;
      deps.shared[SANDBOX_KEY] = sandbox;
      deps.log.warn(
        { nowPaymentsUrl: sandbox.fake.url },
        'SANDBOX: no NowPayments credentials; payments are simulated, nothing is real. Simulate a buyer paying with POST /sandbox/orders/<order_id>/pay',
      );
      return () => sandbox.stop();
    }
    // resolveRuntime already refused to start without an IPN secret outside the sandbox.
    deps.shared.nowPaymentsIpnSecret = deps.config.NOWPAYMENTS_IPN_SECRET;
    if (deps.config.NOWPAYMENTS_API_KEY) {
      deps.shared.nowPayments = createNowPaymentsClient({ baseUrl: deps.config.NOWPAYMENTS_API_URL, apiKey: deps.config.NOWPAYMENTS_API_KEY });
    } else {
      deps.log.warn('NOWPAYMENTS_API_KEY not set: invoices cannot be created and reconciliation only re-applies stored IPNs');
    }
  },

  async routes(app, deps) {
    const ipnSecret = deps.shared.nowPaymentsIpnSecret;
    if (!ipnSecret) throw new Error('intake: no IPN secret; prepare() must run before routes()');
    await app.register(ipnRoutes, { ipn: ipnServiceOf(deps), ipnSecret });
    await app.register(metricsRoutes, { adminToken: deps.config.ADMIN_TOKEN });
    await app.register(adminIpnRoutes, { pool: deps.pool, ipn: ipnServiceOf(deps), adminToken: deps.config.ADMIN_TOKEN });
    await app.register(paymentStatusRoutes, { pool: deps.pool, statusTokenSecret: deps.runtime.statusTokenSecret, rateLimitPerMinute: deps.config.STATUS_RATE_LIMIT });
    await app.register(successPageRoutes);
    const sandbox = deps.shared[SANDBOX_KEY] as SandboxNowPayments | undefined;
    if (sandbox) {
      await app.register(sandboxRoutes, {
        sandbox,
        webhookUrl: () => `${deps.runtime.publicBaseUrl()}${IPN_PATH}`,
        statusTokenSecret: deps.runtime.statusTokenSecret,
        publicBaseUrl: () => deps.runtime.publicBaseUrl(),
      });
    }
  },

  async start(deps) {
    if (deps.runtime.sandbox) {
      deps.log.warn(`SANDBOX: simulate a payment with: curl -X POST ${deps.runtime.publicBaseUrl()}/sandbox/orders/<order_id>/pay`);
    }
    return startReconcileJob(deps.boss, deps.config.RECONCILE_EVERY, {
      pool: deps.pool,
      engine: deps.engine,
      ipn: ipnServiceOf(deps),
      log: deps.log.child({ module: 'reconcile' }),
      nowPayments: deps.shared.nowPayments,
      olderThanMs: deps.config.RECONCILE_AFTER,
    });
  },
};
