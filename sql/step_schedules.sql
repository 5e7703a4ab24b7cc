-- Schedules, failures and alerts of steps: the forms a step's schedule
-- takes and those refused; a step's state in pipeline.step_status and
-- pipeline.metrics(); its own failure policy, suspension after failures in
-- a row and resume_step; the alerts it raises and the routes they match.
-- The scheduler's runs of steps are tested in test/t/023_step_schedules.pl.
CALL number_ids_from(720000);
CREATE ROLE ss_team;
CREATE ROLE ss_other;
CREATE SCHEMA "Step Schedules";
GRANT USAGE, CREATE ON SCHEMA "Step Schedules" TO ss_team;
SET ROLE ss_team;
SET search_path = "Step Schedules", public;
CREATE TABLE "Order Items" (id int, amount numeric);
CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
SELECT pipeline.create_pipeline('ss orders', '"Order Items"', 'orders', key => ARRAY['id']) > 0 AS created;
CREATE TABLE flag (fail boolean);
INSERT INTO flag VALUES (true);
CREATE TABLE done (at timestamptz);
CREATE PROCEDURE work() LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT fail FROM "Step Schedules".flag) THEN
        RAISE EXCEPTION 'the work failed';
    END IF;
    INSERT INTO "Step Schedules".done VALUES (now());
END $$;

-- The forms of a step's schedule, stored as written canonically.  (Paused
-- in the transaction that makes it: the scheduler leaves it alone.)
BEGIN;
SELECT pipeline.create_step('every', 'DELETE FROM done WHERE false', schedule => ' 15 minutes ') > 0 AS created;
SELECT pipeline.pause_step('every');
COMMIT;
SELECT name, schedule FROM pipeline.steps;
SELECT pipeline.alter_step('every', after => ARRAY['ss orders'], schedule => 'On_Upstream');
SELECT name, schedule FROM pipeline.steps;
SELECT pipeline.alter_step('every', schedule => '0 3 * * mon-fri');
SELECT name, schedule FROM pipeline.steps;
SELECT pipeline.alter_step('every', schedule => '@daily');
SELECT step, state, schedule, next_run_at FROM pipeline.step_status;

-- Schedules refused: continuous (a step reads no staged rows), text that
-- is none of the forms, on_upstream without an upstream (also by dropping
-- the upstreams of an on_upstream step).  NULL is the default, manual.
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => 'continuous');
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => 'every day');
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => '');
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => '61 * * * *');
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => '0 0 31 2 *');
SELECT pipeline.create_step('bad', 'SELECT 1', schedule => 'on_upstream');
SELECT pipeline.alter_step('every', schedule => 'on_upstream');
SELECT pipeline.alter_step('every', after => '{}');
SELECT pipeline.create_step('unscheduled', 'SELECT 1', schedule => NULL) > 0 AS created;
SELECT name, schedule FROM pipeline.steps ORDER BY name;

-- A step's own failure policy: suspended after two failed runs in a row
-- (by hand here; the scheduler's runs count alike), with an alert when it
-- starts failing and one when it is suspended; skipped while suspended.
SELECT pipeline.create_step('work', 'CALL work()') > 0 AS created;
SELECT pipeline.set_failure_policy('work', retry_base => '2 seconds', retry_max => '1 minute',
                                   suspend_after_failures => 2);
SELECT name, retry_base_ms, retry_max_ms, suspend_after_failures FROM pipeline.steps WHERE name = 'work';
CALL pipeline.run_step('work');
SELECT step, state, last_status, last_error_sqlstate, last_error, consecutive_failures, runs_failed
  FROM pipeline.step_status WHERE step = 'work';
CALL pipeline.run_step('work');
SELECT step, state, consecutive_failures, runs_failed, suspended_at IS NOT NULL AS suspended
  FROM pipeline.step_status WHERE step = 'work';
CALL pipeline.run_step('work');
SELECT trigger, status, error_message FROM pipeline.step_runs WHERE step = 'work' ORDER BY run_id;
SELECT kind, subject, previous_state, state, severity, message, payload->>'step' AS step,
       (payload->>'consecutive_failures')::int AS failures, step_id IS NOT NULL AS has_step, pipeline_id
  FROM pipeline.alerts WHERE kind = 'step' ORDER BY id;

-- resume_step lifts the suspension; a success ends the streak, with an
-- alert saying so.
UPDATE flag SET fail = false;
SELECT pipeline.resume_step('work');
CALL pipeline.run_step('work');
SELECT step, state, last_status, consecutive_failures, runs_succeeded, runs_failed,
       last_success_at IS NOT NULL AS succeeded, suspended_at
  FROM pipeline.step_status WHERE step = 'work';
SELECT previous_state, state, severity, message FROM pipeline.alerts WHERE kind = 'step' ORDER BY id DESC LIMIT 1;

-- The step in pipeline.metrics().
SELECT line FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line LIKE '%pipeline_step%' AND (line LIKE '#%' OR line LIKE '%step="work"%')
   AND line NOT LIKE 'pipeline_step_last_success_timestamp_seconds{%';
SELECT split_part(line, ' ', 2)::float8 > extract(epoch FROM now() - interval '1 hour') AS recent
  FROM regexp_split_to_table(pipeline.metrics(), E'\n') line
 WHERE line LIKE 'pipeline_step_last_success_timestamp_seconds{%step="work"}%';

-- Failure policies refused: another role's step, no such name, bad values.
RESET ROLE;
SET ROLE ss_other;
SELECT pipeline.set_failure_policy('work', suspend_after_failures => 0);
SELECT count(*) AS steps_seen, (SELECT count(*) FROM pipeline.step_state) AS states_seen FROM pipeline.step_status;
RESET ROLE;
SET ROLE ss_team;
SELECT pipeline.set_failure_policy('no such step', suspend_after_failures => 1);
SELECT pipeline.set_failure_policy('work', retry_base => '1 minute', retry_max => '1 second');
SELECT pipeline.set_failure_policy('work', suspend_after_failures => -1);
SELECT pipeline.set_failure_policy('work');
SELECT name, retry_base_ms, retry_max_ms, suspend_after_failures FROM pipeline.steps WHERE name = 'work';

-- An alert route naming the step carries its alerts, and only those.
RESET ROLE;
SELECT pipeline.add_alert_route('ss route', 'http://127.0.0.1:9/hook', owner => 'ss_team',
                                pipelines => ARRAY['work'], min_severity => 'info') > 0 AS added;
SET ROLE ss_team;
UPDATE flag SET fail = true;
SELECT pipeline.create_step('other work', 'CALL work()') > 0 AS created;
CALL pipeline.run_step('work');
CALL pipeline.run_step('other work');
RESET ROLE;
SELECT r.name, a.kind, a.subject, a.state
  FROM pipeline.alert_deliveries d JOIN pipeline.alerts a ON a.id = d.alert_id
  JOIN pipeline.alert_routes r ON r.id = d.route_id ORDER BY d.id;
SELECT pipeline.drop_alert_route('ss route');

-- Dropping the step takes its state and alerts with it.
SET ROLE ss_team;
SELECT pipeline.drop_step('work');
SELECT pipeline.drop_step('other work');
SELECT pipeline.drop_step('every');
SELECT pipeline.drop_step('unscheduled');
RESET ROLE;
SELECT (SELECT count(*) FROM pipeline.step_state) AS states, (SELECT count(*) FROM pipeline.alerts WHERE kind = 'step') AS alerts;

-- Clean up.
SET ROLE ss_team;
SELECT pipeline.drop_pipeline('ss orders');
RESET ROLE;
DROP SCHEMA "Step Schedules" CASCADE;
DROP ROLE ss_team;
DROP ROLE ss_other;
