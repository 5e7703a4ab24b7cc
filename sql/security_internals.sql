-- Internal functions, trigger functions, runs inside runs, spliced
-- expressions: a hostile role gets clear errors, never a crash, a hang or
-- duplicated rows.  A crash would end this session (and the expected output
-- with it); the postmaster's start time must not change either.
CALL number_ids_from(95000);
SET client_min_messages = warning;
SET timezone = 'UTC';
\set SHOW_CONTEXT never
SELECT pg_postmaster_start_time() AS started \gset
CREATE SCHEMA si;
CREATE ROLE security_internals_evil;
GRANT USAGE, CREATE ON SCHEMA si TO security_internals_evil;

SET ROLE security_internals_evil;
-- Called directly, with NULLs and numbers out of range: nothing recorded
-- outside a batch, nothing crashes.
SELECT pipeline.mark_row(NULL, NULL) AS mark_null,
       pipeline.mark_row('1', 1) AS mark_any,
       pipeline.mark_value(NULL, NULL, 7) AS value_null,
       pipeline.mark_value('1', -1, 'x'::text) AS value_any,
       pipeline.keep_row(NULL) AS keep_null,
       pipeline.reject_row(NULL, 1, 99999) AS reject_null,
       pipeline.reject_row('1', 1, 99999) AS reject_far,
       pipeline.reject_row('1', 1, -5) AS reject_negative,
       pipeline.check_row('1', 1, VARIADIC NULL::boolean[]) AS check_null,
       pipeline.check_row('1', 1, VARIADIC '{}'::boolean[]) AS check_empty,
       pipeline.check_row('1', 1, VARIADIC ARRAY[[true], [false]]) AS check_2d,
       pipeline.check_row('1', 1, NULL, false) AS check_null_elem,
       pipeline.snapshot_prefix(NULL, '5:30:7,8', '3') AS prefix_null,
       pipeline.snapshot_prefix('10:20:', '5:30:7,8', '3') AS prefix_odd;

-- The same calls inside a batch statement, from a mapping, a filter and a
-- check: the run fails with a clear error and merges nothing.
CREATE TABLE si.src (id int, v text);
CREATE TABLE si.tgt (id int PRIMARY KEY, v text);
INSERT INTO si.src VALUES (1, 'a'), (2, 'b');
SELECT pipeline.create_pipeline('si_internal', 'si.src', 'si.tgt', key => ARRAY['id'],
    columns => '{"v": "CASE WHEN pipeline.reject_row(_xid, _seq, 999) THEN v ELSE v END"}') > 0 AS created;
CALL pipeline.run('si_internal');
SELECT pipeline.alter_pipeline('si_internal',
    columns => '{"v": "CASE WHEN pipeline.reject_row(_xid, _seq, -1) THEN v ELSE v END"}') IS NULL AS altered;
CALL pipeline.run('si_internal');
SELECT pipeline.alter_pipeline('si_internal', columns => '{}',
    filter => 'pipeline.check_row(_xid, _seq, VARIADIC ARRAY[[true], [false]])') IS NULL AS altered;
CALL pipeline.run('si_internal');
SELECT pipeline.alter_pipeline('si_internal', filter => '') IS NULL AS altered;
SELECT pipeline.add_check('si_internal', 'sneaky', 'pipeline.check_row(''1'', 1, true, NULL)') > 0 AS added;
CALL pipeline.run('si_internal');
SELECT pipeline.drop_check('si_internal', 'sneaky') IS NULL AS dropped;
-- a valid rule number, but a row that is not in the batch
SELECT pipeline.alter_pipeline('si_internal',
    columns => '{"v": "CASE WHEN pipeline.reject_row(''1'', 424242, 0) THEN v ELSE v END"}') IS NULL AS altered;
CALL pipeline.run('si_internal');
-- a mark naming a row that is not in the batch, then a failing cast (after
-- five failed runs in a row the pipeline is suspended: resume it first)
SELECT pipeline.resume('si_internal') IS NULL AS resumed;
SELECT pipeline.alter_pipeline('si_internal',
    columns => '{"v": "CASE WHEN pipeline.mark_row(''1'', 424242) THEN v::int::text END"}') IS NULL AS altered;
CALL pipeline.run('si_internal');
SELECT count(*) AS merged, (SELECT count(*) FROM pipeline.quarantine WHERE pipeline = 'si_internal') AS quarantined
  FROM si.tgt;
SELECT status, error_sqlstate FROM pipeline.runs WHERE pipeline = 'si_internal' ORDER BY run_id;
-- Once the mapping is clean (and the suspended pipeline resumed), the run
-- merges each row once.
SELECT pipeline.alter_pipeline('si_internal', columns => '{}') IS NULL AS altered;
SELECT pipeline.resume('si_internal') IS NULL AS resumed;
CALL pipeline.run('si_internal');
SELECT * FROM si.tgt ORDER BY id;

-- Trigger functions: PUBLIC may not attach them to its own tables.
CREATE TABLE si.t (generation text, consumed int, id text);
CREATE TRIGGER adopt BEFORE INSERT ON si.t
    FOR EACH ROW EXECUTE FUNCTION pipeline.adopt_restored_cursor();
CREATE TRIGGER sync AFTER INSERT ON si.t
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline.sync_freshness_job();
RESET ROLE;
-- Attached by a superuser, they refuse to run anywhere but on their table.
CREATE TRIGGER adopt BEFORE INSERT ON si.t
    FOR EACH ROW EXECUTE FUNCTION pipeline.adopt_restored_cursor();
INSERT INTO si.t VALUES ('x', 1, 'y');
DROP TRIGGER adopt ON si.t;
CREATE TRIGGER sync AFTER INSERT ON si.t
    FOR EACH STATEMENT EXECUTE FUNCTION pipeline.sync_freshness_job();
INSERT INTO si.t VALUES ('x', 1, 'y');
DROP TRIGGER sync ON si.t;
-- A cursor row without a cursor is refused by the table, not by a crash.
\set VERBOSITY terse
INSERT INTO pipeline.cursors (pipeline_id, consumed, generation)
SELECT id, NULL, NULL FROM pipeline.pipeline_defs WHERE name = 'si_internal';
\set VERBOSITY default
SELECT pg_postmaster_start_time() = :'started' AS same_server;

SET ROLE security_internals_evil;
-- Requeue of a row that still fails returns, and the row is back in the
-- quarantine with its new reason.
CREATE TABLE si.amounts_src (id int, amount text);
SELECT pipeline.create_pipeline('si_requeue', 'si.amounts_src', 'si.amounts', key => ARRAY['id'],
    columns => '{"amount": "amount::numeric"}') > 0 AS created;
INSERT INTO si.amounts_src VALUES (1, '1.5'), (2, 'ten');
CALL pipeline.run('si_requeue');
UPDATE pipeline.quarantine SET raw_row = raw_row || '{"amount": "eleven"}' WHERE pipeline = 'si_requeue';
SET statement_timeout = '10s';
CALL pipeline.requeue_quarantine('si_requeue');
RESET statement_timeout;
SELECT raw_row->>'amount' AS amount, reason FROM pipeline.quarantine WHERE pipeline = 'si_requeue';
SELECT count(*) AS entries, count(requeued_at) AS requeued FROM pipeline.quarantine_log q
  JOIN pipeline.pipelines p ON p.id = q.pipeline_id WHERE p.name = 'si_requeue';
UPDATE pipeline.quarantine SET raw_row = raw_row || '{"amount": "11"}' WHERE pipeline = 'si_requeue';
CALL pipeline.requeue_quarantine('si_requeue');
SELECT * FROM si.amounts ORDER BY id;

-- A run inside a run is refused: of the same pipeline, and of another one.
CREATE TABLE si.nest_src (id int);
CREATE FUNCTION si.run_inside(name text, id int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('CALL pipeline.run(%L)', name);
    RETURN id;
END $$;
SELECT pipeline.create_pipeline('si_nest', 'si.nest_src', 'si.nest', strategy => 'append',
    columns => '{"id": "si.run_inside(''si_nest'', id)"}') > 0 AS created;
SELECT pipeline.create_pipeline('si_other', 'si.nest_src', 'si.other', strategy => 'append') > 0 AS created;
INSERT INTO si.nest_src VALUES (1), (2), (3);
CALL pipeline.run('si_nest');
SELECT pipeline.alter_pipeline('si_nest', columns => '{"id": "si.run_inside(''si_other'', id)"}') IS NULL AS altered;
CALL pipeline.run('si_nest');
SELECT pipeline.alter_pipeline('si_nest', columns => '{"id": "si.run_inside(''no_such_pipeline'', id)"}') IS NULL AS altered;
CALL pipeline.run('si_nest');
SELECT (SELECT count(*) FROM si.nest) AS nest_rows, (SELECT count(*) FROM si.other) AS other_rows;
SELECT pipeline.alter_pipeline('si_nest', columns => '{}') IS NULL AS altered;
CALL pipeline.run('si_nest');
CALL pipeline.run('si_other');
SELECT (SELECT array_agg(id ORDER BY id) FROM si.nest) AS nest_rows,
       (SELECT array_agg(id ORDER BY id) FROM si.other) AS other_rows;

-- Expressions are spliced into statements: each must be one expression.
\set VERBOSITY terse
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], filter => 'true) OR (true');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], filter => 'id > 0 --');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], filter => 'true FROM si.src');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], filter => 'true AS keep');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], filter => 'true, false');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'], delete_when => 'false) OR (true');
SELECT pipeline.create_pipeline('si_bad', 'si.src', 'si.bad', key => ARRAY['id'],
    columns => '{"v": "v) AS v, (v"}');
SELECT pipeline.alter_pipeline('si_internal', filter => 'true) OR (true');
SELECT pipeline.add_check('si_internal', 'spliced', 'true) OR (true');
SELECT pipeline.add_check('si_internal', 'commented', 'id > 0 -- positive');
-- a comment that does not swallow anything, and a subquery, are fine
SELECT pipeline.alter_pipeline('si_internal', filter => 'id > 0 /* positive */ AND (SELECT true)') IS NULL AS altered;
SELECT filter FROM pipeline.pipelines WHERE name = 'si_internal';
\set VERBOSITY default

-- Freshness: a filter must be one expression, and two checks of one role
-- may not become the same check.
CREATE TABLE si.events (at timestamptz, kind text);
SELECT pipeline.add_freshness_check('si.events', 'at', warn_after => '1 hour', filter => 'true) OR (true');
SELECT pipeline.add_freshness_check('si.events', 'at', warn_after => '1 hour', filter => $$kind = 'a'$$) > 0 AS added;
SELECT pipeline.add_freshness_check('si.events', 'at', warn_after => '1 hour', filter => $$kind = 'b'$$) AS second \gset
\set VERBOSITY terse
SELECT pipeline.alter_freshness_check(:second, filter => $$kind = 'a'$$);
SELECT pipeline.alter_freshness_check(:second, filter => 'true) OR (true');
\set VERBOSITY default
SELECT filter FROM pipeline.freshness_checks WHERE relation = 'si.events'::regclass ORDER BY filter;

-- next_run_after stays inside the timestamp range.
SELECT pipeline.next_run_after('0 0 1 1 *', '294276-12-31');
SELECT pipeline.next_run_after('1 hour', '294276-12-31 23:30+00');
SELECT pipeline.next_run_after('1 hour', 'infinity');
SELECT pipeline.next_run_after('0 0 1 1 *', '2026-05-05');

RESET ROLE;
SELECT pg_postmaster_start_time() = :'started' AS same_server;
SELECT pipeline.drop_pipeline(name) IS NULL AS dropped FROM pipeline.pipelines
 WHERE name LIKE 'si\_%' ORDER BY name;
SELECT pipeline.drop_freshness_check(id) IS NULL AS dropped FROM pipeline.freshness_checks
 WHERE relation = 'si.events'::regclass;
DROP SCHEMA si CASCADE;
DROP ROLE security_internals_evil;
