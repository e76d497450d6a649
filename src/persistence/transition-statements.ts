import type { RidingWork } from './engine-contract.js';
import { EAGER_INSERTED_SQL, insertJobsSql, WAKE_WORKERS_SQL } from './effect-jobs.js';

// The statements that write a transition (persistence/apply-event.ts decides; these write). Named, so
// Postgres parses and plans each once per connection, not once per event.

/**
 * A caller's row that belongs to the transition (an IPN's delivery row): written by the same statement
 * as the payment and its journal, so an event without jobs is stored, applied and recorded in one
 * round trip, with no transaction of its own. `sql(first)` is an INSERT … SELECT … FROM written (one
 * row, columns payment_id and version, only when the transition is written) whose parameters are
 * numbered from $first, RETURNING id. Nothing is written with it when the event changes nothing or is
 * refused: the caller records those itself.
 */
export interface WrittenAlongside {
  /** Names the combined prepared statement: one name per `sql` text. */
  name: string;
  sql(first: number): string;
  values: unknown[];
  /**
   * A scalar SQL expression over the same parameters (numbered from the same $first), evaluated only
   * when the transition is not written: what the caller would otherwise look up in a round trip of its
   * own to record that outcome (an IPN: its stored delivery). Answered as alongside_seen.
   */
  seen?(first: number): string;
}

// Both statements write the payment row and its journal rows in one statement: the journal insert only
// happens if the row write did, so journal rows mean "our version won". They run only as composeWrite
// makes them (which also answers what a lost compare-and-set saw). $3 is the version after the last
// entry; the entries ($8) carry their own seq (a transition with an inline effect writes two).
const JOURNAL = `
  INSERT INTO payment_journal (payment_id, seq, event_type, event, source, from_state, to_state, effects)
  SELECT payment_id, j.seq, j.event_type, j.event, j.source, j.from_state, j.to_state, j.effects
    FROM written, jsonb_to_recordset($8::jsonb) AS j(seq int, event_type text, event jsonb, source text, from_state jsonb, to_state jsonb, effects jsonb)`;

// The compare-and-set; a statement that records rows of the caller's (RecordedWith) adds its gate to it.
const VERSION_CHECK = 'WHERE payment_id = $1 AND version = $13';

export const UPDATE_IF_VERSION = {
  name: 'payment-update-if-version',
  text: `
  WITH written AS (
    UPDATE payments
       SET snapshot = $2, version = $3, state = $4, state_value = $5, review_reason = $6,
           order_id = coalesce(order_id, $7), updated_at = now(),
           view = $9, step = $10, rank = $11, np_status = $12,
           state_entered_at = CASE WHEN $14 THEN now() ELSE state_entered_at END
     ${VERSION_CHECK}
    RETURNING payment_id, version)
  ${JOURNAL}`,
};

export const INSERT_IF_ABSENT = {
  name: 'payment-insert-if-absent',
  text: `
  WITH written AS (
    INSERT INTO payments (payment_id, snapshot, version, state, state_value, review_reason, order_id, view, step, rank, np_status)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $10, $11, $12)
    ON CONFLICT (payment_id) DO NOTHING
    RETURNING payment_id, version)
  ${JOURNAL}`,
};

/**
 * Rows of the caller's that the statement writing a transition records whatever its compare-and-set
 * decides: an effect's result and the fact its actor handed over (src/actors/runner.ts), so the fact, the
 * result and the transition are one statement, one round trip, no transaction of their own. `ctes(first)`
 * is one or more CTEs ("a AS (…), b AS (…)", parameters numbered from $first) written before the
 * payment's update, which runs only if `gate` (SQL over those CTEs) holds; the statement answers
 * whether it did (gate_open). Only with the update (an existing payment).
 */
export interface RecordedWith {
  /** Names the combined prepared statement: one name per text. */
  name: string;
  ctes(first: number): string;
  values: unknown[];
  gate: string;
}

/**
 * When the compare-and-set lost, the payment as this statement saw it committed (version, state,
 * snapshot as JSON), so the engine decides again on it instead of reading it in another round trip.
 * The statement's snapshot may predate the commit that beat it (a writer that committed while the
 * statement waited for its row lock, or for its primary key): then this is null or not newer than the
 * version tried, and the engine reads. Not evaluated at all when the write won (a one-time filter).
 */
const SEEN_WHEN_LOST = `(SELECT json_build_object('version', p.version, 'state', p.state, 'snapshot', p.snapshot)
       FROM payments p WHERE p.payment_id = $1 AND NOT EXISTS (SELECT FROM written)) AS seen`;

/**
 * The statement that writes a transition, with, as CTEs written only when it is (they read `written`), the
 * transition's jobs (`jobs`: their JSON at $first, woken as pg-boss wakes them; eager_ids: the ones
 * inserted claimed for this process, see effect-jobs.ts) and the caller's row (`alongside`: its
 * parameters numbered after). Answers journal_rows (0: the compare-and-set lost, nothing written),
 * alongside_id, alongside_seen (WrittenAlongside.seen) and `seen` (SEEN_WHEN_LOST); with `recorded` (its CTEs' parameters numbered after the
 * others), gate_open; with `riders` (TransitionScope.ride, parameters numbered last), rider_<i>: each
 * one's value. One named statement per combination.
 */
const composed = new Map<string, { name: string; text: string }>();
export function composeWrite(
  write: { name: string; text: string },
  parts: { jobs: boolean; alongside?: WrittenAlongside | undefined; recorded?: RecordedWith | undefined; riders?: readonly RidingWork[] },
  first: number,
) {
  const { jobs, alongside, recorded } = parts;
  const riders = parts.riders ?? [];
  const name = `${write.name}${jobs ? '+jobs' : ''}${alongside ? `+${alongside.name}` : ''}${recorded ? `+${recorded.name}` : ''}${riders.map((r) => `+${r.name}`).join('')}`;
  let statement = composed.get(name);
  if (!statement) {
    // Both write statements end with the journal insert: it becomes a CTE of its own.
    let head = write.text.slice(0, write.text.lastIndexOf(JOURNAL)).trimEnd();
    if (recorded) {
      if (!head.includes(VERSION_CHECK)) throw new Error(`composeWrite: ${write.name} has no compare-and-set to gate; rows are recorded only with an update`);
      const at = first + (jobs ? 1 : 0) + (alongside?.values.length ?? 0);
      head = head.replace('WITH written AS (', `WITH ${recorded.ctes(at)},\n  written AS (`).replace(VERSION_CHECK, `${VERSION_CHECK} AND (${recorded.gate})`);
    }
    const ctes = [`journal AS (${JOURNAL} RETURNING 1)`];
    if (jobs) ctes.push(`ins AS (${insertJobsSql(`$${first}`, 'written')})`, `woken AS (${WAKE_WORKERS_SQL})`);
    if (alongside) ctes.push(`alongside AS (${alongside.sql(first + (jobs ? 1 : 0))})`);
    const alongsideSeen = alongside?.seen ? `(SELECT (${alongside.seen(first + (jobs ? 1 : 0))}) WHERE NOT EXISTS (SELECT FROM written))` : 'NULL';
    // Riding expressions, parameters numbered after everything else's, evaluated once per row of
    // `written`: not at all when the compare-and-set lost.
    let at = first + (jobs ? 1 : 0) + (alongside?.values.length ?? 0) + (recorded?.values.length ?? 0);
    const ridden = riders.map((rider, i) => {
      const column = `, (SELECT ${rider.sql(at)} FROM written) AS rider_${i}`;
      at += rider.values.length;
      return column;
    });
    // `woken` is selected so that its pg_notify calls run (a CTE nobody reads is not evaluated).
    statement = {
      name,
      text: `${head},
  ${ctes.join(',\n  ')}
  SELECT (SELECT count(*) FROM journal)::int AS journal_rows, ${alongside ? '(SELECT id FROM alongside)::text' : 'NULL'} AS alongside_id, ${alongsideSeen} AS alongside_seen, ${SEEN_WHEN_LOST}${jobs ? `, (SELECT count(*) FROM woken)::int AS woken, (${EAGER_INSERTED_SQL}) AS eager_ids` : ''}${recorded ? `, (${recorded.gate}) AS gate_open` : ''}${ridden.join('')}`,
    };
    composed.set(name, statement);
  }
  return statement;
}
