import type { Queryable } from '../persistence/transaction.js';

// One search box for operators: whatever was pasted (a payment id, an order id, a buyer's Telegram id, a
// channel id, a transaction hash), the payments it points at. Each reading is one lookup on a key or an
// index; readings that cannot apply (a hash that is not hex, an id that is not a number) are not tried.
//   payment id        payments primary key
//   order id          payments (order_id)
//   buyer             orders (buyer_telegram_id) -> payments (order_id)
//   channel           orders (open_channel_id), also given its closed channel's id (no index of ours
//                     leads with the channel: a scan of orders, newest first, capped)
//   transaction hash  payouts (tx_hash), chain_transactions (tx_hash, unique), payouts (owner_payout_hash,
//                     not indexed: a scan of payouts) -> the instant payout's payment, or every payment a
//                     batch payout paid (ledger credits claimed by 'batch:<id>')

export interface SearchHit {
  payment_id: string;
  order_id: string | null;
  state: string;
  review_reason: string | null;
  state_entered_at: Date;
  /** Why it matched: "payment id", "order id", "buyer", "channel", "transaction hash". */
  matched: string[];
}

export interface PayoutHit {
  payout_id: string;
  kind: string;
  status: string;
  payment_id: string | null;
  batch_id: string | null;
  tx_hash: string | null;
  owner_payout_hash: string | null;
}

const BIGINT_MAX = 2n ** 63n - 1n;

function asBigint(q: string): string | null {
  if (!/^-?\d{1,19}$/.test(q)) return null;
  const n = BigInt(q);
  return n <= BIGINT_MAX && n >= -BIGINT_MAX ? n.toString() : null;
}

/** Hex transaction hashes are stored lower-case; other chains' hashes are kept as given. */
const looksLikeHash = (q: string) => q.length >= 16 && /^[0-9A-Za-z]+$/.test(q);
const normalizeHash = (q: string) => (/^0x[0-9a-fA-F]{64}$/.test(q) ? q.toLowerCase() : q);

const PAYMENT_COLUMNS = 'p.payment_id, p.order_id, p.state, p.review_reason, p.state_entered_at';

export async function search(db: Queryable, query: string, limit = 50): Promise<{ payments: SearchHit[]; payouts: PayoutHit[] }> {
  const q = query.trim();
  const hits = new Map<string, SearchHit>();
  const add = (rows: Omit<SearchHit, 'matched'>[], why: string) => {
    for (const row of rows) {
      const hit = hits.get(row.payment_id) ?? { ...row, matched: [] };
      if (!hit.matched.includes(why)) hit.matched.push(why);
      hits.set(row.payment_id, hit);
    }
  };
  const lookups: Promise<void>[] = [];
  const run = (why: string, text: string, values: unknown[]) =>
    lookups.push(db.query<Omit<SearchHit, 'matched'>>(text, values).then((r) => add(r.rows, why)));

  run('payment id', `SELECT ${PAYMENT_COLUMNS} FROM payments p WHERE p.payment_id = $1`, [q]);
  run('order id', `SELECT ${PAYMENT_COLUMNS} FROM payments p WHERE p.order_id = $1 ORDER BY p.created_at DESC LIMIT $2`, [q, limit]);
  const id = asBigint(q);
  if (id !== null) {
    run(
      'buyer',
      `SELECT ${PAYMENT_COLUMNS} FROM orders o JOIN payments p ON p.order_id = o.order_id
        WHERE o.buyer_telegram_id = $1::bigint ORDER BY o.created_at DESC LIMIT $2`,
      [id, limit],
    );
    run(
      'channel',
      `SELECT ${PAYMENT_COLUMNS} FROM orders o JOIN payments p ON p.order_id = o.order_id
        WHERE o.open_channel_id = $1::bigint OR o.open_channel_id = (SELECT c.open_channel_id FROM channels c WHERE c.closed_channel_id = $1::bigint LIMIT 1)
        ORDER BY o.created_at DESC LIMIT $2`,
      [id, limit],
    );
  }
  let payouts: PayoutHit[] = [];
  if (looksLikeHash(q)) {
    const hash = normalizeHash(q);
    lookups.push(
      db
        .query<PayoutHit>(
          `SELECT payout_id, kind, status, payment_id, batch_id, tx_hash, owner_payout_hash FROM payouts WHERE tx_hash = $1
           UNION
           SELECT p.payout_id, p.kind, p.status, p.payment_id, p.batch_id, p.tx_hash, p.owner_payout_hash
             FROM chain_transactions c JOIN payouts p ON p.tx_key = c.tx_key WHERE c.tx_hash = $1
           UNION
           SELECT payout_id, kind, status, payment_id, batch_id, tx_hash, owner_payout_hash FROM payouts WHERE owner_payout_hash IN ($1, $2)
           LIMIT 20`,
          [hash, q],
        )
        .then(async (r) => {
          payouts = r.rows;
          const instant = r.rows.map((p) => p.payment_id).filter((p): p is string => p !== null);
          const batches = r.rows.map((p) => p.batch_id).filter((b): b is string => b !== null);
          if (instant.length) add((await db.query(`SELECT ${PAYMENT_COLUMNS} FROM payments p WHERE p.payment_id = ANY($1::text[])`, [instant])).rows, 'transaction hash');
          if (batches.length) {
            add(
              (
                await db.query(
                  `SELECT ${PAYMENT_COLUMNS} FROM ledger_entries e JOIN payments p ON p.payment_id = e.payment_id
                    WHERE e.payout_id = ANY($1::text[]) AND e.kind = 'payment_credit' LIMIT $2`,
                  [batches.map((b) => `batch:${b}`), limit],
                )
              ).rows,
              'transaction hash',
            );
          }
        }),
    );
  }
  await Promise.all(lookups);
  const payments = [...hits.values()].sort((a, b) => b.state_entered_at.getTime() - a.state_entered_at.getTime()).slice(0, limit);
  return { payments, payouts };
}
