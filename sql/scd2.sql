-- The scd2 strategy (slowly changing dimension, type 2): every version of a
-- key, from __start_at to __end_at; events in order, late (splitting the
-- version they fall into), at the same sequence as a version, deletes,
-- reopening, several per key in one batch; tracked and untracked columns;
-- quarantine, requeue, change logs, existing targets, bad definitions,
-- names needing quotes, roles.  Each history is compared row by row with
-- the expected one.
CALL number_ids_from(170000);
SET client_min_messages = warning;
CREATE SCHEMA d;

-- history_diff(actual, expected): the rows of one query the other lacks,
-- both ways (no rows: the history is exactly the expected one).
CREATE FUNCTION d.history_diff(actual text, expected text)
    RETURNS TABLE (diff text, version text) LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'SELECT ''missing'', x::text FROM ((%2$s) EXCEPT ALL (%1$s)) x '
        'UNION ALL SELECT ''unexpected'', x::text FROM ((%1$s) EXCEPT ALL (%2$s)) x ORDER BY 1, 2',
        actual, expected);
END $$;
-- versions_sound(target, key): no key with two current versions, no two
-- versions of a key that overlap, none that ends before it starts.
CREATE FUNCTION d.versions_sound(target regclass, key text) RETURNS boolean
    LANGUAGE plpgsql AS $$
DECLARE
    bad bigint;
BEGIN
    EXECUTE format(
        'SELECT count(*) FROM (SELECT __start_at, __end_at, lead(__start_at) OVER w AS next_start, '
        'count(*) FILTER (WHERE __end_at IS NULL) OVER (PARTITION BY %2$s) AS current '
        'FROM %1$s WINDOW w AS (PARTITION BY %2$s ORDER BY __start_at)) v '
        'WHERE current > 1 OR __end_at <= __start_at OR (next_start IS NOT NULL AND '
        '(__end_at IS NULL OR __end_at > next_start))', target, key) INTO bad;
    RETURN bad = 0;
END $$;

-- A customer dimension: city is tracked (a change opens a version), name
-- is not (a change updates the version in place).
CREATE TABLE d.events (id int, name text, city text, v int, op text);
SELECT pipeline.create_pipeline('d_customers', 'd.events', 'd.customers',
    key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$,
    columns => '{"op": null}', track_history => ARRAY['city']) > 0 AS created;
\d d.customers
SELECT strategy, key, sequence_by, track_history, tombstones FROM pipeline.pipeline_defs
 WHERE name = 'd_customers';
\d d.customers_tombstones
\set history 'SELECT id, name, city, v, __start_at, __end_at FROM d.customers'

-- In order, several events per key in one batch, one of them out of order
-- in the batch and two at the same sequence (the later arrival wins).
INSERT INTO d.events VALUES
    (1, 'ann', 'paris', 10, 'u'), (1, 'ann', 'rome', 20, 'u'), (1, 'ann', 'oslo', 15, 'u'),
    (2, 'bob', 'lima', 10, 'u'), (2, 'bob', 'quito', 12, 'u'), (2, 'bob', 'cusco', 12, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 10, 10, 15), (1, 'ann', 'oslo', 15, 15, 20), (1, 'ann', 'rome', 20, 20, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, NULL)$$);

-- A late event splits the version it falls into: [10,15) becomes [10,12)
-- and [12,15).
INSERT INTO d.events VALUES (1, 'ann', 'nice', 12, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 10, 10, 12), (1, 'ann', 'nice', 12, 12, 15), (1, 'ann', 'oslo', 15, 15, 20),
    (1, 'ann', 'rome', 20, 20, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, NULL)$$);

-- An untracked change updates the version it falls into, in place, with
-- its sequence_by value (the newest event applied to the version).
INSERT INTO d.events VALUES (1, 'Ann', 'rome', 25, 'u');
CALL pipeline.run('d_customers');
-- Older than that newest event, the same tracked value is stale: it
-- overwrites nothing.
INSERT INTO d.events VALUES (1, 'ANN?', 'rome', 22, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 10, 10, 12), (1, 'ann', 'nice', 12, 12, 15), (1, 'ann', 'oslo', 15, 15, 20),
    (1, 'Ann', 'rome', 25, 20, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, NULL)$$);

-- A late change falling before the version's newest event ends there: at
-- 25 the key was in rome again.
INSERT INTO d.events VALUES (1, 'ann', 'milan', 22, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 10, 10, 12), (1, 'ann', 'nice', 12, 12, 15), (1, 'ann', 'oslo', 15, 15, 20),
    (1, 'Ann', 'rome', 20, 20, 22), (1, 'ann', 'milan', 22, 22, 25), (1, 'Ann', 'rome', 25, 25, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, NULL)$$);

-- An event at the same sequence as a version's start replaces it (the
-- later arrival wins); one equal to the version before merges into it.
INSERT INTO d.events VALUES (1, 'ann', 'turin', 22, 'u');
CALL pipeline.run('d_customers');
INSERT INTO d.events VALUES (1, 'ann', 'paris', 12, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 12, 10, 15), (1, 'ann', 'oslo', 15, 15, 20),
    (1, 'Ann', 'rome', 20, 20, 22), (1, 'ann', 'turin', 22, 22, 25), (1, 'Ann', 'rome', 25, 25, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, NULL)$$);

-- A delete closes the current version; a delete of a key without versions
-- and a second delete change nothing (stale) but are remembered; an event
-- after the delete reopens the key; a late event in the gap opens a
-- version there, and one before a remembered delete ends at it.
INSERT INTO d.events VALUES (2, NULL, NULL, 30, 'd'), (3, NULL, NULL, 30, 'd');
CALL pipeline.run('d_customers');
INSERT INTO d.events VALUES (2, NULL, NULL, 31, 'd'), (2, 'bob', 'lima', 40, 'u');
CALL pipeline.run('d_customers');
INSERT INTO d.events VALUES (2, 'bob', 'cuzco', 35, 'u'), (3, 'cy', 'bern', 20, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 12, 10, 15), (1, 'ann', 'oslo', 15, 15, 20),
    (1, 'Ann', 'rome', 20, 20, 22), (1, 'ann', 'turin', 22, 22, 25), (1, 'Ann', 'rome', 25, 25, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, 30),
    (2, 'bob', 'cuzco', 35, 35, 40), (2, 'bob', 'lima', 40, 40, NULL), (3, 'cy', 'bern', 20, 20, 30)$$);
SELECT id, v FROM d.customers_tombstones ORDER BY id, v;

-- A late delete closes the version it falls into at its sequence; the
-- versions after it stay.  A late event equal to the version after a gap
-- moves that version's start back.
INSERT INTO d.events VALUES (1, NULL, NULL, 17, 'd');
CALL pipeline.run('d_customers');
INSERT INTO d.events VALUES (2, 'bob', 'cuzco', 32, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 12, 10, 15), (1, 'ann', 'oslo', 15, 15, 17),
    (1, 'Ann', 'rome', 20, 20, 22), (1, 'ann', 'turin', 22, 22, 25), (1, 'Ann', 'rome', 25, 25, NULL),
    (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, 30),
    (2, 'bob', 'cuzco', 35, 32, 40), (2, 'bob', 'lima', 40, 40, NULL), (3, 'cy', 'bern', 20, 20, 30)$$);

-- Before the first version: a new first version; a late delete before
-- the first version changes nothing.
INSERT INTO d.events VALUES (2, 'bob', 'tacna', 5, 'u'), (1, NULL, NULL, 1, 'd');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff(:'history', $$VALUES
    (1, 'ann', 'paris', 12, 10, 15), (1, 'ann', 'oslo', 15, 15, 17),
    (1, 'Ann', 'rome', 20, 20, 22), (1, 'ann', 'turin', 22, 22, 25), (1, 'Ann', 'rome', 25, 25, NULL),
    (2, 'bob', 'tacna', 5, 5, 10), (2, 'bob', 'lima', 10, 10, 12), (2, 'bob', 'cusco', 12, 12, 30),
    (2, 'bob', 'cuzco', 35, 32, 40), (2, 'bob', 'lima', 40, 40, NULL), (3, 'cy', 'bern', 20, 20, 30)$$);
SELECT d.versions_sound('d.customers', 'id') AS sound;
SELECT * FROM d.customers ORDER BY id, __start_at;

-- What each run did: versions inserted (opened), versions updated (closed,
-- cut, changed in place) or merged away, delete events applied, stale
-- events (changed no version).
SELECT run_id, rows_read, rows_inserted, rows_updated, rows_deleted, rows_stale
  FROM pipeline.runs WHERE pipeline = 'd_customers' ORDER BY run_id;

-- The key never has two current versions, whoever writes: the unique
-- partial index refuses a hand-written one.
\set VERBOSITY terse
INSERT INTO d.customers VALUES (1, 'eve', 'bern', 99, 99, NULL);
\set VERBOSITY default

-- NULL keys and NULL sequence values are quarantined with the reason; the
-- rest of the batch merges.  A fixed row, requeued, is slotted where its
-- sequence puts it.
INSERT INTO d.events VALUES (NULL, 'nobody', 'x', 50, 'u'), (4, 'dan', 'oran', NULL, 'u'),
                            (4, 'dan', 'fes', 50, 'u');
CALL pipeline.run('d_customers');
SELECT reason, sqlstate, raw_row->>'id' AS id, raw_row->>'v' AS v FROM pipeline.quarantine
 WHERE pipeline = 'd_customers' ORDER BY id;
UPDATE pipeline.quarantine SET raw_row = jsonb_set(raw_row, '{v}', '45')
 WHERE pipeline = 'd_customers' AND raw_row->>'id' = '4';
SELECT pipeline.discard_quarantine('d_customers', ARRAY(SELECT id FROM pipeline.quarantine
                                                        WHERE pipeline = 'd_customers' AND raw_row->>'id' IS NULL));
CALL pipeline.requeue_quarantine('d_customers');
SELECT * FROM d.history_diff('SELECT id, name, city, v, __start_at, __end_at FROM d.customers WHERE id = 4',
    $$VALUES (4, 'dan', 'oran', 45, 45, 50), (4, 'dan', 'fes', 50, 50, NULL)$$);

-- Slotting does not depend on arrival: the same events (each changing the
-- city, with deletes) in sequence order in one batch, and in reverse order
-- one per batch (each one late), give the same history.
CREATE TABLE d.walk (id int, city text, v int, op text);
CREATE TABLE d.walk_back (LIKE d.walk);
SELECT pipeline.create_pipeline('d_walk', 'd.walk', 'd.walk_history', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$, columns => '{"op": null}') > 0 AS created;
SELECT pipeline.create_pipeline('d_walk_back', 'd.walk_back', 'd.walk_back_history', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v', delete_when => $$op = 'd'$$, columns => '{"op": null}',
    batch_size => 1) > 0 AS created;
INSERT INTO d.walk SELECT k, 'c' || s, s, CASE WHEN (s + k) % 5 = 0 THEN 'd' ELSE 'u' END
  FROM generate_series(1, 4) k, generate_series(1, 12) s ORDER BY s;
INSERT INTO d.walk_back SELECT * FROM d.walk ORDER BY v DESC, id;
CALL pipeline.run('d_walk');
CALL pipeline.run('d_walk_back');
SELECT batches FROM pipeline.runs WHERE pipeline = 'd_walk_back';
SELECT * FROM d.history_diff('SELECT * FROM d.walk_history', 'SELECT * FROM d.walk_back_history');
SELECT count(*) AS versions, count(*) FILTER (WHERE __end_at IS NULL) AS current,
       d.versions_sound('d.walk_history', 'id') AS sound FROM d.walk_history;

-- track_history by default: every mapped column but the key and
-- sequence_by.  Values are compared as the target stores them: 1.004 and
-- 1.001 are both 1.00 in a numeric(6,2) column, so no new version; a value
-- too long for a varchar(3) column is quarantined, not cut.
CREATE TABLE d.prices (sku text, price numeric, code text, at timestamptz);
CREATE TABLE d.price_history (sku text, price numeric(6,2), code varchar(3), at timestamptz,
                              __start_at timestamptz, __end_at timestamptz,
                              PRIMARY KEY (sku, __start_at));
CREATE UNIQUE INDEX ON d.price_history (sku) WHERE __end_at IS NULL;
SELECT pipeline.create_pipeline('d_prices', 'd.prices', 'd.price_history', key => ARRAY['sku'],
    strategy => 'scd2', sequence_by => 'at') > 0 AS created;
INSERT INTO d.prices VALUES ('a', 1.004, 'x', '2026-01-01'), ('a', 1.001, 'x', '2026-01-02'),
                            ('a', 2, 'x', '2026-01-03'), ('a', 2, 'y', '2026-01-04'),
                            ('a', 3, 'long', '2026-01-05');
CALL pipeline.run('d_prices');
SELECT * FROM d.price_history ORDER BY __start_at;
SELECT reason, sqlstate FROM pipeline.quarantine WHERE pipeline = 'd_prices';

-- A tracked type without equality (json) is compared by its text.
CREATE TABLE d.docs (id int, doc json, v int);
SELECT pipeline.create_pipeline('d_docs', 'd.docs', 'd.doc_history', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v') > 0 AS created;
INSERT INTO d.docs VALUES (1, '{"a": 1}', 1), (1, '{"a": 1}', 2), (1, '{"a": 2}', 3);
CALL pipeline.run('d_docs');
SELECT * FROM d.doc_history ORDER BY __start_at;

-- A partitioned target and a composite key.
CREATE TABLE d.regional (region text, id int, city text, v int);
CREATE TABLE d.regional_history (region text, id int, city text, v int, __start_at int, __end_at int,
                                 PRIMARY KEY (region, id, __start_at)) PARTITION BY LIST (region);
CREATE TABLE d.regional_history_eu PARTITION OF d.regional_history FOR VALUES IN ('eu');
CREATE TABLE d.regional_history_us PARTITION OF d.regional_history FOR VALUES IN ('us');
CREATE UNIQUE INDEX ON d.regional_history (region, id) WHERE __end_at IS NULL;
SELECT pipeline.create_pipeline('d_regional', 'd.regional', 'd.regional_history',
    key => ARRAY['region', 'id'], strategy => 'scd2', sequence_by => 'v') > 0 AS created;
INSERT INTO d.regional VALUES ('eu', 1, 'a', 1), ('us', 1, 'b', 1), ('eu', 1, 'c', 3), ('us', 1, 'd', 2),
                              ('eu', 1, 'e', 2);
CALL pipeline.run('d_regional');
INSERT INTO d.regional VALUES ('us', 1, 'f', 1);
CALL pipeline.run('d_regional');
SELECT tableoid::regclass AS partition, * FROM d.regional_history ORDER BY region, id, __start_at;

-- Change logs: a pipeline reading an scd2 target gets the versions written
-- as upserts and the versions merged away as deletes; keyed on (key,
-- __start_at) it mirrors the history, late events included.
SELECT pipeline.create_pipeline('d_mirror', 'd.customers', 'd.customers_mirror',
    key => ARRAY['id', '__start_at']) > 0 AS created;
CALL pipeline.run('d_mirror');
INSERT INTO d.events VALUES (1, 'ann', 'paris', 11, 'u'), (1, 'ann', 'rome', 21, 'u'),
                            (2, NULL, NULL, 50, 'd'), (5, 'eve', 'bern', 1, 'u');
CALL pipeline.run('d_customers');
SELECT _op, id, city, __start_at, __end_at FROM d.customers_changes WHERE _for IS NULL
 ORDER BY id, __start_at, _op;
CALL pipeline.run('d_mirror');
SELECT * FROM d.history_diff('SELECT * FROM d.customers_mirror', 'SELECT * FROM d.customers');

-- A source's own __start_at/__end_at (an export of another history) are
-- not mapped: the pipeline writes its own.
CREATE TABLE d.exported (id int, city text, v int, __start_at int, __end_at int);
SELECT pipeline.create_pipeline('d_exported', 'd.exported', 'd.reimported', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v') > 0 AS created;
INSERT INTO d.exported VALUES (1, 'a', 5, 1, 7), (1, 'b', 7, 7, NULL);
CALL pipeline.run('d_exported');
SELECT * FROM d.reimported ORDER BY __start_at;

-- alter_pipeline: track_history changes which columns open versions (the
-- versions stored stay); an empty array restores the default.
SELECT pipeline.alter_pipeline('d_customers', track_history => ARRAY['city', 'name']);
INSERT INTO d.events VALUES (5, 'Eve', 'bern', 2, 'u');
CALL pipeline.run('d_customers');
SELECT * FROM d.history_diff('SELECT id, name, city, v, __start_at, __end_at FROM d.customers WHERE id = 5',
    $$VALUES (5, 'eve', 'bern', 1, 1, 2), (5, 'Eve', 'bern', 2, 2, NULL)$$);
SELECT pipeline.alter_pipeline('d_customers', track_history => '{}');
SELECT track_history FROM pipeline.pipelines WHERE name = 'd_customers';

-- A batch must see every version committed before it: refused in a
-- REPEATABLE READ transaction.
\x on
INSERT INTO d.events VALUES (5, 'Eve', 'zug', 3, 'u');
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM error_of($sql$CALL pipeline.run('d_customers')$sql$);
ROLLBACK;

-- Bad definitions: SQLSTATE, message, detail, hint.
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], sequence_by => 'v', track_history => ARRAY['city'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', track_history => ARRAY['id'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', track_history => ARRAY['v'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', track_history => ARRAY['City'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', track_history => ARRAY['city', 'city'])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', track_history => ARRAY['city', NULL])$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id', 'v'], strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.e1', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v', columns => '{"__end_at": "v + 1"}')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.alter_pipeline('d_customers', track_history => ARRAY['op'])$sql$);
-- existing targets: the version columns, their type, both indexes, types
-- of the mapped expressions, privileges
CREATE TABLE d.no_versions (id int PRIMARY KEY, city text, v int);
CREATE TABLE d.wrong_type (id int, city text, v int, __start_at int, __end_at bigint);
CREATE TABLE d.no_current_index (id int, city text, v int, __start_at int, __end_at int,
                                 PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON d.no_current_index (id) WHERE __end_at IS NOT NULL;
CREATE TABLE d.no_start_index (id int, city text, v int, __start_at int, __end_at int);
CREATE UNIQUE INDEX ON d.no_start_index (id) WHERE __end_at IS NULL;
CREATE TABLE d.int_city (id int, city int, v int, __start_at int, __end_at int, PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON d.int_city (id) WHERE __end_at IS NULL;
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.no_versions', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.wrong_type', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.no_current_index', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.no_start_index', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v')$sql$);
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.int_city', key => ARRAY['id'], strategy => 'scd2', sequence_by => 'v')$sql$);
-- a merge pipeline cannot write an scd2 target (no unique index on the key alone)
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_e', 'd.events', 'd.customers', key => ARRAY['id'], sequence_by => 'v')$sql$);
\x off
SELECT count(*) AS pipelines FROM pipeline.pipelines WHERE name = 'd_e';

-- Names needing quotes: schema, table, key, sequence_by and tracked columns
-- with spaces, capitals and reserved words; 63-byte names.
CREATE SCHEMA "Dim Data";
CREATE TABLE "Dim Data"."Raw Customers" ("Customer Id" int, "select" text, "Updated At" timestamptz,
                                         "Op" text);
SELECT pipeline.create_pipeline('d "quoted"', '"Dim Data"."Raw Customers"', '"Dim Data"."Customer History"',
    key => ARRAY['Customer Id'], strategy => 'scd2', sequence_by => 'Updated At',
    delete_when => $$"Op" = 'd'$$, columns => '{"Op": null}', track_history => ARRAY['select']) > 0 AS created;
INSERT INTO "Dim Data"."Raw Customers" VALUES (1, 'a', '2026-01-01', 'u'), (1, 'b', '2026-01-03', 'u'),
                                              (1, 'c', '2026-01-02', 'u'), (1, NULL, '2026-01-04', 'd');
CALL pipeline.run('d "quoted"');
SELECT * FROM "Dim Data"."Customer History" ORDER BY __start_at;
\d "Dim Data"."Customer History"
CREATE TABLE "Dim Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
    (c63_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb int,
     s63_ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc int, x text);
SELECT pipeline.create_pipeline(repeat('p', 63), '"Dim Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    '"Dim Data".u63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
    key => ARRAY['c63_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb'], strategy => 'scd2',
    sequence_by => 's63_ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc') > 0 AS created;
INSERT INTO "Dim Data".t63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa VALUES (1, 2, 'b'), (1, 1, 'a');
CALL pipeline.run(repeat('p', 63));
SELECT * FROM "Dim Data".u63_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa ORDER BY 3;

-- Roles: an existing target needs DELETE too (versions merged into their
-- neighbour are deleted); the pipeline runs as its owner.
CREATE ROLE d_carol;
GRANT USAGE, CREATE ON SCHEMA d TO d_carol;
CREATE TABLE d.carol_src (id int, city text, v int);
ALTER TABLE d.carol_src OWNER TO d_carol;
CREATE TABLE d.carol_dim (id int, city text, v int, __start_at int, __end_at int, PRIMARY KEY (id, __start_at));
CREATE UNIQUE INDEX ON d.carol_dim (id) WHERE __end_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON d.carol_dim TO d_carol;
SET ROLE d_carol;
\x on
SELECT * FROM error_of($sql$SELECT pipeline.create_pipeline('d_carol', 'd.carol_src', 'd.carol_dim', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v')$sql$);
\x off
RESET ROLE;
GRANT DELETE ON d.carol_dim TO d_carol;
SET ROLE d_carol;
SELECT pipeline.create_pipeline('d_carol', 'd.carol_src', 'd.carol_dim', key => ARRAY['id'],
    strategy => 'scd2', sequence_by => 'v') > 0 AS created;
INSERT INTO d.carol_src VALUES (1, 'x', 1), (1, 'y', 2);
CALL pipeline.run('d_carol');
RESET ROLE;
SELECT * FROM d.carol_dim ORDER BY __start_at;
REVOKE UPDATE ON d.carol_dim FROM d_carol;
INSERT INTO d.carol_src VALUES (1, 'z', 3);
\set VERBOSITY terse
CALL pipeline.run('d_carol');
\set VERBOSITY default
SELECT status, error_sqlstate, run_as = 'd_carol'::regrole AS by_carol FROM pipeline.runs
 WHERE pipeline = 'd_carol' ORDER BY run_id;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines
 WHERE name LIKE 'd\_%' OR name LIKE 'd "%' OR name = repeat('p', 63)
 ORDER BY name = 'd_customers', name;
DROP SCHEMA d CASCADE;
DROP SCHEMA "Dim Data" CASCADE;
DROP ROLE d_carol;
