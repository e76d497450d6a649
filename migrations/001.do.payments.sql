-- The payment engine's own tables. Every state change goes through applyEvent (src/persistence/apply-event.ts).

CREATE TABLE payments (
  payment_id       text PRIMARY KEY,            -- NowPayments payment id, kept as text: ids exceed 2^53
  order_id         text,
  state            text NOT NULL,               -- one-word summary (received, confirmed, needs_review, ...)
  state_value      jsonb NOT NULL,              -- the statechart's full value, regions included
  review_reason    text,                        -- why a person is needed, or null
  snapshot         jsonb NOT NULL,              -- XState persisted snapshot
  version          integer NOT NULL,
  state_entered_at timestamptz NOT NULL DEFAULT now(),
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payments_state_idx ON payments (state, state_entered_at);
CREATE INDEX payments_order_idx ON payments (order_id);

-- Append-only: one row per applied event, never one per duplicate.
CREATE TABLE payment_journal (
  payment_id text NOT NULL REFERENCES payments (payment_id),
  seq        integer NOT NULL,                   -- equals payments.version after this event
  event_type text NOT NULL,
  event      jsonb NOT NULL,
  source     text NOT NULL,                      -- ipn, reconcile, actor:<effect>, operator:<name>, ...
  from_state jsonb,
  to_state   jsonb NOT NULL,
  effects    jsonb NOT NULL DEFAULT '[]',
  at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (payment_id, seq)
);

-- What an effect produced, recorded before its result is applied: a retried job replays this
-- instead of repeating the effect.
CREATE TABLE effect_results (
  payment_id  text NOT NULL,
  effect      text NOT NULL,
  attempt     integer NOT NULL,
  result      jsonb NOT NULL,
  recorded_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (payment_id, effect, attempt)
);
