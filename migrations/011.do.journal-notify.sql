-- Operators follow a payment live (the inspector and the statechart pages): every journal row, once
-- committed, is announced on channel payment_journal as '<payment_id>:<seq>'. NOTIFY is transactional,
-- so a listener never hears of a row it cannot read yet, and a rolled-back write announces nothing.
-- The service keeps one LISTEN connection (src/operator/journal-feed.ts) and reads the rows itself:
-- the payload only says which payment moved.

CREATE FUNCTION payment_journal_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('payment_journal', NEW.payment_id || ':' || NEW.seq);
  RETURN NULL;
END $$;

CREATE TRIGGER payment_journal_notify AFTER INSERT ON payment_journal
  FOR EACH ROW EXECUTE FUNCTION payment_journal_notify();
