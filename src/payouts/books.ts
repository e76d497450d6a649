import type { Queryable } from '../persistence/transaction.js';

// Proof that every wei the host wallet received is accounted for, to the base unit:
//
//   Σ owner payouts (sent) + Σ platform fees + Σ exchange differences + Σ open owner balances
//     = Σ outcomes of the credited payments
//
// where an owner payout's sent units are its cleared share minus its exchange difference (the ledger
// books −cleared on the owner and cleared − sent on the platform), and an open owner balance is a
// credit no recorded payout has cleared yet, claimed or not. The outcome is read from what NowPayments
// told us (the read model: payments.view → np.outcomeAmount, 18 decimals), not from the ledger, so the
// check is independent of the code that wrote the entries. Each side is summed in one statement (one
// snapshot); run checkBooks inside a REPEATABLE READ transaction for one view across all its queries.
//
// `balanced` is true only when the equation holds AND there is no problem: a paid payment that was
// never credited leaves the sums equal but money unaccounted for.

const OUTCOME_DECIMALS = 18;
const PLAIN_DECIMAL = '^[0-9]+([.][0-9]+)?$';
const PAID_STATES = ['paid', 'accumulated', 'split'];

export interface BookProblem {
  paymentId: string | null;
  payoutId: string | null;
  problem: string;
}

export interface Books {
  balanced: boolean;
  /** Decimal strings of base units (wei). */
  totals: {
    outcomes: string;
    ownerPayouts: string;
    fees: string;
    exchangeDifferences: string;
    openBalances: string;
    /** Owner credits cleared by recorded payouts (= ownerPayouts + exchangeDifferences). */
    ownerPayoutsCleared: string;
  };
  problems: BookProblem[];
}

// The payment's outcome in base units, or null when it is missing, not a plain decimal, or finer than
// the unit. $1 is PLAIN_DECIMAL; the CASE keeps the cast from ever seeing garbage.
const OUTCOME_UNITS = `CASE WHEN p.view->'np'->>'outcomeAmount' ~ $1
  THEN (p.view->'np'->>'outcomeAmount')::numeric * 1e${OUTCOME_DECIMALS} END`;

export async function checkBooks(db: Queryable): Promise<Books> {
  const totals = await sums(db);
  const problems = [...(await paymentProblems(db)), ...(await uncreditedPayments(db)), ...(await payoutProblems(db))];
  const { outcomes, cleared, fees, exchangeDifferences, openBalances } = totals;
  const sent = cleared - exchangeDifferences;
  const equationHolds = sent + fees + exchangeDifferences + openBalances === outcomes;
  return {
    balanced: equationHolds && problems.length === 0,
    totals: {
      outcomes: outcomes.toString(),
      ownerPayouts: sent.toString(),
      fees: fees.toString(),
      exchangeDifferences: exchangeDifferences.toString(),
      openBalances: openBalances.toString(),
      ownerPayoutsCleared: cleared.toString(),
    },
    problems,
  };
}

async function sums(db: Queryable) {
  const { rows } = await db.query<Record<'outcomes' | 'cleared' | 'fees' | 'exchangeDifferences' | 'openBalances', string>>(
    `WITH outcome AS (
       SELECT ${OUTCOME_UNITS} AS units
         FROM (SELECT DISTINCT payment_id FROM ledger_entries WHERE payment_id IS NOT NULL) c
         LEFT JOIN payments p USING (payment_id)
     )
     SELECT (SELECT coalesce(sum(units), 0) FROM outcome WHERE units = trunc(units))::numeric(78, 0)::text AS outcomes,
            coalesce(-sum(amount_units) FILTER (WHERE kind = 'payout'), 0)::text AS cleared,
            coalesce(sum(amount_units) FILTER (WHERE kind = 'platform_fee'), 0)::text AS fees,
            coalesce(sum(amount_units) FILTER (WHERE kind = 'exchange_difference'), 0)::text AS "exchangeDifferences",
            coalesce(sum(amount_units) FILTER (WHERE kind = 'payment_credit' AND NOT EXISTS (
              SELECT 1 FROM ledger_entries paid WHERE paid.kind = 'payout' AND paid.payout_id = e.payout_id)), 0)::text AS "openBalances"
       FROM ledger_entries e`,
    [PLAIN_DECIMAL],
  );
  const row = rows[0]!;
  return {
    outcomes: BigInt(row.outcomes),
    cleared: BigInt(row.cleared),
    fees: BigInt(row.fees),
    exchangeDifferences: BigInt(row.exchangeDifferences),
    openBalances: BigInt(row.openBalances),
  };
}

/** Credited payments whose credit + fee is not exactly their outcome, or whose pair is incomplete. */
async function paymentProblems(db: Queryable): Promise<BookProblem[]> {
  const { rows } = await db.query<{
    paymentId: string; known: boolean; credits: number; fees: number; credit: string; fee: string; outcomeText: string | null; outcome: string | null;
  }>(
    `WITH pair AS (
       SELECT payment_id, count(*) FILTER (WHERE kind = 'payment_credit')::int AS credits, count(*) FILTER (WHERE kind = 'platform_fee')::int AS fees,
              coalesce(sum(amount_units) FILTER (WHERE kind = 'payment_credit'), 0) AS credit,
              coalesce(sum(amount_units) FILTER (WHERE kind = 'platform_fee'), 0) AS fee
         FROM ledger_entries WHERE payment_id IS NOT NULL GROUP BY payment_id
     ), checked AS (
       SELECT pair.*, p.payment_id IS NOT NULL AS known, p.view->'np'->>'outcomeAmount' AS outcome_text, ${OUTCOME_UNITS} AS units
         FROM pair LEFT JOIN payments p USING (payment_id)
     )
     SELECT payment_id AS "paymentId", known, credits, fees, credit::text, fee::text, outcome_text AS "outcomeText",
            CASE WHEN units = trunc(units) THEN trunc(units)::text END AS outcome
       FROM checked
      WHERE NOT known OR credits <> 1 OR fees <> 1 OR units IS NULL OR units <> trunc(units) OR credit + fee <> units
      ORDER BY payment_id`,
    [PLAIN_DECIMAL],
  );
  return rows.map((r) => {
    const problem = !r.known
      ? 'ledger credits a payment that has no payments row'
      : r.credits !== 1 || r.fees !== 1
        ? `incomplete credit: ${r.credits} owner credit(s) and ${r.fees} platform fee(s)`
        : r.outcome === null
          ? r.outcomeText === null
            ? 'credited, but NowPayments reported no outcomeAmount'
            : `outcomeAmount "${r.outcomeText}" is not an amount of ${OUTCOME_DECIMALS} decimals`
          : `credit ${r.credit} + fee ${r.fee} = ${BigInt(r.credit) + BigInt(r.fee)} units, but the outcome is ${r.outcome}`;
    return { paymentId: r.paymentId, payoutId: null, problem };
  });
}

/** Payments the engine considers paid out or accumulated that the ledger never credited. */
async function uncreditedPayments(db: Queryable): Promise<BookProblem[]> {
  const { rows } = await db.query<{ paymentId: string; state: string; outcome: string | null }>(
    `SELECT p.payment_id AS "paymentId", p.state, p.view->'np'->>'outcomeAmount' AS outcome
       FROM payments p
      WHERE p.state = ANY ($1::text[])
        AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.payment_id = p.payment_id AND e.kind = 'payment_credit')
      ORDER BY p.payment_id`,
    [PAID_STATES],
  );
  return rows.map((r) => ({
    paymentId: r.paymentId,
    payoutId: null,
    problem: `state ${r.state} with outcome ${r.outcome ?? '(none reported)'} but no ledger credit`,
  }));
}

/** Batches whose credits do not add up to them, claims outside any batch, payouts that clear another sum. */
async function payoutProblems(db: Queryable): Promise<BookProblem[]> {
  const { rows } = await db.query<{ payoutId: string; problem: string }>(
    `SELECT 'batch:' || b.batch_id AS "payoutId",
            format('batch %s says %s units in %s entries, its claimed credits sum to %s units in %s entries',
                   b.batch_id, b.total_units, b.entry_count, coalesce(sum(e.amount_units), 0), count(e.entry_id)) AS problem
       FROM payout_batches b
       LEFT JOIN ledger_entries e ON e.payout_id = 'batch:' || b.batch_id AND e.kind = 'payment_credit'
      GROUP BY b.batch_id
     HAVING coalesce(sum(e.amount_units), 0) <> b.total_units OR count(e.entry_id) <> b.entry_count
     UNION ALL
     SELECT e.payout_id, format('%s owner credit(s) of %s units claimed by a batch that does not exist', count(*), sum(e.amount_units))
       FROM ledger_entries e
      WHERE e.kind = 'payment_credit' AND e.payout_id LIKE 'batch:%'
        AND NOT EXISTS (SELECT 1 FROM payout_batches b WHERE b.batch_id = substr(e.payout_id, 7))
      GROUP BY e.payout_id
     UNION ALL
     SELECT p.payout_id, format('payout cleared %s units, the owner credits it settles sum to %s', -p.amount_units, coalesce(c.units, 0))
       FROM ledger_entries p
       LEFT JOIN LATERAL (SELECT sum(amount_units) AS units FROM ledger_entries c
                           WHERE c.payout_id = p.payout_id AND c.kind = 'payment_credit') c ON true
      WHERE p.kind = 'payout' AND -p.amount_units <> coalesce(c.units, 0)
      ORDER BY 1`,
  );
  return rows.map((r) => ({ paymentId: null, payoutId: r.payoutId, problem: r.problem }));
}
