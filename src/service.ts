import type { FastifyInstance } from 'fastify';
import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { startActors, startDeadLetterWorker } from './actors/runner.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import type { Module, ModuleDeps } from './modules.js';
import { createEngine, type Engine } from './persistence/apply-event.js';
import { openDatabase, type Database } from './persistence/database.js';
import { migrate } from './persistence/migrate.js';
import { createBoss, ensureQueues } from './persistence/queues.js';
import { allModules } from './modules.list.js';
import { resolveRuntime } from './runtime.js';

// The composition root: config -> database -> migrations -> pg-boss -> modules (actors, routes,
// workers) -> HTTP. main.ts runs it for `npm start`; end-to-end tests run it on a test database.

export interface Service {
  app: FastifyInstance;
  db: Database;
  boss: PgBoss;
  engine: Engine;
  deps: ModuleDeps;
  /** Stops taking requests and jobs, lets in-flight work finish, then closes pg-boss, the pool and Postgres. */
  close(): Promise<void>;
}

export async function startService(config: Config, log: Logger, modules: Module[] = allModules): Promise<Service> {
  const db = await openDatabase(config, (message) => log.info(message));
  // Run in reverse order of start on close: HTTP first, then workers, pg-boss, the pool, Postgres.
  const cleanup: Array<() => Promise<void>> = [() => db.close()];
  const close = async () => {
    for (const stop of cleanup.splice(0)) await stop().catch((err) => log.error({ err }, 'error during shutdown'));
  };
  try {
    const applied = await migrate(db.pool);
    if (applied.length) log.info({ migrations: applied }, 'database migrated');

    const boss = createBoss(db.url, { max: 10 });
    boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
    await boss.start();
    cleanup.unshift(() => boss.stop({ graceful: true, close: true, timeout: config.SHUTDOWN_GRACE }));
    await ensureQueues(boss, config, Object.assign({}, ...modules.map((m) => m.queues ?? {})));

    const engine = createEngine({ pool: db.pool, boss });
    let listeningUrl = '';
    const runtime = resolveRuntime(config, log, () => listeningUrl);
    const deps: ModuleDeps = { config, pool: db.pool, boss, engine, log, runtime, shared: {} };
    for (const module of modules) {
      const stop = await module.prepare?.(deps);
      if (stop) cleanup.unshift(stop);
    }
    const runnerDeps = { boss, pool: db.pool, engine, log, config };
    await startActors(runnerDeps, modules.flatMap((m) => m.actors?.(deps) ?? []));
    await startDeadLetterWorker(runnerDeps);

    const app = await buildApp({ config, pool: db.pool, boss, engine, log }, async (instance) => {
      for (const module of modules) await module.routes?.(instance, deps);
    });
    listeningUrl = await app.listen({ host: config.HOST, port: config.PORT });
    cleanup.unshift(() => app.close());

    for (const module of modules) {
      const stop = await module.start?.(deps);
      if (stop) cleanup.splice(1, 0, stop); // after HTTP closes, before pg-boss stops
    }
    return { app, db, boss, engine, deps, close };
  } catch (error) {
    await close();
    throw error;
  }
}
