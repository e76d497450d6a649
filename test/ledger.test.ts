import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { splitOutcome } from '../src/domain/payout-split.js';
import { fromBaseUnits, toBaseUnits } from '../src/domain/units.js';
import { checkBooks } from '../src/payouts/books.js';
import { balances, creditPayment, entriesOfPayment, ledgerOf, openBalance, recordPayout } from '../src/payouts/ledger.repo.js';
import { batchPayoutId, claimBatch, findBatch } from '../src/payouts/payout-batches.repo.js';
import { inTransaction } from '../src/persistence/transaction.js';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { bigIds } from './support/big-ids.js';
import { recordingPool } from './support/statements.js';

let db: TestDatabase;
const { nextId, paymentId } = bigIds();

beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function insertChannel(pool: pg.Pool, strategy: 'instant' | 'threshold', thresholdUsd: string | null = null, fee = '10'): Promise<string> {
  const id = nextId();
  await pool.query(
    `INSERT INTO channels (open_channel_id, closed_channel_id, title, owner_wallet_address, payout_currency, payout_network,
                           payout_strategy, threshold_usd, platform_fee_percent)
     VALUES ($1, $2, 'Signals', '0x52908400098527886E0F7030069857D2E4169EE7', 'eth', 'eth', $3, $4, $5)`,
    [id, nextId(), strategy, thresholdUsd, fee],
  );
  return id;
}

/** A payments row as the engine would hold it: NowPayments' facts in its read model (view.np). */
async function insertPayment(pool: pg.Pool, id: string, state: string, np: Record<string, string | null>): Promise<void> {
  await pool.query(
    `INSERT INTO payments (payment_id, state, state_value, snapshot, version, view)
     VALUES ($1, $2, '{}'::jsonb, '{}'::jsonb, 1, jsonb_build_object('np', $3::jsonb))`,
    [id, state, JSON.stringify(np)],
  );
}

function split(outcomeAmount: string, fee = '10', priceAmount = '9.99') {
  return splitOutcome({ outcomeAmount, outcomeDecimals: 18, feePercent: fee, priceAmount });
}

function credit(pid: string, channel: string, s: ReturnType<typeof split>, payoutId: string | null) {
  return { paymentId: pid, openChannelId: channel, ownerUnits: s.ownerUnits, feeUnits: s.feeUnits, ownerUsd: s.ownerUsd, feeUsd: s.feeUsd, payoutId };
}

describe('creditPayment', () => {
  it('credits the owner and the platform once: a second call answers the same pair', async () => {
    const channel = await insertChannel(db.pool, 'threshold', '50');
    const pid = paymentId();
    const s = split('0.003123456789012345');
    const first = await creditPayment(db.pool, credit(pid, channel, s, null));
    expect(first.credited).toBe(true);
    expect(first.entries.map((e) => [e.account, e.kind, e.amountUnits, e.usdValue, e.payoutId])).toEqual([
      ['owner', 'payment_credit', 2_811_111_110_111_110n, '8.991', null],
      ['platform', 'platform_fee', 312_345_678_901_235n, '0.999', null],
    ]);
    expect(first.entries[0]!.openChannelId).toBe(channel);
    const again = await creditPayment(db.pool, credit(pid, channel, s, null));
    expect(again).toEqual({ credited: false, entries: first.entries });
    expect(await entriesOfPayment(db.pool, pid)).toHaveLength(2);
    expect(await openBalance(db.pool, channel)).toEqual({ units: 2_811_111_110_111_110n, usd: '8.991', entries: 1 });
  });

  it('50 concurrent credits of one payment write one pair', async () => {
    const channel = await insertChannel(db.pool, 'instant');
    const pid = paymentId();
    const s = split('0.01');
    const results = await Promise.all(Array.from({ length: 50 }, () => creditPayment(db.pool, credit(pid, channel, s, `instant:${pid}`))));
    expect(results.filter((r) => r.credited)).toHaveLength(1);
    const ids = new Set(results.flatMap((r) => r.entries.map((e) => e.entryId)));
    expect(ids.size).toBe(2);
    const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM ledger_entries WHERE payment_id = $1', [pid]);
    expect(rows[0].n).toBe(2);
    // An instant credit is settled by its payout from the start: it is never open for a batch.
    expect((await openBalance(db.pool, channel)).entries).toBe(0);
  });

  it('refuses negative or non-bigint amounts before writing anything', async () => {
    const channel = await insertChannel(db.pool, 'instant');
    const base = credit(paymentId(), channel, split('1'), null);
    await expect(creditPayment(db.pool, { ...base, ownerUnits: -1n })).rejects.toThrow(/ownerUnits/);
    await expect(creditPayment(db.pool, { ...base, feeUnits: 5 as unknown as bigint })).rejects.toThrow(/feeUnits/);
    await expect(creditPayment(db.pool, { ...base, ownerUsd: '1e3' })).rejects.toThrow(/ownerUsd/);
    expect(await entriesOfPayment(db.pool, base.paymentId)).toEqual([]);
  });

  it('books with one named statement; a replay adds the named read of what is there', async () => {
    const channel = await insertChannel(db.pool, 'threshold', '50');
    const pid = paymentId();
    const { pool, sent } = recordingPool(db.pool);
    const first = await creditPayment(pool, credit(pid, channel, split('0.01'), null));
    expect(sent).toEqual(['ledger-credit-payment']);
    sent.length = 0;
    expect(await creditPayment(pool, credit(pid, channel, split('0.01'), null))).toEqual({ credited: false, entries: first.entries });
    expect(sent).toEqual(['ledger-credit-payment', 'ledger-entries-of-payment']);
  });
});

describe('claimBatch', () => {
  it('claims nothing below the threshold, then all open credits at once, idempotently per batch id', async () => {
    const channel = await insertChannel(db.pool, 'threshold', '20');
    const s = split('0.0031');
    await creditPayment(db.pool, credit(paymentId(), channel, s, null));
    await creditPayment(db.pool, credit(paymentId(), channel, s, null));
    expect(await claimBatch(db.pool, { openChannelId: channel, thresholdUsd: '20', batchId: 'b-low' })).toBeNull();
    expect(await findBatch(db.pool, 'b-low')).toBeNull();
    await creditPayment(db.pool, credit(paymentId(), channel, s, null));
    const batch = await claimBatch(db.pool, { openChannelId: channel, thresholdUsd: '20', batchId: 'b-1' });
    expect(batch).toMatchObject({ batchId: 'b-1', payoutId: 'batch:b-1', totalUnits: 3n * s.ownerUnits, usdValue: '26.973', status: 'claimed' });
    expect(batch!.entryIds).toHaveLength(3);
    expect(await openBalance(db.pool, channel)).toEqual({ units: 0n, usd: '0', entries: 0 });
    expect(await claimBatch(db.pool, { openChannelId: channel, thresholdUsd: '20', batchId: 'b-1' })).toEqual(batch);
    await expect(claimBatch(db.pool, { openChannelId: nextId(), thresholdUsd: '20', batchId: 'b-1' })).rejects.toThrow(/belongs to channel/);
  });

  it('20 concurrent payments crossing the threshold together: every credit in at most one batch, sums exact', async () => {
    const threshold = '50';
    const channel = await insertChannel(db.pool, 'threshold', threshold);
    // Slightly different outcomes so a lost or doubled entry shows in the sums.
    const splits = Array.from({ length: 20 }, (_, i) => split(`0.0031${String(i).padStart(2, '0')}123456789012`));
    const outcomes = await Promise.allSettled(
      splits.map(async (s, i) => {
        const pid = paymentId();
        // Half credit and claim in one transaction (as an actor would), half in autocommit statements.
        if (i % 2 === 0) {
          return inTransaction(db.pool, async (client) => {
            await creditPayment(client, credit(pid, channel, s, null));
            return claimBatch(client, { openChannelId: channel, thresholdUsd: threshold, batchId: `${channel}-${i}` });
          });
        }
        await creditPayment(db.pool, credit(pid, channel, s, null));
        return claimBatch(db.pool, { openChannelId: channel, thresholdUsd: threshold, batchId: `${channel}-${i}` });
      }),
    );
    expect(outcomes.filter((o) => o.status === 'rejected')).toEqual([]);
    // A sweep after the rush, as the threshold job would do: what is left open is below the threshold.
    await claimBatch(db.pool, { openChannelId: channel, thresholdUsd: threshold, batchId: `${channel}-sweep` });

    const { rows: batchRows } = await db.pool.query<{ batch_id: string }>('SELECT batch_id FROM payout_batches WHERE open_channel_id = $1', [channel]);
    const batches = await Promise.all(batchRows.map((b) => findBatch(db.pool, b.batch_id)));
    const totalUsd = splits.reduce((sum, s) => sum + toBaseUnits(s.ownerUsd, 8), 0n);
    expect(batches.length).toBeGreaterThanOrEqual(1);
    expect(BigInt(batches.length)).toBeLessThanOrEqual(totalUsd / toBaseUnits(threshold, 8));

    const { rows: credits } = await db.pool.query<{ entry_id: string; payout_id: string | null; amount_units: string }>(
      `SELECT entry_id::text, payout_id, amount_units::text FROM ledger_entries WHERE open_channel_id = $1 AND kind = 'payment_credit'`,
      [channel],
    );
    expect(credits).toHaveLength(20);
    const claimedIds = batches.flatMap((b) => b!.entryIds);
    expect(new Set(claimedIds).size).toBe(claimedIds.length); // no entry in two batches
    expect(new Set(claimedIds)).toEqual(new Set(credits.filter((c) => c.payout_id !== null).map((c) => c.entry_id))); // none outside one
    for (const b of batches) {
      const mine = credits.filter((c) => c.payout_id === batchPayoutId(b!.batchId));
      expect(mine.reduce((sum, c) => sum + BigInt(c.amount_units), 0n)).toBe(b!.totalUnits);
      expect(Number(b!.usdValue)).toBeGreaterThanOrEqual(50);
    }
    const open = await openBalance(db.pool, channel);
    expect(Number(open.usd)).toBeLessThan(50);
    const credited = splits.reduce((sum, s) => sum + s.ownerUnits, 0n);
    expect(batches.reduce((sum, b) => sum + b!.totalUnits, 0n) + open.units).toBe(credited);
  });
});

describe('recordPayout', () => {
  it('books the payout and its exchange difference once, whatever a replay reports', async () => {
    const channel = await insertChannel(db.pool, 'instant');
    const pid = paymentId();
    const payoutId = `instant:${pid}`;
    const s = split('0.0031');
    await creditPayment(db.pool, credit(pid, channel, s, payoutId));
    const sent = s.ownerUnits - 1_234_567n; // the swap cost less than the share: the platform keeps the rest
    const first = await recordPayout(db.pool, { payoutId, openChannelId: channel, ownerUnitsCleared: s.ownerUnits, sentUnits: sent });
    expect(first.recorded).toBe(true);
    expect(first.entries.map((e) => [e.account, e.kind, e.amountUnits])).toEqual([
      ['owner', 'payout', -s.ownerUnits],
      ['platform', 'exchange_difference', 1_234_567n],
    ]);
    const replay = await recordPayout(db.pool, { payoutId, openChannelId: channel, ownerUnitsCleared: s.ownerUnits, sentUnits: sent });
    expect(replay).toEqual({ recorded: false, entries: first.entries });
    const other = await recordPayout(db.pool, { payoutId, openChannelId: channel, ownerUnitsCleared: s.ownerUnits, sentUnits: s.ownerUnits });
    expect(other).toEqual({ recorded: false, entries: first.entries });
  });

  it('concurrent payouts of one id book exactly one payout and at most one difference, the winner\'s', async () => {
    const channel = await insertChannel(db.pool, 'instant');
    const pid = paymentId();
    const s = split('0.05');
    await creditPayment(db.pool, credit(pid, channel, s, `instant:${pid}`));
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        recordPayout(db.pool, { payoutId: `instant:${pid}`, openChannelId: channel, ownerUnitsCleared: s.ownerUnits, sentUnits: s.ownerUnits + BigInt(i % 3) - 1n }),
      ),
    );
    expect(results.filter((r) => r.recorded)).toHaveLength(1);
    const { rows } = await db.pool.query('SELECT kind, amount_units::text FROM ledger_entries WHERE payout_id = $1 AND kind <> $2', [`instant:${pid}`, 'payment_credit']);
    const winner = results.find((r) => r.recorded)!;
    expect(rows).toHaveLength(winner.entries.length);
  });

  it('refuses to clear anything but the credits that carry the payout id', async () => {
    const channel = await insertChannel(db.pool, 'instant');
    const pid = paymentId();
    const s = split('0.01');
    await creditPayment(db.pool, credit(pid, channel, s, `instant:${pid}`));
    await expect(recordPayout(db.pool, { payoutId: `instant:${pid}`, openChannelId: channel, ownerUnitsCleared: s.ownerUnits + 1n, sentUnits: s.ownerUnits }))
      .rejects.toThrow(/sum to/);
    await expect(recordPayout(db.pool, { payoutId: 'instant:nothing', openChannelId: channel, ownerUnitsCleared: 1n, sentUnits: 1n })).rejects.toThrow(/sum to 0/);
    await expect(recordPayout(db.pool, { payoutId: `instant:${pid}`, openChannelId: channel, ownerUnitsCleared: 0n, sentUnits: 0n })).rejects.toThrow(/ownerUnitsCleared/);
  });
});

describe('append-only', () => {
  it('refuses to change an amount, re-stamp a claim, stamp a fee, delete or truncate; allows one claim stamp', async () => {
    const channel = await insertChannel(db.pool, 'threshold', '1');
    const pid = paymentId();
    const { entries } = await creditPayment(db.pool, credit(pid, channel, split('0.01'), null));
    const [owner, fee] = [entries[0]!.entryId, entries[1]!.entryId];
    const refused = /append-only/;
    await expect(db.pool.query('UPDATE ledger_entries SET amount_units = amount_units + 1 WHERE entry_id = $1', [owner])).rejects.toThrow(refused);
    await expect(db.pool.query('UPDATE ledger_entries SET usd_value = 0 WHERE entry_id = $1', [owner])).rejects.toThrow(refused);
    await expect(db.pool.query(`UPDATE ledger_entries SET payout_id = 'x' WHERE entry_id = $1`, [fee])).rejects.toThrow(refused);
    await expect(db.pool.query(`UPDATE ledger_entries SET payout_id = 'x', amount_units = 1 WHERE entry_id = $1`, [owner])).rejects.toThrow(refused);
    await expect(db.pool.query('DELETE FROM ledger_entries WHERE entry_id = $1', [owner])).rejects.toThrow(refused);
    await expect(db.pool.query('TRUNCATE ledger_entries')).rejects.toThrow(refused);
    await db.pool.query(`UPDATE ledger_entries SET payout_id = 'x' WHERE entry_id = $1`, [owner]);
    await expect(db.pool.query(`UPDATE ledger_entries SET payout_id = 'y' WHERE entry_id = $1`, [owner])).rejects.toThrow(refused);
    await expect(db.pool.query(`UPDATE ledger_entries SET payout_id = NULL WHERE entry_id = $1`, [owner])).rejects.toThrow(refused);
    expect((await entriesOfPayment(db.pool, pid)).map((e) => e.amountUnits)).toEqual(entries.map((e) => e.amountUnits));
  });
});

describe('checkBooks', () => {
  // Books cover the whole database, so this cycle runs on a database of its own.
  let books: TestDatabase;
  beforeAll(async () => {
    books = await createTestDatabase();
  });
  afterAll(async () => {
    await books.drop();
  });

  it('balances to the wei after a full cycle, then reports money unaccounted for', async () => {
    const pool = books.pool;
    expect((await checkBooks(pool)).balanced).toBe(true);
    const instant = await insertChannel(pool, 'instant', null, '7.5');
    const threshold = await insertChannel(pool, 'threshold', '20', '12.34');
    let outcomes = 0n;
    let sent = 0n;
    let fees = 0n;
    const pay = async (channel: string, fee: string, amount: string, state: string, payoutId: (pid: string) => string | null) => {
      const pid = paymentId();
      const s = split(amount, fee);
      await insertPayment(pool, pid, state, { outcomeAmount: amount, outcomeCurrency: 'eth', priceAmount: '9.99' });
      await creditPayment(pool, credit(pid, channel, s, payoutId(pid)));
      outcomes += s.outcomeUnits;
      fees += s.feeUnits;
      return { pid, s };
    };
    // Instant: one paid exactly, one with a cheaper swap, one topped up by the platform.
    for (const delta of [0n, 777n, -555n]) {
      const { pid, s } = await pay(instant, '7.5', fromBaseUnits(3_100_000_000_000_001n + delta, 18), 'split', (p) => `instant:${p}`);
      await recordPayout(pool, { payoutId: `instant:${pid}`, openChannelId: instant, ownerUnitsCleared: s.ownerUnits, sentUnits: s.ownerUnits - delta });
      sent += s.ownerUnits - delta;
    }
    // Threshold: three credits claimed and paid, one claimed and unpaid, one left open.
    for (let i = 0; i < 3; i++) await pay(threshold, '12.34', `0.0031${i}`, 'accumulated', () => null);
    const paid = (await claimBatch(pool, { openChannelId: threshold, thresholdUsd: '20', batchId: 'books-1' }))!;
    await recordPayout(pool, { payoutId: paid.payoutId, openChannelId: threshold, ownerUnitsCleared: paid.totalUnits, sentUnits: paid.totalUnits - 42n });
    sent += paid.totalUnits - 42n;
    for (let i = 0; i < 3; i++) await pay(threshold, '12.34', `0.0032${i}`, 'accumulated', () => null);
    const unpaid = (await claimBatch(pool, { openChannelId: threshold, thresholdUsd: '20', batchId: 'books-2' }))!;
    const { s: open } = await pay(threshold, '12.34', '0.000000000000000007', 'accumulated', () => null);

    const result = await checkBooks(pool);
    expect(result.problems).toEqual([]);
    expect(result.balanced).toBe(true);
    expect(result.totals).toMatchObject({
      outcomes: outcomes.toString(),
      ownerPayouts: sent.toString(),
      fees: fees.toString(),
      exchangeDifferences: (777n - 555n + 42n).toString(),
      openBalances: (unpaid.totalUnits + open.ownerUnits).toString(),
    });

    const perChannel = await balances(pool);
    expect(perChannel.find((b) => b.openChannelId === threshold)).toMatchObject({
      openUnits: open.ownerUnits, openEntries: 1, pendingUnits: unpaid.totalUnits, paidOutUnits: paid.totalUnits, exchangeDifferenceUnits: 42n,
    });
    expect(perChannel.find((b) => b.openChannelId === instant)).toMatchObject({ openUnits: 0n, pendingUnits: 0n, exchangeDifferenceUnits: 222n });
    const latest = await ledgerOf(pool, { openChannelId: threshold, limit: 2 });
    expect(latest.map((e) => e.kind)).toEqual(['platform_fee', 'payment_credit']);
    expect((await ledgerOf(pool, { openChannelId: threshold, limit: 100, before: latest[1]!.entryId })).every((e) => BigInt(e.entryId) < BigInt(latest[1]!.entryId))).toBe(true);

    // A paid payment the ledger never heard of, and one credited for less than arrived.
    const lost = paymentId();
    await insertPayment(pool, lost, 'paid', { outcomeAmount: '0.0042' });
    const short = paymentId();
    await insertPayment(pool, short, 'accumulated', { outcomeAmount: '0.005' });
    const wrong = split('0.004', '12.34');
    await creditPayment(pool, credit(short, threshold, wrong, null));
    // A batch row whose credits do not add up to it, a credit claimed by a batch that does not exist, and a
    // payout written past recordPayout that clears credits nobody holds.
    await pool.query(`INSERT INTO payout_batches (batch_id, open_channel_id, total_units, usd_value, entry_count) VALUES ('bogus', $1, 5, 1, 1)`, [threshold]);
    await pool.query(`UPDATE ledger_entries SET payout_id = 'batch:ghost' WHERE payment_id = $1 AND kind = 'payment_credit'`, [short]);
    await pool.query(`INSERT INTO ledger_entries (open_channel_id, account, kind, payout_id, amount_units) VALUES ($1, 'owner', 'payout', 'instant:raw', -9)`, [instant]);
    const broken = await checkBooks(pool);
    expect(broken.balanced).toBe(false);
    expect(broken.problems).toEqual([
      { paymentId: short, payoutId: null, problem: `credit ${wrong.ownerUnits} + fee ${wrong.feeUnits} = 4000000000000000 units, but the outcome is 5000000000000000` },
      { paymentId: lost, payoutId: null, problem: 'state paid with outcome 0.0042 but no ledger credit' },
      { paymentId: null, payoutId: 'batch:bogus', problem: 'batch bogus says 5 units in 1 entries, its claimed credits sum to 0 units in 0 entries' },
      { paymentId: null, payoutId: 'batch:ghost', problem: `1 owner credit(s) of ${wrong.ownerUnits} units claimed by a batch that does not exist` },
      { paymentId: null, payoutId: 'instant:raw', problem: 'payout cleared 9 units, the owner credits it settles sum to 0' },
    ]);
    // The stray payout also breaks the equation: 9 units left that no outcome brought in.
    expect(BigInt(broken.totals.ownerPayouts) + BigInt(broken.totals.fees) + BigInt(broken.totals.exchangeDifferences) + BigInt(broken.totals.openBalances))
      .toBe(BigInt(broken.totals.outcomes) - 5_000_000_000_000_000n + 4_000_000_000_000_000n + 9n);
  });
});
