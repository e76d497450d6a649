-- Channel owners' configuration and buyers' orders. Telegram ids are bigint (negative, beyond 2^31);
-- money is NUMERIC, never float.

CREATE TABLE channels (
  open_channel_id      bigint PRIMARY KEY,          -- the public channel buyers find
  closed_channel_id    bigint NOT NULL UNIQUE,      -- the private channel access is sold to
  title                text NOT NULL,
  owner_wallet_address text NOT NULL,
  payout_currency      text NOT NULL,
  payout_network       text NOT NULL,
  payout_strategy      text NOT NULL CHECK (payout_strategy IN ('instant', 'threshold')),
  threshold_usd        numeric(20, 8),
  platform_fee_percent numeric(5, 2) NOT NULL DEFAULT 0 CHECK (platform_fee_percent >= 0 AND platform_fee_percent < 100),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CHECK (payout_strategy <> 'threshold' OR threshold_usd > 0)
);

CREATE TABLE plans (
  plan_id         text PRIMARY KEY,
  open_channel_id bigint NOT NULL REFERENCES channels (open_channel_id),
  title           text NOT NULL,
  price_usd       numeric(20, 2) NOT NULL CHECK (price_usd > 0),
  duration_days   integer NOT NULL CHECK (duration_days > 0),
  active          boolean NOT NULL DEFAULT true,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX plans_channel_idx ON plans (open_channel_id);

CREATE TABLE orders (
  order_id           text PRIMARY KEY,
  buyer_telegram_id  bigint NOT NULL,
  open_channel_id    bigint NOT NULL REFERENCES channels (open_channel_id),
  plan_id            text REFERENCES plans (plan_id),   -- null only for a legacy order whose price matched no plan
  price_usd          numeric(20, 2) NOT NULL,           -- the price when ordered; later plan edits do not change it
  source             text NOT NULL CHECK (source IN ('api', 'bot', 'legacy-ipn')),
  invoice_id         text UNIQUE,
  invoice_url        text,
  -- The one payment that was granted access for this order: a repeat deposit finds it taken.
  granted_payment_id text UNIQUE,
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_buyer_idx ON orders (buyer_telegram_id);
