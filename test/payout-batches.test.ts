import type { PgBoss } from 'pg-boss';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BATCH_QUEUE, claimAndScheduleIn } from '../src/actors/payouts/batches.js';
import { splitOutcome } from '../src/domain/payout-split.js';
import { creditPayment, openBalance } from '../src/payouts/ledger.repo.js';
import { claimBatch, findBatch, lockAndCheckThreshold } from '../src/payouts/payout-batches.repo.js';
import type { Queryable } from '../src/persistence/transaction.js';
import { inTransaction } from '../src/persistence/transaction.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { bigIds } from './support/big-ids.js';
import { recordingPool } from './support/statements.js';

// The threshold claim check (lockAndCheckThreshold → batch_claim_check, migrations/017): the channel's
// claim lock and the sum of its open credits in one statement, the sum read with a snapshot taken after
// the lock was granted.

let db: TestDatabase;
const { nextId, paymentId } = bigIds();

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function insertChannel(thresholdUsd: string): Promise<string> {
  const id = nextId();
  await db.pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network,
                           payout_strategy, threshold_usd, platform_fee_percent)
     VALUES ($1, $2, 'Signals', '0x52908400098527886E0F7030069857D2E4169EE7', 'eth', 'eth', 'threshold', $3, '10')`,
    [id, nextId(), thresholdUsd],
  );
  return id;
}

/** An owner credit of 8.991 USD (0.0031 ETH at 9.99 USD, 10 % fee), open for a batch. */
async function creditOpen(db: Queryable, channel: string): Promise<void> {
  const s = splitOutcome({ outcomeAmount: '0.0031', outcomeDecimals: 18, feePercent: '10', priceAmount: '9.99' });
  await creditPayment(db, { paymentId: paymentId(), openChannelId: channel, ownerUnits: s.ownerUnits, feeUnits: s.feeUnits, ownerUsd: s.ownerUsd, feeUsd: s.feeUsd, payoutId: null });
}

/** The claim statement (sent as plain text: recorded as it is). */
const CLAIM_STATEMENT = expect.stringMatching(/^WITH open AS MATERIALIZED \(/);

type Check = (tx: Queryable, channel: string, thresholdUsd: string) => Promise<boolean>;

/** Until the backend waits for an advisory lock (polls pg_stat_activity; no sleeping). */
async function waitingForAdvisoryLock(pid: number): Promise<void> {
  await vi.waitFor(
    async () => {
      const { rows } = await db.pool.query(`SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1`, [pid]);
      expect(rows[0]).toEqual({ wait_event_type: 'Lock', wait_event: 'advisory' });
    },
    { timeout: 10_000, interval: 10 },
  );
}

/**
 * Two payments of one channel (threshold 15 USD, 8.991 each) crossing it together, on two connections:
 * the first credits and checks (below: holds the channel's lock), the second credits and checks (waits
 * for the lock), the first commits. Answers the second's check, made once it got the lock.
 */
async function secondCheckAfterFirstCommits(check: Check): Promise<{ channel: string; answer: boolean }> {
  const channel = await insertChannel('15');
  const first = await db.pool.connect();
  const second = await db.pool.connect();
  try {
    const { rows } = await second.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await first.query('BEGIN');
    await second.query('BEGIN');
    await creditOpen(first, channel);
    expect(await check(first, channel, '15')).toBe(false);
    await creditOpen(second, channel);
    const pending = check(second, channel, '15');
    pending.catch(() => {}); // awaited below; a failure must not go unhandled while we wait
    await waitingForAdvisoryLock(rows[0]!.pid);
    await first.query('COMMIT');
    const answer = await pending;
    await second.query('COMMIT');
    return { channel, answer };
  } finally {
    await first.query('ROLLBACK').catch(() => {});
    await second.query('ROLLBACK').catch(() => {});
    first.release();
    second.release();
  }
}

describe('lockAndCheckThreshold', () => {
  it('a check that waited for the lock counts the credit committed while it waited', async () => {
    const { channel, answer } = await secondCheckAfterFirstCommits((tx, c, t) => lockAndCheckThreshold(tx, c, t));
    expect(answer).toBe(true);
    // ...so the second payment's claim takes both credits, at once.
    const batch = await claimBatch(db.pool, { openChannelId: channel, thresholdUsd: '15', batchId: `${channel}-b`, fresh: true, checked: true });
    expect(batch).toMatchObject({ usdValue: '17.982', status: 'claimed' });
    expect(batch!.entryIds).toHaveLength(2);
  });

  it('(control) the same lock and sum as one plain statement would miss it: its snapshot predates the lock', async () => {
    // Why batch_claim_check is a volatile PL/pgSQL function: a plain statement reads with the snapshot
    // it started with, taken before it waited for the lock.
    const plain: Check = async (tx, channel, thresholdUsd) =>
      (
        await tx.query<{ enough: boolean }>(
          `SELECT (SELECT coalesce(sum(usd_value), 0) FROM ledger_entries
                    WHERE open_channel_id = $1::bigint AND kind = 'payment_credit' AND payout_id IS NULL) >= $2::numeric AS enough
             FROM (SELECT pg_advisory_xact_lock(hashtextextended('telepay:batch-claim:' || $1::text, 0))) AS locked`,
          [channel, thresholdUsd],
        )
      ).rows[0]!.enough;
    expect((await secondCheckAfterFirstCommits(plain)).answer).toBe(false);
  });

  it("takes the channel's claim lock (the same key as ever) until the transaction ends", async () => {
    const channel = await insertChannel('15');
    const tryLock = async () =>
      (await db.pool.query<{ got: boolean }>(`SELECT pg_try_advisory_xact_lock(hashtextextended('telepay:batch-claim:' || $1::text, 0)) AS got`, [channel])).rows[0]!.got;
    await inTransaction(db.pool, async (tx) => {
      expect(await lockAndCheckThreshold(tx, channel, '15')).toBe(false);
      expect(await tryLock()).toBe(false);
    });
    expect(await tryLock()).toBe(true);
  });

  it('counts its own transaction\'s credit, and refuses a bad threshold before sending anything', async () => {
    const channel = await insertChannel('8.991');
    await inTransaction(db.pool, async (tx) => {
      expect(await lockAndCheckThreshold(tx, channel, '8.991')).toBe(false);
      await creditOpen(tx, channel);
      expect(await lockAndCheckThreshold(tx, channel, '8.991')).toBe(true);
      expect(await lockAndCheckThreshold(tx, channel, '8.99100001')).toBe(false);
    });
    const { pool, sent } = recordingPool(db.pool);
    await expect(lockAndCheckThreshold(pool, channel, '-1')).rejects.toThrow(/thresholdUsd/);
    await expect(lockAndCheckThreshold(pool, channel, '1e3')).rejects.toThrow(/thresholdUsd/);
    expect(sent).toEqual([]);
  });
});

describe('claimAndScheduleIn', () => {
  const fakeBoss = () => {
    const send = vi.fn(async () => 'job-id');
    return { boss: { send } as unknown as PgBoss, send };
  };

  it('below the threshold: one round trip (lock and check), nothing claimed, nothing queued', async () => {
    const channel = await insertChannel('15');
    const { boss, send } = fakeBoss();
    const { pool, sent } = recordingPool(db.pool);
    await inTransaction(pool, async (tx) => {
      await creditOpen(tx, channel);
      sent.length = 0;
      expect(await claimAndScheduleIn(boss, tx, channel, '15')).toBeNull();
      expect(sent).toEqual(['batch-claim-lock-and-check']);
    });
    expect(send).not.toHaveBeenCalled();
    expect((await openBalance(db.pool, channel)).entries).toBe(1);
  });

  it('crossing it: the check, then the claim statement and the batch job, in the same transaction', async () => {
    const channel = await insertChannel('15');
    await creditOpen(db.pool, channel);
    const { boss, send } = fakeBoss();
    const { pool, sent } = recordingPool(db.pool);
    const batchId = await inTransaction(pool, async (tx) => {
      await creditOpen(tx, channel);
      sent.length = 0;
      const claimed = await claimAndScheduleIn(boss, tx, channel, '15');
      // No separate 'batch-threshold-reached': the check already said enough.
      expect(sent).toEqual(['batch-claim-lock-and-check', CLAIM_STATEMENT]);
      return claimed;
    });
    expect(batchId).not.toBeNull();
    expect(await findBatch(db.pool, batchId!)).toMatchObject({ openChannelId: channel, usdValue: '17.982', status: 'claimed' });
    expect(send).toHaveBeenCalledOnce();
    expect(send.mock.calls[0]).toEqual([BATCH_QUEUE, { batchId, attempt: 0 }, expect.objectContaining({ db: expect.anything() })]);
  });
});

describe('claimBatch', () => {
  it("keeps its own pre-check for its other callers; checked: true skips it, and the claim still refuses a sum below the threshold", async () => {
    const channel = await insertChannel('15');
    await creditOpen(db.pool, channel);
    const { pool, sent } = recordingPool(db.pool);
    expect(await claimBatch(pool, { openChannelId: channel, thresholdUsd: '15', batchId: `${channel}-1`, fresh: true })).toBeNull();
    expect(sent).toEqual(['batch-threshold-reached']);
    sent.length = 0;
    expect(await claimBatch(pool, { openChannelId: channel, thresholdUsd: '15', batchId: `${channel}-2`, fresh: true, checked: true })).toBeNull();
    expect(sent).toEqual([CLAIM_STATEMENT]);
    expect(await findBatch(db.pool, `${channel}-2`)).toBeNull();
    expect((await openBalance(db.pool, channel)).entries).toBe(1);
  });
});
