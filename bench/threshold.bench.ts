import pg from 'pg';
import { migrate } from '../src/persistence/migrate.js';
import { fmt } from './support.js';

// The threshold check against the number of open credits a channel holds. A channel whose threshold is
// far above its price piles up credits below it (a $1,000 threshold with $1 sales: up to a thousand);
// every payment of the channel checks. batch_claim_check (migration 018) adds the credits written since
// its running total to that total; migration 017's check it replaced summed every open credit. Both are timed
// here back to back on one connection, in the same run and database, with FOLD_AFTER - 1 credits
// written since the last fold (the most the check sums before it folds again).

const SIZES = [10, 1_000, 10_000];
const CHECKS = 800;
const BLOCKS = 8;
const SINCE_FOLD = 31;

// Migration 017's check, as it was: the channel's claim lock, then the sum of every open credit. Created
// in pg_temp (this session only) to time it beside today's.
const CHECK_017_FUNCTION = `CREATE FUNCTION pg_temp.batch_claim_check_017(p_channel bigint, p_threshold numeric) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_open numeric;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('telepay:batch-claim:' || p_channel::text, 0));
  SELECT coalesce(sum(usd_value), 0) INTO v_open FROM ledger_entries
   WHERE open_channel_id = p_channel AND kind = 'payment_credit' AND payout_id IS NULL;
  RETURN v_open >= p_threshold;
END
$$`;
const CHECK_017 = `SELECT pg_temp.batch_claim_check_017($1::bigint, $2::numeric) AS enough`;
const CHECK = `SELECT batch_claim_check($1::bigint, $2::numeric, true) AS enough`;

export interface ThresholdCheckRow {
  openCredits: number;
  checkMs: number;
  /** Migration 017's check: the lock and the sum of every open credit. */
  sumAllMs: number;
}

export async function benchThresholdCheck(databaseUrl: string): Promise<ThresholdCheckRow[]> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    await migrate(pool);
    await pool.query(CHECK_017_FUNCTION);
    const rows: ThresholdCheckRow[] = [];
    for (const [n, size] of SIZES.entries()) {
      const channel = String(-1_009_100_000_000 - n - Math.floor(Math.random() * 1e6) * 10);
      await pool.query(
        `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
         VALUES ($1, $2, 'Bench threshold', '0x0000000000000000000000000000000000000001', 'eth', 'eth', 'threshold', 1000000000)`,
        [channel, String(BigInt(channel) - 1n)],
      );
      const credit = (count: number) =>
        pool.query(
          `INSERT INTO ledger_entries (open_channel_id, account, kind, payment_id, amount_units, currency, usd_value)
           SELECT $1::bigint, 'owner', 'payment_credit', $1::text || ':' || g || ':' || $3, 1000, 'eth', 0.9 FROM generate_series(1, $2) g`,
          [channel, count, Math.random()],
        );
      await credit(size - SINCE_FOLD);
      await pool.query('VACUUM ANALYZE ledger_entries');
      await pool.query(CHECK, [channel, '1000000000']); // the channel's first check folds what is settled
      for (let i = 0; i < SINCE_FOLD; i++) await credit(1);
      // Alternating blocks, after a warm-up of both, so a drift of the machine falls on both alike.
      const run = (name: string, text: string, times: number) => Array.from({ length: times }).reduce<Promise<unknown>>((p) => p.then(() => pool.query({ name, text, values: [channel, '1000000000'] })), Promise.resolve());
      const spent = { check: 0, sumAll: 0 };
      await run('check', CHECK, 100);
      await run('check-017', CHECK_017, 100);
      for (let block = 0; block < BLOCKS; block++) {
        let started = performance.now();
        await run('check', CHECK, CHECKS / BLOCKS);
        spent.check += performance.now() - started;
        started = performance.now();
        await run('check-017', CHECK_017, CHECKS / BLOCKS);
        spent.sumAll += performance.now() - started;
      }
      rows.push({ openCredits: size, checkMs: spent.check / CHECKS, sumAllMs: spent.sumAll / CHECKS });
    }
    return rows;
  } finally {
    await pool.end();
  }
}

export function describeThresholdCheck(rows: ThresholdCheckRow[]): string {
  return rows
    .map((r) => `  ${fmt(r.openCredits).padStart(7)} open credits: ${fmt(r.checkMs, 3)} ms per check; summing every open credit (migration 017) ${fmt(r.sumAllMs, 3)} ms: ${fmt(r.checkMs / r.sumAllMs, 2)}x`)
    .join('\n');
}
