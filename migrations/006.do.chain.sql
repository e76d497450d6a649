-- The host wallet's own transactions (src/providers/chain). A transaction is signed and stored here,
-- committed, and only then broadcast: a retry re-broadcasts the stored bytes and never signs a second
-- transaction for the same key. Amounts are NUMERIC(78,0) (a uint256 fits), never float.

-- Nonces are allocated from this row under its lock, never from a node's or a provider's cached count.
-- Keyed by chain too: one key has a separate nonce sequence on every chain.
CREATE TABLE host_wallets (
  address    text NOT NULL,                   -- checksummed
  chain_id   bigint NOT NULL,
  next_nonce bigint NOT NULL CHECK (next_nonce >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (address, chain_id)
);

CREATE TABLE chain_transactions (
  tx_key               text PRIMARY KEY,     -- the caller's idempotency key, e.g. 'payout:<id>'
  from_address         text NOT NULL,
  chain_id             bigint NOT NULL,
  nonce                bigint NOT NULL,
  to_address           text NOT NULL,        -- who is paid: the ETH recipient, or the token recipient
  value_wei            numeric(78, 0) NOT NULL DEFAULT 0 CHECK (value_wei >= 0),
  token_address        text,                 -- the ERC-20 contract (the transaction's own "to"), null for ETH
  token_amount         numeric(78, 0) CHECK (token_amount >= 0),
  data                 text NOT NULL DEFAULT '0x',
  raw_tx               text NOT NULL,        -- the signed bytes: the only thing ever broadcast for this key
  tx_hash              text NOT NULL UNIQUE,
  signed_at            timestamptz NOT NULL DEFAULT now(),
  broadcast_at         timestamptz,          -- first time a node accepted it (or showed it already had it)
  broadcast_attempts   integer NOT NULL DEFAULT 0,
  last_broadcast_error text,
  receipt_status       integer,              -- 1 success, 0 reverted; null until mined
  block_number         bigint,
  mined_at             timestamptz,
  UNIQUE (from_address, chain_id, nonce),
  CHECK ((token_address IS NULL) = (token_amount IS NULL))
);
-- Rows a node may never have seen (a crash between commit and broadcast): later sends look for them.
CREATE INDEX chain_transactions_unbroadcast_idx ON chain_transactions (from_address, chain_id, nonce) WHERE broadcast_at IS NULL;
