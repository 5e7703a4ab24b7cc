-- Schedules: the forms create_pipeline accepts and when each runs next
-- (pipeline.next_run_after; cron text is UTC).  The background workers that
-- run them are tested in test/t/005_workers.pl.
CALL number_ids_from(100000);
SET client_min_messages = warning;
SET timezone = 'UTC';
SELECT s, pipeline.next_run_after(s, '2026-11-23 10:07:30+00') AS next
  FROM unnest(ARRAY[
    'manual', 'continuous', ' Continuous ',
    '30 seconds', '5 minutes', '1 hour', '1 day 2 hours', '00:00:45',
    '* * * * *', '*/15 * * * *', '5/20 * * * *', '0 * * * *', '0 6 * * *',
    '30 2 * * mon-fri', '0 0 * * sun', '0 0 * * 7', '0 0 1 * *', '0 0 1 jan *',
    '0 9-17/4 * * *', '0,30 8 * * 1,3,5', '0 0 13 * fri', '0 12 29 2 *',
    '@hourly', '@daily', '@weekly', '@monthly', '@yearly', '@Midnight',
    -- a day field starting with '*' means both days must match, else either
    '0 0 */2 * tue', '0 0 1-31/2 * tue']) s;

-- A schedule is stored in its canonical form.  (Paused, so that the
-- background workers leave it alone while the test runs.)
CREATE SCHEMA sc;
CREATE TABLE sc.src (id int);
SELECT pipeline.create_pipeline('sc_every', 'sc.src', 'sc.t', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.pause('sc_every');
SELECT pipeline.alter_pipeline('sc_every', schedule => '  0 0 1 1 *  ');
SELECT name, schedule FROM pipeline.pipelines WHERE name = 'sc_every';
SELECT pipeline.alter_pipeline('sc_every', schedule => 'CONTINUOUS');
SELECT name, schedule FROM pipeline.pipelines WHERE name = 'sc_every';
SELECT pipeline.alter_pipeline('sc_every', schedule => 'Manual');
SELECT name, schedule FROM pipeline.pipelines WHERE name = 'sc_every';

-- Invalid schedules (create_pipeline gives the same errors; see errors.sql).
\set VERBOSITY terse
SELECT pipeline.next_run_after('* * * *', now());
SELECT pipeline.next_run_after('0 24 * * *', now());
SELECT pipeline.next_run_after('0 0 30 feb *', now());
SELECT pipeline.next_run_after('', now());
\set VERBOSITY default

SELECT pipeline.drop_pipeline('sc_every');
DROP SCHEMA sc CASCADE;

-- Usable in a query planned for parallel workers (parsing an interval
-- takes a subtransaction, so the function stays in the leader).
SET force_parallel_mode = on;
SELECT pipeline.next_run_after('5 minutes', '2026-11-23 10:07:30+00') AS next;
RESET force_parallel_mode;
