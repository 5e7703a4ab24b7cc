-- Pipelines reading other pipelines' targets (a DAG): the target's change
-- log, filled by the upstream merge in its own statement; a reader that
-- joins late starts from the target's rows; fan-out to a merge and an
-- append reader; stale events publish nothing; trimming of consumed
-- changes; schema changes; pipeline.dependencies; cycles, drops, bad
-- inputs and privileges.
CALL number_ids_from(140000);
SET client_min_messages = warning;
\set VERBOSITY terse
CREATE SCHEMA "Sales Dept";
CREATE TABLE "Sales Dept"."Raw Orders" (order_id bigint, "Customer" text, amount numeric,
                                        op text, ts bigint);
SELECT pipeline.create_pipeline('up_silver', '"Sales Dept"."Raw Orders"', '"Sales Dept"."Order Items"',
    key => ARRAY['order_id'], sequence_by => 'ts', delete_when => $$op = 'd'$$,
    columns => '{"op": null}') > 0 AS created;
INSERT INTO "Sales Dept"."Raw Orders" VALUES (1, 'ann', 10, 'u', 1), (2, 'bob', 20, 'u', 1),
                                             (3, 'cat', 30, 'u', 1);
CALL pipeline.run('up_silver');
-- no reader yet: nothing is published
SELECT change_log FROM pipeline.pipelines WHERE name = 'up_silver';

-- A reader defined now starts from the target's three rows.
SELECT pipeline.create_pipeline('up_gold', '"Sales Dept"."Order Items"', 'public.gold_customers',
    key => ARRAY['Customer'], columns => '{"order_id": null, "ts": null}') > 0 AS created;
SELECT name, source, target, change_log, delete_when FROM pipeline.pipelines
 WHERE name LIKE 'up\_%' ORDER BY name;
SELECT attname FROM pg_attribute
 WHERE attrelid = '"Sales Dept"."Order Items_changes"'::regclass AND attnum > 0 AND NOT attisdropped
 ORDER BY attnum;
-- Fan-out: an append reader keeps every change, its kind mapped from _op.
SELECT pipeline.create_pipeline('up_audit', '"Sales Dept"."Order Items"', 'public.order_changes',
    strategy => 'append', columns => '{"op": "_op"}') > 0 AS created;
SELECT * FROM pipeline.dependencies ORDER BY downstream;
CALL pipeline.run('up_gold');
CALL pipeline.run('up_audit');
SELECT * FROM gold_customers ORDER BY "Customer";

-- Upstream: an update, a delete, a stale event (older ts: discarded, so
-- not published) and a new row.
INSERT INTO "Sales Dept"."Raw Orders" VALUES (1, 'ann', 11, 'u', 2), (2, 'bob', 20, 'd', 2),
                                             (3, 'cat', 99, 'u', 0), (4, 'dan', 40, 'u', 1);
CALL pipeline.run('up_silver');
SELECT _op, _for IS NULL AS for_all, order_id, "Customer", amount
  FROM "Sales Dept"."Order Items_changes" WHERE _for IS NULL ORDER BY _xid, _seq;
CALL pipeline.run('up_gold');
CALL pipeline.run('up_audit');
SELECT * FROM gold_customers ORDER BY "Customer";
SELECT op, order_id, "Customer", amount FROM order_changes ORDER BY order_id, amount, op;

-- Trimming: changes every reader consumed leave the log at a reader's next
-- run; an unconsumed change stays.
INSERT INTO "Sales Dept"."Raw Orders" VALUES (5, 'eve', 50, 'u', 1);
CALL pipeline.run('up_silver');
CALL pipeline.run('up_gold');
SELECT count(*) AS changes_left, min(order_id) AS the_one FROM "Sales Dept"."Order Items_changes";
CALL pipeline.run('up_audit');
CALL pipeline.run('up_gold');
SELECT count(*) AS changes_left FROM "Sales Dept"."Order Items_changes";

-- A column added to the upstream target is added to the log at the
-- writer's next run, and published from then on.
ALTER TABLE "Sales Dept"."Order Items" ADD COLUMN note text DEFAULT 'n/a';
INSERT INTO "Sales Dept"."Raw Orders" VALUES (6, 'fay', 60, 'u', 1);
CALL pipeline.run('up_silver');
SELECT order_id, note FROM "Sales Dept"."Order Items_changes" ORDER BY _xid, _seq;

-- A reader that follows its source's new columns gets the target's new
-- column, not the log's own _op and _for.
SELECT pipeline.create_pipeline('up_follow', '"Sales Dept"."Order Items"', 'public.follow_copy',
    key => ARRAY['order_id'], on_schema_change => 'append_new_columns') > 0 AS created;
ALTER TABLE "Sales Dept"."Order Items" ADD COLUMN region text;
INSERT INTO "Sales Dept"."Raw Orders" VALUES (7, 'gil', 70, 'u', 1);
CALL pipeline.run('up_silver');
CALL pipeline.run('up_follow');
SELECT attname FROM pg_attribute WHERE attrelid = 'public.follow_copy'::regclass AND attnum > 0
   AND NOT attisdropped ORDER BY attnum;
SELECT pipeline.drop_pipeline('up_follow');
DROP TABLE public.follow_copy;

-- A chain: a reader of a reader's target.
SELECT pipeline.create_pipeline('up_platinum', 'public.gold_customers', 'public.platinum',
    key => ARRAY['Customer']) > 0 AS created;
SELECT upstream, downstream FROM pipeline.dependencies ORDER BY upstream, downstream;

-- Cycles are refused, however long.
\x on
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_loop', 'public.platinum', '"Sales Dept"."Raw Orders"',
    strategy => 'append')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_self', '"Sales Dept"."Order Items"', '"Sales Dept"."Order Items"',
    key => ARRAY['order_id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_self', '"Sales Dept"."Order Items_changes"',
    '"Sales Dept"."Order Items"', key => ARRAY['order_id'])$sql$);

-- The last writer of a log with readers cannot be dropped.
SELECT * FROM error_of($sql$SELECT pipeline.drop_pipeline('up_silver')$sql$);

-- A reader is created in READ COMMITTED only.
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_rr', '"Sales Dept"."Order Items"', 'public.rr_target',
    key => ARRAY['order_id'])$sql$);
ROLLBACK;

-- A target with a column named like the log's own cannot be read.
CREATE TABLE up_src (id bigint, _op text);
SELECT pipeline.create_pipeline('up_ops', 'up_src', 'up_ops_target', key => ARRAY['id']) > 0 AS created;
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_ops_reader', 'up_ops_target', 'up_ops_copy', key => ARRAY['id'])$sql$);
\x off
SELECT count(*) AS logs FROM pg_class WHERE relname = 'up_ops_target_changes';

-- Privileges: a role must be able to read the upstream target; then it
-- is granted SELECT on the log, and its runs read it as that role.
CREATE ROLE up_reader;
CREATE SCHEMA up_own AUTHORIZATION up_reader;
GRANT USAGE ON SCHEMA "Sales Dept" TO up_reader;
SET ROLE up_reader;
\x on
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('up_theirs', '"Sales Dept"."Order Items"', 'up_own.copy',
    key => ARRAY['order_id'])$sql$);
\x off
RESET ROLE;
GRANT SELECT ON "Sales Dept"."Order Items" TO up_reader;
SET ROLE up_reader;
SELECT pipeline.create_pipeline('up_theirs', '"Sales Dept"."Order Items"', 'up_own.copy',
    key => ARRAY['order_id']) > 0 AS created;
CALL pipeline.run('up_theirs');
SELECT order_id, "Customer", amount FROM up_own.copy ORDER BY order_id;
RESET ROLE;
SELECT has_table_privilege('up_reader', '"Sales Dept"."Order Items_changes"', 'SELECT') AS can_read_log,
       has_table_privilege('up_reader', '"Sales Dept"."Order Items_changes"', 'INSERT') AS can_write_log;

-- A writer owned by a role other than the target's owner may still
-- publish: the log's owner (the target's) grants it INSERT.
CREATE ROLE up_writer;
CREATE TABLE up_wsrc (id int, v int);
ALTER TABLE up_wsrc OWNER TO up_writer;
CREATE TABLE up_wtarget (id int PRIMARY KEY, v int);
GRANT SELECT, INSERT, UPDATE, DELETE ON up_wtarget TO up_writer;
GRANT CREATE, USAGE ON SCHEMA public TO up_writer;
SET ROLE up_writer;
SELECT pipeline.create_pipeline('up_w', 'up_wsrc', 'up_wtarget', key => ARRAY['id']) > 0 AS created;
RESET ROLE;
SELECT pipeline.create_pipeline('up_w_reader', 'up_wtarget', 'up_wcopy', key => ARRAY['id']) > 0 AS created;
SELECT has_table_privilege('up_writer', 'up_wtarget_changes', 'INSERT') AS writer_may_publish;
INSERT INTO up_wsrc VALUES (1, 10), (2, 20);
SET ROLE up_writer;
CALL pipeline.run('up_w');
RESET ROLE;
CALL pipeline.run('up_w_reader');
SELECT * FROM up_wcopy ORDER BY id;
SELECT pipeline.drop_pipeline('up_w_reader');
SELECT pipeline.drop_pipeline('up_w');
DROP TABLE up_wsrc, up_wtarget, up_wcopy;
REVOKE CREATE, USAGE ON SCHEMA public FROM up_writer;
DROP ROLE up_writer;

-- Long names: the log's name is shortened to fit in 63 bytes.
CREATE TABLE up_long_src (id bigint);
SELECT pipeline.create_pipeline('up_long', 'up_long_src',
    'public.t23456789012345678901234567890123456789012345678901234567890123',
    strategy => 'append') > 0 AS created;
SELECT pipeline.create_pipeline('up_long_reader',
    'public.t23456789012345678901234567890123456789012345678901234567890123',
    'up_long_copy', strategy => 'append') > 0 AS created;
SELECT change_log FROM pipeline.pipelines WHERE name = 'up_long';

-- Dropping the readers drops the log; the writer stops publishing.
SELECT pipeline.drop_pipeline('up_long_reader');
SELECT change_log FROM pipeline.pipelines WHERE name = 'up_long';
SELECT count(*) AS logs FROM pg_class WHERE relname LIKE 't2345%changes';

-- An append pipeline publishes what it appends, when its target is read.
CREATE TABLE "Sales Dept".clicks (id bigint, page text);
SELECT pipeline.create_pipeline('up_clicks', '"Sales Dept".clicks', '"Sales Dept".click_log',
    strategy => 'append') > 0 AS created;
SELECT pipeline.create_pipeline('up_clicks_latest', '"Sales Dept".click_log', '"Sales Dept".click_latest',
    key => ARRAY['id']) > 0 AS created;
INSERT INTO "Sales Dept".clicks VALUES (1, 'home'), (2, 'cart'), (1, 'pay');
CALL pipeline.run('up_clicks');
CALL pipeline.run('up_clicks_latest');
SELECT id, page FROM "Sales Dept".click_latest ORDER BY id;
SELECT pipeline.drop_pipeline('up_clicks_latest');
SELECT pipeline.drop_pipeline('up_clicks');

-- More consumed changes than a trim finds through the log's index (50,000):
-- the rest goes by one plain delete, and no change still pending goes with
-- them.
CREATE TABLE "Sales Dept".bulk (id int, v int);
SELECT pipeline.create_pipeline('up_bulk', '"Sales Dept".bulk', '"Sales Dept".bulk_t',
    key => ARRAY['id']) > 0 AS created;
SELECT pipeline.create_pipeline('up_bulk_copy', '"Sales Dept".bulk_t', '"Sales Dept".bulk_copy',
    key => ARRAY['id']) > 0 AS created;
INSERT INTO "Sales Dept".bulk SELECT g, g FROM generate_series(1, 60000) g;
CALL pipeline.run('up_bulk');
CALL pipeline.run('up_bulk_copy');
INSERT INTO "Sales Dept".bulk VALUES (1, -1), (60001, 1);
CALL pipeline.run('up_bulk');
SELECT count(*) AS log_rows FROM "Sales Dept".bulk_t_changes;
CALL pipeline.run('up_bulk_copy');
SELECT count(*) AS log_rows_left FROM "Sales Dept".bulk_t_changes;
SELECT (SELECT count(*) FROM (TABLE "Sales Dept".bulk_t EXCEPT TABLE "Sales Dept".bulk_copy) a)
     + (SELECT count(*) FROM (TABLE "Sales Dept".bulk_copy EXCEPT TABLE "Sales Dept".bulk_t) b) AS differences,
       (SELECT count(*) FROM "Sales Dept".bulk_copy) AS copied,
       (SELECT v FROM "Sales Dept".bulk_copy WHERE id = 1) AS v_of_1;
SELECT pipeline.drop_pipeline('up_bulk_copy');
SELECT pipeline.drop_pipeline('up_bulk');

-- DROP ... CASCADE of an upstream target takes the whole DAG below it.
DROP TABLE "Sales Dept"."Order Items" CASCADE;
SELECT name FROM pipeline.pipelines WHERE name LIKE 'up\_%' ORDER BY name;
SELECT count(*) AS logs FROM pg_class WHERE relname IN ('Order Items_changes', 'gold_customers_changes');

DROP SCHEMA up_own CASCADE;
DROP OWNED BY up_reader;
DROP ROLE up_reader;
