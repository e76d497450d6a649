-- The threshold claim check in one round trip (src/payouts/payout-batches.repo.ts: lockAndCheckThreshold,
-- tryLockAndCheckThreshold).
--
-- Claims of one channel take turns on a transaction-level advisory lock (key
-- 'telepay:batch-claim:<open_channel_id>'), and the check "are the channel's open credits worth its
-- threshold?" must read with a snapshot taken AFTER that lock was granted: then two payments crossing the
-- threshold together are claimed by whichever checks second, because its sum sees the first's committed
-- credit. As two statements (the lock, then the sum: a new statement, so a new READ COMMITTED snapshot)
-- that is one more client round trip while holding the channel's lock.
--
-- One plain SQL statement cannot do both: its snapshot is taken when it starts, before a lock acquired
-- inside it, so its sum would miss a credit committed while it waited. A VOLATILE PL/pgSQL function can:
-- under READ COMMITTED it takes a fresh snapshot for each query it runs ("Function Volatility
-- Categories" in the PostgreSQL docs), so the sum below runs after the lock was granted.
-- Do not make it STABLE or IMMUTABLE: those run every query on the calling statement's snapshot.
--
-- p_wait false: the lock is only tried, and NULL answers "held by another transaction, nothing
-- checked" (a payment's own transaction must not wait behind another payment's commit; it checks after
-- its commit instead, waiting there). The lock is held until the caller's transaction ends; outside a
-- transaction it is released at the end of the statement.
CREATE FUNCTION batch_claim_check(p_channel bigint, p_threshold numeric, p_wait boolean) RETURNS boolean
  LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  v_key bigint := hashtextextended('telepay:batch-claim:' || p_channel::text, 0);
  v_open numeric;
BEGIN
  IF p_wait THEN
    PERFORM pg_advisory_xact_lock(v_key);
  ELSIF NOT pg_try_advisory_xact_lock(v_key) THEN
    RETURN NULL;
  END IF;
  -- A new snapshot (this is a new query of a volatile function): every credit committed before the lock
  -- was granted is counted, and this transaction's own.
  SELECT coalesce(sum(usd_value), 0) INTO v_open FROM ledger_entries
   WHERE open_channel_id = p_channel AND kind = 'payment_credit' AND payout_id IS NULL;
  RETURN v_open >= p_threshold;
END
$$;
