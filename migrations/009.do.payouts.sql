-- Paying an owner: one row per payout, instant ('payment:<payment_id>') or a threshold batch
-- ('batch:<batch_id>'). Each step's result is written here before the next step starts, so a retry after
-- any crash resumes instead of repeating: the exchange is created once and stored, the host wallet's
-- transaction is signed and stored (chain_transactions, key 'payout:<payout_id>') before it is
-- broadcast, and a settled payout is never touched again. Amounts in base units (wei), NUMERIC.

CREATE TABLE payouts (
  payout_id            text PRIMARY KEY,
  kind                 text NOT NULL CHECK (kind IN ('instant', 'batch')),
  open_channel_id      bigint NOT NULL REFERENCES channels (open_channel_id),
  payment_id           text,                            -- instant: the payment whose share this is
  batch_id             text REFERENCES payout_batches (batch_id),
  cleared_units        numeric(78, 0) NOT NULL CHECK (cleared_units >= 0),  -- owner credits this payout settles
  amount_units         numeric(78, 0) NOT NULL CHECK (amount_units > 0),    -- what the host wallet sends
  owed_usd             numeric(20, 8),                  -- the USD value locked at payment time (credits' sum)
  -- The owner's payout target, frozen when the payout is planned: a later edit of the channel does not
  -- redirect money already under way.
  to_address           text NOT NULL,
  to_currency          text NOT NULL,
  to_network           text NOT NULL,
  direct               boolean NOT NULL,                -- owner paid in the host currency: no exchange
  exchange_id          text UNIQUE,
  payin_address        text,
  exchange_from_amount numeric(38, 18),
  exchange_to_amount   numeric(38, 18),
  exchange_created_at  timestamptz,
  exchange_status      text,
  owner_payout_hash    text,                            -- the exchange's payout to the owner (or our tx when direct)
  tx_key               text,                            -- chain_transactions.tx_key once signed
  tx_hash              text,
  status               text NOT NULL DEFAULT 'planned'
                       CHECK (status IN ('planned', 'exchange_created', 'sent', 'settled', 'review')),
  problem              text,                            -- why it waits for a person (status review)
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  settled_at           timestamptz,
  CHECK ((kind = 'instant') = (payment_id IS NOT NULL)),
  CHECK ((kind = 'batch') = (batch_id IS NOT NULL)),
  CHECK (direct OR status IN ('planned', 'review') OR exchange_id IS NOT NULL)
);
CREATE INDEX payouts_channel_idx ON payouts (open_channel_id, created_at);
CREATE INDEX payouts_open_idx ON payouts (status) WHERE status <> 'settled';
CREATE INDEX payouts_tx_hash_idx ON payouts (tx_hash);

-- A batch's job chain: the attempt names its pg-boss job (a deterministic id), bumped when an operator
-- resumes a parked batch so the resumed run gets a job of its own.
ALTER TABLE payout_batches ADD COLUMN attempt integer NOT NULL DEFAULT 0;
