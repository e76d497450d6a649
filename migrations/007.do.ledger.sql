-- The ledger: the single source of truth for who is owed what. Append-only: an entry is never deleted and
-- its amount never changes; the one update allowed is stamping payout_id, once, on an owner credit (the
-- claim that says which payout settles it). Amounts are signed base units of the host currency (wei).

CREATE TABLE ledger_entries (
  entry_id        bigserial PRIMARY KEY,
  open_channel_id bigint NOT NULL REFERENCES channels (open_channel_id),
  account         text NOT NULL CHECK (account IN ('owner', 'platform')),
  kind            text NOT NULL CHECK (kind IN ('payment_credit', 'platform_fee', 'payout', 'exchange_difference')),
  payment_id      text,                     -- payment_credit / platform_fee
  -- The payout that settles an owner credit (set at creation for instant, at claim for a batch:
  -- 'batch:<batch_id>'); set on payout / exchange_difference entries.
  payout_id       text,
  amount_units    numeric(78, 0) NOT NULL,  -- signed base units: credits > 0, payouts < 0
  currency        text NOT NULL DEFAULT 'eth',
  usd_value       numeric(20, 8),           -- USD value locked at payment time (NowPayments' rate)
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- Which account each kind books to, and what each kind must carry: a bug writing a fee to the owner or
  -- a payout without its id fails here instead of skewing the books.
  CHECK ((kind IN ('payment_credit', 'payout')) = (account = 'owner')),
  CHECK ((kind IN ('payment_credit', 'platform_fee')) = (payment_id IS NOT NULL)),
  CHECK (kind NOT IN ('payout', 'exchange_difference') OR payout_id IS NOT NULL),
  CHECK (kind <> 'platform_fee' OR payout_id IS NULL),
  -- A share can round to 0 wei (a tiny outcome at a high fee); it is still booked so every payment has its pair.
  CHECK (kind NOT IN ('payment_credit', 'platform_fee') OR amount_units >= 0),
  CHECK (kind <> 'payout' OR amount_units < 0),
  CHECK (kind <> 'exchange_difference' OR amount_units <> 0)
);
-- One credit and one fee per payment, ever: replays and concurrent credits meet here.
CREATE UNIQUE INDEX ledger_entries_payment_kind_key ON ledger_entries (payment_id, kind) WHERE payment_id IS NOT NULL;
-- One payout entry and at most one exchange difference per payout.
CREATE UNIQUE INDEX ledger_entries_payout_kind_key ON ledger_entries (payout_id, kind) WHERE kind IN ('payout', 'exchange_difference');
-- Open (unclaimed) owner credits of a channel: what a threshold claim sums.
CREATE INDEX ledger_entries_open_credits_idx ON ledger_entries (open_channel_id) WHERE kind = 'payment_credit' AND payout_id IS NULL;
-- The credits a payout settles (claimed batches, books).
CREATE INDEX ledger_entries_credit_payout_idx ON ledger_entries (payout_id) WHERE kind = 'payment_credit' AND payout_id IS NOT NULL;
CREATE INDEX ledger_entries_channel_idx ON ledger_entries (open_channel_id, entry_id);

CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'ledger_entries is append-only: % refused', TG_OP USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.kind = 'payment_credit' AND OLD.payout_id IS NULL AND NEW.payout_id IS NOT NULL
     AND (NEW.entry_id, NEW.open_channel_id, NEW.account, NEW.kind, NEW.payment_id, NEW.amount_units, NEW.currency, NEW.usd_value, NEW.created_at)
         IS NOT DISTINCT FROM
         (OLD.entry_id, OLD.open_channel_id, OLD.account, OLD.kind, OLD.payment_id, OLD.amount_units, OLD.currency, OLD.usd_value, OLD.created_at)
  THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'ledger_entries is append-only: entry % may only have payout_id set once on an owner credit', OLD.entry_id
    USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- A threshold payout: the owner credits claimed together (their payout_id is 'batch:<batch_id>').
-- Created in the same statement that claims the credits, so a claimed credit is never outside a batch.
CREATE TABLE payout_batches (
  batch_id        text PRIMARY KEY,
  open_channel_id bigint NOT NULL REFERENCES channels (open_channel_id),
  total_units     numeric(78, 0) NOT NULL CHECK (total_units >= 0),
  usd_value       numeric(20, 8) NOT NULL,
  entry_count     integer NOT NULL CHECK (entry_count > 0),
  status          text NOT NULL DEFAULT 'claimed' CHECK (status IN ('claimed', 'paying', 'settled', 'review')),
  review_reason   text,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  settled_at      timestamptz
);
CREATE INDEX payout_batches_channel_idx ON payout_batches (open_channel_id, created_at);
CREATE INDEX payout_batches_status_idx ON payout_batches (status, created_at) WHERE status <> 'settled';
