-- A payment row is rewritten on every event. Leaving room on each page lets Postgres update it in
-- place (HOT) when no indexed column changes (progress within a state), instead of writing a new
-- index entry for every version.
ALTER TABLE payments SET (fillfactor = 70);
ALTER TABLE ipn_deliveries SET (fillfactor = 80);
