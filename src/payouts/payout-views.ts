import { entriesOfPayment, entriesOfPayout, type LedgerEntry } from './ledger.repo.js';
import { findBatch } from './payout-batches.repo.js';
import { findPayout, instantPayoutId, type Payout } from './payouts.repo.js';
import type { Queryable } from '../persistence/transaction.js';

// What operators read about payouts, in JSON-safe shapes (bigint base units as decimal strings).

const units = (value: bigint) => value.toString();

export function payoutJson(p: Payout) {
  return { ...p, clearedUnits: units(p.clearedUnits), amountUnits: units(p.amountUnits) };
}

export function entryJson(e: LedgerEntry) {
  return { ...e, amountUnits: units(e.amountUnits) };
}

export interface ChainTxView {
  state: string;
  txHash?: string;
  blockNumber?: number;
  confirmations?: number;
}

/** The chain transaction behind a payout: nonce and raw facts from our table, live confirmations from the node (when it answers). */
export async function chainTxOf(db: Queryable, txKey: string, live: (txKey: string) => Promise<ChainTxView>) {
  const { rows } = await db.query(
    `SELECT tx_key, from_address, nonce::text, to_address, value_wei::text, tx_hash, signed_at, broadcast_at, broadcast_attempts,
            last_broadcast_error, receipt_status, block_number::text, mined_at
       FROM chain_transactions WHERE tx_key = $1`,
    [txKey],
  );
  if (!rows[0]) return null;
  const status = await live(txKey).catch((error: unknown) => ({ state: `node did not answer: ${(error as Error).message}` }));
  return { ...rows[0], live: status };
}

/** Everything about the payout of one payment (instant, or the batch that claimed its credit). */
export async function payoutOfPayment(db: Queryable, paymentId: string, live: (txKey: string) => Promise<ChainTxView>) {
  const entries = await entriesOfPayment(db, paymentId);
  const credit = entries.find((e) => e.kind === 'payment_credit');
  const payoutId = credit?.payoutId ?? instantPayoutId(paymentId);
  const payout = await findPayout(db, payoutId);
  const batchId = payoutId.startsWith('batch:') ? payoutId.slice('batch:'.length) : null;
  const batch = batchId ? await findBatch(db, batchId) : null;
  return {
    ledger: entries.map(entryJson),
    payout: payout ? payoutJson(payout) : null,
    payoutLedger: payout ? (await entriesOfPayout(db, payout.payoutId)).filter((e) => e.kind !== 'payment_credit').map(entryJson) : [],
    batch: batch ? { ...batch, totalUnits: units(batch.totalUnits) } : null,
    transaction: payout?.txKey ? await chainTxOf(db, payout.txKey, live) : null,
  };
}
