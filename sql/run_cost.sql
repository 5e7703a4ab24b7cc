-- A run's fixed cost: the catalog statements every run executes keep their
-- plans for the session, and those plans follow the catalog.  In a database
-- of its own, one session runs a pipeline, renames it, drops and recreates
-- the extension (every catalog table it read is a new one), and runs again:
-- each run reads and writes the catalog as it is now.
CREATE DATABASE run_cost_db;
\c run_cost_db
SET client_min_messages = warning;
CREATE EXTENSION pipeline;
CREATE TABLE run_cost_src (id int, v int);
SELECT pipeline.create_pipeline('run_cost', 'run_cost_src', 'run_cost_tgt', key => '{id}') > 0 AS created;
INSERT INTO run_cost_src VALUES (1, 1);
CALL pipeline.run('run_cost');
CALL pipeline.run('run_cost');
SELECT pipeline.alter_pipeline('run_cost', new_name => 'run_cost_renamed');
INSERT INTO run_cost_src VALUES (2, 2);
CALL pipeline.run('run_cost_renamed');
SELECT r.run_id, r.pipeline, r.status, r.rows_read FROM pipeline.runs r ORDER BY r.run_id;
SELECT o.run_id, o.event_type, o.event->>'eventType' AS in_event,
       o.event#>>'{job,name}' = current_database() || '.run_cost_renamed' AS job_named_now
  FROM pipeline.openlineage_outbox o ORDER BY o.id;

DROP EXTENSION pipeline CASCADE;
DROP TABLE run_cost_src, run_cost_tgt;
CREATE EXTENSION pipeline;
CREATE TABLE run_cost_src (id int, v int, w text);
SELECT pipeline.create_pipeline('run_cost', 'run_cost_src', 'run_cost_tgt', key => '{id}') > 0 AS created;
INSERT INTO run_cost_src VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c');
CALL pipeline.run('run_cost');
CALL pipeline.run('run_cost');
SELECT * FROM run_cost_tgt ORDER BY id;
SELECT r.run_id, r.pipeline, r.status, r.rows_read FROM pipeline.runs r ORDER BY r.run_id;
SELECT pipeline, state, pending_rows FROM pipeline.status;
SELECT o.run_id, o.event_type FROM pipeline.openlineage_outbox o ORDER BY o.id;

-- Turned off, the outbox records nothing; a run's first commit does not
-- change the session's synchronous_commit.
SET pipeline.openlineage_outbox = off;
SET synchronous_commit = remote_apply;
CALL pipeline.run('run_cost');
SHOW synchronous_commit;
SELECT count(*) AS events FROM pipeline.openlineage_run_events;

\c contrib_regression
DROP DATABASE run_cost_db;
