import type { Queryable } from '../../persistence/transaction.js';

/**
 * Takes the wallet's next nonce under its row lock (the row is created on first use). Call inside a
 * transaction: the lock is held until it ends, so concurrent senders, in this process or another,
 * get consecutive nonces in commit order, and a rollback gives the nonce back.
 *
 * Catching up with sends made outside the service: the stored counter is raised to the node's pending
 * count for the address whenever that is higher (`GREATEST`). Our own transactions always have nonces
 * below the stored counter (they are allocated before they are broadcast), so only someone else's
 * transactions can make the node's count higher, and a count read before the lock can only be too
 * low, which GREATEST ignores. The counter never goes down.
 */
export async function allocateNonce(db: Queryable, address: string, chainId: number, nodePendingCount: number): Promise<number> {
  const { rows } = await db.query<{ nonce: string }>(
    `INSERT INTO host_wallets AS w (address, chain_id, next_nonce) VALUES ($1, $2, $3::bigint + 1)
     ON CONFLICT (address, chain_id) DO UPDATE SET next_nonce = GREATEST(w.next_nonce, $3::bigint) + 1, updated_at = now()
     RETURNING next_nonce - 1 AS nonce`,
    [address, chainId, nodePendingCount],
  );
  return Number(rows[0]?.nonce);
}

/** The next nonce the service would use, or null if the wallet has never sent on this chain. */
export async function readNextNonce(db: Queryable, address: string, chainId: number): Promise<number | null> {
  const { rows } = await db.query<{ next_nonce: string }>('SELECT next_nonce FROM host_wallets WHERE address = $1 AND chain_id = $2', [address, chainId]);
  return rows[0] ? Number(rows[0].next_nonce) : null;
}
