-- The threshold check without summing every open credit of the channel.
--
-- batch_claim_check (migration 017) summed all of a channel's open owner credits on every payment: a
-- channel whose threshold is far above its price (a $1,000 threshold, $1 sales) paid a sum over up to a
-- thousand rows per payment, and more as credits pile up. Now the check keeps a running total per
-- channel, the FOLD: "the open credits written by transactions older than `horizon` are worth
-- `folded_usd`", and sums only the credits at or above the horizon: the few written since the last fold.
--
-- Why a transaction-id horizon and not an entry id: entry ids are handed out at insert, but credits
-- commit in any order, so "every credit below entry id N is counted" can be false for a credit that
-- commits later with a smaller id. A transaction id below the snapshot's xmin
-- (pg_snapshot_xmin(pg_current_snapshot())) belongs to a transaction that has ended: its credit is
-- committed and visible, or rolled back and never will be. So a fold up to xmin is final, and every
-- credit that can still appear (in-flight, or this transaction's own) has a transaction id at or above
-- it: it is counted among the recent ones. written_xid is the top-level transaction of the insert
-- (pg_current_xact_id(), set by default); entries written before this migration have none and are
-- older than any horizon.
--
-- Who may change the fold: only a holder of the channel's claim lock (the check below; the claim
-- statement, src/payouts/payout-batches.repo.ts, which every caller runs after the check in the same
-- transaction). The claim resets it exactly from the rows it locked. What the fold decides is only WHEN
-- a claim is tried: the claim statement sums and re-checks the rows it locks, so a wrong fold could
-- delay a batch or try a claim for nothing, never pay a credit twice or lose one; and the periodic
-- sweep asks with p_exact, which sums everything and rewrites the fold.
--
-- xmin is the cluster's oldest running transaction: while any transaction runs long (a report, a
-- stuck session) the fold waits behind it and the recent range grows; the answer stays exact, the sum
-- is longer until that transaction ends.
--
-- The fold is written once FOLD_AFTER settled credits have piled up since the last one (a row update
-- per that many payments, not per payment); until then those credits are summed with the recent ones.

ALTER TABLE ledger_entries ADD COLUMN written_xid xid8;
ALTER TABLE ledger_entries ALTER COLUMN written_xid SET DEFAULT pg_current_xact_id();

-- Open credits by channel and transaction: the check reads only the range at or above the horizon; the
-- sweep, the claim and the owner's reports read the whole channel (usd_value included, so an index-only
-- scan where the pages are all-visible). Replaces the index on open_channel_id alone.
CREATE INDEX ledger_entries_open_credits_xid_idx ON ledger_entries (open_channel_id, written_xid) INCLUDE (usd_value)
  WHERE kind = 'payment_credit' AND payout_id IS NULL;
DROP INDEX ledger_entries_open_credits_idx;

CREATE TABLE ledger_open_credit_folds (
  open_channel_id bigint PRIMARY KEY REFERENCES channels (open_channel_id),
  -- The open credits written by transactions below `horizon` (or before written_xid existed).
  folded_usd numeric(30,8) NOT NULL CHECK (folded_usd >= 0),
  horizon xid8 NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- written_xid is part of the entry: frozen like every column but payout_id.
CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.kind = 'payment_credit' AND OLD.payout_id IS NULL AND NEW.payout_id IS NOT NULL
     AND (NEW.entry_id, NEW.open_channel_id, NEW.account, NEW.kind, NEW.payment_id, NEW.amount_units, NEW.currency, NEW.usd_value, NEW.created_at, NEW.written_xid)
         IS NOT DISTINCT FROM
         (OLD.entry_id, OLD.open_channel_id, OLD.account, OLD.kind, OLD.payment_id, OLD.amount_units, OLD.currency, OLD.usd_value, OLD.created_at, OLD.written_xid)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'ledger_entries is append-only: entry % may only have payout_id set once on an owner credit', OLD.entry_id
    USING ERRCODE = 'integrity_constraint_violation';
END
$$;

DROP FUNCTION batch_claim_check(bigint, numeric, boolean);

-- As in migration 017 (the lock, then every query on a snapshot taken after it: VOLATILE, never STABLE),
-- with the fold. p_exact: sum every open credit and rewrite the fold (the sweep's check).
CREATE FUNCTION batch_claim_check(p_channel bigint, p_threshold numeric, p_wait boolean, p_exact boolean DEFAULT false) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  fold_after CONSTANT int := 32;
  v_key bigint := hashtextextended('telepay:batch-claim:' || p_channel::text, 0);
  v_folded numeric;
  v_horizon xid8;
  v_xmin xid8;
  v_open numeric;
  v_settled numeric;
  v_settled_count int;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(v_key);
  ELSIF NOT pg_try_advisory_xact_lock(v_key) THEN
    RETURN NULL;
  END IF;
  IF NOT p_exact THEN
    SELECT folded_usd, horizon INTO v_folded, v_horizon FROM ledger_open_credit_folds WHERE open_channel_id = p_channel;
  END IF;
  -- Every transaction below v_xmin has ended (taken after the lock, before the sums below, whose later
  -- snapshots see every one of them that committed).
  v_xmin := pg_snapshot_xmin(pg_current_snapshot());
  IF v_horizon IS NULL THEN
    -- No fold yet (or asked for an exact answer): every open credit, and the fold from here on.
    SELECT coalesce(sum(usd_value), 0), coalesce(sum(usd_value) FILTER (WHERE written_xid IS NULL OR written_xid < v_xmin), 0)
      INTO v_open, v_settled
      FROM ledger_entries
     WHERE open_channel_id = p_channel AND kind = 'payment_credit' AND payout_id IS NULL;
    INSERT INTO ledger_open_credit_folds (open_channel_id, folded_usd, horizon) VALUES (p_channel, v_settled, v_xmin)
      ON CONFLICT (open_channel_id) DO UPDATE SET folded_usd = EXCLUDED.folded_usd, horizon = EXCLUDED.horizon, updated_at = now();
    RETURN v_open >= p_threshold;
  END IF;
  -- The credits at or above the horizon that are visible now, and which of them are settled.
  SELECT coalesce(sum(usd_value), 0), coalesce(sum(usd_value) FILTER (WHERE written_xid < v_xmin), 0), count(*) FILTER (WHERE written_xid < v_xmin)
    INTO v_open, v_settled, v_settled_count
    FROM ledger_entries
   WHERE open_channel_id = p_channel AND written_xid >= v_horizon AND kind = 'payment_credit' AND payout_id IS NULL;
  IF v_settled_count >= fold_after AND v_xmin > v_horizon THEN
    UPDATE ledger_open_credit_folds SET folded_usd = folded_usd + v_settled, horizon = v_xmin, updated_at = now()
     WHERE open_channel_id = p_channel;
  END IF;
  RETURN v_folded + v_open >= p_threshold;
END
$$;
