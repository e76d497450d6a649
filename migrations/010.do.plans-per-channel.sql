-- Plan ids are unique per channel, not globally: two channels may both sell a plan called "month".
-- plans are keyed (open_channel_id, plan_id) and orders reference their plan by the same pair, so an
-- order can only ever point at a plan of its own channel. Nothing is renamed or rewritten: existing
-- rows already carry both columns (an order's plan has always been one of its channel's plans).

-- An order whose plan belongs to another channel cannot be kept under the new key: stop with the
-- evidence rather than guess which of the two the order meant.
DO $$
DECLARE
  bad text;
BEGIN
  SELECT string_agg(o.order_id, ', ') INTO bad
    FROM (SELECT o.order_id FROM orders o JOIN plans p ON p.plan_id = o.plan_id
           WHERE p.open_channel_id <> o.open_channel_id LIMIT 20) o;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'orders reference a plan of another channel (%); fix their plan_id before migrating', bad;
  END IF;
END $$;

ALTER TABLE orders DROP CONSTRAINT orders_plan_id_fkey;
ALTER TABLE plans DROP CONSTRAINT plans_pkey;
ALTER TABLE plans ADD CONSTRAINT plans_pkey PRIMARY KEY (open_channel_id, plan_id);
-- The primary key now leads with the channel: the old per-channel index is redundant.
DROP INDEX plans_channel_idx;

-- MATCH SIMPLE (the default): a legacy order without a plan (plan_id NULL) references nothing.
ALTER TABLE orders ADD CONSTRAINT orders_plan_fkey FOREIGN KEY (open_channel_id, plan_id) REFERENCES plans (open_channel_id, plan_id);

-- The bot's "one open order per buyer and plan" looks up a buyer's recent orders of one plan.
CREATE INDEX orders_buyer_plan_idx ON orders (buyer_telegram_id, open_channel_id, plan_id, created_at DESC);
DROP INDEX orders_buyer_idx;
