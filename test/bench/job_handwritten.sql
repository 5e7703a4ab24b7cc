-- b. The best hand-written single statement, plus the bookkeeping that makes
-- it incremental: a watermark on an ingest id (bigserial, indexed), read and
-- moved in the same transaction.  REPEATABLE READ gives both statements one
-- snapshot, so the watermark moves exactly past the rows the INSERT read.
-- (Caveat the pipeline does not have: a writer that commits after a writer
-- with a higher ingest_id has its rows skipped forever.)
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO bench.target AS t (order_id, customer_id, amount, status, updated_at, payload)
SELECT DISTINCT ON (order_id) order_id, customer_id, amount, status, updated_at, payload
  FROM bench.staging
 WHERE ingest_id > (SELECT last_id FROM bench.watermark)
 ORDER BY order_id, updated_at DESC
    ON CONFLICT (order_id) DO UPDATE
   SET customer_id = excluded.customer_id, amount = excluded.amount, status = excluded.status,
       updated_at = excluded.updated_at, payload = excluded.payload
 WHERE t.updated_at <= excluded.updated_at;
UPDATE bench.watermark SET last_id = (SELECT max(ingest_id) FROM bench.staging);
COMMIT;
