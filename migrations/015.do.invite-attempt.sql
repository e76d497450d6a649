-- Which invite attempt of the payment (the machine's invite attempt, bumped by operator.reinvite and
-- operator.retry) an order's invite row serves: a bumped attempt after a sent or ended invite replaces
-- the link (the old one revoked) and sends it again, once per attempt.
ALTER TABLE invites ADD COLUMN invite_attempt integer NOT NULL DEFAULT 0;
