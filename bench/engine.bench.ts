import pg from 'pg';
import type { PgBoss } from 'pg-boss';
import { loadConfig } from '../src/config.js';
import type { PaymentEvent } from '../src/machines/payment.events.js';
import { initialSnapshot, persist, step } from '../src/machines/payment.step.js';
import { createEngine } from '../src/persistence/apply-event.js';
import { migrate } from '../src/persistence/migrate.js';
import { createBoss, ensureQueues } from '../src/persistence/queues.js';
import { fmt, measure } from './support.js';

// The yardstick: applyEvent against the raw cost of one durable state transition in the
// same database, same run (BEGIN; UPDATE a jsonb row; INSERT a journal row; COMMIT).

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = 3;
const CLIENTS = (process.env.BENCH_CLIENTS ?? '1,8,32').split(',').map(Number);
const facts = { orderId: 'bench', payAmount: '0.05', actuallyPaid: '0.05', payCurrency: 'eth', priceAmount: '100', priceCurrency: 'usd' };
// A payment's life before routing: four progress events and finished (which enqueues the route job).
const LIFE: PaymentEvent[] = (['waiting', 'confirming', 'confirmed', 'sending', 'finished'] as const).map((s) => ({ type: `np.${s}`, facts }) as PaymentEvent);

export interface EngineBenchResult {
  rows: Array<{ clients: number; rawTps: number; applyEventsPerSecond: number; ratio: number }>;
  duplicate: { perSecond: number; walBytes: number; count: number; rowsWritten: boolean };
}

export async function benchEngine(url: string, log: (line: string) => void): Promise<EngineBenchResult> {
  const pool = new pg.Pool({ connectionString: url, max: 40 });
  pool.on('error', () => {}); // the database is dropped at the end of the run
  await migrate(pool);
  const boss: PgBoss = createBoss(url, { max: 4, schedule: false });
  boss.on('error', () => {});
  await boss.start();
  await ensureQueues(boss, loadConfig({}));
  const engine = createEngine({ pool });

  await pool.query(`CREATE TABLE IF NOT EXISTS bench_state (id int PRIMARY KEY, snapshot jsonb NOT NULL, version int NOT NULL);
    CREATE TABLE IF NOT EXISTS bench_journal (id int NOT NULL, seq int NOT NULL, event jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now());
    TRUNCATE bench_state, bench_journal;
    INSERT INTO bench_state SELECT g, '{"value":"received","context":{}}', 0 FROM generate_series(0, 9999) g;`);
  // The raw transaction writes what a real transition writes: a payment's persisted snapshot and its event.
  let sample = initialSnapshot('bench-sample');
  for (const event of LIFE) sample = step(sample, event).next;
  const snapshot = JSON.stringify(persist(sample));
  const journalEvent = JSON.stringify(LIFE[4]);

  const rows: EngineBenchResult['rows'] = [];
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const clients of CLIENTS) {
    // Raw and applyEvent alternate over several rounds and the medians are compared, so a burst of
    // background load on this shared 2-core machine does not land on one side only.
    const rawRuns: number[] = [];
    const applyRuns: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const raw = await measure(clients, SECONDS / ROUNDS, async (client, i) => {
        const id = (client * 300 + i) % 10_000;
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await c.query('UPDATE bench_state SET snapshot = $2, version = version + 1 WHERE id = $1', [id, snapshot]);
          await c.query('INSERT INTO bench_journal (id, seq, event) VALUES ($1, $2, $3)', [id, i, journalEvent]);
          await c.query('COMMIT');
        } finally {
          c.release();
        }
      });
      rawRuns.push(raw.opsPerSecond);
      const run = `${Date.now()}-${clients}-${round}`;
      const applied = await measure(clients, SECONDS / ROUNDS, async (client, i) => {
        const payment = `bench-${run}-${client}-${Math.floor(i / LIFE.length)}`;
        const result = await engine.applyEvent(payment, LIFE[i % LIFE.length]!, { source: 'bench' });
        if (result.outcome !== 'applied') throw new Error(`expected a new event to apply, got ${result.outcome}`);
      });
      applyRuns.push(applied.opsPerSecond);
    }
    const rawTps = median(rawRuns);
    const applyEventsPerSecond = median(applyRuns);
    const ratio = applyEventsPerSecond / rawTps;
    rows.push({ clients, rawTps, applyEventsPerSecond, ratio });
    log(`  ${String(clients).padStart(2)} clients   raw ${fmt(rawTps).padStart(7)} tx/s   applyEvent ${fmt(applyEventsPerSecond).padStart(7)} events/s   ratio ${fmt(ratio, 2)}x   (medians of ${ROUNDS} alternating rounds)`);
  }

  // Duplicates: the same already-applied event, over and over. WAL growth shows whether anything was written.
  const dupPayment = `bench-dup-${Date.now()}`;
  for (const event of LIFE) await engine.applyEvent(dupPayment, event, { source: 'bench' });
  await boss.stop({ graceful: false, close: true }); // no pg-boss maintenance writes during the measurement
  const written = async () => (await pool.query<{ v: string }>("SELECT (SELECT count(*) FROM payment_journal) + (SELECT sum(version) FROM payments) AS v")).rows[0]!.v;
  const writtenBefore = await written();
  const walBefore = (await pool.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn')).rows[0]!.lsn;
  const dup = await measure(8, SECONDS, async () => {
    const result = await engine.applyEvent(dupPayment, LIFE[4]!, { source: 'bench' });
    if (result.outcome !== 'duplicate') throw new Error('expected a duplicate');
  });
  const walBytes = Number(
    (await pool.query<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::pg_lsn)::text AS bytes', [walBefore])).rows[0]!.bytes,
  );
  const rowsWritten = (await written()) !== writtenBefore;
  // Postgres' background writer logs a few dozen WAL bytes every 15 s on its own; a write per duplicate would be hundreds of bytes each.
  log(`  duplicates (8 clients): ${fmt(dup.opsPerSecond)} answers/s, ${fmt(dup.ops)} answered; journal/version changed: ${rowsWritten ? 'YES' : 'no'}; WAL meanwhile: ${walBytes} bytes (${fmt((walBytes / dup.ops) * 1000, 1)} per 1,000)`);
  await pool.end();
  return { rows, duplicate: { perSecond: dup.opsPerSecond, walBytes, count: dup.ops, rowsWritten } };
}
