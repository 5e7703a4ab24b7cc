-- Tests of pipelines: pipeline.test(name, rows, against) runs a pipeline's
-- logic over fixture rows in a subtransaction it rolls back, and returns
-- what would land.  What each strategy would write, delete and quarantine,
-- against the current target and an empty one; that nothing stays (target,
-- staging rows, cursor, history, quarantine); a batch its checks fail; bad
-- fixtures refused at their place; another role refused; and the pgTAP
-- example of doc/reference.md.
CALL number_ids_from(700000);
SET client_min_messages = warning;
CREATE ROLE pt_team;
CREATE ROLE pt_other;
CREATE SCHEMA "Shop";
GRANT USAGE, CREATE ON SCHEMA "Shop" TO pt_team;
SET ROLE pt_team;
SET search_path = "Shop", public;
CREATE TABLE "Order Items" (id int, "Qty" int, status text, at timestamptz);
CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL, status text, at timestamptz);
SELECT pipeline.create_pipeline('Order Items', '"Order Items"', 'orders', key => ARRAY['id'],
    columns => '{"id": "id", "qty": "\"Qty\"", "status": "status", "at": "at"}',
    sequence_by => 'at', filter => $$status <> 'test'$$,
    delete_when => $$status = 'cancelled'$$) > 0 AS created;
SELECT pipeline.add_check('Order Items', 'positive qty', 'qty > 0', action => 'quarantine') > 0 AS added;
INSERT INTO "Order Items" VALUES (1, 5, 'new', '2026-01-01'), (2, 3, 'new', '2026-01-01');
CALL pipeline.run('Order Items');
-- staged, not merged yet: a test must leave it for the next run
INSERT INTO "Order Items" VALUES (3, 1, 'new', '2026-01-02');

-- What a run leaves besides the target, to compare after the test.
CREATE FUNCTION pg_temp.run_traces_now() RETURNS jsonb LANGUAGE sql AS $$
  SELECT jsonb_build_object(
    'totals', (SELECT to_jsonb(t) FROM pipeline.run_totals t
                 JOIN pipeline.pipeline_defs d ON d.id = t.pipeline_id WHERE d.name = 'Order Items'),
    'alerts', (SELECT count(*) FROM pipeline.alerts a
                 JOIN pipeline.pipeline_defs d ON d.id = a.pipeline_id WHERE d.name = 'Order Items'),
    'events', (SELECT count(*) FROM pipeline.openlineage_run_events e
                 JOIN pipeline.pipeline_defs d ON d.id = e.pipeline_id WHERE d.name = 'Order Items')) $$;
CREATE TEMP TABLE run_traces AS SELECT pg_temp.run_traces_now() AS t;

-- Against the current target: an update, a delete, an insert, a stale
-- event, a row its check quarantines, a filtered row, a NULL key, and a
-- NULL the target refuses; the rows are numbered from 0 as in the array.
SELECT jsonb_pretty(pipeline.test('Order Items', $$[
  {"id": 1, "Qty": 6, "status": "paid", "at": "2026-01-03"},
  {"id": 2, "Qty": 3, "status": "cancelled", "at": "2026-01-03"},
  {"id": 4, "Qty": 2, "status": "new", "at": "2026-01-03"},
  {"id": 1, "Qty": 9, "status": "new", "at": "2025-12-31"},
  {"id": 5, "Qty": -1, "status": "new", "at": "2026-01-03"},
  {"id": 6, "Qty": 1, "status": "test", "at": "2026-01-03"},
  {"id": null, "Qty": 1, "status": "new", "at": "2026-01-03"},
  {"id": 7, "status": "new", "at": "2026-01-03"}
]$$));

-- Nothing of it stayed: the target, the staged row, the cursor, the
-- history, the quarantine and the check results are as they were.
SELECT * FROM orders ORDER BY id;
SELECT count(*) AS staged FROM "Order Items";
SELECT kind, count(*) FROM pipeline.runs WHERE pipeline = 'Order Items' GROUP BY kind ORDER BY kind;
SELECT count(*) AS quarantined FROM pipeline.quarantine WHERE pipeline = 'Order Items';
SELECT count(*) AS check_results FROM pipeline.check_results c
  JOIN pipeline.pipeline_defs d ON d.id = c.pipeline_id WHERE d.name = 'Order Items';
SELECT pipeline.test_rows() IS NULL AS no_rows_outside_a_test;
-- nor the run totals, alerts or OpenLineage events a run leaves
SELECT (SELECT r.t FROM pg_temp.run_traces r) = pg_temp.run_traces_now() AS traces_unchanged;
-- the next run merges the staged row, once
CALL pipeline.run('Order Items');
SELECT * FROM orders ORDER BY id;

-- Against an empty target: every row written is listed, none deleted; the
-- target is whole again after.
SELECT t->'status' AS status, t->'counts'->'inserted' AS inserted, t->'target' AS target,
       t->'deleted' AS deleted
  FROM pipeline.test('Order Items', $$[{"id": 1, "Qty": 7, "status": "new", "at": "2026-01-01"},
                                      {"id": 9, "Qty": 1, "status": "new", "at": "2026-01-09"}]$$,
                     against => 'empty') t;
SELECT count(*) AS orders FROM orders;

-- Inside the caller's transaction: the caller's own writes to the target
-- are not the test's; the test leaves them, and the rows it staged.
BEGIN;
UPDATE orders SET qty = 50 WHERE id = 3;
INSERT INTO "Order Items" VALUES (8, 1, 'new', '2026-01-08');
SELECT pipeline.test('Order Items', '[{"id": 4, "Qty": 2, "status": "new", "at": "2026-01-03"}]')->'target' AS target;
SELECT qty FROM orders WHERE id = 3;
SELECT count(*) AS staged FROM "Order Items" WHERE id = 8;
ROLLBACK;

-- A batch its checks fail: the run fails, nothing would land, and the
-- check that failed says why.  A paused pipeline can be tested.
SELECT pipeline.add_check('Order Items', 'small batches', kind => 'row_count', max_rows => 1,
    action => 'fail') > 0 AS added;
SELECT pipeline.pause('Order Items');
SELECT jsonb_pretty(pipeline.test('Order Items', '[{"id": 10, "Qty": 1, "status": "new"}, {"id": 11, "Qty": 1, "status": "new"}]'));
-- the rows go in batches of batch_size, as staged rows do: one a batch
SELECT pipeline.alter_pipeline('Order Items', batch_size => 1);
SELECT t->'status' AS status, t->'counts'->'inserted' AS inserted, t->'checks' AS checks
  FROM pipeline.test('Order Items', '[{"id": 10, "Qty": 1, "status": "new", "at": "2026-01-04"},
                                      {"id": 11, "Qty": 1, "status": "new", "at": "2026-01-04"}]') t;
SELECT pipeline.alter_pipeline('Order Items', batch_size => 100000);
SELECT pipeline.resume('Order Items');
SELECT pipeline.drop_check('Order Items', 'small batches');

-- History (scd2): a late event slotted between two versions; against an
-- empty history, the event alone.
CREATE TABLE events (id int, v text DEFAULT 'unknown', at timestamptz);
SELECT pipeline.create_pipeline('history', 'events', 'history', key => ARRAY['id'], strategy => 'scd2',
    sequence_by => 'at') > 0 AS created;
INSERT INTO events VALUES (1, 'a', '2026-01-01'), (1, 'b', '2026-01-10');
CALL pipeline.run('history');
SELECT t->'counts' AS counts, jsonb_pretty(t->'target') AS target
  FROM pipeline.test('history', '[{"id": 1, "v": "late", "at": "2026-01-05"}]') t;
SELECT pipeline.test('history', '[{"id": 1, "v": "late", "at": "2026-01-05"}]', 'empty')->'target' AS target;
-- an event equal to the next version moves that version's start: the
-- version as it was is deleted; a column left out takes its default
SELECT t->'target' AS target, t->'deleted' AS deleted
  FROM pipeline.test('history', '[{"id": 1, "v": "b", "at": "2026-01-05"}]') t;
SELECT pipeline.test('history', '[{"id": 2, "at": "2026-01-05"}]')->'target' AS target;
SELECT id, v, __start_at, __end_at FROM history ORDER BY id, __start_at;

-- Aggregates: a group's new totals, over its stored rows or alone.
CREATE TABLE sales (id int, sku text, qty int);
SELECT pipeline.create_pipeline('units by sku', 'sales', 'units_by_sku', key => ARRAY['sku'],
    strategy => 'aggregate', columns => '{"units": "sum(qty)", "lines": "count(*)"}') > 0 AS created;
INSERT INTO sales VALUES (1, 'a', 2), (2, 'b', 3);
CALL pipeline.run('units by sku');
SELECT pipeline.test('units by sku', '[{"id": 3, "sku": "a", "qty": 5}]')->'target' AS current_target,
       pipeline.test('units by sku', '[{"id": 3, "sku": "a", "qty": 5}]', 'empty')->'target' AS empty_target;
SELECT * FROM units_by_sku ORDER BY sku;

-- A deferred constraint trigger of the target: the test fails as a run
-- does (a batch runs in a security-restricted operation, where PostgreSQL
-- does not defer a trigger).
CREATE TABLE children (id int PRIMARY KEY, parent int);
CREATE FUNCTION known_parent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.parent = 99 THEN
    RAISE EXCEPTION 'no parent %', NEW.parent USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER known_parent AFTER INSERT ON children
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION known_parent();
CREATE TABLE child_stage (id int, parent int);
SELECT pipeline.create_pipeline('children', 'child_stage', 'children', key => ARRAY['id']) > 0 AS created;
SELECT t->'status' AS status, t->'error'->>'sqlstate' AS sqlstate, t->'error'->>'message' AS message,
       t->'target' AS target
  FROM pipeline.test('children', '[{"id": 1, "parent": 99}]') t;
INSERT INTO child_stage VALUES (1, 99);
CALL pipeline.run('children');
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline = 'children';

-- Bad fixtures, refused at their place in the array; bad arguments.
\set VERBOSITY default
SELECT pipeline.test('Order Items', '{"id": 1}');
SELECT pipeline.test('Order Items', '[{"id": 1}, 2]');
SELECT pipeline.test('Order Items', '[{"id": 1}, {"id": 2, "colour": "red"}]');
SELECT pipeline.test('Order Items', '[{"_xid": 1}]');
SELECT pipeline.test('Order Items', '[{"id": 1}, {"id": 2}, {"id": "two"}]');
SELECT pipeline.test('Order Items', '[{"at": "yesterday-ish"}]');
SELECT pipeline.test('Order Items', '[{"id": 1}, [1]]');
-- the source's NOT NULL and CHECK constraints hold for fixture rows too
CREATE TABLE strict_stage (id int NOT NULL, qty int CHECK (qty > 0));
SELECT pipeline.create_pipeline('strict', 'strict_stage', 'strict_copy', key => ARRAY['id']) > 0 AS created;
SELECT pipeline.test('strict', '[{"id": 1, "qty": 1}, {"qty": 2}]');
SELECT pipeline.test('strict', '[{"id": 1, "qty": 1}, {"id": 2, "qty": 0}]');
-- a test from inside a test (a check of the tested pipeline calling it)
SELECT pipeline.add_check('strict', 'nested', $$pipeline.test('strict', '[]') IS NOT NULL$$) > 0 AS added;
SELECT t->'status' AS status, t->'error'->>'message' AS message
  FROM pipeline.test('strict', '[{"id": 1, "qty": 1}]') t;
SELECT pipeline.test('Order Items', NULL);
SELECT pipeline.test(NULL, '[]');
SELECT pipeline.test('Order Items', '[]', against => 'production');
SELECT pipeline.test('no such pipeline', '[]');
-- no rows: an empty run
SELECT pipeline.test('Order Items', '[]')->'counts' AS counts;
-- what a test cannot run exactly is refused
CREATE TABLE extracts (id int, v text);
SELECT pipeline.create_pipeline('extract', 'extracts', 'extract_copy', key => ARRAY['id'],
    format => 'snapshot', hard_deletes => 'delete') > 0 AS created;
SELECT pipeline.test('extract', '[{"id": 1}]');

-- A target another role owns, which the team may write but not delete
-- from: a test against it as it is runs, against it empty is refused.
RESET ROLE;
GRANT USAGE, CREATE ON SCHEMA "Shop" TO pt_other;
SET ROLE pt_other;
CREATE TABLE "Shop".ledger (id int PRIMARY KEY, qty int);
GRANT SELECT, INSERT, UPDATE ON "Shop".ledger TO pt_team;
SET ROLE pt_team;
SELECT pipeline.create_pipeline('ledger', '"Order Items"', 'ledger', key => ARRAY['id'],
    columns => '{"id": "id", "qty": "\"Qty\""}') > 0 AS created;
SELECT pipeline.test('ledger', '[{"id": 1, "Qty": 1}]')->'target' AS target;
SELECT pipeline.test('ledger', '[{"id": 1, "Qty": 1}]', 'empty');
-- a target whose row-level security applies to the pipeline's owner: its
-- rows could not all be read back
SET ROLE pt_other;
ALTER TABLE "Shop".ledger ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON "Shop".ledger USING (true) WITH CHECK (true);
SET ROLE pt_team;
SELECT pipeline.test('ledger', '[{"id": 1, "Qty": 1}]');

-- Another role may not test the team's pipelines.
RESET ROLE;
SET ROLE pt_other;
SELECT pipeline.test('Order Items', '[{"id": 1, "Qty": 1}]');
RESET ROLE;
\set VERBOSITY terse

-- The pgTAP example of doc/reference.md: a test of the pipeline in a
-- pgTAP file, as a CI job runs it with pg_prove.
CREATE EXTENSION pgtap;
SET ROLE pt_team;
SELECT plan(4);
SELECT is(pipeline.test('Order Items', '[{"id": 1, "Qty": 6, "status": "paid", "at": "2026-02-01"}]')
              #>> '{counts,updated}', '1', 'a newer event updates the order');
SELECT results_eq(
    $$SELECT id, qty, status
        FROM jsonb_to_recordset(pipeline.test('Order Items',
               '[{"id": 20, "Qty": 2, "status": "new", "at": "2026-02-01"},
                 {"id": 21, "Qty": 4, "status": "new", "at": "2026-02-01"}]', 'empty')->'target')
             AS t(id int, qty int, status text)$$,
    $$VALUES (20, 2, 'new'), (21, 4, 'new')$$,
    'new orders land as staged');
SELECT is(pipeline.test('Order Items', '[{"id": 1, "Qty": 0, "status": "new", "at": "2026-02-01"}]')
              #>> '{quarantined,0,reason}',
          'failed data quality check "positive qty"', 'an order of no items is quarantined');
SELECT is(jsonb_array_length(pipeline.test('Order Items',
              '[{"id": 2, "Qty": 1, "status": "cancelled", "at": "2026-02-01"}]')->'deleted'),
          1, 'a cancelled order is deleted');
SELECT * FROM finish();
RESET ROLE;
DISCARD TEMP;  -- pgTAP's own tables of the session
DROP EXTENSION pgtap;

-- Clean up.
SET ROLE pt_team;
SELECT pipeline.drop_pipeline(name) FROM unnest(ARRAY['Order Items', 'history', 'units by sku', 'extract', 'ledger', 'children', 'strict']) name;
RESET ROLE;
DROP SCHEMA "Shop" CASCADE;
\set VERBOSITY default
DROP ROLE pt_team;
DROP ROLE pt_other;
