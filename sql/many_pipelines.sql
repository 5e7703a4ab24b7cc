-- pipeline.status and metrics() read every pipeline in one pass (issue 13,
-- 1,000 pipelines): each row keeps its own state, a run row left
-- 'running' by no session does not make its pipeline running, and the
-- labels of freshness checks are escaped once per check.
CALL number_ids_from(500000);
SET client_min_messages = warning;
CREATE SCHEMA mp;
CREATE TABLE mp.src (id int, at timestamptz);
SELECT pipeline.create_pipeline('mp_idle', 'mp.src', 'mp."odd ""name"""', key => ARRAY['id']) > 0 AS created;
SELECT count(pipeline.create_pipeline(n, 'mp.src', 'mp.' || n, key => ARRAY['id']))
  FROM unnest(ARRAY['mp_paused', 'mp_failing', 'mp_suspended', 'mp_stale_run']) n;
INSERT INTO mp.src VALUES (1, now()), (2, now());
CALL pipeline.run('mp_idle');
SELECT pipeline.pause('mp_paused');

-- A pipeline fails (its source gains a column it refuses); another is
-- suspended after three failures.  (None is scheduled: the scheduler
-- would retry them meanwhile.)
SELECT pipeline.alter_pipeline(n, on_schema_change => 'fail')
  FROM unnest(ARRAY['mp_failing', 'mp_suspended']) n;
ALTER TABLE mp.src ADD COLUMN note text;
SET pipeline.suspend_after_failures = 3;
\set VERBOSITY terse
CALL pipeline.run('mp_failing');
CALL pipeline.run('mp_suspended');
CALL pipeline.run('mp_suspended');
CALL pipeline.run('mp_suspended');
\set VERBOSITY default
RESET pipeline.suspend_after_failures;

-- A run row still 'running' whose session is gone (as a crash leaves it
-- until the scheduler marks it failed): no session holds the run lock.
INSERT INTO pipeline.run_log (pipeline_id, run_as)
SELECT id, owner FROM pipeline.pipeline_defs WHERE name = 'mp_stale_run';

SELECT pipeline, state, pending_rows, running_run_id, progress_pct, last_status,
       consecutive_failures, last_error_sqlstate, schedule, suspended_at IS NOT NULL AS suspended
  FROM pipeline.status WHERE pipeline LIKE 'mp\_%' ORDER BY pipeline;

-- metrics(): the same states; a freshness check's relation and column are
-- escaped in its labels (no column: an empty label), before any result.
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line ~ '^pipeline_state\{.*pipeline="mp_' AND line ~ ' 1$' ORDER BY line;
SELECT pipeline.add_freshness_check('mp."odd ""name"""', warn_after => '1 hour') > 0 AS added;
SELECT pipeline.add_freshness_check('mp."odd ""name"""', 'at', warn_after => '1 hour') > 0 AS added;
SELECT regexp_replace(line, 'check_id="[0-9]+"', 'check_id="N"') AS line
  FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line ~ '^pipeline_freshness_state\{.*odd' AND line ~ 'UNKNOWN' ORDER BY line;

SELECT pipeline.drop_freshness_check(id) FROM pipeline.freshness_checks
 WHERE relation = 'mp."odd ""name"""'::regclass;
SELECT count(pipeline.drop_pipeline(name)) FROM pipeline.pipelines WHERE name LIKE 'mp\_%';
DROP SCHEMA mp CASCADE;
