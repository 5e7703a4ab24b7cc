-- Nothing is dropped silently: rows that cannot be merged land in the
-- quarantine with their reason; the rest of the batch merges.
CALL number_ids_from(90000);
SET client_min_messages = warning;
CREATE SCHEMA q;
CREATE TABLE q.parents (id int PRIMARY KEY);
INSERT INTO q.parents VALUES (1), (2);
CREATE TABLE q.src (id int, parent int, amount text, code text, ts int);
CREATE TABLE q.tgt (id int PRIMARY KEY, parent int REFERENCES q.parents,
                    amount numeric(8,2) NOT NULL CHECK (amount >= 0), code text UNIQUE, ts int);
SELECT pipeline.create_pipeline('q_orders', 'q.src', 'q.tgt', key => ARRAY['id'], sequence_by => 'ts',
    columns => '{"amount": "amount::numeric(8,2)"}') > 0 AS created;

INSERT INTO q.src VALUES
    (1, 1, '10.00', 'a', 1),      -- good
    (2, 9, '10.00', 'b', 1),      -- foreign key violation
    (3, 1, '-1',    'c', 1),      -- check violation
    (4, 1, NULL,    'd', 1),      -- not-null violation
    (5, 1, 'ten',   'e', 1),      -- cast error in the mapping
    (6, 2, '6.00',  'a', 1),      -- unique violation on another column
    (NULL, 1, '1',  'g', 1),      -- null key
    (8, 1, '8.00',  'h', NULL),   -- null sequence value
    (9, 2, '9.00',  'i', 1);      -- good
CALL pipeline.run('q_orders');
SELECT * FROM q.tgt ORDER BY id;
SELECT raw_row->>'id' AS id, reason, sqlstate FROM pipeline.quarantine
 WHERE pipeline = 'q_orders' ORDER BY source_seq;
SELECT count(*) = 9 AS every_row_accounted_for
  FROM (SELECT id FROM q.tgt UNION ALL SELECT (raw_row->>'id')::int FROM pipeline.quarantine) x;

-- Fix rows in the quarantine (or the target's parent table) and requeue.
INSERT INTO q.parents VALUES (9);
UPDATE pipeline.quarantine SET raw_row = raw_row || '{"amount": "5.00"}'
 WHERE pipeline = 'q_orders' AND raw_row->>'id' IN ('3', '5');
UPDATE pipeline.quarantine SET raw_row = raw_row || '{"code": "f"}'
 WHERE pipeline = 'q_orders' AND raw_row->>'id' = '6';
CALL pipeline.requeue_quarantine('q_orders');
SELECT * FROM q.tgt ORDER BY id;
-- What fails again is quarantined anew; requeued entries leave the view.
SELECT raw_row->>'id' AS id, reason FROM pipeline.quarantine WHERE pipeline = 'q_orders' ORDER BY id;
SELECT count(*) AS requeued FROM pipeline.quarantine_log WHERE requeued_at IS NOT NULL;

-- Requeue of given ids only, then discard the rest.
UPDATE pipeline.quarantine SET raw_row = raw_row || '{"amount": "4.00"}'
 WHERE pipeline = 'q_orders' AND raw_row->>'id' = '4';
SELECT array_agg(id) AS fixed_ids FROM pipeline.quarantine WHERE raw_row->>'id' = '4' \gset
CALL pipeline.requeue_quarantine('q_orders', ids => :'fixed_ids');
SELECT id, amount FROM q.tgt WHERE id = 4;
SELECT pipeline.discard_quarantine('q_orders') AS discarded;
SELECT count(*) AS left_in_quarantine FROM pipeline.quarantine WHERE pipeline = 'q_orders';

-- Many bad rows in one batch: 200 cast errors and 45 unique violations (five
-- codes shared by ten rows each) among 5000 rows.  Every good row merges, every bad one is quarantined once.
CREATE TABLE q.bulk_src (id int, amount text, code text);
CREATE TABLE q.bulk (id int PRIMARY KEY, amount numeric, code text UNIQUE);
SELECT pipeline.create_pipeline('q_bulk', 'q.bulk_src', 'q.bulk', key => ARRAY['id'],
    columns => '{"amount": "amount::numeric"}') > 0 AS created;
INSERT INTO q.bulk_src
SELECT g, CASE WHEN g % 25 = 0 THEN 'bad' ELSE g::text END,
       CASE WHEN g % 100 = 7 THEN 'dup' || (g / 1000) ELSE 'c' || g END
  FROM generate_series(1, 5000) g;
CALL pipeline.run('q_bulk');
SELECT count(*) AS merged,
       (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'q_bulk') AS quarantined,
       (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'q_bulk' AND sqlstate = '22P02') AS cast_errors,
       (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'q_bulk' AND sqlstate = '23505') AS duplicates
  FROM q.bulk;
-- no row both merged and quarantined, none lost
SELECT count(*) AS in_both FROM q.bulk b
  JOIN pipeline.quarantine x ON (x.raw_row->>'id')::int = b.id AND x.pipeline = 'q_bulk';
SELECT count(*) AS lost FROM q.bulk_src s
 WHERE NOT EXISTS (SELECT 1 FROM q.bulk b WHERE b.id = s.id)
   AND NOT EXISTS (SELECT 1 FROM pipeline.quarantine x
                    WHERE x.pipeline = 'q_bulk' AND (x.raw_row->>'id')::int = s.id);

-- (_xid, _seq) identifies a staged row: a writer that forces a duplicate
-- _seq within its transaction is refused at once rather than later.
\set VERBOSITY terse
INSERT INTO q.bulk_src (id, amount, code, _seq) VALUES (7001, 'bad', 'x1', 42), (7002, '1', 'x2', 42);
\set VERBOSITY default

-- An error that is not about a row fails the run, which is recorded.
CREATE FUNCTION q.boom(int) RETURNS int LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION USING ERRCODE = 'insufficient_resources', MESSAGE = 'out of widgets'; END $$;
CREATE TABLE q.fail_src (id int);
SELECT pipeline.create_pipeline('q_fail', 'q.fail_src', 'q.fail', key => ARRAY['id'],
    columns => '{"extra": "q.boom(id)"}') > 0 AS created;
INSERT INTO q.fail_src VALUES (1);
\set VERBOSITY terse
CALL pipeline.run('q_fail');
\set VERBOSITY default
SELECT status, error_sqlstate, error_message FROM pipeline.runs WHERE pipeline = 'q_fail';
SELECT count(*) AS applied FROM q.fail;

SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'q\_%' ORDER BY name;
DROP SCHEMA q CASCADE;
