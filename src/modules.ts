import type { FastifyInstance } from 'fastify';
import type { PgBoss, Queue } from 'pg-boss';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { EffectActor } from './actors/effect-actor.js';
import type { Config } from './config.js';
import type { Engine } from './persistence/apply-event.js';

// A feature (intake, Telegram, payouts) plugs into the service through one of these, so the
// composition root stays a list and features do not edit each other's wiring.

export interface ModuleDeps {
  config: Config;
  pool: pg.Pool;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
  /** Values modules share with each other (e.g. the order service the bot uses), filled in order. */
  shared: Map<string, unknown>;
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
