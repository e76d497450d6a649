-- Subscription timers as columns, swept by one scheduled job (queue subscription-sweep, cron
-- SUBSCRIPTION_SWEEP_EVERY; src/telegram/subscriptions.service.ts), instead of one pg-boss job for the
-- expiry and one per reminder of every grant.
--
-- Expiry: expires_at is the timer. The sweep picks subscriptions that ended and were neither removed
-- nor logged by a dry run, through the partial index below, and removes each under its row lock
-- (expireSubscription re-reads the expiry there, so a renewal that committed first wins). A removal
-- Telegram refused is retried with backoff: removal_attempts / removal_retry_at.
--
-- Reminders: next_reminder_at is the next one due for the expiry in reminders_for (the expiry it was
-- computed for from SUBSCRIPTION_REMINDERS when a grant, extension or revoke set that expiry); NULL when
-- none is left. A reminder is claimed by moving next_reminder_at a lease ahead (so a crash resends it
-- once the lease is over, as a pg-boss retry did), and advanced to the next offset once it went out.
-- Rows where reminders_for differs from expires_at are not sent: their expiry moved without re-arming.
--
-- Backfill: none, on purpose. Expiry needs none (expires_at already holds it). The reminders owed for
-- expiries set before this migration are already queued as pg-boss jobs (subscription-reminder); their
-- worker keeps running for a transition and sends them as before, so these rows start with
-- reminders_for NULL (not armed): arming them here as well would send each of those reminders twice.
-- A renewal arms the columns for its new expiry; the old jobs then find the expiry moved and skip.
ALTER TABLE subscriptions
  ADD COLUMN next_reminder_at  timestamptz,
  ADD COLUMN reminders_for     timestamptz,
  ADD COLUMN reminder_attempts integer NOT NULL DEFAULT 0,
  ADD COLUMN removal_attempts  integer NOT NULL DEFAULT 0,
  ADD COLUMN removal_retry_at  timestamptz;

-- Due reminders, soonest first (most rows have none left: NULL, not in the index).
CREATE INDEX subscriptions_reminder_due_idx ON subscriptions (next_reminder_at) WHERE next_reminder_at IS NOT NULL;
-- Due removals: ended, not removed, not logged by a dry run (those would otherwise be read on every sweep).
CREATE INDEX subscriptions_removal_due_idx ON subscriptions (expires_at) WHERE removed_at IS NULL AND removal_dry_run_at IS NULL;
-- A removal cut off after its ban whose subscription was renewed since: the sweep lifts the ban (rare rows).
CREATE INDEX subscriptions_removal_started_idx ON subscriptions (subscription_id) WHERE removal_started_at IS NOT NULL;
