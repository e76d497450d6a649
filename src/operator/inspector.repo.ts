import type pg from 'pg';

// Read-only queries behind the inspector and statechart pages: a payment's journal with each event's
// payload, in the order applyEvent wrote it (seq), from a given point on.

export interface JournalEntry {
  seq: number;
  event_type: string;
  /** The event exactly as applyEvent was given it: what a replay feeds the machine. */
  event: { type: string } & Record<string, unknown>;
  source: string;
  from_state: unknown;
  to_state: unknown;
  effects: unknown;
  at: Date;
}

export interface PaymentHead {
  payment_id: string;
  order_id: string | null;
  state: string;
  state_value: unknown;
  review_reason: string | null;
  version: number;
  state_entered_at: Date;
  updated_at: Date;
}

/** At most this many rows per read; a longer journal is read in pages. */
export const JOURNAL_PAGE = 500;

/** Rows after `afterSeq` (and up to `upToSeq` when given), oldest first. */
export async function journalAfter(pool: pg.Pool, paymentId: string, afterSeq: number, options: { limit?: number; upToSeq?: number } = {}): Promise<JournalEntry[]> {
  const { rows } = await pool.query<JournalEntry>({
    name: 'inspector-journal-after',
    text: `SELECT seq, event_type, event, source, from_state, to_state, effects, at
             FROM payment_journal WHERE payment_id = $1 AND seq > $2 AND ($4::int IS NULL OR seq <= $4) ORDER BY seq LIMIT $3`,
    values: [paymentId, afterSeq, options.limit ?? JOURNAL_PAGE, options.upToSeq ?? null],
  });
  return rows;
}

/** The journal up to a version (the payment as read), oldest first. */
export async function journalUpTo(pool: pg.Pool, paymentId: string, upToSeq: number): Promise<JournalEntry[]> {
  const all: JournalEntry[] = [];
  for (let after = 0; ; ) {
    const page = await journalAfter(pool, paymentId, after, { upToSeq });
    all.push(...page);
    if (page.length < JOURNAL_PAGE) return all;
    after = page.at(-1)!.seq;
  }
}

export async function paymentHead(pool: pg.Pool, paymentId: string): Promise<PaymentHead | null> {
  const { rows } = await pool.query<PaymentHead>({
    name: 'inspector-payment-head',
    text: `SELECT payment_id, order_id, state, state_value, review_reason, version, state_entered_at, updated_at
             FROM payments WHERE payment_id = $1`,
    values: [paymentId],
  });
  return rows[0] ?? null;
}
