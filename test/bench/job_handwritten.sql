-- The best hand-written single statement, with the bookkeeping that makes it
-- incremental (a watermark on an ingest id, moved in the same transaction).
BEGIN;
INSERT INTO bench.target AS t (order_id, customer_id, amount, status, updated_at, note)
SELECT DISTINCT ON (order_id) order_id, customer_id, amount, status, updated_at, note
  FROM bench.staging
 WHERE ingest_id > (SELECT last_id FROM bench.watermark)
 ORDER BY order_id, updated_at DESC
ON CONFLICT (order_id) DO UPDATE
   SET customer_id = excluded.customer_id, amount = excluded.amount, status = excluded.status,
       updated_at = excluded.updated_at, note = excluded.note
 WHERE t.updated_at <= excluded.updated_at;
UPDATE bench.watermark SET last_id = (SELECT max(ingest_id) FROM bench.staging);
COMMIT;
