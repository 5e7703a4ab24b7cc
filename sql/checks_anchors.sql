-- Data quality checks against their anchors: Great Expectations' column map
-- expectations and dbt's generic tests.  Both leave NULL values out of a
-- check about values (range, regex, accepted values, unique, relationships):
-- a NULL never fails one, and Great Expectations' mostly and
-- unexpected_percent are over the non-NULL values, while not_null counts
-- every row.  The cases below are Great Expectations' own, ported by hand
-- from tests/test_definitions/column_map_expectations/*.json in its
-- repository (each row names the test's title), and dbt's semantics from
-- its macros (macros/generic_test_sql/*.sql and
-- macros/materializations/tests/helpers.sql in dbt-adapters).
CALL number_ids_from(167300);
SET client_min_messages = warning;
CREATE SCHEMA anchors;
SET search_path = anchors, public;

-- The datasets, with i as Great Expectations' pk_index.
-- expect_column_values_to_be_between.json, dataset 1 (columns x and z)
CREATE TABLE between_1 (i int, x int, z int);
INSERT INTO between_1 VALUES (0, 1, 1), (1, 2, 2), (2, 3, 3), (3, 4, 4), (4, 5, 5),
  (5, 6, NULL), (6, 7, NULL), (7, 8, NULL), (8, 9, NULL), (9, 10, NULL);
-- expect_column_values_to_match_regex.json, dataset 1
CREATE TABLE regex_1 (i int, a text, b text, c text, "column_name with space" text);
INSERT INTO regex_1 VALUES (0, 'aaa', 'aaa', NULL, 'aaa'), (1, 'abb', 'abb', NULL, 'abb'),
  (2, 'acc', 'acc', NULL, 'acc'), (3, 'add', 'bdd', NULL, 'add'), (4, 'bee', NULL, NULL, 'bee');
-- expect_column_values_to_be_in_set.json, datasets 1 and 2 (an empty column)
CREATE TABLE in_set_1 (i int, w text, x int, y float8, z text);
INSERT INTO in_set_1 VALUES (0, 'AK', 1, 1.1, 'hello'), (1, 'HI', 2, 2.2, 'jello'),
  (2, 'PR', 4, 5.5, 'mello');
CREATE TABLE in_set_2 (i int, empty_column text);
-- expect_column_values_to_be_unique.json, dataset 1 (the columns of one type)
CREATE TABLE unique_1 (i int, a text, c int, n int, "unique" int, "null" int, mult_dup text);
INSERT INTO unique_1 VALUES (0, '2', 1, NULL, 1, NULL, '1'), (1, '2', 1, NULL, 2, NULL, '1'),
  (2, '2', 2, 2, 3, NULL, '2'), (3, NULL, NULL, NULL, NULL, NULL, '2');
-- expect_column_values_to_not_be_null.json, dataset 1
CREATE TABLE not_null_1 (i int, one_null int, two_null int, three_null int, no_null text,
                         all_null int);
INSERT INTO not_null_1 VALUES (0, 4, NULL, NULL, 'a', NULL), (1, 5, NULL, NULL, 'b', NULL),
  (2, NULL, 5, NULL, 'c', NULL), (3, 7, 6, 5, 'd', NULL);

-- The cases: each test's "in" (column and kwargs) and "out" (success and
-- the length of unexpected_list), plus the rows Great Expectations
-- considers: the non-NULL values (element_count - missing_count), but every
-- row for expect_column_values_to_not_be_null (its own _validate).  Tests
-- of features the checks do not have (strict bounds, row_condition, mixed
-- types, result formats alone) are left out; an empty value_set is below.
CREATE TABLE ge_cases (n int PRIMARY KEY, expectation text, title text, dataset text,
                       col text, value_set text[], min_value text, max_value text,
                       regex text, mostly float8, ge_success boolean, ge_unexpected int,
                       ge_considered int);
INSERT INTO ge_cases VALUES
  (1, 'be_between', 'basic_positive_test', 'between_1', 'x', NULL, '1', '10', NULL, NULL, true, 0, 10),
  (2, 'be_between', 'another_basic_positive_test', 'between_1', 'x', NULL, '0', '20', NULL, NULL, true, 0, 10),
  (3, 'be_between', 'missing_min_value', 'between_1', 'x', NULL, NULL, '20', NULL, NULL, true, 0, 10),
  (4, 'be_between', 'missing_max_value', 'between_1', 'x', NULL, '0', NULL, NULL, NULL, true, 0, 10),
  (5, 'be_between', 'basic_negative_test', 'between_1', 'x', NULL, '1', '9', NULL, NULL, false, 1, 10),
  (6, 'be_between', 'another_negative_test', 'between_1', 'x', NULL, '3', '10', NULL, NULL, false, 2, 10),
  (7, 'be_between', 'positive_test_with_mostly', 'between_1', 'x', NULL, '1', '10', NULL, 0.9, true, 0, 10),
  (8, 'be_between', '2nd_positive_test_with_mostly', 'between_1', 'x', NULL, '0', '20', NULL, 0.8999, true, 0, 10),
  (9, 'be_between', '3rd_positive_test_with_mostly', 'between_1', 'x', NULL, '1', '9', NULL, 0.9, true, 1, 10),
  (10, 'be_between', 'negative_test_with_mostly', 'between_1', 'x', NULL, '3', '10', NULL, 0.9, false, 2, 10),
  (11, 'be_between', 'negative_test_to_verify_that_the_denominator_for_mostly_works_with_missing_values',
   'between_1', 'z', NULL, '1', '4', NULL, 0.9, false, 1, 5),
  (12, 'be_between', 'positive_test_to_verify_that_the_denominator_for_mostly_works_with_missing_values',
   'between_1', 'z', NULL, '1', '4', NULL, 0.8, true, 1, 5),
  (13, 'be_between', 'test_strict_min_success', 'between_1', 'x', NULL, '1', '10', NULL, NULL, true, 0, 10),
  (14, 'be_between', 'test_strict_max_success', 'between_1', 'x', NULL, '0', '10', NULL, NULL, true, 0, 10),
  (15, 'match_regex', 'negative_test_insufficient_mostly_and_one_non_matching_value', 'regex_1', 'a', NULL, NULL, NULL, '^a', 0.9, false, 1, 5),
  (16, 'match_regex', 'positive_test_exact_mostly_w_one_non_matching_value', 'regex_1', 'a', NULL, NULL, NULL, '^a', 0.8, true, 1, 5),
  (17, 'match_regex', 'positive_test_column_name_has_space', 'regex_1', 'column_name with space', NULL, NULL, NULL, '^a', 0.8, true, 1, 5),
  (18, 'match_regex', 'positive_test_sufficient_mostly_w_one_non_matching_value', 'regex_1', 'a', NULL, NULL, NULL, '^a', 0.7, true, 1, 5),
  (19, 'match_regex', 'negative_test_one_missing_value_and_insufficent_mostly', 'regex_1', 'b', NULL, NULL, NULL, '^a', 0.8, false, 1, 4),
  (20, 'match_regex', 'positive_test_one_missing_value_and_exact_mostly', 'regex_1', 'b', NULL, NULL, NULL, '^a', 0.75, true, 1, 4),
  (21, 'match_regex', 'positive_test_one_missing_value_and_sufficent_mostly', 'regex_1', 'b', NULL, NULL, NULL, '^a', 0.7, true, 1, 4),
  (22, 'match_regex', 'positive_test_all_missing_values', 'regex_1', 'c', NULL, NULL, NULL, '^a', NULL, true, 0, 0),
  (23, 'match_regex', 'positive_test_all_missing_values_mostly', 'regex_1', 'c', NULL, NULL, NULL, '^a', 0.2, true, 0, 0),
  (24, 'match_regex', 'positive_test_empty_regex', 'regex_1', 'b', NULL, NULL, NULL, '', NULL, true, 0, 4),
  (25, 'match_regex', 'positive_test_more_complicated_regex', 'regex_1', 'b', NULL, NULL, NULL, '[ab]{1}[a-d]{2}', NULL, true, 0, 4),
  (26, 'match_regex', 'positive_test_match_characters_not_at_the_beginning_of_string', 'regex_1', 'a', NULL, NULL, NULL, 'b', 0.4, true, 3, 5),
  (27, 'be_in_set', 'basic_positive_test_case_number_set', 'in_set_1', 'x', '{1,2,4}', NULL, NULL, NULL, NULL, true, 0, 3),
  (28, 'be_in_set', 'negative_test_case_exclude_existing_column_value', 'in_set_1', 'x', '{2,4}', NULL, NULL, NULL, NULL, false, 1, 3),
  (29, 'be_in_set', 'basic_positive_strings_set', 'in_set_1', 'z', '{hello,jello,mello}', NULL, NULL, NULL, NULL, true, 0, 3),
  (30, 'be_in_set', 'negative_test_strings_set_extra_value_in_column', 'in_set_1', 'z', '{hello,jello}', NULL, NULL, NULL, NULL, false, 1, 3),
  (31, 'be_in_set', 'negative_test_numbers_set_no_matching_values', 'in_set_1', 'x', '{3}', NULL, NULL, NULL, NULL, false, 3, 3),
  (32, 'be_in_set', 'positive_test_float_set', 'in_set_1', 'y', '{1.1,2.2,5.5}', NULL, NULL, NULL, NULL, true, 0, 3),
  (33, 'be_in_set', 'negative_test_float_set', 'in_set_1', 'y', '{1.11,2.22,5.51}', NULL, NULL, NULL, NULL, false, 3, 3),
  (34, 'be_in_set', 'positive_test_two_character_set', 'in_set_1', 'w', '{HI,PR,AK}', NULL, NULL, NULL, NULL, true, 0, 3),
  (35, 'be_in_set', 'test_empty_column_should_be_vacuously_true', 'in_set_2', 'empty_column', '{cat,dog}', NULL, NULL, NULL, NULL, true, 0, 0),
  (36, 'be_unique', 'basic_positive_test_case', 'unique_1', 'unique', NULL, NULL, NULL, NULL, NULL, true, 0, 3),
  (37, 'be_unique', 'basic_negative_case_all_non_unique_character_values', 'unique_1', 'a', NULL, NULL, NULL, NULL, NULL, false, 3, 3),
  (38, 'be_unique', 'positive_case_using_mostly', 'unique_1', 'c', NULL, NULL, NULL, NULL, 0.3, true, 2, 3),
  (39, 'be_unique', 'negative_case_using_mostly', 'unique_1', 'c', NULL, NULL, NULL, NULL, 0.4, false, 2, 3),
  (40, 'be_unique', 'positive_case_multiple_null_values', 'unique_1', 'n', NULL, NULL, NULL, NULL, NULL, true, 0, 1),
  (41, 'be_unique', 'negative_case_non_unique_numeric_values', 'unique_1', 'c', NULL, NULL, NULL, NULL, NULL, false, 2, 3),
  (42, 'be_unique', 'positive_case_all_null_values', 'unique_1', 'null', NULL, NULL, NULL, NULL, NULL, true, 0, 0),
  (43, 'be_unique', 'negative_multiple_duplicate_values', 'unique_1', 'mult_dup', NULL, NULL, NULL, NULL, NULL, false, 4, 4),
  (44, 'not_be_null', 'basic_positive_case_complete_result_format', 'not_null_1', 'no_null', NULL, NULL, NULL, NULL, NULL, true, 0, 4),
  (45, 'not_be_null', 'negative_all_missing_values', 'not_null_1', 'all_null', NULL, NULL, NULL, NULL, NULL, false, 4, 4),
  (46, 'not_be_null', 'positive_mostly', 'not_null_1', 'one_null', NULL, NULL, NULL, NULL, 0.7, true, 1, 4),
  (47, 'not_be_null', 'negative_no_mostly_one_missing', 'not_null_1', 'one_null', NULL, NULL, NULL, NULL, NULL, false, 1, 4),
  (48, 'not_be_null', 'negative_mostly', 'not_null_1', 'one_null', NULL, NULL, NULL, NULL, 0.8, false, 1, 4),
  (49, 'not_be_null', 'positive_case_with_mostly_and_no_unexpected_values', 'not_null_1', 'no_null', NULL, NULL, NULL, NULL, 0.9, true, 0, 4),
  (50, 'not_be_null', 'negative_case_with_75percent_null_values_no_mostly', 'not_null_1', 'three_null', NULL, NULL, NULL, NULL, NULL, false, 3, 4);

-- One append pipeline per case, with one check of the matching kind.  Its
-- action is warn, so the rows merge whatever the check says; the batch is
-- judged by mostly when the test gives one, and otherwise by error_if '> 0'
-- (Great Expectations' default mostly of 1).  A FAIL fails the run.
SELECT count(pipeline.create_pipeline('ge_' || n, dataset::regclass, 'ge_out_' || n,
                                      strategy => 'append')) AS pipelines
  FROM ge_cases;
SELECT count(pipeline.add_check('ge_' || n, 'ge',
         kind => CASE expectation WHEN 'be_between' THEN 'range' WHEN 'match_regex' THEN 'regex'
                                  WHEN 'be_in_set' THEN 'accepted_values' WHEN 'be_unique' THEN 'unique'
                                  ELSE 'not_null' END,
         column_name => col, accepted_values => value_set, min_value => min_value,
         max_value => max_value, pattern => regex,
         unique_scope => CASE expectation WHEN 'be_unique' THEN 'batch' END,
         action => 'warn', error_if => CASE WHEN mostly IS NULL THEN '> 0' END,
         mostly => mostly)) AS checks
  FROM ge_cases;

-- The runs: each case whose expectation Great Expectations fails must fail
-- its run, saying why.
\set VERBOSITY terse
\o /dev/null
SELECT format('CALL pipeline.run(%L)', 'ge_' || n) FROM ge_cases ORDER BY n \gexec
\o
\set VERBOSITY default

-- Case by case: success, unexpected count (failing), rows considered
-- (total) and unexpected_percent (observed, a share: NULL when no row was
-- considered) must be Great Expectations' own; missing is the NULL values
-- a check left out (Great Expectations' missing_count).
CREATE VIEW ge_outcome AS
SELECT c.n, c.expectation, c.title,
       c.ge_success, coalesce(u.status, 'succeeded') = 'succeeded'
                     AND coalesce(r.status, 'PASS') <> 'FAIL' AS success,
       c.ge_unexpected, coalesce(r.failing, 0) AS unexpected,
       c.ge_considered, coalesce(r.total, 0) AS considered,
       coalesce(r.missing, 0) AS missing,
       round(100.0 * c.ge_unexpected / nullif(c.ge_considered, 0), 2) AS ge_unexpected_pct,
       round(100 * r.observed, 2) AS unexpected_pct
  FROM ge_cases c
  LEFT JOIN pipeline.runs u ON u.pipeline = 'ge_' || c.n
  LEFT JOIN pipeline.check_results r ON r.run_id = u.run_id;
SELECT n, expectation, title, ge_success, success, ge_unexpected, unexpected, ge_considered,
       considered, missing, ge_unexpected_pct, unexpected_pct
  FROM ge_outcome ORDER BY n;
SELECT count(*) AS cases,
       count(*) FILTER (WHERE ge_success IS DISTINCT FROM success OR ge_unexpected <> unexpected
                          OR ge_considered <> considered
                          OR ge_unexpected_pct IS DISTINCT FROM unexpected_pct) AS disagreements
  FROM ge_outcome;

-- expect_column_values_to_be_in_set.json, empty_value_set and
-- negative_empty_values_set: Great Expectations fails every value; a check
-- with no accepted value is refused when it is added.
SELECT code, message FROM error_of($$SELECT pipeline.add_check('ge_27', 'empty', kind => 'accepted_values', column_name => 'x', accepted_values => '{}')$$);

-- dbt's generic tests select the failing records, and get_test_sql counts
-- them (fail_calc count(*)) against warn_if and error_if ('!= 0' by
-- default).  NULLs: not_null.sql selects them; unique.sql groups
-- "where column is not null"; accepted_values.sql's "value_field not in
-- (...)" is NULL for a NULL group, which is not selected; relationships.sql
-- joins "child ... where column is not null".  Orders 3 and 4 have only
-- NULLs; order 5 repeats an email, an unknown status and customer.
CREATE TABLE dbt_customers (id int PRIMARY KEY);
INSERT INTO dbt_customers VALUES (1), (2);
CREATE TABLE dbt_orders (i int, status text, customer_id int, email text);
INSERT INTO dbt_orders VALUES (1, 'new', 1, 'a@x'), (2, 'paid', 2, 'b@x'), (3, NULL, NULL, NULL),
  (4, NULL, NULL, NULL), (5, 'bogus', 3, 'a@x'), (6, 'new', 1, 'c@x');
-- The failures of each dbt test, its SQL written out for this table.
CREATE VIEW dbt_failures AS
SELECT 'not_null' AS test, (SELECT count(*) FROM (SELECT status FROM dbt_orders WHERE status IS NULL) t) AS failures
UNION ALL
SELECT 'unique', (SELECT count(*) FROM (SELECT email AS unique_field, count(*) AS n_records FROM dbt_orders
                                         WHERE email IS NOT NULL GROUP BY email HAVING count(*) > 1) t)
UNION ALL
SELECT 'accepted_values', (SELECT count(*) FROM (
           WITH all_values AS (SELECT status AS value_field, count(*) AS n_records
                                 FROM dbt_orders GROUP BY status)
           SELECT * FROM all_values WHERE value_field NOT IN ('new', 'paid')) t)
UNION ALL
SELECT 'relationships', (SELECT count(*) FROM (
           WITH child AS (SELECT customer_id AS from_field FROM dbt_orders WHERE customer_id IS NOT NULL),
                parent AS (SELECT id AS to_field FROM dbt_customers)
           SELECT from_field FROM child LEFT JOIN parent ON child.from_field = parent.to_field
            WHERE parent.to_field IS NULL) t);
-- The same tests as checks (action warn, error_if '!= 0' as dbt's
-- default), each in a pipeline of its own over the same rows.
SELECT pipeline.create_pipeline('dbt_' || t, 'dbt_orders', 'dbt_out_' || t, strategy => 'append') > 0 AS created,
       pipeline.add_check('dbt_' || t, t, kind => t, action => 'warn', error_if => '!= 0',
                          column_name => CASE t WHEN 'not_null' THEN 'status' WHEN 'unique' THEN 'email'
                                                WHEN 'accepted_values' THEN 'status' ELSE 'customer_id' END,
                          accepted_values => CASE t WHEN 'accepted_values' THEN '{new,paid}'::text[] END,
                          ref_table => CASE t WHEN 'relationships' THEN 'dbt_customers'::regclass END,
                          ref_column => CASE t WHEN 'relationships' THEN 'id' END,
                          unique_scope => CASE t WHEN 'unique' THEN 'batch' END) > 0 AS added
  FROM unnest(ARRAY['not_null', 'unique', 'accepted_values', 'relationships']) t;
\set VERBOSITY terse
CALL pipeline.run('dbt_not_null');
CALL pipeline.run('dbt_unique');
CALL pipeline.run('dbt_accepted_values');
CALL pipeline.run('dbt_relationships');
\set VERBOSITY default
-- dbt errors exactly when the check fails.  Failing rows equal dbt's
-- failures for not_null and relationships (one record per row); unique and
-- accepted_values select one record per value (dbt: 1 duplicated email, 1
-- unknown status), where the check counts the rows holding it, as Great
-- Expectations does.  No NULL is counted by any but not_null.
SELECT f.test, f.failures AS dbt_failures, f.failures <> 0 AS dbt_should_error,
       r.status = 'FAIL' AS check_fails, r.failing, r.total, r.missing
  FROM dbt_failures f
  JOIN pipeline.runs u ON u.pipeline = 'dbt_' || f.test
  JOIN pipeline.check_results r ON r.run_id = u.run_id
 ORDER BY f.test;

-- What a failing row does is unchanged; a NULL value is never a failing
-- row.  A range check with action quarantine: the NULL amounts merge, the
-- out-of-range one is quarantined; error_if '> 40%' is over the 4 non-NULL
-- values (1 of 4 fails: 25%, the run goes on), not over the 7 rows.
CREATE TABLE amounts (id int, amount numeric);
INSERT INTO amounts VALUES (1, 10), (2, NULL), (3, 20), (4, NULL), (5, -1), (6, NULL), (7, 30);
SELECT pipeline.create_pipeline('amounts', 'amounts', 'amounts_out', key => '{id}') > 0 AS created;
SELECT pipeline.add_check('amounts', 'non_negative', kind => 'range', column_name => 'amount',
                          min_value => '0', error_if => '> 40%') > 0 AS added;
CALL pipeline.run('amounts');
SELECT * FROM amounts_out ORDER BY id;
SELECT raw_row->>'id' AS id, reason FROM pipeline.quarantine WHERE pipeline = 'amounts';
SELECT status, failing, total, missing, observed, message FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'amounts');
-- A batch of 10 rows with 3 values out of range, 2 in range and 5 NULLs:
-- 3 of the 5 values fail (60%, above 40%), so the run fails and nothing of
-- the batch merges, though 3 of its 10 rows would be only 30%.
INSERT INTO amounts VALUES (8, -2), (9, NULL), (10, -3), (11, 5), (12, NULL), (13, NULL),
  (14, NULL), (15, -4), (16, 6), (17, NULL);
\set VERBOSITY terse
CALL pipeline.run('amounts');
\set VERBOSITY default
SELECT count(*) AS merged FROM amounts_out;
SELECT u.status AS run_status, r.status, r.failing, r.total, r.missing, r.observed
  FROM pipeline.runs u JOIN pipeline.check_results r USING (run_id)
 WHERE u.pipeline = 'amounts' ORDER BY u.run_id;

-- Over several batches, the run's counts add up; a batch of NULLs only is
-- checked nowhere (total 0), and a run of NULLs only has no failing share.
CREATE TABLE codes (code text);
INSERT INTO codes VALUES ('A1'), (NULL), (NULL), (NULL), ('zz'), ('B2');
SELECT pipeline.create_pipeline('codes', 'codes', 'codes_out', strategy => 'append',
                                batch_size => 2) > 0 AS created;
SELECT pipeline.add_check('codes', 'code_format', kind => 'regex', column_name => 'code',
                          pattern => '^[A-Z][0-9]$', action => 'drop') > 0 AS added;
CALL pipeline.run('codes');
SELECT status, failing, total, missing, observed, batches FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'codes');
INSERT INTO codes VALUES (NULL), (NULL);
CALL pipeline.run('codes');
SELECT status, failing, total, missing, observed, batches FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'codes') ORDER BY run_id;
SELECT count(*) AS merged, count(code) AS merged_codes FROM codes_out;

-- unique in a pipeline with a key: NULL emails of different keys are not
-- duplicates (dbt's unique.sql and Great Expectations agree), a repeated
-- address is, in the batch and against the target.
CREATE TABLE users (id int, email text);
INSERT INTO users VALUES (1, 'a@x'), (2, NULL), (3, NULL), (4, 'b@x'), (5, 'b@x');
SELECT pipeline.create_pipeline('users', 'users', 'users_out', key => '{id}') > 0 AS created;
SELECT pipeline.add_check('users', 'one_email', kind => 'unique', column_name => 'email') > 0 AS added;
CALL pipeline.run('users');
INSERT INTO users VALUES (6, NULL), (7, 'a@x');
CALL pipeline.run('users');
SELECT * FROM users_out ORDER BY id;
SELECT raw_row->>'id' AS id FROM pipeline.quarantine WHERE pipeline = 'users' ORDER BY 1;
SELECT failing, total, missing FROM pipeline.check_results
 WHERE pipeline_id = (SELECT id FROM pipeline.pipelines WHERE name = 'users') ORDER BY run_id;

-- The batch statement hands check_row NULL only for a check that leaves
-- NULL values out: a forged NULL for an expression check fails the run.
CREATE TABLE forged (id int, v int);
INSERT INTO forged VALUES (1, 1);
SELECT pipeline.create_pipeline('forged', 'forged', 'forged_out', key => '{id}') > 0 AS created;
SELECT pipeline.add_check('forged', 'sneaky', 'pipeline.check_row(''1'', 1, NULL::boolean)') > 0 AS added;
\set SHOW_CONTEXT never
CALL pipeline.run('forged');
SELECT count(*) AS merged FROM forged_out;

RESET search_path;

-- Leave nothing behind for the files after this one.
SELECT count(pipeline.drop_pipeline(name)) AS dropped FROM pipeline.pipelines
 WHERE name LIKE 'ge\_%' OR name LIKE 'dbt\_%' OR name IN ('amounts', 'codes', 'users', 'forged');
DROP SCHEMA anchors CASCADE;
