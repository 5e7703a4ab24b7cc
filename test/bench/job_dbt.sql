-- What dbt-postgres runs for an incremental model with unique_key and
-- incremental_strategy 'delete+insert' (macro postgres__get_delete_insert_merge_sql):
-- the model's query into a temporary table, a DELETE of the matching keys,
-- an INSERT of the temporary table.  The model itself deduplicates by key,
-- drops events older than the target, and filters with is_incremental() on
-- a watermark, so that its result equals the other jobs'.
BEGIN;
CREATE TEMPORARY TABLE target__dbt_tmp AS (
    SELECT DISTINCT ON (order_id) order_id, customer_id, amount, status, updated_at, note
      FROM bench.staging s
     WHERE ingest_id > (SELECT last_id FROM bench.watermark)
       AND NOT EXISTS (SELECT 1 FROM bench.target t
                        WHERE t.order_id = s.order_id AND t.updated_at > s.updated_at)
     ORDER BY order_id, updated_at DESC);
DELETE FROM bench.target USING target__dbt_tmp
 WHERE (target__dbt_tmp.order_id = bench.target.order_id);
INSERT INTO bench.target (order_id, customer_id, amount, status, updated_at, note)
    (SELECT order_id, customer_id, amount, status, updated_at, note FROM target__dbt_tmp);
UPDATE bench.watermark SET last_id = (SELECT max(ingest_id) FROM bench.staging);
DROP TABLE target__dbt_tmp;
COMMIT;
