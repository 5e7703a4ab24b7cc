-- Orchestration steps: REFRESH MATERIALIZED VIEW, a procedure call and a
-- cleanup run after pipelines and after each other, as their owner; what
-- holds them back (an upstream not done, a pause, a run in progress); their
-- history, lineage and place in the DAG; failures, timeouts and force; the
-- commands refused; drops refused or cascading; another role refused; a
-- hostile procedure held to its owner's rights.
CALL number_ids_from(710000);
SET client_min_messages = warning;
CREATE ROLE st_team;
CREATE ROLE st_other;
CREATE SCHEMA "Gold Layer";
GRANT USAGE, CREATE ON SCHEMA "Gold Layer" TO st_team;
SET ROLE st_team;
SET search_path = "Gold Layer", public;
CREATE TABLE "Order Items" (id int, amount numeric, day date);
CREATE TABLE orders (id int PRIMARY KEY, amount numeric, day date);
SELECT pipeline.create_pipeline('orders', '"Order Items"', 'orders', key => ARRAY['id']) > 0 AS created;
CREATE MATERIALIZED VIEW "Daily Sales" AS SELECT day, sum(amount) AS amount FROM orders GROUP BY day;
CREATE UNIQUE INDEX ON "Daily Sales" (day);
CREATE TABLE audit (at date, what text);
CREATE PROCEDURE note_refresh(what text) LANGUAGE sql
    AS $$ INSERT INTO "Gold Layer".audit VALUES (current_date, what || ' by ' || current_user) $$;

-- A refresh after the pipeline, a procedure after the refresh, a cleanup
-- after both.
SELECT pipeline.create_step('refresh daily', 'REFRESH MATERIALIZED VIEW CONCURRENTLY "Daily Sales"',
    after => ARRAY['orders']) > 0 AS created;
SELECT pipeline.create_step('note', $$CALL note_refresh('daily sales')$$, after => ARRAY['refresh daily'],
    reads => ARRAY['"Gold Layer"."Daily Sales"'::regclass], writes => ARRAY['"Gold Layer".audit'::regclass]) > 0 AS created;
SELECT pipeline.create_step('cleanup', $$DELETE FROM audit WHERE at < current_date - 30$$,
    after => ARRAY['note', 'orders'], statement_timeout => '1 minute') > 0 AS created;
SELECT name, kind, command, statement_timeout, reads, writes FROM pipeline.steps ORDER BY id;
SELECT s.name, r.relation, r.access, r.origin FROM pipeline.step_relations r
  JOIN pipeline.steps s ON s.id = r.step_id ORDER BY s.name, r.access, r.relation::text;
SELECT upstream, relation, downstream, upstream_kind, downstream_kind
  FROM pipeline.dependencies ORDER BY downstream, upstream;
SELECT step, source, target, origin, transformation FROM pipeline.lineage WHERE step IS NOT NULL
 ORDER BY step, source::text, target::text;
SELECT * FROM pipeline.downstream('"Gold Layer"."Order Items"');

-- Before the pipeline ever ran, the refresh is held back.
\set VERBOSITY terse
SET client_min_messages = notice;
CALL pipeline.run_step('refresh daily');
SET client_min_messages = warning;

-- Once it ran, the steps run one after the other, as their owner.
INSERT INTO "Order Items" VALUES (1, 10, '2026-01-01'), (2, 5, '2026-01-01'), (3, 7, '2026-01-02');
CALL pipeline.run('orders');
CALL pipeline.run_step('refresh daily');
SELECT * FROM "Daily Sales" ORDER BY day;
CALL pipeline.run_step('note');
INSERT INTO audit VALUES ('2025-01-01', 'old');
CALL pipeline.run_step('cleanup');
SELECT what FROM audit ORDER BY what;
SELECT step, trigger, status, rows_affected, error_message FROM pipeline.step_runs ORDER BY run_id;

-- A run by a superuser still runs the command as the step's owner.
RESET ROLE;
CALL pipeline.run_step('note');
SET ROLE st_team;
SELECT what FROM audit ORDER BY what;

-- A failing step: recorded with its error; the steps after it are held
-- back until it succeeds; force runs one anyway.
CREATE OR REPLACE PROCEDURE note_refresh(what text) LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'audit is closed' USING ERRCODE = 'P0001'; END $$;
CALL pipeline.run_step('note');
SET client_min_messages = notice;
CALL pipeline.run_step('cleanup');
SET client_min_messages = warning;
CALL pipeline.run_step('cleanup', force => true);
SELECT step, trigger, status, rows_affected, error_sqlstate, error_message
  FROM pipeline.step_runs WHERE run_id > 710005 ORDER BY run_id;

-- A failure holds back the whole chain: the pipeline fails, the refresh
-- after it is skipped, and so is the step after the refresh.
CREATE OR REPLACE PROCEDURE note_refresh(what text) LANGUAGE sql
    AS $$ INSERT INTO "Gold Layer".audit VALUES (current_date, what || ' by ' || current_user) $$;
SELECT pipeline.add_check('orders', 'small', 'amount < 100', action => 'fail') > 0 AS added;
INSERT INTO "Order Items" VALUES (4, 1000, '2026-01-03');
CALL pipeline.run('orders');
SET client_min_messages = notice;
CALL pipeline.run_step('refresh daily');
CALL pipeline.run_step('note');
SET client_min_messages = warning;
SELECT pipeline.drop_check('orders', 'small');
CALL pipeline.run('orders');
CALL pipeline.run_step('refresh daily');
CALL pipeline.run_step('note');
SELECT step, status, error_message FROM pipeline.step_runs WHERE run_id > 710008 ORDER BY run_id;

-- A statement_timeout ends the command; the run is recorded failed.
SELECT pipeline.create_step('slow', 'SELECT pg_sleep(5)', statement_timeout => '100 ms') > 0 AS created;
CALL pipeline.run_step('slow');
SELECT status, error_sqlstate FROM pipeline.step_runs WHERE step = 'slow';

-- Paused, a step is skipped; in a transaction block, nothing is recorded.
SELECT pipeline.pause_step('cleanup');
SET client_min_messages = notice;
CALL pipeline.run_step('cleanup');
SET client_min_messages = warning;
SELECT pipeline.resume_step('cleanup');
BEGIN;
CALL pipeline.run_step('refresh daily');
ROLLBACK;
SELECT count(*) AS runs FROM pipeline.step_runs WHERE step = 'refresh daily';

-- alter_step: a new command, checked again; upstreams changed; a circle
-- refused.
SELECT pipeline.alter_step('cleanup', command => $$DELETE FROM audit WHERE at < current_date - 7$$,
    after => ARRAY['refresh daily']);
SELECT name, command FROM pipeline.steps WHERE name = 'cleanup';
\set VERBOSITY default
SELECT pipeline.alter_step('refresh daily', after => ARRAY['orders', 'cleanup']);

-- Commands and arguments refused.
SELECT pipeline.create_step('two', 'REFRESH MATERIALIZED VIEW "Daily Sales"; SELECT 1');
SELECT pipeline.create_step('ddl', 'CREATE TABLE x (a int)');
SELECT pipeline.create_step('into', 'SELECT 1 INTO y');
SELECT pipeline.create_step('broken', 'DELET FROM audit');
CREATE TABLE ignored (a int);
CREATE RULE ignore_all AS ON DELETE TO ignored DO INSTEAD NOTHING;
SELECT pipeline.create_step('rewritten', 'DELETE FROM ignored');
SELECT pipeline.create_step('orders', 'SELECT 1');
SELECT pipeline.create_step('nested', $$CALL pipeline.run_step('cleanup')$$) > 0 AS created;
CALL pipeline.run_step('nested');
SELECT pipeline.drop_step('nested');
SELECT pipeline.create_step('not a view', 'REFRESH MATERIALIZED VIEW audit');
SELECT pipeline.create_step('missing', 'REFRESH MATERIALIZED VIEW nowhere');
SELECT pipeline.create_step('no proc', 'CALL nothing_here()');
SELECT pipeline.create_step('after nothing', 'SELECT 1', after => ARRAY['no such pipeline']);
SELECT pipeline.create_step('self', 'SELECT 1', after => ARRAY['self']);
SELECT pipeline.create_step('twice', 'SELECT 1', after => ARRAY['orders', 'orders']);
SELECT pipeline.create_step('refresh daily', 'SELECT 1');
SELECT pipeline.create_step('', 'SELECT 1');
SELECT pipeline.create_step(repeat('x', 64), 'SELECT 1');
SELECT pipeline.create_step('null', NULL);
SELECT pipeline.create_step('negative', 'SELECT 1', statement_timeout => '-1 s');
SELECT pipeline.create_step(repeat('y', 63), 'SELECT 1') > 0 AS a_63_byte_name;
SELECT pipeline.drop_step(repeat('y', 63));
CALL pipeline.run_step(NULL);
CALL pipeline.run_step('no such step');

-- Another role's objects: a matview it owns, a table and a procedure it
-- did not grant, its pipeline; and the team's steps, which it cannot see,
-- run, change or drop.
RESET ROLE;
GRANT USAGE, CREATE ON SCHEMA "Gold Layer" TO st_other;
SET ROLE st_other;
CREATE MATERIALIZED VIEW "Gold Layer".others AS SELECT 1 AS one;
CREATE TABLE "Gold Layer".private (a int);
CREATE PROCEDURE "Gold Layer".private_proc() LANGUAGE sql AS $$ SELECT 1 $$;
REVOKE EXECUTE ON PROCEDURE "Gold Layer".private_proc() FROM PUBLIC;
CREATE TABLE "Gold Layer".other_stage (id int);
SELECT pipeline.create_pipeline('other', '"Gold Layer".other_stage', '"Gold Layer".other_copy',
    strategy => 'append') > 0 AS created;
SELECT count(*) AS steps_seen FROM pipeline.steps;
CALL pipeline.run_step('cleanup');
SELECT pipeline.alter_step('cleanup', command => 'SELECT 1');
SELECT pipeline.drop_step('cleanup');
SELECT pipeline.pause_step('cleanup');
SELECT pipeline.resume_step('cleanup');
SET ROLE st_team;
SELECT pipeline.create_step('theirs', 'REFRESH MATERIALIZED VIEW others');
SELECT pipeline.create_step('private', 'DELETE FROM private');
SELECT pipeline.create_step('private call', 'CALL private_proc()');
SELECT pipeline.create_step('after theirs', 'SELECT 1', after => ARRAY['other']);
SELECT pipeline.create_step('claims', 'SELECT 1', reads => ARRAY['"Gold Layer".private'::regclass]);
SELECT pipeline.create_step('claims', 'SELECT 1', writes => ARRAY['"Gold Layer".others'::regclass]);

-- A procedure trying to take another role's rights -- even one its owner
-- is a member of -- runs as the step's owner, in a security-restricted
-- operation: it fails.
RESET ROLE;
GRANT st_other TO st_team;
SET ROLE st_team;
CREATE PROCEDURE become_other() LANGUAGE plpgsql AS $$ BEGIN SET ROLE st_other; END $$;
SELECT pipeline.create_step('escalate', 'CALL become_other()') > 0 AS created;
CALL pipeline.run_step('escalate');
SELECT status, error_sqlstate, error_message FROM pipeline.step_runs WHERE step = 'escalate';
SELECT pipeline.drop_step('escalate');
RESET ROLE;
REVOKE st_other FROM st_team;
SET ROLE st_team;

-- Drops: a pipeline or a step others run after is refused; cascade drops
-- the steps after a step; DROP of a relation a step uses is refused, and
-- with CASCADE takes the step.
SELECT pipeline.drop_pipeline('orders');
SELECT pipeline.drop_step('refresh daily');
SELECT pipeline.alter_step('refresh daily', after => ARRAY['orders']);
SELECT pipeline.create_step('notify', $$CALL note_refresh('again')$$, after => ARRAY['cleanup']) > 0 AS created;
SET client_min_messages = notice;
SELECT pipeline.drop_step('cleanup', cascade => true);
SELECT name FROM pipeline.steps ORDER BY name;
SELECT pipeline.create_step('cleanup', $$DELETE FROM audit$$, after => ARRAY['refresh daily']) > 0 AS created;
DROP TABLE audit;
DROP MATERIALIZED VIEW "Daily Sales";
DROP MATERIALIZED VIEW "Daily Sales" CASCADE;
SELECT name FROM pipeline.steps ORDER BY name;
SELECT pipeline.create_step('refresh again', 'SELECT 1', after => ARRAY['orders']) > 0 AS created;
SELECT pipeline.create_pipeline('refresh again', 'audit', 'audit_copy', strategy => 'append');
DROP TABLE "Order Items" CASCADE;
SELECT name FROM pipeline.steps ORDER BY name;
SET client_min_messages = warning;

-- Clean up.
SELECT pipeline.drop_step('slow');
RESET ROLE;
SET ROLE st_other;
SELECT pipeline.drop_pipeline('other');
RESET ROLE;
DROP SCHEMA "Gold Layer" CASCADE;
DROP ROLE st_team;
DROP ROLE st_other;
