-- Telegram access: one invite per paid order, and subscriptions that paid orders start or extend.

-- One row per order. The link is stored the moment Telegram returns it and before anyone is told
-- about it, so a retried job sends the same link instead of creating another one.
CREATE TABLE invites (
  order_id             text PRIMARY KEY REFERENCES orders (order_id),
  payment_id           text NOT NULL,                  -- the payment whose invite effect created the row
  chat_id              bigint NOT NULL,                -- the closed channel
  buyer_telegram_id    bigint NOT NULL,
  invite_link          text UNIQUE,                    -- null until Telegram answered createChatInviteLink
  expire_date          timestamptz,
  create_attempts      integer NOT NULL DEFAULT 0,     -- > 1 when a timeout may have left an unseen link behind
  created_at           timestamptz,                    -- when the current link was created
  replaced_links       integer NOT NULL DEFAULT 0,     -- links revoked and replaced because they expired or were revoked unsent
  send_attempted_at    timestamptz,                    -- set before sendMessage; without sent_at it means "unknown whether it went out"
  sent_at              timestamptz,
  message_id           bigint,
  undeliverable_reason text,                           -- why the DM could not be delivered (the success page still shows the link)
  revoked_at           timestamptz,
  revoke_reason        text,
  joined_by            bigint,
  joined_at            timestamptz,
  -- A job that holds the lease is working on this invite; a retry of the same job takes it over.
  lease_owner          text,
  lease_until          timestamptz,
  inserted_at          timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invites_payment_idx ON invites (payment_id);

-- Buyer x channel. Renewals extend expires_at from the current expiry (or from now once it lapsed).
CREATE TABLE subscriptions (
  subscription_id     bigserial PRIMARY KEY,
  buyer_telegram_id   bigint NOT NULL,
  open_channel_id     bigint NOT NULL REFERENCES channels (open_channel_id),
  expires_at          timestamptz NOT NULL,
  -- Set when the member was removed at expiry; cleared by a renewal.
  removed_at          timestamptz,
  -- Set while a removal is under way (banned, not yet unbanned); a renewal that wins the race undoes it.
  removal_started_at  timestamptz,
  removal_dry_run_at  timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  UNIQUE (buyer_telegram_id, open_channel_id)
);
CREATE INDEX subscriptions_expiry_idx ON subscriptions (expires_at) WHERE removed_at IS NULL;

-- One grant per order: a retried job or a second payment for the same order never extends twice.
CREATE TABLE subscription_grants (
  order_id        text PRIMARY KEY REFERENCES orders (order_id),
  subscription_id bigint NOT NULL REFERENCES subscriptions (subscription_id),
  payment_id      text NOT NULL,
  plan_id         text NOT NULL,
  duration_days   integer NOT NULL,
  starts_at       timestamptz NOT NULL,
  expires_at      timestamptz NOT NULL,
  granted_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscription_grants_subscription_idx ON subscription_grants (subscription_id);
