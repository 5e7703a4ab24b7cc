-- Steps as code: pipeline.export() writes a role's steps (command,
-- upstreams in order, declared relations, timeout, schedule, failure
-- policy) in a steps section; pipeline.apply() makes them, upstreams
-- first, changes them in place with alter_step (their history kept),
-- drops them followers first, and refuses to drop a pipeline a step that
-- stays runs after; bad step documents are refused at their place.
CALL number_ids_from(730000);
SET client_min_messages = warning;
CREATE ROLE sac_team;
CREATE SCHEMA "Step Code";
GRANT USAGE, CREATE ON SCHEMA "Step Code" TO sac_team;
SET ROLE sac_team;
SET search_path = "Step Code", public;
CREATE TABLE "Order Items" (id int, amount numeric);
CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
SELECT pipeline.create_pipeline('sac orders', '"Order Items"', 'orders', key => ARRAY['id']) > 0 AS created;
CREATE MATERIALIZED VIEW "Order Totals" AS SELECT count(*) AS n FROM orders;
CREATE TABLE audit (n bigint);
CREATE PROCEDURE note() LANGUAGE sql
    AS $$ INSERT INTO "Step Code".audit SELECT n FROM "Step Code"."Order Totals" $$;
SELECT pipeline.create_step('refresh totals', 'REFRESH MATERIALIZED VIEW "Order Totals"', after => ARRAY['sac orders'],
    schedule => 'on_upstream', statement_timeout => '1 min') > 0 AS created;
SELECT pipeline.create_step('note', 'CALL note()', after => ARRAY['refresh totals'],
    reads => ARRAY['"Order Totals"'::regclass], writes => ARRAY['audit'::regclass]) > 0 AS created;
SELECT pipeline.create_step('prune', 'DELETE FROM audit WHERE n < 0', after => ARRAY['note', 'sac orders'],
    schedule => '0 4 1 1 *') > 0 AS created;
SELECT pipeline.set_failure_policy('prune', retry_base => '30 s', suspend_after_failures => 5);

-- The document's steps: defaults left out, upstreams in their order,
-- declared relations qualified.
SELECT jsonb_pretty(pipeline.export()->'steps');

-- Applying what is there changes nothing.
SELECT action, count(*) FROM pipeline.apply(pipeline.export()) GROUP BY action ORDER BY action;

-- The round trip: the steps dropped, the document applied (each step after
-- those it runs after), exported again: the same document.
CREATE TABLE pg_temp.doc AS SELECT pipeline.export() AS d;
SELECT pipeline.drop_step('refresh totals', cascade => true);
SELECT step, action, kind, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false);
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS same_document;

-- Changes made in place by alter_step, the history kept: a new command,
-- another schedule, upstreams changed, the timeout and a declared relation
-- left out, a failure policy changed.
CALL pipeline.run_step('note', force => true);
CREATE TABLE pg_temp.changed AS SELECT jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(
    (SELECT d FROM pg_temp.doc),
    '{steps,note,command}', '"CALL \"Step Code\".note()"'),
    '{steps,note,reads}', 'null'),
    '{steps,refresh totals}', '{"command": "REFRESH MATERIALIZED VIEW CONCURRENTLY \"Order Totals\"", "after": ["sac orders"], "schedule": "30 4 1 1 *"}'),
    '{steps,prune,after}', '["sac orders"]'),
    '{steps,prune,failure_policy}', '{"suspend_after_failures": 2}') AS d;
CREATE UNIQUE INDEX ON "Order Totals" (n);
SELECT step, action, kind, object, detail FROM pipeline.apply((SELECT d FROM pg_temp.changed)) WHERE action <> 'unchanged';
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.changed), dry_run => false) WHERE action <> 'unchanged';
SELECT name, command, schedule, statement_timeout, reads, writes, retry_base_ms, suspend_after_failures
  FROM pipeline.steps ORDER BY name;
SELECT upstream, downstream FROM pipeline.dependencies WHERE downstream_kind = 'step' ORDER BY 2, 1;
SELECT count(*) AS note_runs_kept FROM pipeline.step_runs WHERE step = 'note';
SELECT action, count(*) FROM pipeline.apply((SELECT d FROM pg_temp.changed), dry_run => false) GROUP BY action;

-- Steps the document leaves out are dropped, those after others first.
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc) #- '{steps,note}' #- '{steps,prune}',
    dry_run => false) WHERE action <> 'unchanged';
SELECT name FROM pipeline.steps ORDER BY name;
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false) WHERE action <> 'unchanged';
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS same_document;

-- A step that stays but stops running after one the document drops: its
-- upstreams are cut before the drop, set after the makes.
SELECT step, action, kind, object, detail FROM pipeline.apply((SELECT d FROM pg_temp.doc) #- '{steps,note}'
    #- '{steps,prune,after,0}', dry_run => false) WHERE action <> 'unchanged';
SELECT upstream, downstream FROM pipeline.dependencies WHERE downstream_kind = 'step' ORDER BY 2, 1;
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false) WHERE action <> 'unchanged';

-- A pipeline made again (a setting alter_pipeline does not change), steps
-- running after it that stay: cut from it before its drop, after it again
-- once it is made; their history kept.
CALL pipeline.run_step('prune', force => true);
SELECT step, action, kind, object, data_loss FROM pipeline.apply(
    jsonb_set((SELECT d FROM pg_temp.doc), '{pipelines,sac orders,strategy}', '"append"') #- '{pipelines,sac orders,key}',
    dry_run => false, allow_data_loss => true) WHERE action <> 'unchanged';
SELECT upstream, downstream FROM pipeline.dependencies WHERE downstream_kind = 'step' ORDER BY 2, 1;
SELECT count(*) AS prune_runs_kept FROM pipeline.step_runs WHERE step = 'prune';
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false, allow_data_loss => true)
 WHERE action <> 'unchanged';
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS same_document;

-- A pipeline that steps of the document still run after cannot be
-- dropped: refused before anything changes.
SELECT code, message, detail FROM error_of($$SELECT pipeline.apply((SELECT d FROM pg_temp.doc) #- '{pipelines,sac orders}',
    dry_run => false, allow_data_loss => true)$$);
SELECT count(*) AS pipelines, (SELECT count(*) FROM pipeline.steps) AS steps FROM pipeline.pipeline_defs;

-- Bad step documents, each refused at its place, nothing changed.
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": []}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": "SELECT 1"}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"comand": "SELECT 1"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "after": "sac orders"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "statement_timeout": "soon"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "writes": ["\"Step Code\".gone"]}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "failure_policy": {"retry_base": 5}}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"schedule": "on_upstream"}}}', dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "after": ["no such pipeline"]}}}', dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "schedule": "continuous"}}}', dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "DROP TABLE audit"}}}', dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"steps": {"s": {"command": "SELECT 1", "after": ["s"]}}}', dry_run => false)$$);
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS nothing_changed;

-- Another role can neither make a step as the team by naming it the owner
-- nor change the team's steps, which its own document does not hold.
RESET ROLE;
CREATE ROLE sac_other;
SET ROLE sac_other;
SELECT code, message FROM error_of($$SELECT pipeline.apply('{"steps": {"x": {"command": "SELECT 1", "owner": "sac_team"}}}',
    dry_run => false)$$);
SELECT pipeline.export()->'steps' AS other_steps;
SELECT code, message FROM error_of($$SELECT pipeline.set_failure_policy('prune', suspend_after_failures => 1)$$);
RESET ROLE;
DROP ROLE sac_other;
SET ROLE sac_team;
SET search_path = "Step Code", public;

-- Clean up.
SELECT pipeline.drop_step('refresh totals', cascade => true);
SELECT pipeline.drop_pipeline('sac orders');
DROP TABLE pg_temp.doc, pg_temp.changed;
RESET ROLE;
DROP SCHEMA "Step Code" CASCADE;
DROP ROLE sac_team;
