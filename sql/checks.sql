-- Data quality checks: every kind and action, thresholds (warn_if,
-- error_if, mostly), row_count, results of every run, the pass-rate view,
-- the interplay with filters, deletes, rules and requeue, dependencies,
-- privileges, quoted names and bad input.
CALL number_ids_from(160000);
SET client_min_messages = warning;
CREATE SCHEMA "Quality Checks";
SET search_path = "Quality Checks", public;
CREATE TABLE customers (id int PRIMARY KEY);
INSERT INTO customers VALUES (1), (2);
CREATE TABLE raw (id int, customer_id int, status text, amount numeric, email text,
                  "Order Items" int, op text);
SELECT pipeline.create_pipeline('qc', 'raw', 'orders', key => '{id}',
                                delete_when => 'op = ''delete''') > 0 AS created;

-- One check of each kind, with each action.
SELECT pipeline.add_check('qc', 'positive_amount', 'amount > 0') > 0 AS added;
SELECT pipeline.add_check('qc', 'known_status', kind => 'accepted_values', column_name => 'status',
                          accepted_values => '{new,paid}', action => 'drop') > 0 AS added;
SELECT pipeline.add_check('qc', 'has_customer', kind => 'not_null', column_name => 'customer_id',
                          action => 'warn') > 0 AS added;
SELECT pipeline.add_check('qc', 'customer_exists', kind => 'relationships', column_name => 'customer_id',
                          ref_table => 'customers', ref_column => 'id') > 0 AS added;
SELECT pipeline.add_check('qc', 'unique_email', kind => 'unique', column_name => 'email',
                          action => 'warn') > 0 AS added;
SELECT pipeline.add_check('qc', 'email_format', kind => 'regex', column_name => 'email',
                          pattern => '^[^@]+@[^@]+$') > 0 AS added;
SELECT pipeline.add_check('qc', 'amount_limit', kind => 'between', column_name => 'amount',
                          max_value => '1000') > 0 AS added;
SELECT pipeline.add_check('qc', 'Items "counted"', kind => 'range', column_name => 'Order Items',
                          min_value => '1', max_value => '99', action => 'warn') > 0 AS added;
SELECT pipeline.add_check('qc', 'batch_size', kind => 'row_count', min_rows => 1, max_rows => 100,
                          action => 'warn') > 0 AS added;
SELECT name, kind, action, column_name, expression, accepted_values, min_value, max_value, pattern,
       ref_table, ref_column, min_rows, max_rows
  FROM pipeline.checks ORDER BY id;

-- Each row lands in exactly one place: the target (checks passed, or only
-- warn checks failed), the quarantine (with every check it failed), or
-- nowhere but the dropped count (its strongest failed action is drop).
-- Rows 6 and 7 share an email; NULL passes every check but not_null.
INSERT INTO raw VALUES
  (1, 1, 'new', 10, 'a@x', 1, NULL),          -- passes everything
  (2, 2, 'paid', -5, 'b@x', 2, NULL),         -- positive_amount: quarantined
  (3, 1, 'bogus', 5, 'c@x', 3, NULL),         -- known_status: dropped
  (4, NULL, 'new', 5, 'd@x', 4, NULL),        -- has_customer: warned, merged
  (5, 3, 'new', 5, 'e@x', 5, NULL),           -- customer_exists: quarantined
  (6, 1, 'new', 5, 'same@x', 6, NULL),        -- unique_email (warn): merged
  (7, 1, 'new', 5, 'same@x', 7, NULL),        -- unique_email (warn): merged
  (8, 1, 'new', 5000, 'bad', 8, NULL),        -- email_format and amount_limit
  (9, 2, 'bogus', -1, 'f@x', 9, NULL),        -- drop and quarantine: quarantined
  (10, 2, NULL, NULL, NULL, 100, NULL),       -- Items "counted": warned, merged
  (11, NULL, 'bogus', -1, 'bad', NULL, 'delete'); -- a delete event: not checked
CALL pipeline.run('qc');
SELECT * FROM orders ORDER BY id;
SELECT raw_row->>'id' AS id, reason, sqlstate FROM pipeline.quarantine WHERE pipeline = 'qc' ORDER BY 1::int;
SELECT rows_read, rows_inserted, rows_quarantined, rows_dropped, rows_stale, rows_deleted
  FROM pipeline.runs WHERE pipeline = 'qc';
SELECT check_name, status, failing, total, observed, batches, message
  FROM pipeline.check_results WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'qc')
 ORDER BY check_name;

-- unique also looks at the target: another key already has the email.
INSERT INTO raw VALUES (12, 1, 'new', 5, 'a@x', 1, NULL), (1, 1, 'paid', 10, 'a@x', 1, NULL);
CALL pipeline.run('qc');
SELECT check_name, status, failing, total, message FROM pipeline.check_results
 WHERE run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline = 'qc') AND failing > 0;

-- A fixed row goes back through the checks on requeue.
UPDATE pipeline.quarantine SET raw_row = jsonb_set(raw_row, '{amount}', '20')
 WHERE pipeline = 'qc' AND raw_row->>'id' = '2';
CALL pipeline.requeue_quarantine('qc');
SELECT id, amount FROM orders WHERE id = 2;
SELECT kind, r.check_name, r.status, r.failing, r.total FROM pipeline.check_results r
  JOIN pipeline.runs u USING (run_id)
 WHERE u.run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline = 'qc') AND r.total > 0
 ORDER BY 2;

-- Pass rates over the last 7 days.
SELECT check_name, kind, action, last_status, runs_7d, passed_7d, pass_rate_7d, rows_failing_7d,
       rows_checked_7d, row_pass_rate_7d
  FROM pipeline.check_pass_rates WHERE pipeline = 'qc' ORDER BY check_name;

-- action fail: the first failing row fails the run; the batch is not
-- merged, the cursor does not move, and the result says why.
CREATE TABLE raw2 (id int, amount numeric);
SELECT pipeline.create_pipeline('qc_fail', 'raw2', 'strict_orders', key => '{id}', batch_size => 3) > 0 AS created;
SELECT pipeline.add_check('qc_fail', 'positive', 'amount > 0', action => 'fail') > 0 AS added;
INSERT INTO raw2 VALUES (1, 1), (2, 2), (3, 3), (4, -1), (5, 5);
\set VERBOSITY terse
CALL pipeline.run('qc_fail');
SELECT * FROM strict_orders ORDER BY id;  -- the first batch (rows 1 to 3) committed
SELECT status, error_sqlstate, error_message, rows_read, rows_inserted FROM pipeline.runs WHERE pipeline = 'qc_fail';
SELECT check_name, status, failing, total, batches, message FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'qc_fail');
-- The next run meets the same row again: still nothing of its batch merged.
SELECT regexp_replace(detail, '_xid \d+', '_xid N') AS detail, hint
  FROM error_of($$CALL pipeline.run('qc_fail')$$);  -- (in a transaction: nothing recorded)
SELECT count(*) AS merged FROM strict_orders;
\set VERBOSITY default
\set SHOW_CONTEXT never

-- mostly: 1 of the 2 rows fails, under 90% pass: the run fails.
SELECT pipeline.drop_check('qc_fail', 'positive');
SELECT pipeline.add_check('qc_fail', 'positive', 'amount > 0', action => 'warn', mostly => 0.9) > 0 AS added;
CALL pipeline.run('qc_fail');
SELECT count(*) AS merged FROM strict_orders;
-- error_if with drop: more than 1 failing row fails the run; 1 is dropped.
SELECT pipeline.drop_check('qc_fail', 'positive');
SELECT pipeline.add_check('qc_fail', 'positive', 'amount > 0', action => 'drop', error_if => '> 1') > 0 AS added;
CALL pipeline.run('qc_fail');
SELECT * FROM strict_orders ORDER BY id;
SELECT rows_dropped FROM pipeline.runs WHERE pipeline = 'qc_fail' ORDER BY run_id DESC LIMIT 1;
INSERT INTO raw2 VALUES (6, -6), (7, -7), (8, 8);
CALL pipeline.run('qc_fail');
-- warn_if as a share: 2 of 3 failing is over 50%.
SELECT pipeline.drop_check('qc_fail', 'positive');
SELECT pipeline.add_check('qc_fail', 'positive', 'amount > 0', action => 'drop', warn_if => '> 50%') > 0 AS added;
CALL pipeline.run('qc_fail');
-- Every run's results, the failed runs' too.
SELECT u.run_id, u.status AS run_status, u.error_sqlstate, r.check_name, r.check_id IS NULL AS check_dropped,
       r.status, r.failing, r.total, r.observed, r.batches, r.message
  FROM pipeline.runs u JOIN pipeline.check_results r USING (run_id)
 WHERE u.pipeline = 'qc_fail' ORDER BY u.run_id, r.check_name;

-- row_count with action fail: a batch of too many rows fails the run.
SELECT pipeline.add_check('qc_fail', 'small_batches', kind => 'row_count', max_rows => 2, action => 'fail') > 0 AS added;
INSERT INTO raw2 VALUES (9, 9), (10, 10), (11, 11);
CALL pipeline.run('qc_fail');
SELECT max(id) AS last_merged FROM strict_orders;
SELECT r.check_name, r.status, r.failing, r.total, r.observed, r.message FROM pipeline.check_results r
 WHERE r.run_id = (SELECT max(run_id) FROM pipeline.runs WHERE pipeline = 'qc_fail') ORDER BY 1;

-- A row failing a cast (isolated by a retry) and rows failing a check in
-- the same batch: the retried statement's counts are the ones kept.
CREATE TABLE raw4 (id int, amount text);
SELECT pipeline.create_pipeline('qc_cast', 'raw4', 'cast_out', key => '{id}',
                                columns => '{"amount": "amount::numeric"}') > 0 AS created;
SELECT pipeline.add_check('qc_cast', 'positive', 'amount > 0') > 0 AS added;
INSERT INTO raw4 VALUES (1, '5'), (2, 'x'), (3, '-1'), (4, '7');
CALL pipeline.run('qc_cast');
SELECT * FROM cast_out ORDER BY id;
SELECT raw_row->>'id' AS id, reason, sqlstate FROM pipeline.quarantine WHERE pipeline = 'qc_cast' ORDER BY 1;
SELECT check_name, status, failing, total FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'qc_cast');

-- Checks apply to the events of an scd2 pipeline too: the quarantined
-- event opens no version.
CREATE TABLE raw5 (id int, city text, at int);
SELECT pipeline.create_pipeline('qc_scd2', 'raw5', 'dim5', key => '{id}', sequence_by => 'at',
                                strategy => 'scd2') > 0 AS created;
SELECT pipeline.add_check('qc_scd2', 'has_city', kind => 'not_null', column_name => 'city') > 0 AS added;
INSERT INTO raw5 VALUES (1, 'Paris', 1), (1, NULL, 2), (1, 'Lyon', 3);
CALL pipeline.run('qc_scd2');
SELECT id, city, __start_at, __end_at FROM dim5 ORDER BY __start_at;
SELECT raw_row->>'at' AS at, reason FROM pipeline.quarantine WHERE pipeline = 'qc_scd2';

-- unique on an append pipeline (no key): any repeat within the batch fails.
CREATE TABLE raw3 (v text);
SELECT pipeline.create_pipeline('qc_append', 'raw3', 'log3', strategy => 'append') > 0 AS created;
SELECT pipeline.add_check('qc_append', 'distinct_v', kind => 'unique', column_name => 'v',
                          unique_scope => 'batch') > 0 AS added;
INSERT INTO raw3 VALUES ('a'), ('b'), ('b'), (NULL), (NULL);
CALL pipeline.run('qc_append');
SELECT v FROM log3 ORDER BY v;
SELECT raw_row->>'v' AS v, reason FROM pipeline.quarantine WHERE pipeline = 'qc_append';

-- A table a relationships check reads cannot be dropped without CASCADE;
-- with it, the check goes.
SELECT code, message, hint FROM error_of($$DROP TABLE customers$$);
DROP TABLE customers CASCADE;
SELECT name FROM pipeline.checks WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'qc') ORDER BY id;

-- A change of the mapping that leaves a check without its column is refused.
SELECT code, message FROM error_of($$SELECT pipeline.alter_pipeline('qc', columns => '{"email": null}')$$);

-- drop_check
SELECT pipeline.drop_check('qc', 'unique_email');
SELECT pipeline.drop_check('qc', 'unique_email', if_exists => true);
SELECT count(*) AS checks_left FROM pipeline.checks WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'qc');

-- Bad input: each error with its SQLSTATE, message, detail and hint.
\x on
SELECT * FROM error_of($$SELECT pipeline.add_check('nope', 'c', 'true')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'positive_amount', 'amount > 1')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', '', 'true')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', repeat('c', 64), 'true')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'amount')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'amont > 0')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'amount > ')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'nonsense')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'not_null')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'not_null', column_name => 'nope')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'not_null', column_name => 'email', pattern => 'x')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'accepted_values', column_name => 'status')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'accepted_values', column_name => 'amount', accepted_values => '{1,two}')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'range', column_name => 'amount')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'range', column_name => 'amount', min_value => 'ten')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'regex', column_name => 'email', pattern => '(')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'relationships', column_name => 'customer_id')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'relationships', column_name => 'customer_id', ref_table => 'raw2', ref_column => 'nope')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'unique', column_name => 'email', unique_scope => 'galaxy')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'row_count')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'row_count', min_rows => 10, max_rows => 1)$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'row_count', min_rows => -1)$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', kind => 'row_count', min_rows => 1, action => 'drop')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', action => 'explode')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', action => 'fail', mostly => 0.9)$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', warn_if => 'lots')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', error_if => '> 150%')$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', error_if => '> 1', mostly => 0.5)$$);
SELECT * FROM error_of($$SELECT pipeline.add_check('qc', 'c', 'true', mostly => 1.5)$$);
SELECT * FROM error_of($$SELECT pipeline.drop_check('qc', 'nope')$$);
\x off

-- Privileges: another role neither sees nor changes the checks; an owner
-- cannot add a relationships check on a table it may not read.
CREATE ROLE qc_alice;
CREATE ROLE qc_bob;
GRANT USAGE, CREATE ON SCHEMA "Quality Checks" TO qc_alice;
CREATE TABLE secret (id int PRIMARY KEY);
SET ROLE qc_alice;
CREATE TABLE alice_raw (id int, ref int);
SELECT pipeline.create_pipeline('qc_alice', 'alice_raw', 'alice_out', key => '{id}') > 0 AS created;
SELECT code, message, hint FROM error_of($$SELECT pipeline.add_check('qc_alice', 'c', kind => 'relationships', column_name => 'ref', ref_table => 'secret', ref_column => 'id')$$);
SELECT pipeline.add_check('qc_alice', 'positive', 'ref > 0') > 0 AS added;
INSERT INTO alice_raw VALUES (1, 1), (2, -2);
CALL pipeline.run('qc_alice');
SELECT count(*) AS alice_sees_checks FROM pipeline.checks;
SELECT check_name, status, failing, total FROM pipeline.check_results;
RESET ROLE;
SET ROLE qc_bob;
SELECT count(*) AS bob_sees_checks FROM pipeline.checks;
SELECT count(*) AS bob_sees_results FROM pipeline.check_results;
SELECT code, message FROM error_of($$SELECT pipeline.drop_check('qc_alice', 'positive')$$);
SELECT code, message FROM error_of($$SELECT pipeline.add_check('qc_alice', 'c', 'true')$$);
RESET ROLE;

-- A 63-byte check name, and checks over mixed-case and quoted columns.
SELECT pipeline.add_check('qc', repeat('n', 63), '"Order Items" IS DISTINCT FROM 0') > 0 AS added;
SELECT length(name) FROM pipeline.checks WHERE name LIKE 'nnn%';

RESET search_path;

-- Leave nothing behind for the files after this one.
SELECT pipeline.drop_pipeline(name) FROM pipeline.pipelines WHERE name LIKE 'qc%' ORDER BY name;
DROP SCHEMA "Quality Checks" CASCADE;
DROP ROLE qc_alice;
DROP ROLE qc_bob;
