-- Freshness checks: every state, each kind of column, the deadline form, the
-- last-merge form, alerts on changes of state, pg_cron jobs, privileges,
-- retention, and bad input.
CALL number_ids_from(40000);
SET client_min_messages = warning;
CREATE SCHEMA fr;
CREATE TABLE fr.events (id int, at timestamptz, local_at timestamp, day date);
CREATE INDEX ON fr.events (at);

-- An empty relation is stale, never fresh.
SELECT pipeline.add_freshness_check('fr.events', 'at', warn_after => '10 minutes',
                                    error_after => '1 hour') AS events_at \gset
SELECT status, latest, lag, message FROM pipeline.check_freshness(:events_at);
-- Rows whose column is NULL do not count.
INSERT INTO fr.events VALUES (1, NULL, NULL, NULL);
SELECT status, message FROM pipeline.check_freshness(:events_at);
-- Old data: WARN past warn_after, FAIL past error_after; new data: PASS.
UPDATE fr.events SET at = now() - interval '20 minutes';
SELECT status, lag >= interval '20 minutes' AS lag_measured FROM pipeline.check_freshness(:events_at);
UPDATE fr.events SET at = now() - interval '2 hours';
SELECT status, lag >= interval '2 hours' AS lag_measured FROM pipeline.check_freshness(:events_at);
UPDATE fr.events SET at = now();
SELECT status FROM pipeline.check_freshness('fr.events'::regclass);
SELECT status FROM pipeline.check_freshness(:events_at);
-- max() of an indexed column reads the index, not the table.
EXPLAIN (COSTS OFF) SELECT max(at) FROM fr.events;

-- A timestamp column holds local times of the check's time zone.
UPDATE fr.events SET local_at = (now() - interval '30 minutes') AT TIME ZONE 'Europe/Paris';
SELECT pipeline.add_freshness_check('fr.events', 'local_at', warn_after => '10 minutes',
                                    error_after => '1 hour', timezone => 'Europe/Paris') AS local_at \gset
SELECT status, lag BETWEEN interval '30 minutes' AND interval '31 minutes' AS lag_in_paris
  FROM pipeline.check_freshness(:local_at);
-- Read in UTC instead, the same values would be an hour or two off.
SELECT pipeline.alter_freshness_check(:local_at, timezone => 'UTC');
SELECT status, lag BETWEEN interval '30 minutes' AND interval '31 minutes' AS lag_in_paris
  FROM pipeline.check_freshness(:local_at);

-- A filter narrows the rows; no matching row is stale.
SELECT pipeline.add_freshness_check('fr.events', 'at', error_after => '1 hour',
                                    filter => 'id > 100') AS filtered \gset
SELECT status, message FROM pipeline.check_freshness(:filtered);

-- Deadline form: each local day's data must be there by the deadline.
SELECT pipeline.add_freshness_check('fr.events', 'day', deadline => '00:00',
                                    timezone => 'Europe/Paris') AS by_midnight \gset
SELECT pipeline.add_freshness_check('fr.events', 'day', deadline => '23:59:59.999999',
                                    warn_after => '24 hours', filter => 'id < 100',
                                    timezone => 'Europe/Paris') AS by_late \gset
UPDATE fr.events SET day = (now() AT TIME ZONE 'Europe/Paris')::date - 2;
SELECT status, message ~ '^no data of ' AS says_which_day FROM pipeline.check_freshness(:by_midnight);
UPDATE fr.events SET day = (now() AT TIME ZONE 'Europe/Paris')::date - 1;
-- yesterday's data only: past today's deadline it fails, before it warns
SELECT status, message ~ '^no data of .* by its deadline' AS says_deadline
  FROM pipeline.check_freshness(:by_midnight);
SELECT status, message ~ ' due by ' AS says_due FROM pipeline.check_freshness(:by_late);
UPDATE fr.events SET day = (now() AT TIME ZONE 'Europe/Paris')::date;
SELECT status FROM pipeline.check_freshness(:by_midnight);

-- Without a column: the end of the last run that changed a pipeline's target.
CREATE TABLE fr.staged (id int, v int);
SELECT pipeline.create_pipeline('fr_orders', 'fr.staged', 'fr.orders', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.add_freshness_check('fr.orders', warn_after => '1 hour') AS last_merge \gset
SELECT status, message FROM pipeline.check_freshness(:last_merge);
CALL pipeline.run('fr_orders');                      -- changes nothing: still stale
SELECT status FROM pipeline.check_freshness(:last_merge);
INSERT INTO fr.staged VALUES (1, 1);
CALL pipeline.run('fr_orders');
SELECT status, latest = (SELECT max(finished_at) FROM pipeline.runs WHERE pipeline = 'fr_orders') AS from_history
  FROM pipeline.check_freshness(:last_merge);

-- The current state of every check, since when, and its attainment.
SELECT id = :events_at AS events_at, relation, column_name, state, state_since IS NOT NULL AS has_since,
       attainment_7d
  FROM pipeline.freshness ORDER BY id;
SELECT check_id = :events_at AS events_at, checks, passed, attainment
  FROM pipeline.freshness_attainment('1 day') ORDER BY check_id;

-- An alert on every change of state, not on every check.
SELECT check_id, previous_state, state,
       payload ->> 'relation' AS relation, payload ->> 'state' AS payload_state
  FROM pipeline.alerts ORDER BY id;

-- Re-adding the same relation, column and filter replaces the check.
SELECT pipeline.add_freshness_check('fr.events', 'at', warn_after => '5 minutes') = :events_at AS same_check;
SELECT warn_after, error_after FROM pipeline.freshness WHERE id = :events_at;

-- pg_cron: a scheduled check is a named job in this database, as its owner.
SELECT pipeline.alter_freshness_check(:events_at, schedule => '*/5 * * * *');
SELECT jobname ~ '^pipeline_freshness_contrib_regression_[0-9]+$' AS named, schedule,
       command ~ '^SELECT pipeline.check_freshness\([0-9]+\)$' AS command_ok, database
  FROM cron.job;
SELECT pipeline.alter_freshness_check(:events_at, schedule => '0 * * * *');
SELECT schedule FROM cron.job;
SELECT pipeline.alter_freshness_check(:events_at, schedule => 'manual');
SELECT count(*) AS jobs FROM cron.job;
SELECT pipeline.add_freshness_check('fr.events', 'at', warn_after => '5 minutes',
                                    schedule => '@hourly') = :events_at AS same_check;
SELECT schedule FROM cron.job;
-- A rolled-back change leaves the job as it was.
BEGIN;
SELECT pipeline.drop_freshness_check(:events_at);
SELECT count(*) AS jobs_in_transaction FROM cron.job;
ROLLBACK;
SELECT count(*) AS jobs FROM cron.job;
SELECT pipeline.drop_freshness_check(:events_at);
SELECT count(*) AS jobs, (SELECT count(*) FROM pipeline.freshness_results
                           WHERE check_id = :events_at) AS results_left
  FROM cron.job;
SELECT pipeline.drop_freshness_check(:events_at, if_exists => true);

-- Dropping the relation drops its checks and their jobs.
SELECT pipeline.alter_freshness_check(:local_at, schedule => '*/10 * * * *');
SET client_min_messages = notice;
DROP TABLE fr.events;
SET client_min_messages = warning;
SELECT count(*) AS checks_left, (SELECT count(*) FROM cron.job) AS jobs FROM pipeline.freshness_checks
 WHERE relation::text = 'fr.events';

-- Privileges: a check runs as its owner; other roles neither see nor touch it.
CREATE ROLE fr_alice;
CREATE ROLE fr_bob;
GRANT USAGE ON SCHEMA fr TO fr_alice, fr_bob;
CREATE TABLE fr.shop (id int, at timestamptz);
INSERT INTO fr.shop VALUES (1, now());
GRANT SELECT ON fr.shop TO fr_alice;
SET ROLE fr_alice;
SELECT pipeline.add_freshness_check('fr.shop', 'at', error_after => '1 hour') AS alice_check \gset
SELECT status FROM pipeline.check_freshness(:alice_check);
RESET ROLE;
SET ROLE fr_bob;
SELECT count(*) AS visible_checks, (SELECT count(*) FROM pipeline.freshness_results) AS visible_results,
       (SELECT count(*) FROM pipeline.alerts) AS visible_alerts
  FROM pipeline.freshness;
SELECT * FROM pipeline.check_freshness(:alice_check);
SELECT pipeline.drop_freshness_check(:alice_check);
SELECT pipeline.add_freshness_check('fr.shop', 'at', error_after => '1 hour');
RESET ROLE;
-- Once alice loses the privilege her check cannot tell: UNKNOWN, with the error.
REVOKE SELECT ON fr.shop FROM fr_alice;
SELECT status, message FROM pipeline.check_freshness(:alice_check);
SELECT sqlstate FROM pipeline.freshness_results WHERE check_id = :alice_check ORDER BY id DESC LIMIT 1;
-- a superuser's call still runs it as alice
SELECT state FROM pipeline.freshness WHERE id = :alice_check;

-- Retention: results older than pipeline.history_retention are deleted.
GRANT SELECT ON fr.shop TO fr_alice;
SELECT count(*) > 0 AS has_results FROM pipeline.freshness_results WHERE check_id = :alice_check;
SET pipeline.history_retention = 0;
SELECT status FROM pipeline.check_freshness(:alice_check);
SELECT count(*) AS results_kept FROM pipeline.freshness_results WHERE check_id = :alice_check;
RESET pipeline.history_retention;

-- Bad input: a clear error each.
\set VERBOSITY default
SELECT pipeline.add_freshness_check('fr.nope', 'at', warn_after => '1 hour');
SELECT pipeline.add_freshness_check('fr.shop', 'nope', warn_after => '1 hour');
SELECT pipeline.add_freshness_check('fr.shop', 'id', warn_after => '1 hour');
SELECT pipeline.add_freshness_check('fr.shop', 'at');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '2 hours', error_after => '1 hour');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '-1 hour');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '1 hour', timezone => 'Mars/Olympus');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '1 hour', schedule => 'every minute');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '1 hour', filter => 'nope > 1');
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '1 hour', filter => 'id + 1');
SELECT pipeline.add_freshness_check('fr.shop', warn_after => '1 hour');
SELECT pipeline.add_freshness_check('fr.orders', warn_after => '1 hour', filter => 'id > 1');
SELECT pipeline.add_freshness_check(NULL, 'at', warn_after => '1 hour');
SELECT pipeline.alter_freshness_check(123456, warn_after => '1 hour');
SELECT pipeline.drop_freshness_check(123456);
SELECT * FROM pipeline.check_freshness(123456);
SET ROLE fr_bob;
SELECT pipeline.add_freshness_check('fr.shop', 'at', warn_after => '1 hour');
RESET ROLE;
\set VERBOSITY terse

-- Names that need quoting.
CREATE TABLE fr."Order Items" ("Shipped At" timestamptz);
INSERT INTO fr."Order Items" VALUES (now());
SELECT pipeline.add_freshness_check('fr."Order Items"', 'Shipped At', warn_after => '1 hour') AS quoted \gset
SELECT relation, status FROM pipeline.check_freshness(:quoted);
SELECT column_name FROM pipeline.freshness WHERE id = :quoted;

-- An alert with a long message (longer, escaped for JSON, than NOTIFY's
-- 8000 bytes) is raised and keeps its message: NOTIFY carries the alert's
-- id only, so the check does not fail on "payload string too long".
CREATE TABLE fr.boom_on (on_ boolean);
CREATE FUNCTION fr.boom() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM fr.boom_on) THEN
        RAISE EXCEPTION USING MESSAGE = repeat(E'\x01', 1900);
    END IF;
    RETURN true;
END $$;
SELECT pipeline.add_freshness_check('fr."Order Items"', 'Shipped At', warn_after => '1 hour',
                                    filter => 'fr.boom()') AS boom \gset
SELECT status FROM pipeline.check_freshness(:boom);
INSERT INTO fr.boom_on VALUES (true);
SELECT status, length(message) AS message_length FROM pipeline.check_freshness(:boom);
SELECT state, length(message) AS message_length,
       octet_length(payload::text) >= 8000 AS too_long_for_notify
  FROM pipeline.alerts WHERE check_id = :boom ORDER BY id DESC LIMIT 1;

SELECT pipeline.drop_pipeline('fr_orders');
DROP SCHEMA fr CASCADE;
DROP ROLE fr_alice, fr_bob;
