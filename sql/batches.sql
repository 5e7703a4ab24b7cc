-- Bounded batches, max_rows, runs inside a transaction block, one source
-- feeding two pipelines, and progress in pipeline.runs.
CALL number_ids_from(10000);
SET client_min_messages = warning;
CREATE SCHEMA b;
CREATE TABLE b.src (id int, v int);
SELECT pipeline.create_pipeline('b_small', 'b.src', 'b.latest', key => ARRAY['id'],
    sequence_by => 'v', batch_size => 300) > 0 AS created;
SELECT pipeline.create_pipeline('b_log', 'b.src', 'b.log', strategy => 'append') > 0 AS created;

-- One transaction of 1000 rows over 100 keys: split into batches of 300
-- rows inside that transaction, and stopped by max_rows in the middle of it.
INSERT INTO b.src SELECT g % 100, g FROM generate_series(1, 1000) g;
CALL pipeline.run('b_small', max_rows => 450);
SELECT partial_xid IS NOT NULL AS stopped_inside_a_transaction, partial_seq > 0 AS has_position
  FROM pipeline.cursors WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'b_small');
-- Another transaction commits; the next run finishes the first one, then the rest.
INSERT INTO b.src SELECT g % 100, g FROM generate_series(1001, 1200) g;
CALL pipeline.run('b_small');
SELECT count(*) AS keys, sum(v) AS sum_of_latest,
       (SELECT sum(mv) FROM (SELECT max(v) AS mv FROM b.src GROUP BY id) x) AS expected
  FROM b.latest;
SELECT run_id, rows_pending, rows_read, batches, progress_pct FROM pipeline.runs
 WHERE pipeline = 'b_small' ORDER BY run_id;
SELECT partial_xid IS NULL AS cursor_complete FROM pipeline.cursors
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'b_small');

-- The rest of a partly consumed transaction fits in one batch: only the
-- rows after the cursor's position are read.
CREATE TABLE b.once (id int);
SELECT pipeline.create_pipeline('b_once', 'b.once', 'b.once_log', strategy => 'append') > 0 AS created;
INSERT INTO b.once SELECT g FROM generate_series(1, 100) g;
CALL pipeline.run('b_once', max_rows => 30);
CALL pipeline.run('b_once');
SELECT count(*) AS appended, count(DISTINCT id) AS distinct_ids FROM b.once_log;

-- A table created LIKE a source has _xid and _seq but not their defaults
-- nor the index: the first pipeline on it completes them.
CREATE TABLE b.copy (LIKE b.src);
SELECT pipeline.create_pipeline('b_copy', 'b.copy', 'b.copy_log', strategy => 'append') > 0 AS created;
INSERT INTO b.copy (id, v) VALUES (1, 1), (2, 2);
CALL pipeline.run('b_copy');
SELECT count(*) AS appended FROM b.copy_log;
SELECT indexdef FROM pg_indexes WHERE schemaname = 'b' AND tablename = 'copy';

-- The other pipeline on the same source has its own cursor.
CALL pipeline.run('b_log');
SELECT count(*) AS appended, count(DISTINCT v) AS distinct_rows FROM b.log;

-- Inside a transaction block a run is part of it: rolled back, nothing moved.
INSERT INTO b.src VALUES (500, 5000);
BEGIN;
CALL pipeline.run('b_log');
SELECT count(*) FROM b.log WHERE id = 500;
ROLLBACK;
SELECT count(*) AS after_rollback FROM b.log WHERE id = 500;
SELECT count(*) AS runs_recorded FROM pipeline.runs WHERE pipeline = 'b_log';
CALL pipeline.run('b_log');
SELECT count(*) AS after_run FROM b.log WHERE id = 500;

-- Paused pipelines do not run; resume lets them.
SELECT pipeline.pause('b_log');
INSERT INTO b.src VALUES (501, 5001);
CALL pipeline.run('b_log');
SELECT pipeline, state FROM pipeline.status WHERE pipeline = 'b_log';
SELECT pipeline.resume('b_log');
CALL pipeline.run('b_log');

-- An empty run moves the cursor and merges nothing.
CALL pipeline.run('b_log');

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'b\_%' ORDER BY name;
DROP SCHEMA b CASCADE;
