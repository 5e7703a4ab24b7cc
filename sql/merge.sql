-- The merge strategy: latest wins, stale events are discarded, deletes leave
-- tombstones, composite keys, and merging without sequence_by.
CALL number_ids_from(50000);
SET client_min_messages = warning;
CREATE SCHEMA m;

CREATE TABLE m.events (id int, region text, v int, amount numeric, op text);
SELECT pipeline.create_pipeline('m_latest', 'm.events', 'm.current',
    key => ARRAY['id'], sequence_by => 'v', delete_when => $$op = 'd'$$,
    columns => '{"op": null, "region": null}') > 0 AS created;
\d m.current
\d m.current_tombstones

-- Several events per key in one batch: the newest version of each wins.
INSERT INTO m.events VALUES
    (1, 'eu', 1, 10, 'u'), (1, 'eu', 3, 30, 'u'), (1, 'eu', 2, 20, 'u'),
    (2, 'eu', 1, 5, 'u'), (3, 'us', 7, 70, 'u');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;

-- An event older than the stored version is discarded and counted as stale;
-- an event equal to the stored row (a redelivery) writes nothing and is
-- counted as unchanged: the row keeps its tuple.
SELECT xmin AS id2_xmin FROM m.current WHERE id = 2 \gset
INSERT INTO m.events VALUES (1, 'eu', 2, 999, 'u'), (2, 'eu', 1, 5, 'u'), (3, 'us', 8, 80, 'u');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;
SELECT xmin = :'id2_xmin' AS not_rewritten FROM m.current WHERE id = 2;
SELECT rows_updated, rows_unchanged, rows_stale FROM pipeline.runs
 WHERE pipeline = 'm_latest' ORDER BY run_id DESC LIMIT 1;

-- A delete removes the row and leaves a tombstone; an older upsert arriving
-- later cannot bring it back, a newer one can.
INSERT INTO m.events VALUES (1, NULL, 10, NULL, 'd');
CALL pipeline.run('m_latest');
SELECT id, v FROM m.current_tombstones ORDER BY id;
INSERT INTO m.events VALUES (1, 'eu', 9, 90, 'u');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;
INSERT INTO m.events VALUES (1, 'eu', 11, 110, 'u');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;

-- A delete older than the row is stale; a delete of an unknown key is
-- remembered so that its older upsert is discarded.
INSERT INTO m.events VALUES (3, NULL, 5, NULL, 'd'), (4, NULL, 5, NULL, 'd');
CALL pipeline.run('m_latest');
INSERT INTO m.events VALUES (4, 'us', 4, 40, 'u');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;
SELECT id, v FROM m.current_tombstones ORDER BY id;

-- Delete and upsert of one key in one batch: the later one wins.
INSERT INTO m.events VALUES (2, NULL, 20, NULL, 'd'), (2, 'eu', 21, 21, 'u'),
                            (3, 'us', 30, 30, 'u'), (3, NULL, 31, NULL, 'd');
CALL pipeline.run('m_latest');
SELECT * FROM m.current ORDER BY id;

-- Tombstones are forgotten after tombstone_retention.
SELECT pipeline.alter_pipeline('m_latest', tombstone_retention => '0 seconds');
INSERT INTO m.events VALUES (9, NULL, 1, NULL, 'd');
CALL pipeline.run('m_latest');
CALL pipeline.run('m_latest');
SELECT count(*) AS tombstones_left FROM m.current_tombstones;

-- Run history: every event is accounted for.
SELECT run_id, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale, rows_unchanged,
       rows_read = rows_inserted + rows_updated + rows_deleted + rows_stale + rows_unchanged
                   + rows_filtered + rows_quarantined AS balanced
  FROM pipeline.runs WHERE pipeline = 'm_latest' ORDER BY run_id;

-- Composite key; no sequence_by: arrival order wins.
CREATE TABLE m.stock (warehouse text, sku text, qty int);
SELECT pipeline.create_pipeline('m_stock', 'm.stock', 'm.stock_now',
    key => ARRAY['warehouse', 'sku']) > 0 AS created;
INSERT INTO m.stock VALUES ('a', 'x', 1), ('a', 'y', 2), ('b', 'x', 3), ('a', 'x', 4);
INSERT INTO m.stock VALUES ('a', 'x', 5);
CALL pipeline.run('m_stock');
SELECT * FROM m.stock_now ORDER BY 1, 2;
SELECT indexdef FROM pg_indexes WHERE schemaname = 'm' AND tablename = 'stock_now';

-- An existing target keeps its own columns and defaults.
CREATE TABLE m.customers_src (id int, name text, email text);
CREATE TABLE m.customers (id int PRIMARY KEY, name text, email text,
                          loaded_at timestamptz DEFAULT '2026-01-01', tier text DEFAULT 'basic');
SELECT pipeline.create_pipeline('m_customers', 'm.customers_src', 'm.customers',
    key => ARRAY['id'], columns => '{"email": "lower(email)"}') > 0 AS created;
INSERT INTO m.customers_src VALUES (1, 'Ann', 'ANN@X.COM'), (2, 'Bob', NULL);
CALL pipeline.run('m_customers');
SELECT * FROM m.customers ORDER BY id;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'm\_%' ORDER BY name;
DROP SCHEMA m CASCADE;
