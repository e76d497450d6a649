import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toBaseUnits } from '../src/domain/units.js';
import { creditPayment } from '../src/payouts/ledger.repo.js';
import { claimBatch, lockAndCheckThreshold } from '../src/payouts/payout-batches.repo.js';
import { inTransaction, type Queryable } from '../src/persistence/transaction.js';
import { bigIds } from './support/big-ids.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';

// The threshold check keeps a running total per channel (the fold, migration 018) and sums only the
// credits written since. These tests hold it to the plain answer "the channel's open credits are worth
// the threshold": with a credit in flight while the fold moves, across claims, and when the fold was
// made wrong by hand.

let db: TestDatabase;
const { nextId, paymentId } = bigIds();
/** Credits folded at once by the check (FOLD_AFTER in migration 018). */
const FOLD_AFTER = 32;

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function thresholdChannel(): Promise<string> {
  const id = nextId();
  await db.pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network, payout_strategy, threshold_usd)
     VALUES ($1, $2, 'Fold', '0x52908400098527886E0F7030069857D2E4169EE7', 'eth', 'eth', 'threshold', 1000)`,
    [id, nextId()],
  );
  return id;
}

/** One owner credit worth `usd`, in its own transaction unless `on` is a transaction's client. */
function credit(on: Queryable, channel: string, usd: string) {
  return creditPayment(on, { paymentId: paymentId(), openChannelId: channel, ownerUnits: 1000n, feeUnits: 10n, ownerUsd: usd, feeUsd: '0', payoutId: null });
}

async function credits(channel: string, usd: readonly string[]): Promise<void> {
  await Promise.all(usd.map((u) => credit(db.pool, channel, u)));
}

async function foldOf(channel: string): Promise<{ folded: string; horizon: string } | null> {
  const { rows } = await db.pool.query<{ folded: string; horizon: string }>(
    'SELECT trim_scale(folded_usd)::text AS folded, horizon::text FROM ledger_open_credit_folds WHERE open_channel_id = $1',
    [channel],
  );
  return rows[0] ?? null;
}

/**
 * Waits until every transaction that wrote a credit of the channel has ended in the eyes of a new
 * snapshot (its xmin is past them): only then may a fold take them in. Other tests' transactions on the
 * same cluster hold xmin back for a moment; the fold waits for them as it would in production.
 */
async function settled(channel: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    const { rows } = await db.pool.query<{ done: boolean }>(
      `SELECT coalesce(max(written_xid) < pg_snapshot_xmin(pg_current_snapshot()), true) AS done FROM ledger_entries WHERE open_channel_id = $1`,
      [channel],
    );
    if (rows[0]!.done) return;
    if (tries > 3000) throw new Error('credits of the channel still not settled after 30 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const check = (channel: string, threshold: string, exact = false) => lockAndCheckThreshold(db.pool, channel, threshold, { exact });

/** What a claimer does: the check under the channel's claim lock, then the claim, in one transaction. */
const claim = (channel: string, threshold: string) =>
  inTransaction(db.pool, async (tx) => ((await lockAndCheckThreshold(tx, channel, threshold)) ? claimBatch(tx, { openChannelId: channel, thresholdUsd: threshold, batchId: `b-${paymentId()}`, fresh: true, checked: true }) : null));

const usd = (n: number) => (n / 100).toFixed(2);
const sumUsd = (values: readonly string[]) => values.reduce((s, v) => s + toBaseUnits(v, 2), 0n);
const fromCents = (cents: bigint) => `${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`;

describe('the threshold check with a running total per channel', () => {
  it('counts a credit that was in flight while later credits were checked and folded, once it commits, and only once', async () => {
    const channel = await thresholdChannel();
    const early = await db.pool.connect();
    try {
      // A payment's transaction credits the channel and stays open, with an older transaction id than
      // every credit after it.
      await early.query('BEGIN');
      await credit(early, channel, '7.00');
      const { rows } = await early.query<{ xid: string }>('SELECT pg_current_xact_id()::text AS xid');
      const earlyXid = BigInt(rows[0]!.xid);

      const later = Array.from({ length: FOLD_AFTER + 8 }, (_, i) => usd(101 + i));
      await credits(channel, later);
      expect(await check(channel, '1')).toBe(true);
      await credits(channel, later);
      expect(await check(channel, '1')).toBe(true);
      // The fold never passes a transaction still in flight (a horizon taken from the newest credit
      // would, and would never count the early credit).
      expect(BigInt((await foldOf(channel))!.horizon)).toBeLessThanOrEqual(earlyXid);

      const committed = 2n * sumUsd(later);
      expect(await check(channel, fromCents(committed))).toBe(true);
      expect(await check(channel, fromCents(committed + 1n))).toBe(false);
      await early.query('COMMIT');
      const all = committed + 700n;
      expect(await check(channel, fromCents(all))).toBe(true);
      expect(await check(channel, fromCents(all + 1n))).toBe(false);
      // Once it ended, the next fold takes everything in, the early credit included, once.
      await settled(channel);
      expect(await check(channel, fromCents(all))).toBe(true);
      expect(toBaseUnits((await foldOf(channel))!.folded, 2)).toBe(all);
      expect(await check(channel, fromCents(all + 1n))).toBe(false);
    } finally {
      early.release();
    }
  });

  it('sees its own transaction\'s credit, not yet committed, and a rolled-back credit never', async () => {
    const channel = await thresholdChannel();
    await credits(channel, Array.from({ length: FOLD_AFTER + 1 }, () => '1.00'));
    expect(await check(channel, '1')).toBe(true);
    await inTransaction(db.pool, async (tx) => {
      await credit(tx, channel, '5.00');
      expect(await lockAndCheckThreshold(tx, channel, '38.00')).toBe(true);
      expect(await lockAndCheckThreshold(tx, channel, '38.01')).toBe(false);
    });
    const gone = await db.pool.connect();
    try {
      await gone.query('BEGIN');
      await credit(gone, channel, '100.00');
      await gone.query('ROLLBACK');
    } finally {
      gone.release();
    }
    await credits(channel, Array.from({ length: FOLD_AFTER + 1 }, () => '1.00'));
    await settled(channel);
    expect(await check(channel, '71.00')).toBe(true);
    expect(await check(channel, '71.01')).toBe(false);
    expect(toBaseUnits((await foldOf(channel))!.folded, 2)).toBe(7100n);
  });

  it('a claim leaves the fold exact: the credits it took are no longer counted', async () => {
    const channel = await thresholdChannel();
    await credits(channel, Array.from({ length: FOLD_AFTER + 8 }, () => '1.00'));
    expect(await check(channel, '1')).toBe(true);
    await credits(channel, Array.from({ length: FOLD_AFTER + 8 }, () => '1.00'));
    await settled(channel);
    expect(await check(channel, '1')).toBe(true);
    expect((await foldOf(channel))!.folded).toBe('80');

    const batch = await claim(channel, '50');
    expect(batch?.usdValue).toBe('80');
    expect((await foldOf(channel))!.folded).toBe('0');
    await credits(channel, ['3.00', '4.00']);
    expect(await check(channel, '7.00')).toBe(true);
    expect(await check(channel, '7.01')).toBe(false);
  });

  it('a fold made wrong by hand: too high costs one claim that takes nothing and is put right; too low is put right by the exact check of the sweep', async () => {
    const channel = await thresholdChannel();
    await credits(channel, Array.from({ length: FOLD_AFTER + 8 }, () => '1.00'));
    expect(await check(channel, '1')).toBe(true);

    await settled(channel);
    await db.pool.query('UPDATE ledger_open_credit_folds SET folded_usd = 1000000 WHERE open_channel_id = $1', [channel]);
    expect(await claim(channel, '50')).toBeNull();
    expect((await foldOf(channel))!.folded).toBe('40');
    expect(await check(channel, '50')).toBe(false);

    await db.pool.query('UPDATE ledger_open_credit_folds SET folded_usd = 0 WHERE open_channel_id = $1', [channel]);
    expect(await check(channel, '40')).toBe(false);
    expect(await check(channel, '40', true)).toBe(true);
    expect(await check(channel, '40')).toBe(true);
  });

  it('property: after any sequence of credits, checks and claims the check answers as the plain sum of open credits would', async () => {
    type Op = { kind: 'credit'; cents: number[] } | { kind: 'check'; cents: number } | { kind: 'claim'; cents: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 3, arbitrary: fc.array(fc.integer({ min: 1, max: 5_000 }), { minLength: 1, maxLength: FOLD_AFTER + 10 }).map((cents) => ({ kind: 'credit' as const, cents })) },
      { weight: 3, arbitrary: fc.integer({ min: 1, max: 400_000 }).map((cents) => ({ kind: 'check' as const, cents })) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 400_000 }).map((cents) => ({ kind: 'claim' as const, cents })) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
        const channel = await thresholdChannel();
        let open = 0n;
        for (const o of ops) {
          if (o.kind === 'credit') {
            await credits(channel, o.cents.map(usd));
            open += o.cents.reduce((s, c) => s + BigInt(c), 0n);
          } else if (o.kind === 'check') {
            expect(await check(channel, fromCents(BigInt(o.cents)))).toBe(open >= BigInt(o.cents));
          } else {
            const batch = await claim(channel, fromCents(BigInt(o.cents)));
            expect(batch !== null).toBe(open >= BigInt(o.cents));
            if (batch) open = 0n;
          }
        }
        const { rows } = await db.pool.query<{ open: string }>(
          `SELECT trim_scale(coalesce(sum(usd_value), 0))::text AS open FROM ledger_entries WHERE open_channel_id = $1 AND kind = 'payment_credit' AND payout_id IS NULL`,
          [channel],
        );
        expect(toBaseUnits(rows[0]!.open, 2)).toBe(open);
      }),
      { numRuns: 25 },
    );
  });
});
