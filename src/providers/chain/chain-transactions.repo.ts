import type { Queryable } from '../../persistence/transaction.js';

// chain_transactions: one signed transaction per caller key. The raw bytes are stored before anything
// is broadcast, and only they are ever broadcast for that key.

export interface NewChainTx {
  txKey: string;
  fromAddress: string;
  chainId: number;
  nonce: number;
  toAddress: string;
  valueWei: bigint;
  tokenAddress: string | null;
  tokenAmount: bigint | null;
  data: string;
  rawTx: string;
  txHash: string;
}

export interface ChainTx extends NewChainTx {
  signedAt: Date;
  broadcastAt: Date | null;
  broadcastAttempts: number;
  lastBroadcastError: string | null;
  receiptStatus: number | null;
  blockNumber: number | null;
  minedAt: Date | null;
}

interface Row {
  tx_key: string;
  from_address: string;
  chain_id: string;
  nonce: string;
  to_address: string;
  value_wei: string;
  token_address: string | null;
  token_amount: string | null;
  data: string;
  raw_tx: string;
  tx_hash: string;
  signed_at: Date;
  broadcast_at: Date | null;
  broadcast_attempts: number;
  last_broadcast_error: string | null;
  receipt_status: number | null;
  block_number: string | null;
  mined_at: Date | null;
}

function fromRow(r: Row): ChainTx {
  return {
    txKey: r.tx_key,
    fromAddress: r.from_address,
    chainId: Number(r.chain_id),
    nonce: Number(r.nonce),
    toAddress: r.to_address,
    valueWei: BigInt(r.value_wei),
    tokenAddress: r.token_address,
    tokenAmount: r.token_amount === null ? null : BigInt(r.token_amount),
    data: r.data,
    rawTx: r.raw_tx,
    txHash: r.tx_hash,
    signedAt: r.signed_at,
    broadcastAt: r.broadcast_at,
    broadcastAttempts: r.broadcast_attempts,
    lastBroadcastError: r.last_broadcast_error,
    receiptStatus: r.receipt_status,
    blockNumber: r.block_number === null ? null : Number(r.block_number),
    minedAt: r.mined_at,
  };
}

export async function findChainTx(db: Queryable, txKey: string): Promise<ChainTx | null> {
  const { rows } = await db.query<Row>('SELECT * FROM chain_transactions WHERE tx_key = $1', [txKey]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Inserts the signed transaction unless the key exists; the stored row, or null when the key was taken. */
export async function insertChainTx(db: Queryable, tx: NewChainTx): Promise<ChainTx | null> {
  const { rows } = await db.query<Row>(
    `INSERT INTO chain_transactions (tx_key, from_address, chain_id, nonce, to_address, value_wei, token_address, token_amount, data, raw_tx, tx_hash)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (tx_key) DO NOTHING RETURNING *`,
    [tx.txKey, tx.fromAddress, tx.chainId, tx.nonce, tx.toAddress, tx.valueWei.toString(), tx.tokenAddress,
      tx.tokenAmount === null ? null : tx.tokenAmount.toString(), tx.data, tx.rawTx, tx.txHash],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

/** A node accepted the transaction (or showed it already had it). The first time is kept. */
export async function markBroadcast(db: Queryable, txKey: string): Promise<void> {
  await db.query(
    `UPDATE chain_transactions SET broadcast_at = COALESCE(broadcast_at, now()), broadcast_attempts = broadcast_attempts + 1,
       last_broadcast_error = NULL WHERE tx_key = $1`,
    [txKey],
  );
}

export async function recordBroadcastError(db: Queryable, txKey: string, error: string): Promise<void> {
  await db.query(
    'UPDATE chain_transactions SET broadcast_attempts = broadcast_attempts + 1, last_broadcast_error = $2 WHERE tx_key = $1',
    [txKey, error.slice(0, 1000)],
  );
}

/** Records where the transaction was mined; a reorg that moves it overwrites the block. */
export async function recordReceipt(db: Queryable, txKey: string, status: number, blockNumber: number): Promise<void> {
  await db.query(
    `UPDATE chain_transactions SET receipt_status = $2, block_number = $3, mined_at = COALESCE(mined_at, now()),
       broadcast_at = COALESCE(broadcast_at, now())
     WHERE tx_key = $1 AND (receipt_status IS DISTINCT FROM $2 OR block_number IS DISTINCT FROM $3)`,
    [txKey, status, blockNumber],
  );
}

/**
 * This wallet's transactions with a lower nonce that no node has acknowledged and that were signed more
 * than graceMs ago: most likely a process died between commit and broadcast, leaving a nonce gap that
 * holds every later transaction in the node's queue.
 */
export async function findUnbroadcastBelow(db: Queryable, fromAddress: string, chainId: number, nonce: number, graceMs: number): Promise<ChainTx[]> {
  const { rows } = await db.query<Row>(
    `SELECT * FROM chain_transactions
     WHERE from_address = $1 AND chain_id = $2 AND nonce < $3 AND broadcast_at IS NULL
       AND signed_at < now() - make_interval(secs => $4::double precision / 1000)
     ORDER BY nonce LIMIT 20`,
    [fromAddress, chainId, nonce, graceMs],
  );
  return rows.map(fromRow);
}
