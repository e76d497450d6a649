-- The threshold check inside a payment's transaction, without waiting (src/actors/payouts/accumulate.actor.ts).
--
-- batch_claim_ready (migration 017) waits for the channel's claim lock. Taken inside a payment's
-- transaction, that lock is held to its commit, and every payment of a busy channel queued behind the
-- one before it for a round trip and a commit. batch_claim_try does not wait: it answers NULL when the
-- lock is held (another payment of the channel is checking right now); the caller then checks after
-- its own commit, with batch_claim_ready, which waits there, holding nothing else. Either way the check
-- that takes the lock last sees every credit committed before (its sum runs after the lock is granted,
-- with a fresh snapshot: a VOLATILE PL/pgSQL function takes one per query; see migration 017), and its
-- own; so credits crossing the threshold together are claimed at once.
CREATE FUNCTION batch_claim_try(p_channel bigint, p_threshold numeric) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_open numeric;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtextextended('telepay:batch-claim:' || p_channel::text, 0)) THEN
    RETURN NULL;
  END IF;
  SELECT coalesce(sum(usd_value), 0) INTO v_open FROM ledger_entries
   WHERE open_channel_id = p_channel AND kind = 'payment_credit' AND payout_id IS NULL;
  RETURN v_open >= p_threshold;
END
$$;
