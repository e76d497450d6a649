-- Invite links Telegram may hold that nobody owns. Telegram's Bot API cannot list a chat's links, so
-- a createChatInviteLink whose answer was lost (a timeout after Telegram acted, a crash before the link
-- was stored) leaves a live single-use link we can never revoke. Each call is therefore recorded
-- BEFORE it is made, with the name it gives the link (order + attempt) and the short expiry it asks
-- for: an unowned link dies within that expiry, and the record counts it. The stored link is extended
-- to the full INVITE_EXPIRE_AFTER (editChatInviteLink) only once it is ours, before the buyer is told.

CREATE TABLE invite_link_attempts (
  order_id     text NOT NULL REFERENCES invites (order_id),
  attempt      integer NOT NULL,                 -- 1, 2, ... per order
  chat_id      bigint NOT NULL,
  name         text NOT NULL,                    -- the link's name at Telegram: the order and this attempt
  expire_date  timestamptz NOT NULL,             -- the (short) expiry asked for: an unowned link is dead by then
  started_at   timestamptz NOT NULL DEFAULT now(),
  -- pending: asked, no answer recorded yet (in flight, or the asker died)
  -- stored:  Telegram answered with the link and it is the order's (invites.invite_link)
  -- refused: Telegram answered with an error: no link exists
  -- lost:    no answer (timeout, reset) or the asker died: a link may exist that nobody owns
  outcome      text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'stored', 'refused', 'lost')),
  invite_link  text,
  resolved_at  timestamptz,
  PRIMARY KEY (order_id, attempt)
);
-- The orphan count reads only the unresolved and the lost ones.
CREATE INDEX invite_link_attempts_unowned_idx ON invite_link_attempts (started_at) WHERE outcome IN ('pending', 'lost');

-- The stored link's name (editChatInviteLink resets whatever it is not given) and when it was extended
-- to its full lifetime; a link stored but not yet extended is never sent.
ALTER TABLE invites ADD COLUMN link_name text;
ALTER TABLE invites ADD COLUMN extended_at timestamptz;
-- Links stored before this migration were created with their full lifetime.
UPDATE invites SET extended_at = coalesce(created_at, updated_at) WHERE invite_link IS NOT NULL;
