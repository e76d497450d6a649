import { createRouteActor } from '../actors/route/route.actor.js';
import { adminChannelsRoutes } from '../http/routes/admin-channels.route.js';
import { ordersRoutes } from '../http/routes/orders.route.js';
import type { Module } from '../modules.js';
import { createOrderService } from './order.service.js';

// Channels, plans and orders: the admin API for owners' configuration, order creation with its
// NowPayments invoice, and the "route" effect that turns a confirmed payment into a granted order.
// The NowPayments client is read from deps.shared at each order (the intake module shares it), so module
// order does not matter for it; without it, orders answer 503.
export const ordersModule: Module = {
  name: 'orders',
  async prepare(deps) {
    deps.shared.orderService = createOrderService({ pool: deps.pool, runtime: deps.runtime, shared: deps.shared, log: deps.log });
  },
  actors: (deps) => [createRouteActor({ pool: deps.pool })],
  async routes(app, deps) {
    await adminChannelsRoutes(app, { pool: deps.pool, adminToken: deps.config.ADMIN_TOKEN });
    const orderService = deps.shared.orderService;
    if (!orderService) throw new Error('orders module: prepare did not run before routes');
    await ordersRoutes(app, { orderService, rateLimitPerMinute: deps.config.ORDER_RATE_LIMIT });
  },
};
