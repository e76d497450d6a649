import type { Queryable } from '../persistence/transaction.js';

// Payout rows (migrations/009). Each step's result is recorded here before the next step runs; every
// write is conditional on the step not being recorded yet, so two workers racing on one payout keep
// the first answer and the loser re-reads it.

export type PayoutStatus = 'planned' | 'exchange_created' | 'sent' | 'settled' | 'review';

export interface Payout {
  payoutId: string;
  kind: 'instant' | 'batch';
  openChannelId: string;
  paymentId: string | null;
  batchId: string | null;
  clearedUnits: bigint;
  amountUnits: bigint;
  owedUsd: string | null;
  toAddress: string;
  toCurrency: string;
  toNetwork: string;
  direct: boolean;
  exchangeId: string | null;
  payinAddress: string | null;
  exchangeFromAmount: string | null;
  exchangeToAmount: string | null;
  exchangeStatus: string | null;
  ownerPayoutHash: string | null;
  txKey: string | null;
  txHash: string | null;
  status: PayoutStatus;
  problem: string | null;
  createdAt: Date;
  settledAt: Date | null;
}

export type NewPayout = Pick<Payout, 'payoutId' | 'kind' | 'openChannelId' | 'paymentId' | 'batchId' | 'clearedUnits' | 'amountUnits' | 'owedUsd' | 'toAddress' | 'toCurrency' | 'toNetwork' | 'direct'>;

type Row = Omit<Payout, 'clearedUnits' | 'amountUnits'> & { clearedUnits: string; amountUnits: string };

const COLUMNS = `payout_id AS "payoutId", kind, open_channel_id::text AS "openChannelId", payment_id AS "paymentId", batch_id AS "batchId",
  cleared_units::text AS "clearedUnits", amount_units::text AS "amountUnits", trim_scale(owed_usd)::text AS "owedUsd",
  to_address AS "toAddress", to_currency AS "toCurrency", to_network AS "toNetwork", direct,
  exchange_id AS "exchangeId", payin_address AS "payinAddress", trim_scale(exchange_from_amount)::text AS "exchangeFromAmount",
  trim_scale(exchange_to_amount)::text AS "exchangeToAmount", exchange_status AS "exchangeStatus", owner_payout_hash AS "ownerPayoutHash",
  tx_key AS "txKey", tx_hash AS "txHash", status, problem, created_at AS "createdAt", settled_at AS "settledAt"`;

const toPayout = (row: Row): Payout => ({ ...row, clearedUnits: BigInt(row.clearedUnits), amountUnits: BigInt(row.amountUnits) });

export const instantPayoutId = (paymentId: string): string => `payment:${paymentId}`;

export async function findPayout(db: Queryable, payoutId: string): Promise<Payout | null> {
  const { rows } = await db.query<Row>({ name: 'payout-find', text: `SELECT ${COLUMNS} FROM payouts WHERE payout_id = $1`, values: [payoutId] });
  return rows[0] ? toPayout(rows[0]) : null;
}

/** Plans a payout once: a second plan for the same id (a retry, a racing worker) gets the first one back unchanged. */
export async function planPayout(db: Queryable, p: NewPayout): Promise<Payout> {
  await db.query(
    `INSERT INTO payouts (payout_id, kind, open_channel_id, payment_id, batch_id, cleared_units, amount_units, owed_usd,
                          to_address, to_currency, to_network, direct)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (payout_id) DO NOTHING`,
    [p.payoutId, p.kind, p.openChannelId, p.paymentId, p.batchId, p.clearedUnits.toString(), p.amountUnits.toString(), p.owedUsd, p.toAddress, p.toCurrency, p.toNetwork, p.direct],
  );
  return (await findPayout(db, p.payoutId))!;
}

async function updateOnce(db: Queryable, payoutId: string, set: string, guard: string, values: unknown[]): Promise<Payout> {
  await db.query(`UPDATE payouts SET ${set}, updated_at = now() WHERE payout_id = $1 AND ${guard}`, [payoutId, ...values]);
  const payout = await findPayout(db, payoutId);
  if (!payout) throw new Error(`payout ${payoutId} does not exist`);
  return payout;
}

/** Stores the exchange ChangeNow created, unless one is stored already (the other one is never funded). */
export function recordExchange(db: Queryable, payoutId: string, e: { exchangeId: string; payinAddress: string; fromAmount: string; toAmount: string }): Promise<Payout> {
  return updateOnce(
    db,
    payoutId,
    `exchange_id = $2, payin_address = $3, exchange_from_amount = $4, exchange_to_amount = $5, exchange_created_at = now(), status = 'exchange_created'`,
    'exchange_id IS NULL',
    [e.exchangeId, e.payinAddress, e.fromAmount, e.toAmount],
  );
}

export function recordSent(db: Queryable, payoutId: string, tx: { txKey: string; txHash: string }): Promise<Payout> {
  return updateOnce(db, payoutId, `tx_key = $2, tx_hash = $3, status = CASE WHEN status = 'settled' THEN status ELSE 'sent' END`, 'tx_hash IS NULL', [tx.txKey, tx.txHash]);
}

export function recordExchangeStatus(db: Queryable, payoutId: string, status: string): Promise<Payout> {
  return updateOnce(db, payoutId, 'exchange_status = $2', "status <> 'settled'", [status]);
}

export function markSettled(db: Queryable, payoutId: string, ownerPayoutHash: string | null): Promise<Payout> {
  return updateOnce(db, payoutId, `status = 'settled', owner_payout_hash = $2, problem = NULL, settled_at = now()`, "status <> 'settled'", [ownerPayoutHash]);
}

/** Parks the payout for a person with the evidence; never touches a settled payout. */
export function markReview(db: Queryable, payoutId: string, problem: string): Promise<Payout> {
  return updateOnce(db, payoutId, `status = 'review', problem = $2`, "status <> 'settled'", [problem]);
}

/** An operator resumes a parked payout: back to the step its recorded facts say it reached. */
export function resumeFromReview(db: Queryable, payoutId: string): Promise<Payout> {
  return updateOnce(
    db,
    payoutId,
    `status = CASE WHEN tx_hash IS NOT NULL THEN 'sent' WHEN exchange_id IS NOT NULL THEN 'exchange_created' ELSE 'planned' END, problem = NULL`,
    "status = 'review'",
    [],
  );
}

export async function listPayouts(db: Queryable, filter: { openChannelId?: string | null; status?: PayoutStatus | null; search?: string | null; limit: number }): Promise<Payout[]> {
  const { rows } = await db.query<Row>(
    `SELECT ${COLUMNS} FROM payouts
      WHERE ($1::bigint IS NULL OR open_channel_id = $1) AND ($2::text IS NULL OR status = $2)
        AND ($3::text IS NULL OR $3 IN (payout_id, payment_id, batch_id, exchange_id, tx_hash, owner_payout_hash))
      ORDER BY created_at DESC LIMIT $4`,
    [filter.openChannelId ?? null, filter.status ?? null, filter.search ?? null, filter.limit],
  );
  return rows.map(toPayout);
}
