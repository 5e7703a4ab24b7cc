-- One role does not break another role's pipelines: a role that does not
-- own a table cannot hold its writers (the isolation spec
-- security_lock_hold shows the rest), cannot drop another role's change
-- log and what reads it, and schedules pg_cron jobs only as pg_cron lets
-- it and not too often.
CALL number_ids_from(310000);
SET client_min_messages = warning;
CREATE ROLE si_owner LOGIN;  -- pg_cron runs jobs of roles that may log in
CREATE ROLE si_hostile;
CREATE SCHEMA si_own AUTHORIZATION si_owner;
CREATE SCHEMA si_hos AUTHORIZATION si_hostile;
GRANT USAGE ON SCHEMA si_own TO si_hostile;

-- The owner's tables: a staging table feeding a target, a captured table.
SET ROLE si_owner;
CREATE TABLE si_own.raw (id int, v int);
INSERT INTO si_own.raw VALUES (1, 1);
SELECT pipeline.create_pipeline('si_silver', 'si_own.raw', 'si_own.silver', key => ARRAY['id']) > 0 AS created;
CALL pipeline.run('si_silver');
CREATE TABLE si_own.accounts (id int PRIMARY KEY, v int);
SELECT pipeline.capture('si_own.accounts')::text AS log;
GRANT SELECT ON si_own.silver, si_own.accounts TO si_hostile;
RESET ROLE;

-- A role that does not own a target may not be the first reader of its
-- changes: that reader locks out its writers until it commits.  A captured
-- table's triggers log every write whether or not anyone reads the log, so
-- its first reader locks nothing and may be any role allowed to read the
-- whole table.
SET ROLE si_hostile;
SELECT * FROM error_of($$SELECT pipeline.create_pipeline('si_h_silver', 'si_own.silver', 'si_hos.silver', key => ARRAY['id'])$$);
SELECT pipeline.create_pipeline('si_h_acc', 'si_own.accounts', 'si_hos.acc', key => ARRAY['id']) > 0 AS created;
RESET ROLE;
-- once the owner reads the target, other roles join without locking anything
SET ROLE si_owner;
SELECT pipeline.create_pipeline('si_gold', 'si_own.silver', 'si_own.gold', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.create_pipeline('si_acc_copy', 'si_own.accounts', 'si_own.acc_copy', key => ARRAY['id']) > 0 AS created;
RESET ROLE;
SET ROLE si_hostile;
SELECT pipeline.create_pipeline('si_h_silver', 'si_own.silver', 'si_hos.silver', key => ARRAY['id']) > 0 AS created;
CALL pipeline.run('si_h_silver');
SELECT id, v FROM si_hos.silver ORDER BY id;
SELECT pipeline.drop_pipeline('si_h_silver');
SELECT pipeline.drop_pipeline('si_h_acc');
RESET ROLE;

-- Retention: another role's pipeline that does not consume holds the
-- owner's rows back only for pipeline.retention_hold_limit (a week by
-- default); then they leave for the archive, and that pipeline is
-- suspended with the reason -- it does not silently skip them.
SET ROLE si_owner;
CREATE TABLE si_own.events (id int, v int);
SELECT pipeline.create_pipeline('si_events', 'si_own.events', 'si_own.events_copy', key => ARRAY['id']) > 0 AS created;
GRANT SELECT ON si_own.events TO si_hostile;
RESET ROLE;
SET ROLE si_hostile;
SELECT pipeline.create_pipeline('si_h_events', 'si_own.events', 'si_hos.events_copy', key => ARRAY['id']) > 0 AS created;
RESET ROLE;
SET ROLE si_owner;
INSERT INTO si_own.events SELECT g, g FROM generate_series(1, 5) g;
CALL pipeline.run('si_events');
SELECT pipeline.set_retention('si_own.events', keep => '0');
-- the other role's pipeline holds the rows back for now
SELECT rows_archived FROM pipeline.archive('si_own.events');
RESET ROLE;
SET pipeline.retention_hold_limit = 0;
SET ROLE si_owner;
SELECT rows_archived FROM pipeline.archive('si_own.events');
RESET ROLE;
RESET pipeline.retention_hold_limit;
SET ROLE si_hostile;
SELECT state, last_error FROM pipeline.status WHERE pipeline = 'si_h_events';
CALL pipeline.run('si_h_events');
SELECT count(*) AS merged FROM si_hos.events_copy;
-- resuming goes on from its cursor, knowingly; new rows arrive again
SELECT pipeline.resume('si_h_events');
RESET ROLE;
INSERT INTO si_own.events VALUES (6, 6);
SET ROLE si_hostile;
CALL pipeline.run('si_h_events');
SELECT id FROM si_hos.events_copy ORDER BY id;
SELECT pipeline.drop_pipeline('si_h_events');
RESET ROLE;

-- DROP ... CASCADE: a role whose pipeline is the last writer of another
-- role's target may not drop, through the extension, that target's change
-- log with the owner's pipeline and view reading it.
SET ROLE si_owner;
CREATE TABLE si_own.shared (id int PRIMARY KEY, v int);
GRANT SELECT, INSERT, UPDATE ON si_own.shared TO si_hostile;
RESET ROLE;
SET ROLE si_hostile;
CREATE TABLE si_hos.feed (id int, v int);
INSERT INTO si_hos.feed VALUES (1, 1);
SELECT pipeline.create_pipeline('si_h_feed', 'si_hos.feed', 'si_own.shared', key => ARRAY['id']) > 0 AS created;
CALL pipeline.run('si_h_feed');
RESET ROLE;
SET ROLE si_owner;
SELECT pipeline.create_pipeline('si_shared_copy', 'si_own.shared', 'si_own.shared_copy', key => ARRAY['id']) > 0 AS created;
CREATE VIEW si_own.shared_log AS SELECT id FROM si_own.shared_changes;
RESET ROLE;
SET ROLE si_hostile;
SELECT * FROM error_of('DROP TABLE si_hos.feed CASCADE');
RESET ROLE;
-- the owner's pipeline, its change log and the view are all still there
SELECT name FROM pipeline.pipelines WHERE name LIKE 'si\_%' ORDER BY name;
SELECT to_regclass('si_own.shared_changes') IS NOT NULL AS log_kept,
       to_regclass('si_own.shared_log') IS NOT NULL AS view_kept;
-- a role with the privileges of the log's owner may: its DROP ... CASCADE
-- takes the log's readers and views, as PostgreSQL's takes the views on a
-- table
DROP TABLE si_hos.feed CASCADE;
SELECT name FROM pipeline.pipelines WHERE name LIKE 'si\_%' ORDER BY name;
SELECT to_regclass('si_own.shared_changes') IS NULL AS log_dropped,
       to_regclass('si_own.shared_log') IS NULL AS view_dropped;

-- Freshness checks are pg_cron jobs: scheduling one takes what pg_cron
-- asks of a role (USAGE on schema cron), and no job runs more often than
-- pipeline.min_schedule_interval (a minute by default).
SET ROLE si_owner;
SELECT * FROM error_of($$SELECT pipeline.add_freshness_check('si_own.silver', warn_after => '1 hour', schedule => '*/5 * * * *')$$);
RESET ROLE;
GRANT USAGE ON SCHEMA cron TO si_owner;
SET pipeline.min_schedule_interval = 120;
SET ROLE si_owner;
SELECT * FROM error_of($$SELECT pipeline.add_freshness_check('si_own.silver', warn_after => '1 hour', schedule => '30 seconds')$$);
SELECT * FROM error_of($$SELECT pipeline.add_freshness_check('si_own.silver', warn_after => '1 hour', schedule => '0,30,31 * * * *')$$);
SELECT * FROM error_of('SET pipeline.min_schedule_interval = 1');
SELECT pipeline.add_freshness_check('si_own.silver', warn_after => '1 hour', schedule => '*/5 * * * *') > 0 AS added;
SELECT jobname LIKE 'pipeline\_freshness\_%' AS ours, schedule, username FROM cron.job ORDER BY jobid;
SELECT pipeline.drop_freshness_check(id) FROM pipeline.freshness_checks WHERE relation = 'si_own.silver'::regclass;
RESET ROLE;
RESET pipeline.min_schedule_interval;
REVOKE USAGE ON SCHEMA cron FROM si_owner;

-- clean up
DROP SCHEMA si_own, si_hos CASCADE;
DROP ROLE si_owner;
DROP ROLE si_hostile;
