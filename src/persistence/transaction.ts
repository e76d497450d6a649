import type pg from 'pg';

/** Anything that can run a query: the pool, or a client inside a transaction. Repositories take this. */
export type Queryable = Pick<pg.Pool | pg.PoolClient, 'query'>;

/** Runs `work` in one transaction on a client of its own: commit on success, roll back on any error. */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // A connection lost while checked out emits 'error' on the client, which pg-pool only listens to while
  // the client is idle: unheard, it would be an uncaught exception. The query in flight rejects all the
  // same, so the transaction fails (and is retried by its caller); createPool adds a logging listener too.
  client.on('error', ignoreCheckedOutError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.off('error', ignoreCheckedOutError);
    client.release();
  }
}

export function ignoreCheckedOutError(): void {}
