import pg from 'pg';
import { measure } from './support.js';

// The raw Postgres limit for one durable state transition, measured on the database the service is
// using, in the same run: BEGIN; UPDATE a jsonb row; INSERT a journal row; COMMIT. The rows written
// are a real payment row and a real journal row of this run (median size, as jsonb), so the raw
// transaction writes what a transition writes. Plain pg only, so it runs against any commit.
// Its two tables are scratch and never vacuumed automatically: the raw rounds alternate with the
// service's, and a vacuum of the raw rounds' dead rows would otherwise run during the service's.

export interface RawLimit {
  /** Transactions per second at `clients`. */
  run(clients: number, seconds: number): Promise<number>;
  /** Bytes of the snapshot and journal payloads used. */
  payloadBytes: { snapshot: number; event: number };
  close(): Promise<void>;
}

const FALLBACK_SNAPSHOT = JSON.stringify({ value: { routed: { access: 'invited', payout: 'accumulated' } }, context: { np: { status: 'finished', payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' }, pad: 'x'.repeat(1500) } });
const FALLBACK_EVENT = JSON.stringify({ type: 'np.finished', facts: { orderId: 'bench', payAmount: '10', actuallyPaid: '10', payCurrency: 'usdttrc20', priceAmount: '10', priceCurrency: 'usd' } });

async function medianRow(pool: pg.Pool, table: string): Promise<string | null> {
  try {
    const { rows } = await pool.query<{ r: string }>(
      `SELECT r FROM (SELECT to_jsonb(t)::text AS r FROM ${table} t) s ORDER BY length(r) OFFSET (SELECT count(*) / 2 FROM ${table}) LIMIT 1`,
    );
    return rows[0]?.r ?? null;
  } catch {
    return null;
  }
}

export async function prepareRawLimit(url: string, maxClients: number): Promise<RawLimit> {
  const pool = new pg.Pool({ connectionString: url, max: maxClients });
  pool.on('error', () => {});
  const snapshot = (await medianRow(pool, 'payments')) ?? FALLBACK_SNAPSHOT;
  const event = (await medianRow(pool, 'payment_journal')) ?? FALLBACK_EVENT;
  await pool.query(`DROP TABLE IF EXISTS bench_state, bench_journal;
    CREATE TABLE bench_state (id int PRIMARY KEY, snapshot jsonb NOT NULL, version int NOT NULL) WITH (autovacuum_enabled = false);
    CREATE TABLE bench_journal (id int NOT NULL, seq int NOT NULL, event jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now()) WITH (autovacuum_enabled = false);
    INSERT INTO bench_state SELECT g, '{}', 0 FROM generate_series(0, 9999) g;`);
  return {
    payloadBytes: { snapshot: Buffer.byteLength(snapshot), event: Buffer.byteLength(event) },
    async run(clients, seconds) {
      const { opsPerSecond } = await measure(clients, seconds, async (client, i) => {
        const id = (client * 1_000 + i) % 10_000;
        const c = await pool.connect();
        try {
          await c.query('BEGIN');
          await c.query('UPDATE bench_state SET snapshot = $2, version = version + 1 WHERE id = $1', [id, snapshot]);
          await c.query('INSERT INTO bench_journal (id, seq, event) VALUES ($1, $2, $3)', [id, i, event]);
          await c.query('COMMIT');
        } finally {
          c.release();
        }
      });
      return opsPerSecond;
    },
    async close() {
      await pool.query('DROP TABLE IF EXISTS bench_state, bench_journal').catch(() => {});
      await pool.end();
    },
  };
}
