-- The payment's read model (src/machines/payment.view.ts), written by applyEvent in the same statement
-- as the snapshot: readers use these columns and never parse the machine's private snapshot.
ALTER TABLE payments
  ADD COLUMN view      jsonb,                 -- PaymentView; null only for rows written before this migration (backfilled at start)
  ADD COLUMN step      text,                  -- the buyer's step (success page)
  ADD COLUMN rank      smallint,              -- progress order: the order's most advanced payment wins on the status page
  ADD COLUMN np_status text;                  -- NowPayments' latest status (reconciliation looks for non-final ones)

CREATE INDEX payments_received_np_status_idx ON payments (np_status, updated_at) WHERE state = 'received';
