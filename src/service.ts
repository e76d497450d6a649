import type { FastifyInstance } from 'fastify';
import type { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import type { EffectActor } from './actors/effect-actor.js';
import { startActors, startDeadLetterWorker } from './actors/runner.js';
import type { Config } from './config.js';
import { buildApp } from './http/app.js';
import { createEngine, type Engine } from './persistence/apply-event.js';
import { openDatabase, type Database } from './persistence/database.js';
import { migrate } from './persistence/migrate.js';
import { createBoss, ensureQueues } from './persistence/queues.js';

// The composition root: config -> database -> migrations -> pg-boss -> actors -> HTTP.
// main.ts runs it for `npm start`; end-to-end tests run it on a test database.

export interface Service {
  app: FastifyInstance;
  db: Database;
  boss: PgBoss;
  engine: Engine;
  /** Stops taking requests and jobs, lets in-flight work finish, then closes pg-boss, the pool and Postgres. */
  close(): Promise<void>;
}

export async function startService(config: Config, log: Logger): Promise<Service> {
  const db = await openDatabase(config, (message) => log.info(message));
  const cleanup: Array<() => Promise<void>> = [() => db.close()];
  try {
    const applied = await migrate(db.pool);
    if (applied.length) log.info({ migrations: applied }, 'database migrated');

    const boss = createBoss(db.url, { max: 10 });
    boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
    await boss.start();
    cleanup.unshift(() => boss.stop({ graceful: true, close: true, timeout: config.SHUTDOWN_GRACE }));
    await ensureQueues(boss, config);

    const engine = createEngine({ pool: db.pool, boss });
    const runnerDeps = { boss, pool: db.pool, engine, log, config };
    const actors: EffectActor[] = [];
    await startActors(runnerDeps, actors);
    await startDeadLetterWorker(runnerDeps);

    const app = await buildApp({ config, pool: db.pool, boss, engine, log });
    cleanup.unshift(() => app.close());
    await app.listen({ host: config.HOST, port: config.PORT });

    return {
      app,
      db,
      boss,
      engine,
      async close() {
        for (const step of cleanup.splice(0)) await step();
      },
    };
  } catch (error) {
    for (const step of cleanup.splice(0)) await step().catch(() => {});
    throw error;
  }
}
