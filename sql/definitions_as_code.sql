-- Definitions as code: pipeline.export() writes a role's definitions as one
-- document; pipeline.apply(document) plans and makes the database match it.
-- The round trip (export, drop everything, apply, export again), plans of
-- every kind of change, the data-loss flag, bad documents refused at their
-- place, and a role seeing only its own.  Runs as a role of its own, so
-- that the definitions of the other test files are not in its documents.
SET client_min_messages = warning;
CREATE ROLE dac_team;
CREATE ROLE dac_other;
CREATE SCHEMA "Sales";
GRANT USAGE, CREATE ON SCHEMA "Sales" TO dac_team, dac_other;
SET ROLE dac_team;
SET search_path = "Sales", public;
CREATE TABLE "Sales"."Order Items" (id int, sku text, qty int, price numeric, note text, at timestamptz);
CREATE TABLE "Sales".skus (sku text PRIMARY KEY, name text);
CREATE TABLE "Sales".customers (id int PRIMARY KEY, region text);
SELECT pipeline.create_pipeline('Order Items', '"Sales"."Order Items"', '"Sales".items', key => ARRAY['id'],
    sequence_by => 'at', except_columns => ARRAY['note'], filter => 'qty > 0', batch_size => 500,
    schedule => '5 minutes', statement_timeout => '30 s') > 0 AS created;
SELECT pipeline.create_pipeline('sku_totals', '"Sales".items', '"Sales".sku_totals', key => ARRAY['sku'],
    strategy => 'aggregate', columns => '{"units": "sum(qty)", "orders": "count(*)"}') > 0 AS created;
SELECT pipeline.create_pipeline('item_history', '"Sales".items', '"Sales".item_history', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'at', track_history => ARRAY['qty']) > 0 AS created;
-- a second pipeline writing the same target, and one joining a captured
-- table to it
CREATE TABLE "Sales".returns (id int, sku text, qty int, price numeric, note text, at timestamptz);
SELECT pipeline.create_pipeline('returns', '"Sales".returns', '"Sales".items', key => ARRAY['id'],
    sequence_by => 'at', except_columns => ARRAY['note']) > 0 AS created;
SELECT pipeline.capture('"Sales".skus');
SELECT pipeline.create_pipeline('named_items', '"Sales".items', '"Sales".named_items', key => ARRAY['id'],
    columns => '{"id": "id", "name": "k.name"}',
    joins => '[{"table": "\"Sales\".skus", "as": "k", "on": {"sku": "sku"}, "type": "left"}]') > 0 AS created;
SELECT pipeline.add_check('Order Items', 'positive price', 'price > 0', action => 'warn') > 0 AS added;
SELECT pipeline.add_check('Order Items', 'known sku', kind => 'relationships', column_name => 'sku',
    ref_table => '"Sales".skus', ref_column => 'sku') > 0 AS added;
SELECT pipeline.add_check('Order Items', 'one line', kind => 'unique', column_name => 'id',
    unique_scope => 'batch', error_if => '> 10%') > 0 AS added;
SELECT pipeline.set_failure_policy('Order Items', retry_base => '10 s', suspend_after_failures => 3);
SELECT pipeline.add_freshness_check('"Sales".items', 'at', warn_after => '1 hour', error_after => '1 day') > 0 AS added;
SELECT pipeline.set_retention('"Sales"."Order Items"', keep => '3 days', compression_level => 9);

-- The document: defaults left out, names qualified, except_columns as the
-- columns object keeps them, the second stage reading the first's target.
SELECT jsonb_pretty(pipeline.export());

-- Applying what is there changes nothing.
SELECT action, count(*) FROM pipeline.apply(pipeline.export()) GROUP BY action ORDER BY action;

-- The round trip: everything dropped, the document applied (upstream
-- first), and exported again: the same document.
CREATE TABLE pg_temp.doc AS SELECT pipeline.export() AS d;
SELECT pipeline.drop_retention('"Sales"."Order Items"');
SELECT pipeline.drop_freshness_check(id) FROM pipeline.freshness_checks WHERE relation = '"Sales".items'::regclass;
SELECT pipeline.drop_pipeline(name)
  FROM unnest(ARRAY['named_items', 'sku_totals', 'item_history', 'returns', 'Order Items']) name;
DROP TABLE "Sales".items, "Sales".sku_totals, "Sales".item_history, "Sales".named_items CASCADE;
SELECT jsonb_pretty(pipeline.export());
SELECT * FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false);
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS same_document;
SELECT action, count(*) FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false) GROUP BY action;

-- A document written by hand: unqualified names, intervals in other words,
-- defaults spelt out -- the same definitions, nothing to change.
SELECT step, action, object FROM pipeline.apply(jsonb_set(jsonb_set(jsonb_set((SELECT d FROM pg_temp.doc),
    '{pipelines,Order Items,source}', '"\"Order Items\""'), '{pipelines,Order Items,statement_timeout}', '"30 seconds"'),
    '{pipelines,Order Items,strategy}', '"merge"')) WHERE action <> 'unchanged';

-- Changes: settings altered in place; a new check; a check changed and a
-- freshness check changed (each dropped and added again); retention set
-- again.  Planned, then applied.
CREATE TABLE pg_temp.changed AS SELECT jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set(jsonb_set((SELECT d FROM pg_temp.doc),
    '{pipelines,Order Items,batch_size}', '1000'),
    '{pipelines,Order Items,filter}', 'null'),
    '{pipelines,Order Items,checks,positive qty}', '{"expression": "qty > 0", "action": "drop"}'),
    '{pipelines,Order Items,checks,positive price,action}', '"fail"'),
    '{freshness_checks,"\"Sales\".items (at)",warn_after}', '"2 hours"'),
    '{retention,"\"Sales\".\"Order Items\""}', '{"keep": "5 days"}') AS d;
SELECT * FROM pipeline.apply((SELECT d FROM pg_temp.changed)) WHERE action <> 'unchanged';
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.changed), dry_run => false)
 WHERE action <> 'unchanged';
SELECT batch_size, filter FROM pipeline.pipeline_defs WHERE name = 'Order Items';
SELECT c.name, c.action FROM pipeline.checks c JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id
 WHERE d.name = 'Order Items' ORDER BY c.name;
SELECT warn_after, (SELECT keep FROM pipeline.retention) FROM pipeline.freshness_checks
 WHERE relation = '"Sales".items'::regclass;
-- applied again, it changes nothing
SELECT action, count(*) FROM pipeline.apply((SELECT d FROM pg_temp.changed), dry_run => false) GROUP BY action;
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false)
 WHERE action <> 'unchanged';

-- Changes that lose data are in the plan, flagged, with a warning; applied
-- only with allow_data_loss: a new key, a pipeline made again (a setting
-- alter_pipeline does not change), a pipeline dropped with rows staged
-- for it (its upstream ran: its change log has rows).
INSERT INTO "Sales"."Order Items" (id, sku, qty, price, at) VALUES (1, 'a', 2, 3.5, '2026-01-01');
INSERT INTO "Sales".skus VALUES ('a', 'apple');
CALL run_quietly('Order Items');
SELECT * FROM pipeline.apply(jsonb_set(jsonb_set((SELECT d FROM pg_temp.doc) #- '{pipelines,item_history}',
    '{pipelines,Order Items,key}', '["id", "sku"]'),
    '{pipelines,sku_totals,group_filter}', '"units > 0"'))
 WHERE action <> 'unchanged';
SELECT * FROM error_of($$SELECT pipeline.apply((SELECT d FROM pg_temp.doc) #- '{pipelines,item_history}', dry_run => false)$$);
SELECT count(*) AS pipelines FROM pipeline.pipeline_defs WHERE owner = 'dac_team'::regrole;
SELECT step, action, object, data_loss FROM pipeline.apply(jsonb_set((SELECT d FROM pg_temp.doc) #- '{pipelines,item_history}',
    '{pipelines,sku_totals,group_filter}', '"units > 0"'), dry_run => false, allow_data_loss => true)
 WHERE action <> 'unchanged';
SELECT name, group_filter FROM pipeline.pipeline_defs WHERE owner = 'dac_team'::regrole ORDER BY name;
DROP TABLE "Sales".item_history;
SELECT step, action, object FROM pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false, allow_data_loss => true)
 WHERE action <> 'unchanged';
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS same_document;

-- A change alter_pipeline does not make to an aggregate (its columns shaped
-- its groups) makes it again, a loss of data.
SELECT step, action, object, detail, data_loss FROM pipeline.apply(jsonb_set((SELECT d FROM pg_temp.doc),
    '{pipelines,sku_totals,columns,units}', '"sum(qty * 2)"')) WHERE action <> 'unchanged';

-- Making again a pipeline that others, which stay, read: refused before
-- anything changes.
SELECT code, message, detail FROM error_of($$SELECT pipeline.apply(jsonb_set((SELECT d FROM pg_temp.doc),
    '{pipelines,Order Items,strategy}', '"append"') #- '{pipelines,Order Items,key}' #- '{pipelines,Order Items,sequence_by}')$$);

-- A document dropping the pipelines writing a target other pipelines of
-- it read: refused at the last writer, nothing changed.
SELECT code, message, detail FROM error_of($$SELECT pipeline.apply((SELECT d FROM pg_temp.doc) #- '{pipelines,Order Items}'
    #- '{pipelines,returns}', dry_run => false, allow_data_loss => true)$$);
SELECT count(*) AS pipelines FROM pipeline.pipeline_defs WHERE owner = 'dac_team'::regrole;

-- Only the sections a document has are made to match: an empty retention
-- section drops the retention, and leaves the pipelines alone.
SELECT action, kind, object FROM pipeline.apply('{"retention": {}}') ORDER BY step;

-- Bad documents, each refused at its place, nothing changed.
SELECT * FROM error_of($$SELECT pipeline.apply('[]')$$);
SELECT * FROM error_of($$SELECT pipeline.apply(NULL)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipeline": {}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"version": 2, "pipelines": {}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": []}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": null}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": 1}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "kee": ["id"]}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "key": "id"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "key": [1]}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "batch_size": "big"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "batch_size": 500.5}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "owner": "nobody_here"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "name": "q"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "statement_timeout": "soon"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "checks": {"c": {"expresion": "qty > 0"}}}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "failure_policy": {"retry_base": 5}}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".nowhere", "target": "t"}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"pipelines": {"p": {"source": "\"Sales\".\"Order Items\"", "target": "t", "checks": {"c": {"kind": "relationships", "column_name": "sku", "ref_table": "gone", "ref_column": "sku"}}}}}')$$);
SELECT * FROM error_of($$SELECT pipeline.apply(jsonb_set((SELECT d FROM pg_temp.doc), '{pipelines,p}',
    '{"source": "\"Sales\".\"Order Items\"", "target": "\"Sales\".t", "key": ["nope"]}'), dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{"freshness_checks": {"x": {"relation": "\"Sales\".gone", "warn_after": "1 hour"}}}', dry_run => false)$$);
SELECT * FROM error_of($$SELECT pipeline.apply('{}', dry_run => NULL)$$);
SELECT pipeline.export() = (SELECT d FROM pg_temp.doc) AS nothing_changed;

-- Another role's document holds its own definitions only (none), and the
-- team's document applied as that role fails: the team's pipelines are
-- there, and not its own to change.
RESET ROLE;
GRANT SELECT ON pg_temp.doc TO dac_other;
SET ROLE dac_other;
SELECT pipeline.export();
SELECT code, message FROM error_of($$SELECT pipeline.apply((SELECT d FROM pg_temp.doc), dry_run => false)$$);
SELECT count(*) AS pipelines FROM pipeline.pipeline_defs;
-- nor can it make a pipeline as the team by naming it its owner
SELECT code, message FROM error_of($$SELECT pipeline.apply('{"pipelines": {"theirs": {"source": "\"Sales\".returns",
    "target": "\"Sales\".theirs", "key": ["id"], "owner": "dac_team"}}}', dry_run => false)$$);
SELECT count(*) AS pipelines FROM pipeline.pipeline_defs WHERE name = 'theirs';
RESET ROLE;

-- A superuser's document has the alert routes too.
SELECT pipeline.add_alert_route('dac_route', 'https://hooks.example.com/dac', format => 'slack',
    kinds => ARRAY['pipeline'], min_severity => 'error', timeout => '10 s') > 0 AS added;
SELECT (pipeline.export()->'alert_routes'->'dac_route') - 'owner' AS route;
SELECT action, object FROM pipeline.apply(jsonb_build_object('alert_routes',
    (pipeline.export()->'alert_routes') - 'dac_route'
      || jsonb_build_object('dac_route', (pipeline.export()->'alert_routes'->'dac_route') || '{"min_severity": "warning"}'))) WHERE action <> 'unchanged';
SELECT pipeline.drop_alert_route('dac_route');

-- A superuser's document keeps each definition's owner: the whole
-- database's export applied changes nothing (the other test files'
-- definitions included), and a pipeline added with an owner is made as
-- that owner.
SELECT step, action, object, detail FROM pipeline.apply(pipeline.export() - 'alert_routes') WHERE action <> 'unchanged';
SELECT action, count(*) > 0 AS some FROM pipeline.apply(pipeline.export() - 'alert_routes', dry_run => false) GROUP BY action;
CREATE TABLE "Sales".refunds (id int, amount numeric);
ALTER TABLE "Sales".refunds OWNER TO dac_team;
SELECT step, action, object FROM pipeline.apply(jsonb_set(pipeline.export(), '{pipelines,refunds}',
    '{"source": "\"Sales\".refunds", "target": "\"Sales\".refund_totals", "key": ["id"], "owner": "dac_team"}'),
    dry_run => false) WHERE action <> 'unchanged';
SELECT owner, (SELECT tableowner FROM pg_tables WHERE tablename = 'refund_totals') AS target_owner
  FROM pipeline.pipeline_defs WHERE name = 'refunds';
SELECT pipeline.export()->'pipelines'->'refunds'->>'owner' AS exported_owner;

SET ROLE dac_team;
SELECT pipeline.export()->'pipelines'->'refunds' ? 'owner' AS owner_written_for_its_own;
SELECT pipeline.drop_pipeline(name)
  FROM unnest(ARRAY['refunds', 'named_items', 'sku_totals', 'item_history', 'returns', 'Order Items']) name;
SELECT pipeline.drop_retention('"Sales"."Order Items"');
SELECT pipeline.drop_freshness_check(id) FROM pipeline.freshness_checks WHERE relation = '"Sales".items'::regclass;
RESET ROLE;
DROP TABLE pg_temp.doc, pg_temp.changed;
DROP SCHEMA "Sales" CASCADE;
DROP ROLE dac_team;
DROP ROLE dac_other;
RESET search_path;
RESET client_min_messages;
