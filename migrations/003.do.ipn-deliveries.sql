-- Every verified IPN exactly as it arrived, stored before anything acts on it: an IPN we hold can always
-- be re-applied (reconciliation, an operator) even if applying it failed or its body could not be parsed.

CREATE TABLE ipn_deliveries (
  id              bigserial PRIMARY KEY,
  body_hash       text NOT NULL UNIQUE,        -- sha256 (hex) of the raw request bytes: a re-sent identical body is one row
  raw_body        text NOT NULL,               -- the bytes as received; ids above 2^53 survive only here, not in jsonb
  body            jsonb NOT NULL,              -- the same, queryable
  payment_id      text,                        -- null when the body has no usable payment_id (then it is parked)
  payment_status  text,
  received_at     timestamptz NOT NULL DEFAULT now(),
  -- received: stored, not yet applied (in flight, or the process died); failed: applying threw; both are
  -- re-applied by reconciliation. applied: changed the payment; duplicate: the payment already had it;
  -- parked: verified but not understood (see problem), resumed by an operator with replayDelivery().
  status          text NOT NULL DEFAULT 'received'
                  CHECK (status IN ('received', 'applied', 'duplicate', 'parked', 'failed')),
  problem         text,
  event_type      text,
  applied_version integer,
  attempts        integer NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ipn_deliveries_payment_idx ON ipn_deliveries (payment_id, received_at);
-- Reconciliation looks for deliveries that were stored but never applied.
CREATE INDEX ipn_deliveries_unapplied_idx ON ipn_deliveries (received_at) WHERE status IN ('received', 'failed');
CREATE INDEX ipn_deliveries_parked_idx ON ipn_deliveries (received_at) WHERE status = 'parked';

-- When reconciliation last asked NowPayments about a payment or an invoice, so a payment that stays
-- "waiting" for days is asked once per RECONCILE_AFTER, not on every run.
CREATE TABLE reconcile_checks (
  subject    text PRIMARY KEY,                 -- 'payment:<payment_id>' or 'invoice:<invoice_id>'
  checked_at timestamptz NOT NULL DEFAULT now(),
  outcome    text NOT NULL,                    -- what the last check did (applied, duplicate, not_found, error, ...)
  problem    text
);
