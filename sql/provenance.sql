-- Row-level provenance: the run that wrote or last changed a curated row
-- (an opt-in column), and from the run, the staged rows it consumed, also
-- when a run stopped inside a large transaction (partial cursor) and for a
-- pipeline reading another pipeline's target.
CALL number_ids_from(220000);
SET client_min_messages = warning;
CREATE SCHEMA pv;
SET search_path = pv, public;
CREATE TABLE raw (id int, v text, op text);
SELECT pipeline.create_pipeline('pv_silver', 'raw', 'silver', key => '{id}',
    delete_when => $$op = 'd'$$, columns => '{"op": null}') > 0 AS created;
SELECT pipeline.create_pipeline('pv_gold', 'silver', 'gold', key => '{id}') > 0 AS created;
SELECT pipeline.enable_provenance('pv_silver');
SELECT columns FROM pipeline.pipelines WHERE name = 'pv_silver';
SELECT pipeline.enable_provenance('pv_gold', 'Written By');

INSERT INTO raw VALUES (1, 'a', NULL), (2, 'b', NULL);
CALL pipeline.run('pv_silver');                    -- run 220001
CALL pipeline.run('pv_gold');                      -- run 220002
INSERT INTO raw VALUES (2, 'b2', NULL), (3, 'c', NULL), (1, NULL, 'd');
CALL pipeline.run('pv_silver');                    -- run 220003
CALL pipeline.run('pv_gold');                      -- run 220004
-- each row names the run that wrote it last; gold keeps its own runs
SELECT * FROM silver ORDER BY id;
SELECT * FROM gold ORDER BY id;

-- From a row to its run, and to the staged rows of that run.
SELECT r.run_id, r.pipeline, r.rows_read FROM silver s JOIN pipeline.runs r ON r.run_id = s.__run_id
 WHERE s.id = 2;
SELECT staged_row FROM pipeline.run_staged_rows(220001);
SELECT staged_row FROM pipeline.run_staged_rows(220003);
SELECT staged_row FROM pipeline.run_staged_rows(220003) WHERE staged_row->>'id' = '2';
-- gold's run read silver's change log
SELECT staged_row->>'id' AS id, staged_row->>'_op' AS op FROM pipeline.run_staged_rows(220004);

-- A run stopped inside one transaction's rows (max_rows) and the run that
-- finished it split that transaction's rows between them, none twice.
INSERT INTO raw SELECT g, 'bulk', NULL FROM generate_series(10, 14) g;
CALL pipeline.run('pv_silver', max_rows => 2);     -- run 220005
CALL pipeline.run('pv_silver');                    -- run 220006
SELECT cursor_after_xid IS NOT NULL AS stopped_inside FROM pipeline.run_log WHERE run_id = 220005;
SELECT (SELECT array_agg((staged_row->>'id')::int) FROM pipeline.run_staged_rows(220005)) AS first_run,
       (SELECT array_agg((staged_row->>'id')::int) FROM pipeline.run_staged_rows(220006)) AS second_run;
SELECT id, __run_id FROM silver WHERE id >= 10 ORDER BY id;

-- Rows that retention moved into the archive are still a run's staged rows.
SELECT pipeline.set_retention('raw', keep => '0');
SELECT rows_archived > 0 AS archived FROM pipeline.archive('raw');
SELECT count(*) AS still_staged FROM raw WHERE id < 10;
SELECT staged_row FROM pipeline.run_staged_rows(220003);
SELECT pipeline.drop_retention('raw');

-- Turned off: the column stays, new rows get NULL.
SELECT pipeline.disable_provenance('pv_silver');
INSERT INTO raw VALUES (20, 'late', NULL);
CALL pipeline.run('pv_silver');
SELECT id, __run_id FROM silver WHERE id = 20;

-- Bad input, and another role.
SELECT * FROM pipeline.run_staged_rows(1);
SELECT pipeline.enable_provenance('nope');
SELECT pipeline.disable_provenance('pv_silver');
CREATE ROLE pv_other;
SET ROLE pv_other;
\set VERBOSITY terse
SELECT * FROM pipeline.run_staged_rows(220001);
SELECT pipeline.enable_provenance('pv_silver');
\set VERBOSITY default
RESET ROLE;
DROP ROLE pv_other;

SELECT pipeline.drop_pipeline('pv_gold');
SELECT pipeline.drop_pipeline('pv_silver');
DROP SCHEMA pv CASCADE;
