-- The operator's view: pipeline.status and backlog, progress columns of
-- pipeline.runs, failure streaks, suspension and pipeline alerts, run
-- totals that survive the history retention, and metrics().
CALL number_ids_from(120000);
SET client_min_messages = notice;
CREATE SCHEMA st;
CREATE TABLE st.src (id int, v text);
SELECT pipeline.create_pipeline('st_orders', 'st.src', 'st.dst', key => ARRAY['id'],
    batch_size => 5000) AS st_id \gset

-- A new pipeline: idle, nothing pending (an exact 0), no lag, no runs.
SELECT pipeline, state, pending_rows, pending_exact, lag, last_run_id, last_success_at,
       consecutive_failures, schedule, next_run_at
  FROM pipeline.status WHERE pipeline = 'st_orders';

-- A backlog of 25000 rows: counted on request; otherwise counted up to
-- 10000 rows and estimated by the planner beyond.
INSERT INTO st.src SELECT g, 'a' FROM generate_series(1, 25000) g;
ANALYZE st.src;
SELECT pending_rows, pending_exact FROM pipeline.backlog('st_orders', exact => true);
SELECT pending_rows > 10000 AS above_the_count_limit, pending_exact FROM pipeline.backlog('st_orders');
-- No run has caught up yet: the age of the oldest row is not known.
SELECT oldest_pending_at, lag FROM pipeline.status WHERE pipeline = 'st_orders';

CALL pipeline.run('st_orders');
-- A finished run: complete progress, a rate, nothing remaining.
SELECT status, rows_pending, rows_read, progress_pct, batches, rows_per_second > 0 AS has_rate,
       estimated_remaining
  FROM pipeline.runs WHERE pipeline = 'st_orders';

-- A small backlog is counted exactly; every pending row committed after
-- the last run took its snapshot, which bounds the lag.
INSERT INTO st.src SELECT g, 'b' FROM generate_series(1, 7) g;
SELECT pending_rows, pending_exact FROM pipeline.backlog('st_orders');
SELECT s.state, s.pending_rows, s.oldest_pending_at > r.started_at AS pending_since_last_run,
       s.lag > interval '0' AS lagging, s.last_status, s.last_run_at = r.finished_at AS last_run_at,
       s.last_success_at = r.finished_at AS last_success_at, s.rows_per_second > 0 AS has_throughput
  FROM pipeline.status s JOIN pipeline.runs r ON r.run_id = s.last_run_id
 WHERE s.pipeline = 'st_orders';
CALL pipeline.run('st_orders');
SELECT pending_rows, lag FROM pipeline.status WHERE pipeline = 'st_orders';

-- Failures: the first raises an alert, the third in a row suspends the
-- pipeline (and raises another); a suspended pipeline does not run.
SET pipeline.suspend_after_failures = 3;
SELECT pipeline.alter_pipeline('st_orders', on_schema_change => 'fail');
ALTER TABLE st.src ADD COLUMN note text;
INSERT INTO st.src (id, v, note) VALUES (1, 'c', 'new column');
CALL pipeline.run('st_orders');
SELECT state, consecutive_failures, last_error_sqlstate, last_error_at IS NOT NULL AS has_error_time,
       last_success_at < last_error_at AS failed_after_success
  FROM pipeline.status WHERE pipeline = 'st_orders';
CALL pipeline.run('st_orders');
CALL pipeline.run('st_orders');
SELECT state, consecutive_failures, suspended_at IS NOT NULL AS suspended
  FROM pipeline.status WHERE pipeline = 'st_orders';
CALL pipeline.run('st_orders');
SELECT subject, previous_state, state, message IS NOT NULL AS has_message,
       payload ->> 'kind' AS kind, payload ->> 'pipeline' AS pipeline,
       payload ->> 'sqlstate' AS sqlstate, payload ->> 'consecutive_failures' AS failures,
       payload ->> 'database' = current_database() AS this_database
  FROM pipeline.alerts WHERE kind = 'pipeline' ORDER BY id;

-- resume lifts the suspension; once the cause is fixed a run succeeds and
-- the pipeline is idle again, with an alert saying so.
SELECT pipeline.resume('st_orders');
SELECT pipeline.alter_pipeline('st_orders', on_schema_change => 'append_new_columns');
CALL pipeline.run('st_orders');
SELECT state, consecutive_failures, suspended_at FROM pipeline.status WHERE pipeline = 'st_orders';
SELECT previous_state, state, message ~ '^run [0-9]+ succeeded after 3 failed runs$' AS says_recovered FROM pipeline.alerts
 WHERE kind = 'pipeline' ORDER BY id DESC LIMIT 1;
RESET pipeline.suspend_after_failures;

-- Totals of every finished run; the histogram's last bucket counts all.
SELECT runs_succeeded, runs_failed, runs_cancelled, rows_read, rows_inserted, rows_updated,
       consecutive_failures, duration_le[12] = runs_succeeded + runs_failed AS all_under_an_hour,
       duration_seconds_sum > 0 AS has_duration
  FROM pipeline.run_totals WHERE pipeline_id = :st_id;

-- metrics(): the Prometheus text format (promtool checks it in the TAP
-- tests); the samples of this pipeline that do not depend on timing.
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line ~ '^pipeline_(info|state|runs_total|rows_total|rows_read_total|consecutive_failures|pending_rows|quarantined_rows|run_duration_seconds_count)\{'
   AND line ~ 'pipeline="st_orders"';
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line WHERE line ~ '^# (HELP|TYPE) pipeline_run_duration';

-- Label values are escaped: backslash, double quote and newline.
CREATE TABLE st.odd_src (id int);
SELECT pipeline.create_pipeline(E'st "odd" \\ name\nline two', 'st.odd_src', 'st.odd_dst',
    strategy => 'append') > 0 AS created;
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line WHERE line ~ '^pipeline_info\{.*odd';

-- Another role sees neither the pipelines nor their metrics.
CREATE ROLE st_other;
SET ROLE st_other;
SELECT count(*) AS visible FROM pipeline.status;
SELECT pipeline.metrics() = '' AS no_metrics;
\set VERBOSITY terse
SELECT * FROM pipeline.backlog('st_orders');
\set VERBOSITY default
RESET ROLE;
DROP ROLE st_other;

-- A pipeline whose owner can no longer read its source shows NULLs in
-- status instead of hiding the others; backlog() itself says why.
CREATE ROLE st_owner;
GRANT USAGE, CREATE ON SCHEMA st TO st_owner;
SET ROLE st_owner;
CREATE TABLE st.owned_src (id int);
SELECT pipeline.create_pipeline('st_owned', 'st.owned_src', 'st.owned_dst', strategy => 'append') > 0 AS created;
RESET ROLE;
REVOKE SELECT ON st.owned_src FROM st_owner;
SELECT pipeline, pending_rows, pending_exact FROM pipeline.status WHERE pipeline LIKE 'st\_o%' ORDER BY pipeline;
\set VERBOSITY terse
SELECT * FROM pipeline.backlog('st_owned');
\set VERBOSITY default

-- The history retention deletes old runs but keeps the last one that
-- changed the target (freshness checks read it); the totals stay.
SET pipeline.history_retention = 0;
CALL pipeline.run('st_orders');
SELECT count(*) AS runs_kept, count(*) FILTER (WHERE rows_inserted + rows_updated > 0) AS changing_run_kept
  FROM pipeline.runs WHERE pipeline = 'st_orders';
SELECT runs_succeeded, runs_failed FROM pipeline.run_totals WHERE pipeline_id = :st_id;
RESET pipeline.history_retention;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'st%' ORDER BY name;
SET client_min_messages = warning;
SELECT count(*) AS totals_left FROM pipeline.run_totals;
DROP SCHEMA st CASCADE;
DROP OWNED BY st_owner;
DROP ROLE st_owner;
