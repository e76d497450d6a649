-- The threshold claim check in one round trip (src/payouts/payout-batches.repo.ts, lockAndCheckThreshold).
--
-- A payment's owner credit and the claim after it share one transaction. Claims of one channel take
-- turns on a transaction-level advisory lock (key 'telepay:batch-claim:<open_channel_id>'), and the check
-- "are the channel's open credits worth its threshold?" must read with a snapshot taken AFTER that lock
-- was granted: then two payments crossing the threshold together are claimed by whichever commits
-- second, because its sum sees the first's committed credit. That used to be two statements (the lock,
-- then the sum: a new statement, so a new READ COMMITTED snapshot), i.e. one more client round trip
-- while holding the channel's lock, which every other payment of the channel queues behind.
--
-- One plain SQL statement cannot do both: its snapshot is taken when it starts, before a lock acquired
-- inside it, so its sum would miss a credit committed while it waited. A VOLATILE PL/pgSQL function can:
-- under READ COMMITTED it takes a fresh snapshot for each query it runs ("Function Volatility
-- Categories" in the PostgreSQL docs), so the sum below runs after the PERFORM returned with the lock.
-- Do not make it STABLE or IMMUTABLE: those run every query on the calling statement's snapshot.
--
-- The lock is the same one every claimer takes (the periodic sweep claims through this function too);
-- it is held until the caller's transaction ends. Outside a transaction it is released at once.
CREATE FUNCTION batch_claim_ready(p_channel bigint, p_threshold numeric) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_open numeric;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended('telepay:batch-claim:' || p_channel::text, 0));
  -- A new snapshot (this is a new query of a volatile function): every credit committed before the lock
  -- was granted is counted, and this transaction's own.
  SELECT coalesce(sum(usd_value), 0) INTO v_open FROM ledger_entries
   WHERE open_channel_id = p_channel AND kind = 'payment_credit' AND payout_id IS NULL;
  RETURN v_open >= p_threshold;
END
$$;
