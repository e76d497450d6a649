-- The channel owner's tools: per-channel texts of the bot's messages, and manual access changes.

-- The owner's wording of some bot messages (src/channels/owner-texts.ts: known keys, lengths,
-- placeholders). NULL or an absent key means the built-in default; the bot sends them as plain text.
ALTER TABLE channels ADD COLUMN texts jsonb;
ALTER TABLE channels ADD CONSTRAINT channels_texts_object CHECK (texts IS NULL OR jsonb_typeof(texts) = 'object');

-- Every access change an admin made by hand (grant, extend, revoke): who, why, when, and the expiry
-- before and after, written in the same transaction as the change, under the subscription's row lock.
-- Append-only: a trigger refuses updates, deletes and truncation.
CREATE TABLE subscription_adjustments (
  adjustment_id     bigserial PRIMARY KEY,
  subscription_id   bigint NOT NULL REFERENCES subscriptions (subscription_id),
  open_channel_id   bigint NOT NULL REFERENCES channels (open_channel_id),
  buyer_telegram_id bigint NOT NULL,
  action            text NOT NULL CHECK (action IN ('grant', 'extend', 'revoke')),
  duration_ms       bigint CHECK (duration_ms > 0),   -- grant / extend: the duration given
  expires_before    timestamptz,                      -- null: the buyer had no subscription yet
  expires_after     timestamptz NOT NULL,
  adjusted_by       text NOT NULL CHECK (length(adjusted_by) BETWEEN 1 AND 64),
  reason            text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  created_at        timestamptz NOT NULL DEFAULT now(),
  CHECK ((action = 'revoke') = (duration_ms IS NULL))
);
CREATE INDEX subscription_adjustments_subscription_idx ON subscription_adjustments (subscription_id, adjustment_id);
CREATE INDEX subscription_adjustments_channel_idx ON subscription_adjustments (open_channel_id, created_at);

CREATE FUNCTION subscription_adjustments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'subscription_adjustments is append-only: % refused', TG_OP USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TRIGGER subscription_adjustments_append_only BEFORE UPDATE OR DELETE ON subscription_adjustments
  FOR EACH ROW EXECUTE FUNCTION subscription_adjustments_append_only();
CREATE TRIGGER subscription_adjustments_no_truncate BEFORE TRUNCATE ON subscription_adjustments
  FOR EACH STATEMENT EXECUTE FUNCTION subscription_adjustments_append_only();

-- The owner's report sums a channel's ledger entries by time.
CREATE INDEX ledger_entries_channel_created_idx ON ledger_entries (open_channel_id, created_at);
-- The owner's subscriber list (the unique key leads with the buyer).
CREATE INDEX subscriptions_channel_idx ON subscriptions (open_channel_id, expires_at DESC);
