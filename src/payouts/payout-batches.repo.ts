import { isDecimalString, type DecimalString } from '../domain/money.js';
import type { Queryable } from '../persistence/transaction.js';

// Threshold payouts: once a channel's open owner credits are worth threshold_usd, they are claimed into
// one payout_batches row. Paying the batch is someone else's job; the claim is the part that must be
// atomic, because two payments crossing the threshold together must not pay the same credit twice.

export type BatchStatus = 'claimed' | 'paying' | 'settled' | 'review';

export interface ClaimedBatch {
  batchId: string;
  openChannelId: string;
  /** The payout id the claimed credits carry, for recordPayout: 'batch:<batchId>'. */
  payoutId: string;
  totalUnits: bigint;
  usdValue: DecimalString;
  entryIds: string[];
  status: BatchStatus;
}

export function batchPayoutId(batchId: string): string {
  return `batch:${batchId}`;
}

/**
 * Claims every open owner credit of the channel into batch `batchId` if together they are worth at
 * least `thresholdUsd`; answers null when they are not (nothing is claimed).
 *
 * Atomic in ONE statement, no channel lock: it row-locks the channel's open credits (SELECT ... FOR
 * UPDATE, in entry_id order so two claimers cannot deadlock), sums them, stamps payout_id on exactly
 * the rows it stamped-and-returned, and inserts the batch from the sums of those returned rows. A
 * concurrent claimer blocks on the same rows; when it gets them, Postgres re-checks `payout_id IS NULL`
 * against the committed version and drops the ones already taken (READ COMMITTED), so it sums only
 * what is still open and usually finds it below the threshold. Under REPEATABLE READ or SERIALIZABLE
 * the loser gets a serialization error instead — never a double claim. Because batch and stamps are
 * one statement, a claimed credit is never outside a batch even when `db` is the pool (autocommit).
 * Credits committed after the statement began stay open for the next claim. The same statement makes
 * the channel's fold (batch_claim_check's running total, migration 018) exact again from the rows it
 * locked; callers hold the channel's claim lock (src/actors/payouts/batches.ts), the only lock under
 * which the fold may change.
 *
 * Before that statement (which locks every open credit) a plain sum says whether the threshold is
 * reached at all; `checked: true` skips it, for a caller that has just asked lockAndCheckThreshold in
 * the same transaction and got true. Skipping it changes nothing but the round trip: the claim
 * statement re-checks the threshold on the rows it locked.
 *
 * Idempotent per batchId: claiming an existing batch id answers that batch (or throws if it belongs to
 * another channel); two concurrent claims with the same new id make one of them fail on the primary key.
 */
export async function claimBatch(
  db: Queryable,
  c: {
    openChannelId: string;
    thresholdUsd: DecimalString;
    batchId: string;
    /** The id was just generated: no batch can have it, so it is not looked up. */
    fresh?: boolean;
    /** lockAndCheckThreshold just answered true in this transaction: the plain pre-check is not repeated. */
    checked?: boolean;
  },
): Promise<ClaimedBatch | null> {
  assertThreshold(c.thresholdUsd);
  const existing = c.fresh ? null : await findBatch(db, c.batchId);
  if (existing) {
    if (existing.openChannelId !== c.openChannelId) {
      throw new Error(`batch ${c.batchId} belongs to channel ${existing.openChannelId}, not ${c.openChannelId}`);
    }
    return existing;
  }
  // Most credits leave the channel below its threshold: a plain sum (open-credits index, no row locks,
  // no WAL) says so before the claim below locks every open credit. A credit that lands just after
  // this read is claimed by the next payment's check or the periodic sweep.
  if (!c.checked) {
    const below = await db.query<{ enough: boolean }>({
      name: 'batch-threshold-reached',
      text: `SELECT coalesce(sum(usd_value), 0) >= $2::numeric AS enough FROM ledger_entries
              WHERE open_channel_id = $1 AND kind = 'payment_credit' AND payout_id IS NULL`,
      values: [c.openChannelId, c.thresholdUsd],
    });
    if (!below.rows[0]?.enough) return null;
  }
  const { rows } = await db.query<{ totalUnits: string; usdValue: string; entryIds: string[] }>(
    `WITH open AS MATERIALIZED (
       SELECT entry_id, usd_value, written_xid FROM ledger_entries
        WHERE open_channel_id = $1 AND kind = 'payment_credit' AND payout_id IS NULL
        ORDER BY entry_id
        FOR UPDATE
     ), enough AS (
       SELECT array_agg(entry_id) AS ids FROM open HAVING count(*) > 0 AND coalesce(sum(usd_value), 0) >= $2::numeric
     ), claimed AS (
       UPDATE ledger_entries l SET payout_id = $4
         FROM enough
        WHERE l.entry_id = ANY (enough.ids) AND l.payout_id IS NULL
        RETURNING l.entry_id, l.amount_units, l.usd_value
     ), batch AS (
       INSERT INTO payout_batches (batch_id, open_channel_id, total_units, usd_value, entry_count)
       SELECT $3, $1, sum(amount_units), coalesce(sum(usd_value), 0), count(*) FROM claimed HAVING count(*) > 0
       RETURNING total_units, usd_value
     ), fold AS (
       -- The channel's fold (migration 018) made exact again: what stays open of the credits whose
       -- transactions ended before this statement's snapshot (none when the batch took them all).
       UPDATE ledger_open_credit_folds
          SET folded_usd = (SELECT coalesce(sum(o.usd_value), 0) FROM open o
                             WHERE (o.written_xid IS NULL OR o.written_xid < pg_snapshot_xmin(pg_current_snapshot()))
                               AND o.entry_id NOT IN (SELECT entry_id FROM claimed)),
              horizon = pg_snapshot_xmin(pg_current_snapshot()), updated_at = now()
        WHERE open_channel_id = $1
     )
     SELECT batch.total_units::text AS "totalUnits", trim_scale(batch.usd_value)::text AS "usdValue",
            (SELECT array_agg(entry_id::text ORDER BY entry_id) FROM claimed) AS "entryIds"
       FROM batch`,
    [c.openChannelId, c.thresholdUsd, c.batchId, batchPayoutId(c.batchId)],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    batchId: c.batchId,
    openChannelId: c.openChannelId,
    payoutId: batchPayoutId(c.batchId),
    totalUnits: BigInt(row.totalUnits),
    usdValue: row.usdValue,
    entryIds: row.entryIds,
    status: 'claimed',
  };
}

/**
 * Takes the channel's claim lock and answers whether its open owner credits are now worth at least
 * `thresholdUsd`, in one statement (one round trip): batch_claim_check (migrations 017 and 018, waiting).
 *
 * The lock serialises the channel's claims until the caller's transaction ends. Where a credit and the
 * claim after it share one transaction (the accumulate job, a caller's transaction), two payments
 * crossing the threshold together would, without the lock, each sum only the credits committed before
 * them, miss each other's, and leave the batch to the periodic sweep. With it, the second claimer waits
 * until the first committed, and its sum sees the first's credit: the function is VOLATILE PL/pgSQL,
 * which under READ COMMITTED takes a new snapshot for each query it runs, so the sum reads with a
 * snapshot taken after the lock was granted (a plain SELECT calling the lock and summing would read
 * with the snapshot its statement started with, before the wait). Outside a transaction the lock is
 * released at the end of the statement, so it only orders the check after the holders' commits
 * (claimWhenReady in src/actors/payouts/batches.ts).
 */
export async function lockAndCheckThreshold(db: Queryable, openChannelId: string, thresholdUsd: DecimalString, options: { exact?: boolean } = {}): Promise<boolean> {
  return checkThreshold(db, openChannelId, thresholdUsd, options.exact ?? false);
}

/**
 * lockAndCheckThreshold without waiting (batch_claim_check, migrations 017 and 018, not waiting), as
 * an SQL expression with its values, to ride in the statement that writes a payment's transition
 * (TransitionScope.ride): null when another transaction holds the channel's claim lock; else the lock
 * is taken (held until this transaction ends) and the answer is the same. For a check inside a
 * payment's transaction, which must not queue behind another payment's commit: on null the caller
 * checks after its own commit.
 */
export function tryLockAndCheckThresholdSql(openChannelId: string, thresholdUsd: DecimalString): { sql: (first: number) => string; values: unknown[] } {
  assertThreshold(thresholdUsd);
  return { sql: (first) => `batch_claim_check($${first}::bigint, $${first + 1}::numeric, false, false)`, values: [openChannelId, thresholdUsd] };
}

/**
 * The check sums the credits written since the channel's fold (its running total, migration 018), not
 * every open credit; `exact` sums every open credit and rewrites the fold (the periodic sweep's check,
 * so a fold made wrong by hand is put right within a sweep period).
 */
async function checkThreshold(db: Queryable, openChannelId: string, thresholdUsd: DecimalString, exact: boolean): Promise<boolean> {
  assertThreshold(thresholdUsd);
  const { rows } = await db.query<{ enough: boolean }>({
    // One name per text: each is prepared once per connection.
    name: exact ? 'batch-claim-lock-and-check-exact' : 'batch-claim-lock-and-check',
    text: `SELECT batch_claim_check($1::bigint, $2::numeric, true, ${exact}) AS enough`,
    values: [openChannelId, thresholdUsd],
  });
  return rows[0]?.enough === true;
}

function assertThreshold(thresholdUsd: string): void {
  if (!isDecimalString(thresholdUsd) || thresholdUsd.startsWith('-')) throw new Error(`thresholdUsd must be a non-negative decimal, got ${thresholdUsd}`);
}

/** A batch with the ids of the credits it claimed. */
export async function findBatch(db: Queryable, batchId: string): Promise<ClaimedBatch | null> {
  const { rows } = await db.query<Omit<ClaimedBatch, 'totalUnits' | 'payoutId'> & { totalUnits: string }>(
    `SELECT b.batch_id AS "batchId", b.open_channel_id::text AS "openChannelId", b.total_units::text AS "totalUnits",
            trim_scale(b.usd_value)::text AS "usdValue", b.status,
            coalesce((SELECT array_agg(e.entry_id::text ORDER BY e.entry_id) FROM ledger_entries e
                       WHERE e.payout_id = 'batch:' || b.batch_id AND e.kind = 'payment_credit'), '{}') AS "entryIds"
       FROM payout_batches b WHERE b.batch_id = $1`,
    [batchId],
  );
  const row = rows[0];
  return row ? { ...row, payoutId: batchPayoutId(row.batchId), totalUnits: BigInt(row.totalUnits) } : null;
}

/** Moves a batch along (claimed → paying → settled, or review with the reason); a settled batch stays settled. */
export async function setBatchStatus(db: Queryable, batchId: string, status: BatchStatus, reviewReason: string | null = null): Promise<void> {
  await db.query(
    `UPDATE payout_batches SET status = $2, review_reason = $3, updated_at = now(),
            settled_at = CASE WHEN $2 = 'settled' THEN now() ELSE settled_at END
      WHERE batch_id = $1 AND status <> 'settled'`,
    [batchId, status, reviewReason],
  );
}

/** An operator resumes a parked batch: a new attempt (so a new job id) and back to paying. */
export async function resumeBatch(db: Queryable, batchId: string): Promise<number | null> {
  const { rows } = await db.query<{ attempt: number }>(
    `UPDATE payout_batches SET status = 'paying', review_reason = NULL, attempt = attempt + 1, updated_at = now()
      WHERE batch_id = $1 AND status = 'review' RETURNING attempt`,
    [batchId],
  );
  return rows[0]?.attempt ?? null;
}

/** Batches still to pay (not settled, not parked), with the attempt their job runs under. */
export async function unfinishedBatches(db: Queryable): Promise<{ batchId: string; attempt: number }[]> {
  const { rows } = await db.query<{ batchId: string; attempt: number }>(
    `SELECT batch_id AS "batchId", attempt FROM payout_batches WHERE status IN ('claimed', 'paying') ORDER BY created_at LIMIT 1000`,
  );
  return rows;
}

/** The payments whose owner credits a batch claimed. */
export async function paymentsOfBatch(db: Queryable, batchId: string): Promise<string[]> {
  const { rows } = await db.query<{ payment_id: string }>(
    `SELECT payment_id FROM ledger_entries WHERE payout_id = $1 AND kind = 'payment_credit' ORDER BY entry_id`,
    [batchPayoutId(batchId)],
  );
  return rows.map((r) => r.payment_id);
}

/** Threshold channels whose open credits may have crossed the threshold (the sweep claims them). */
export async function channelsWithOpenCredits(db: Queryable): Promise<{ openChannelId: string; thresholdUsd: string }[]> {
  const { rows } = await db.query<{ openChannelId: string; thresholdUsd: string }>(
    `SELECT c.open_channel_id::text AS "openChannelId", c.threshold_usd::text AS "thresholdUsd"
       FROM channels c
      WHERE c.payout_strategy = 'threshold'
        AND EXISTS (SELECT 1 FROM ledger_entries e WHERE e.open_channel_id = c.open_channel_id AND e.kind = 'payment_credit' AND e.payout_id IS NULL)`,
  );
  return rows;
}
