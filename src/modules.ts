import type { FastifyInstance } from 'fastify';
import type { PgBoss, Queue } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { EffectActor } from './actors/effect-actor.js';
import type { Config } from './config.js';
import type { NowPaymentsClient } from './nowpayments/client.js';
import type { IpnService } from './intake/ipn.service.js';
import type { Engine } from './persistence/apply-event.js';

// A feature (intake, Telegram, payouts) plugs into the service through one of these, so the
// composition root stays a list and features do not edit each other's wiring.

export interface ModuleDeps {
  config: Config;
  pool: pg.Pool;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
  runtime: Runtime;
  /** Values modules share with each other, filled in module order by `prepare`. */
  shared: Shared;
}

export interface Runtime {
  /** No provider credentials and not production: fakes stand in for NowPayments / Telegram. */
  sandbox: boolean;
  statusTokenSecret: string;
  /** Where buyers and providers reach us (PUBLIC_BASE_URL, else the address the server listens on). */
  publicBaseUrl(): string;
}

export interface CreatedOrder {
  orderId: string;
  invoiceUrl: string;
  /** The success page with its signed status token. */
  statusUrl: string;
  priceUsd: string;
}

export interface OrderService {
  createOrder(input: { buyerTelegramId: string; openChannelId: string; planId: string; source: 'api' | 'bot' }): Promise<CreatedOrder>;
}

export interface Shared {
  nowPayments?: NowPaymentsClient;
  nowPaymentsIpnSecret?: string;
  orderService?: OrderService;
  ipnService?: IpnService;
  [key: string]: unknown;
}

export interface Module {
  name: string;
  /** Extra pg-boss queues (scheduled jobs, non-effect work) this module sends to. */
  queues?: Record<string, Omit<Queue, 'name'>>;
  /** Runs before anything else of the module: start fakes (sandbox), build clients, fill deps.shared. Returns a stop function. */
  prepare?(deps: ModuleDeps): Promise<(() => Promise<void>) | void>;
  /** Actors performing payment effects. */
  actors?(deps: ModuleDeps): EffectActor[];
  /** HTTP routes. */
  routes?(app: FastifyInstance, deps: ModuleDeps): Promise<void>;
  /** Workers for the module's own queues, schedules, bots. Called after the HTTP server listens. Returns a stop function. */
  start?(deps: ModuleDeps): Promise<(() => Promise<void>) | void>;
}
