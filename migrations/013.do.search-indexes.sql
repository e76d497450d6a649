-- Operators search by channel (recent orders first) and by the owner's payout hash.
CREATE INDEX orders_channel_created_idx ON orders (open_channel_id, created_at DESC);
CREATE INDEX payouts_owner_payout_hash_idx ON payouts (owner_payout_hash);
