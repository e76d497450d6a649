import { isDecimalString, type DecimalString } from '../domain/money.js';
import type { Queryable } from '../persistence/transaction.js';

// The ledger (migrations/007): append-only entries in signed base units of the host currency (wei),
// the single source of truth for who is owed what. Every function takes a Queryable so it joins the
// caller's transaction. Amounts are bigint in code and NUMERIC in Postgres; they cross as decimal text.
// Threshold claims live in payout-batches.repo.ts.

export type LedgerAccount = 'owner' | 'platform';
export type LedgerKind = 'payment_credit' | 'platform_fee' | 'payout' | 'exchange_difference';

export interface LedgerEntry {
  entryId: string;
  openChannelId: string;
  account: LedgerAccount;
  kind: LedgerKind;
  paymentId: string | null;
  payoutId: string | null;
  amountUnits: bigint;
  currency: string;
  usdValue: DecimalString | null;
  createdAt: Date;
}

type EntryRow = Omit<LedgerEntry, 'amountUnits'> & { amountUnits: string };

const ENTRY_COLUMNS = `entry_id::text AS "entryId", open_channel_id::text AS "openChannelId", account, kind,
  payment_id AS "paymentId", payout_id AS "payoutId", amount_units::text AS "amountUnits", currency,
  trim_scale(usd_value)::text AS "usdValue", created_at AS "createdAt"`;

function toEntry(row: EntryRow): LedgerEntry {
  return { ...row, amountUnits: BigInt(row.amountUnits) };
}

// Credits first, then fees, payouts and differences: callers can rely on the order of a pair.
const KIND_ORDER = `array_position(ARRAY['payment_credit', 'platform_fee', 'payout', 'exchange_difference'], kind)`;

function requireUnits(name: string, value: bigint, min: bigint): void {
  if (typeof value !== 'bigint' || value < min) throw new Error(`${name} must be a bigint >= ${min}, got ${String(value)}`);
}

function requireUsd(name: string, value: DecimalString): void {
  if (!isDecimalString(value) || value.startsWith('-')) throw new Error(`${name} must be a non-negative decimal string, got ${String(value)}`);
}

export interface CreditInput {
  paymentId: string;
  openChannelId: string;
  ownerUnits: bigint;
  feeUnits: bigint;
  ownerUsd: DecimalString;
  feeUsd: DecimalString;
  /** The payout that will settle the owner's credit (instant); null for threshold channels (claimed later). */
  payoutId: string | null;
  currency?: string;
}

// Named: every routed payment books its credit, so these are planned once per connection.
const CREDIT = {
  name: 'ledger-credit-payment',
  text: `INSERT INTO ledger_entries (open_channel_id, account, kind, payment_id, payout_id, amount_units, currency, usd_value)
         VALUES ($2, 'owner', 'payment_credit', $1, $3, $4, $8, $6),
                ($2, 'platform', 'platform_fee', $1, NULL, $5, $8, $7)
         ON CONFLICT (payment_id, kind) WHERE payment_id IS NOT NULL DO NOTHING
         RETURNING ${ENTRY_COLUMNS}`,
};
const ENTRIES_OF_PAYMENT = {
  name: 'ledger-entries-of-payment',
  text: `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE payment_id = $1 ORDER BY ${KIND_ORDER}, entry_id`,
};

/**
 * Books one payment: the owner's credit and the platform's fee, both or neither (one statement).
 * Insert-if-absent on (payment_id, kind), so a replay or a concurrent call credits once; those answer
 * `credited: false` with the entries already there, which may differ from the input if the first
 * caller computed another split — the ledger keeps the first, the caller can compare.
 */
export async function creditPayment(db: Queryable, c: CreditInput): Promise<{ credited: boolean; entries: LedgerEntry[] }> {
  requireUnits('ownerUnits', c.ownerUnits, 0n);
  requireUnits('feeUnits', c.feeUnits, 0n);
  requireUsd('ownerUsd', c.ownerUsd);
  requireUsd('feeUsd', c.feeUsd);
  const { rows } = await db.query<EntryRow>({
    ...CREDIT,
    values: [c.paymentId, c.openChannelId, c.payoutId, c.ownerUnits.toString(), c.feeUnits.toString(), c.ownerUsd, c.feeUsd, c.currency ?? 'eth'],
  });
  if (rows.length === 2) return { credited: true, entries: sortPair(rows.map(toEntry)) };
  // A conflict waits for the other inserter to commit, so what it wrote is visible to this next statement.
  return { credited: rows.length > 0, entries: await entriesOfPayment(db, c.paymentId) };
}

function sortPair(entries: LedgerEntry[]): LedgerEntry[] {
  return entries.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'payment_credit' ? -1 : 1));
}

export async function entriesOfPayment(db: Queryable, paymentId: string): Promise<LedgerEntry[]> {
  const { rows } = await db.query<EntryRow>({ ...ENTRIES_OF_PAYMENT, values: [paymentId] });
  return rows.map(toEntry);
}

export async function entriesOfPayout(db: Queryable, payoutId: string): Promise<LedgerEntry[]> {
  const { rows } = await db.query<EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries WHERE payout_id = $1 ORDER BY ${KIND_ORDER}, entry_id`,
    [payoutId],
  );
  return rows.map(toEntry);
}

/** The channel's unclaimed owner credits: what a threshold claim would take now. */
export async function openBalance(db: Queryable, openChannelId: string): Promise<{ units: bigint; usd: DecimalString; entries: number }> {
  const { rows } = await db.query<{ units: string; usd: string; entries: number }>(
    `SELECT coalesce(sum(amount_units), 0)::text AS units, trim_scale(coalesce(sum(usd_value), 0))::text AS usd, count(*)::int AS entries
       FROM ledger_entries
      WHERE open_channel_id = $1 AND kind = 'payment_credit' AND payout_id IS NULL`,
    [openChannelId],
  );
  const row = rows[0]!;
  return { units: BigInt(row.units), usd: row.usd, entries: row.entries };
}

export interface PayoutInput {
  /** The payout id the settled credits carry: the instant payout's id, or 'batch:<batch_id>' (batchPayoutId). */
  payoutId: string;
  openChannelId: string;
  /** The owner's credits this payout settles, in base units: must equal the credits carrying payoutId. */
  ownerUnitsCleared: bigint;
  /** What actually left the host wallet for the owner; the difference is the platform's. */
  sentUnits: bigint;
  currency?: string;
}

/**
 * Books a payout: the owner's debit (−cleared) and, when sent ≠ cleared, the platform's exchange
 * difference (cleared − sent: positive when the swap cost less than the share, negative when the
 * platform topped it up). One statement, and the difference is written only by the call that wrote
 * the payout entry, so a replay (even one reporting other figures) never adds half a payout.
 * Refuses to clear anything but exactly the owner credits that carry payoutId.
 */
export async function recordPayout(db: Queryable, p: PayoutInput): Promise<{ recorded: boolean; entries: LedgerEntry[] }> {
  requireUnits('ownerUnitsCleared', p.ownerUnitsCleared, 1n);
  requireUnits('sentUnits', p.sentUnits, 0n);
  const settled = await db.query<{ units: string; entries: number }>(
    `SELECT coalesce(sum(amount_units), 0)::text AS units, count(*)::int AS entries FROM ledger_entries
      WHERE payout_id = $1 AND kind = 'payment_credit' AND open_channel_id = $2`,
    [p.payoutId, p.openChannelId],
  );
  const credited = BigInt(settled.rows[0]!.units);
  if (credited !== p.ownerUnitsCleared) {
    throw new Error(
      `payout ${p.payoutId} would clear ${p.ownerUnitsCleared} units but the owner credits it settles on channel ${p.openChannelId} ` +
        `sum to ${credited} (${settled.rows[0]!.entries} entries)`,
    );
  }
  const difference = p.ownerUnitsCleared - p.sentUnits;
  const { rows } = await db.query<EntryRow>(
    `WITH payout AS (
       INSERT INTO ledger_entries (open_channel_id, account, kind, payout_id, amount_units, currency)
       VALUES ($2, 'owner', 'payout', $1, $3, $5)
       ON CONFLICT (payout_id, kind) WHERE kind IN ('payout', 'exchange_difference') DO NOTHING
       RETURNING *
     ), difference AS (
       INSERT INTO ledger_entries (open_channel_id, account, kind, payout_id, amount_units, currency)
       SELECT $2, 'platform', 'exchange_difference', $1, $4, $5 FROM payout WHERE $4::numeric <> 0
       RETURNING *
     )
     SELECT ${ENTRY_COLUMNS} FROM (SELECT * FROM payout UNION ALL SELECT * FROM difference) e ORDER BY ${KIND_ORDER}`,
    [p.payoutId, p.openChannelId, (-p.ownerUnitsCleared).toString(), difference.toString(), p.currency ?? 'eth'],
  );
  if (rows.length > 0) return { recorded: true, entries: rows.map(toEntry) };
  const existing = (await entriesOfPayout(db, p.payoutId)).filter((e) => e.kind === 'payout' || e.kind === 'exchange_difference');
  return { recorded: false, entries: existing };
}

/** The newest entries first, of one channel or all; `before` (an entry id) pages back. */
export async function ledgerOf(
  db: Queryable,
  options: { openChannelId?: string | null; limit: number; before?: string | null },
): Promise<LedgerEntry[]> {
  const limit = Number.isFinite(options.limit) ? Math.max(1, Math.min(Math.trunc(options.limit), 1000)) : 100;
  const { rows } = await db.query<EntryRow>(
    `SELECT ${ENTRY_COLUMNS} FROM ledger_entries
      WHERE ($1::bigint IS NULL OR open_channel_id = $1) AND ($2::bigint IS NULL OR entry_id < $2)
      ORDER BY entry_id DESC
      LIMIT $3`,
    [options.openChannelId ?? null, options.before ?? null, limit],
  );
  return rows.map(toEntry);
}

export interface ChannelBalance {
  openChannelId: string;
  /** Unclaimed owner credits (a threshold claim would take them). */
  openUnits: bigint;
  openUsd: DecimalString;
  openEntries: number;
  /** Owner credits assigned to a payout (instant, or a claimed batch) that is not recorded as paid yet. */
  pendingUnits: bigint;
  /** Owner credits cleared by recorded payouts. */
  paidOutUnits: bigint;
  feeUnits: bigint;
  exchangeDifferenceUnits: bigint;
}

/** Per channel: what the owner is owed (open, pending), was paid, and what the platform kept. */
export async function balances(db: Queryable): Promise<ChannelBalance[]> {
  const { rows } = await db.query<Record<keyof ChannelBalance, string>>(
    `SELECT e.open_channel_id::text AS "openChannelId",
            coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'payment_credit' AND e.payout_id IS NULL), 0)::text AS "openUnits",
            trim_scale(coalesce(sum(e.usd_value) FILTER (WHERE e.kind = 'payment_credit' AND e.payout_id IS NULL), 0))::text AS "openUsd",
            count(*) FILTER (WHERE e.kind = 'payment_credit' AND e.payout_id IS NULL)::text AS "openEntries",
            coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'payment_credit' AND e.payout_id IS NOT NULL AND paid.payout_id IS NULL), 0)::text AS "pendingUnits",
            coalesce(-sum(e.amount_units) FILTER (WHERE e.kind = 'payout'), 0)::text AS "paidOutUnits",
            coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'platform_fee'), 0)::text AS "feeUnits",
            coalesce(sum(e.amount_units) FILTER (WHERE e.kind = 'exchange_difference'), 0)::text AS "exchangeDifferenceUnits"
       FROM ledger_entries e
       LEFT JOIN ledger_entries paid ON paid.kind = 'payout' AND paid.payout_id = e.payout_id AND e.kind = 'payment_credit'
      GROUP BY e.open_channel_id
      ORDER BY e.open_channel_id`,
  );
  return rows.map((r) => ({
    openChannelId: r.openChannelId,
    openUnits: BigInt(r.openUnits),
    openUsd: r.openUsd,
    openEntries: Number(r.openEntries),
    pendingUnits: BigInt(r.pendingUnits),
    paidOutUnits: BigInt(r.paidOutUnits),
    feeUnits: BigInt(r.feeUnits),
    exchangeDifferenceUnits: BigInt(r.exchangeDifferenceUnits),
  }));
}
