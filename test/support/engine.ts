import { PgBoss } from 'pg-boss';
import type { Logger } from 'pino';
import { inlineEffects } from '../../src/actors/index.js';
import { createLogger } from '../../src/logger.js';
import type { EffectName } from '../../src/machines/payment.events.js';
import { createEngine, type Engine } from '../../src/persistence/apply-event.js';
import { createBoss } from '../../src/persistence/queues.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestEngine {
  db: TestDatabase;
  boss: PgBoss;
  engine: Engine;
  log: Logger;
  close(): Promise<void>;
}

/**
 * A real engine on a fresh database: pg-boss started, queues from the template. By default every effect
 * is a job (the engine's mechanism, studied on its own); `inline: true` routes (and credits threshold
 * owners) inside the transition as the service does; `inline: ['route']` only routes there.
 */
export async function startTestEngine(options: { inline?: boolean | EffectName[] } = {}): Promise<TestEngine> {
  const db = await createTestDatabase();
  const boss = createBoss(db.url, { max: 10, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  const all = inlineEffects({ boss });
  const inline = options.inline === true ? all : Object.fromEntries(Object.entries(all).filter(([effect]) => Array.isArray(options.inline) && options.inline.includes(effect as EffectName)));
  const engine = createEngine({ pool: db.pool, inline });
  const log = createLogger((process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent');
  return {
    db,
    boss,
    engine,
    log,
    async close() {
      await boss.stop({ graceful: false, close: true });
      await db.drop();
    },
  };
}

export async function journalOf(db: TestDatabase, paymentId: string) {
  const { rows } = await db.pool.query<{ seq: number; event_type: string; source: string }>(
    'SELECT seq, event_type, source FROM payment_journal WHERE payment_id = $1 ORDER BY seq',
    [paymentId],
  );
  return rows;
}

export async function paymentRow(db: TestDatabase, paymentId: string) {
  const { rows } = await db.pool.query<{ state: string; version: number; review_reason: string | null; state_value: unknown }>(
    'SELECT state, version, review_reason, state_value FROM payments WHERE payment_id = $1',
    [paymentId],
  );
  return rows[0] ?? null;
}

/** Jobs of a queue for one payment, whatever their state (queued, active, completed, failed). */
export async function jobsFor(db: TestDatabase, queue: string, paymentId: string) {
  const { rows } = await db.pool.query<{ id: string; state: string; data: { attempt: number } }>(
    `SELECT id, state, data FROM pgboss.job WHERE name = $1 AND data->>'paymentId' = $2`,
    [queue, paymentId],
  );
  return rows;
}
