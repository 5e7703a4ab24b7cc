-- pipeline.backlog beyond its count limit (10000 rows) answers the
-- planner's estimate of the rows from the cursor's xmin on, read from the
-- plan in C: the same figure EXPLAIN shows for that query (the way it was
-- read before), for a plain source, a partitioned one (an Append's sum), a
-- change log's reader (a subquery) and a parallel plan (a Gather).
CALL number_ids_from(643000);
SET client_min_messages = warning;
CREATE SCHEMA be;

-- EXPLAIN's "Plan Rows" for the rows of 'rows_from' from the cursor's xmin
-- on, the cursor being the named pipeline's.
CREATE FUNCTION be.explain_rows(pipeline_name text, rows_from text) RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    plan json;
    xmin xid8;
BEGIN
    SELECT pg_snapshot_xmin(c.consumed) INTO xmin
      FROM pipeline.cursors c JOIN pipeline.pipelines p ON p.id = c.pipeline_id
     WHERE p.name = pipeline_name;
    EXECUTE format('EXPLAIN (FORMAT JSON) SELECT FROM %s WHERE _xid >= %L::xid8', rows_from, xmin)
       INTO plan;
    RETURN round((plan -> 0 -> 'Plan' ->> 'Plan Rows')::float8)::bigint;
END $$;

CREATE TABLE be.src (id int, v text);
SELECT pipeline.create_pipeline('be_plain', 'be.src', 'be.dst', key => ARRAY['id']) > 0 AS created;
CREATE TABLE be.parts (id int, day date) PARTITION BY RANGE (day);
CREATE TABLE be.parts_1 PARTITION OF be.parts FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE be.parts_2 PARTITION OF be.parts FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
SELECT pipeline.create_pipeline('be_parts', 'be.parts', 'be.parts_dst', key => ARRAY['id', 'day'])
       > 0 AS created;
INSERT INTO be.src SELECT g, 'a' FROM generate_series(1, 25000) g;
INSERT INTO be.parts SELECT g, '2026-01-01'::date + g % 50 FROM generate_series(1, 30000) g;
ANALYZE be.src, be.parts;

SELECT b.pending_rows > 10001 AS estimated, b.pending_exact,
       b.pending_rows = be.explain_rows('be_plain', 'be.src') AS as_explain
  FROM pipeline.backlog('be_plain') b;
SELECT b.pending_rows > 10001 AS estimated, b.pending_exact,
       b.pending_rows = be.explain_rows('be_parts', 'be.parts') AS as_explain
  FROM pipeline.backlog('be_parts') b;

-- Rows staged after ANALYZE: the estimate reaches the index's actual upper
-- end, as with the literal EXPLAIN plans.
INSERT INTO be.src SELECT g, 'b' FROM generate_series(25001, 30000) g;
SELECT b.pending_rows > 25000 AS beyond_statistics,
       b.pending_rows = be.explain_rows('be_plain', 'be.src') AS as_explain
  FROM pipeline.backlog('be_plain') b;

-- A parallel plan: the estimate is the Gather's, as EXPLAIN shows it.
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET enable_indexscan = off;
SET enable_indexonlyscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT FROM be.src WHERE _xid >= '0'::xid8;
SELECT b.pending_rows = be.explain_rows('be_plain', 'be.src') AS as_explain
  FROM pipeline.backlog('be_plain') b;
SELECT b.pending_rows = be.explain_rows('be_parts', 'be.parts') AS as_explain
  FROM pipeline.backlog('be_parts') b;
RESET max_parallel_workers_per_gather;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET enable_indexscan;
RESET enable_indexonlyscan;
RESET enable_bitmapscan;

-- A change log's reader defined late starts from the target's rows, seeded
-- for it alone: the estimate is over its share of the log.
CALL pipeline.run('be_plain');
SELECT pipeline.create_pipeline('be_reader', 'be.dst', 'be.reader_dst', key => ARRAY['id'])
       AS reader_id \gset
ANALYZE be.dst_changes;
SELECT b.pending_rows > 10001 AS estimated, b.pending_exact,
       b.pending_rows = be.explain_rows('be_reader',
           format('(SELECT * FROM be.dst_changes WHERE _for IS NULL OR _for = %s) s', :reader_id))
       AS as_explain
  FROM pipeline.backlog('be_reader') b;
-- counted exactly on request
SELECT pending_rows, pending_exact FROM pipeline.backlog('be_reader', exact => true);

SELECT pipeline.drop_pipeline('be_reader');
SELECT pipeline.drop_pipeline('be_parts');
SELECT pipeline.drop_pipeline('be_plain');
DROP SCHEMA be CASCADE;
