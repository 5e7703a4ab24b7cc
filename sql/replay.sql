-- pipeline.replay: merging again the rows earlier runs consumed, read from
-- the archive and from the staging table, through the pipeline's current
-- definition, without moving its cursor.  Idempotent with sequence_by;
-- selected by run ids and by time; partially consumed transactions; what
-- append and merge without sequence_by do; a schema change since the rows
-- were archived; bad arguments.
CALL number_ids_from(190000);
SET client_min_messages = warning;
SET pipeline.archive_interval = -1;
CREATE SCHEMA rp;
SET search_path = rp, public;

CREATE TABLE orders (order_id int, status text, amount text, updated_at timestamptz, op text);
SELECT pipeline.create_pipeline('orders', 'orders', 'orders_cur', key => ARRAY['order_id'],
                                sequence_by => 'updated_at', delete_when => $$op = 'd'$$,
                                columns => '{"amount": "amount::numeric(10,2)", "op": null}',
                                batch_size => 3) > 0 AS created;
-- run 190001: five new orders
INSERT INTO orders SELECT g, 'new', (10 * g)::text, timestamptz '2026-01-01 10:00+00', 'u'
  FROM generate_series(1, 5) g;
CALL pipeline.run('orders');
-- run 190002: two paid, one deleted, one with an amount that does not cast
INSERT INTO orders VALUES (1, 'paid', '10', '2026-01-01 11:00+00', 'u'),
                          (2, 'paid', '20', '2026-01-01 11:00+00', 'u'),
                          (3, 'gone', NULL, '2026-01-01 11:00+00', 'd'),
                          (6, 'new', 'n/a', '2026-01-01 11:00+00', 'u');
CALL pipeline.run('orders');
-- run 190003: order 1 shipped, and a stale event for order 2
INSERT INTO orders VALUES (1, 'shipped', '10', '2026-01-01 12:00+00', 'u'),
                          (2, 'new', '20', '2026-01-01 09:00+00', 'u');
CALL pipeline.run('orders');
-- the rows of these three runs go to the archive, in batches of two
SELECT pipeline.set_retention('orders', keep => '0', batch_rows => 2);
SELECT batches_written, rows_archived FROM pipeline.archive('orders');
-- run 190004: its rows stay staged
INSERT INTO orders VALUES (4, 'paid', '40', '2026-01-01 13:00+00', 'u'),
                          (7, 'new', '70', '2026-01-01 13:00+00', 'u');
CALL pipeline.run('orders');
SELECT count(*) AS staged FROM orders;

CREATE TABLE orders_expected AS SELECT * FROM orders_cur;
SELECT c.consumed, c.partial_xid FROM pipeline.cursors c JOIN pipeline.pipelines p ON p.id = c.pipeline_id
 WHERE p.name = 'orders' \gset cursor_
CREATE VIEW orders_diff AS
SELECT count(*) AS differences FROM (
    (SELECT * FROM orders_expected EXCEPT ALL SELECT * FROM orders_cur)
    UNION ALL
    (SELECT * FROM orders_cur EXCEPT ALL SELECT * FROM orders_expected)) d;

-- Every run, from the archive and the staging table: the target is left as
-- it was, and replaying again changes nothing either.
CALL pipeline.replay('orders');
SELECT * FROM orders_diff;
CALL pipeline.replay('orders');
SELECT * FROM orders_diff;
-- the cursor did not move
SELECT c.consumed::text = :'cursor_consumed' AS cursor_kept, c.partial_xid IS NULL AS no_partial
  FROM pipeline.cursors c JOIN pipeline.pipelines p ON p.id = c.pipeline_id WHERE p.name = 'orders';
-- and a damaged target is repaired
UPDATE orders_cur SET status = 'damaged' WHERE order_id = 1;
DELETE FROM orders_cur WHERE order_id = 4;
CALL pipeline.replay('orders');
SELECT * FROM orders_diff;

-- By run ids: the rows one run consumed, and no others.
CALL pipeline.replay('orders', first_run => 190002, last_run => 190002);
SELECT (SELECT rows_read FROM pipeline.runs WHERE run_id = 190002) AS run_read,
       (SELECT rows_read FROM pipeline.runs WHERE kind = 'replay' ORDER BY run_id DESC LIMIT 1)
           AS replay_read;
SELECT * FROM orders_diff;
-- By time: runs started from since, before until.
SELECT started_at AS run3_start FROM pipeline.run_log WHERE run_id = 190003 \gset
CALL pipeline.replay('orders', since => :'run3_start');
CALL pipeline.replay('orders', until => :'run3_start');
CALL pipeline.replay('orders', since => :'run3_start', last_run => 190003);
SELECT * FROM orders_diff;
-- A range without runs replays nothing, and says so in the history.
CALL pipeline.replay('orders', first_run => 190100);
-- The history shows the replays, and which runs they merged again.
SELECT run_id, kind, status, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale,
       rows_quarantined, replayed_from_run, replayed_to_run
  FROM pipeline.runs WHERE pipeline = 'orders' ORDER BY run_id;
-- The bad row is quarantined again by each replay that read it.
SELECT run_id, reason, raw_row ->> 'amount' AS amount FROM pipeline.quarantine
 WHERE pipeline = 'orders' ORDER BY id;

-- Replay after fixing the mapping: the consumed rows go through the new one.
SELECT pipeline.alter_pipeline('orders',
    columns => $${"amount": "CASE WHEN amount ~ '^[0-9.]+$' THEN amount::numeric(10,2) END", "op": null}$$);
CALL pipeline.replay('orders');
SELECT order_id, status, amount FROM orders_cur ORDER BY order_id;

-- A column the staging table gained since its rows were archived is NULL
-- in the archived rows a replay reads.
SELECT pipeline.alter_pipeline('orders', on_schema_change => 'append_new_columns');
ALTER TABLE orders ADD COLUMN channel text DEFAULT 'web';
INSERT INTO orders (order_id, status, amount, updated_at, op, channel)
VALUES (8, 'new', '80', '2026-01-01 14:00+00', 'u', 'shop');
CALL pipeline.run('orders');
CALL pipeline.replay('orders');
SELECT order_id, status, channel FROM orders_cur ORDER BY order_id;

-- A large transaction consumed over several runs (partial positions): a
-- replay of the middle run merges exactly its rows.  An append pipeline
-- appends them again.
CREATE TABLE big (n int);
SELECT pipeline.create_pipeline('big', 'big', 'big_copy', strategy => 'append') > 0 AS created;
INSERT INTO big SELECT generate_series(1, 10);
CALL pipeline.run('big', max_rows => 4);
CALL pipeline.run('big', max_rows => 4);
CALL pipeline.run('big', max_rows => 4);
SELECT run_id, rows_read, cursor_before_xid IS NOT NULL AS started_inside,
       cursor_before_seq, cursor_after_xid IS NOT NULL AS ended_inside, cursor_after_seq
  FROM pipeline.run_log WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'big')
 ORDER BY run_id;
SELECT pipeline.set_retention('big', keep => '0', batch_rows => 3);
SELECT rows_archived FROM pipeline.archive('big');
SELECT min(run_id) + 1 AS middle_run FROM pipeline.runs WHERE pipeline = 'big' \gset
CALL pipeline.replay('big', first_run => :middle_run, last_run => :middle_run);
SELECT n, count(*) FROM big_copy GROUP BY n HAVING count(*) > 1 ORDER BY n;

-- A merge without sequence_by applies what it reads as the latest: replaying
-- an older run brings its older values back.
CREATE TABLE kv (k int, v text);
SELECT pipeline.create_pipeline('kv', 'kv', 'kv_cur', key => ARRAY['k']) > 0 AS created;
INSERT INTO kv VALUES (1, 'old');
CALL pipeline.run('kv');
INSERT INTO kv VALUES (1, 'new');
CALL pipeline.run('kv');
SELECT min(run_id) AS kv_first FROM pipeline.runs WHERE pipeline = 'kv' \gset
CALL pipeline.replay('kv', first_run => :kv_first, last_run => :kv_first);
SELECT * FROM kv_cur;

-- Bad arguments.
\set VERBOSITY default
SELECT * FROM error_of($$CALL pipeline.replay('no_such_pipeline')$$);
SELECT * FROM error_of($$CALL pipeline.replay(NULL)$$);
SELECT * FROM error_of($$CALL pipeline.replay('orders', since => '2026-01-02', until => '2026-01-01')$$);
SELECT * FROM error_of($$CALL pipeline.replay('orders', first_run => 5, last_run => 4)$$);
-- a pipeline reading a change log: what it reads is trimmed, not archived
SELECT pipeline.create_pipeline('orders_gold', 'orders_cur', 'orders_gold', key => ARRAY['order_id'])
       > 0 AS created;
SELECT * FROM error_of($$CALL pipeline.replay('orders_gold')$$);
-- a paused pipeline does not replay either
SELECT pipeline.pause('big');
CALL pipeline.replay('big');
-- another role's pipeline
CREATE ROLE replay_other;
SET ROLE replay_other;
SELECT * FROM error_of($$CALL pipeline.replay('orders')$$);
RESET ROLE;

-- Dropping the tables drops their pipelines.
RESET search_path;
DROP SCHEMA rp CASCADE;
DROP ROLE replay_other;
